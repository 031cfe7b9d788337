"""Stage 6: data and prediction drift of a batch against the training reference (Evidently).

The batch is processed months (labelled, so quality is checked against the champion's own
figures: `monitor:`) or the API's prediction log. Writes reports/drift/<batch>/ and a row of
reports/drift/history.csv, prints one line. Exit (cron): 0 healthy, 1 alert, 2 error.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path

from src.common.config import CONFIG_HELP, Config, load_config
from src.common.io import read_json, write_json
from src.common.logs import CRON_ERROR, run_cron_stage
from src.common.paths import Paths, get_paths
from src.data.processed import load_months, load_processed, months_label
from src.monitoring.drift import check_batch, one_line, record_check
from src.serving.loader import load_champion
from src.serving.prediction_log import read_log

log = logging.getLogger("drift")
EXIT_OK, EXIT_ALERT, EXIT_ERROR = 0, 1, CRON_ERROR


def run(cfg: Config, paths: Paths, months: list[int], predictions: Path | None) -> dict:
    champion = load_champion(cfg, paths)
    if predictions is None:  # labelled processed months
        batch = load_months(paths, months, cfg.split.served_lead_hours)
        name = months_label(months)
        rates = read_json(paths.processed_manifest)["stats"]["cancellation_rate_by_month"]
        notes: dict = {"cancellation_rate": {m: rates.get(str(m)) for m in months}}
    else:  # the prediction log, and how many torn lines it skipped
        batch, torn = read_log(predictions)
        name, notes = "predictions", {"torn_lines": torn}
    snapshot, summary = check_batch(champion, load_processed(paths, "reference"), batch, cfg)
    summary |= {"batch": name, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    summary |= notes
    record_check(snapshot, summary, paths.drift_report(name), paths.drift_history)
    write_json(paths.drift_summary(name), summary)
    return summary


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.drift", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--month", type=int, nargs="+", help="months of 2013 to check (default: config)")
    p.add_argument(
        "--predictions",
        nargs="?",
        const="",
        help="check the API's prediction log instead (default folder: data/predictions)",
    )
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    preds = None
    if args.predictions is not None:
        preds = Path(args.predictions) if args.predictions else paths.predictions
    summary = run(cfg, paths, args.month or cfg.drift.current_months, preds)
    print(one_line(summary))
    return EXIT_ALERT if summary["alert"] else EXIT_OK


def main(argv=None) -> int:
    return run_cron_stage("drift", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
