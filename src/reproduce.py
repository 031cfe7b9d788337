"""Rebuild a logged model from its lineage and check that it scores the same metrics.

Checks the run's logged config against its `config_hash` tag and the processed data against
its `data_manifest_sha256` (warns when the code differs from its `git_commit`), then refits
and calibrates the model as src.train does and compares the run's metrics and calibrator with
the rebuilt model's. Exit 0 when every difference is within the tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import math
import time

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from src.common.config import Config, config_from_dict
from src.common.errors import DataContractError, ModelNotFoundError, PipelineError
from src.common.io import read_json, sha256_file, sha256_json
from src.common.logs import run_stage
from src.common.paths import SPLITS, Paths, get_paths
from src.data.processed import load_months, load_processed
from src.model.fit import fit_and_calibrate, score
from src.tracking.runs import CONFIG_ARTIFACT
from src.tracking.store import connect, git_commit

log = logging.getLogger("reproduce")


def check_config(logged: dict, tags: dict, run_id: str) -> Config:
    """The logged config must hash to the run's `config_hash` tag (it is the run's config)."""
    expected, actual = tags.get("config_hash"), sha256_json(logged)
    if actual != expected:
        raise PipelineError(
            f"run {run_id}: config.json hashes to {actual}, but the run's config_hash tag is "
            f"{expected}; the logged config is not the one the run was trained with"
        )
    return config_from_dict(logged, f"run {run_id}: config.json (schema changed since?)")


def check_data(paths: Paths, tags: dict, run_id: str) -> str:
    """The processed manifest must be byte-identical to the one the run was trained on;
    returns its hash."""
    path = paths.processed_manifest
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run `python -m src.preprocess` first")
    current, current_raw = sha256_file(path), read_json(path).get("raw_snapshot_sha256")
    expected, raw = tags.get("data_manifest_sha256"), tags.get("raw_snapshot_sha256")
    if current == expected:
        return current
    cause = (
        "same raw snapshot, so the preprocessing config or code differs"
        if current_raw == raw
        else f"another raw snapshot, sha256 {current_raw}"
    )
    raise DataContractError(
        f"{path}: sha256 {current} differs from run {run_id}'s data_manifest_sha256 "
        f"{expected} ({cause}); re-run `python -m src.preprocess` on the run's raw snapshot "
        f"(raw_snapshot_sha256 {raw}) to reproduce this run"
    )


def check_code(tags: dict, current: str) -> None:
    logged = tags.get("git_commit")
    if logged != current:
        commits = f"run git_commit {logged}, working tree {current}"
        log.warning("code differs from the run's: %s; metrics may differ", commits)


def run_splits(paths: Paths, cfg: Config) -> dict:
    """Train, validation and test rows of the run's config, from whichever files hold them
    (in preprocess's order, so the refit sees the same rows in the same order)."""
    splits = {}
    for name in SPLITS:
        months = getattr(cfg.split, f"{name}_months")
        try:
            splits[name] = load_months(paths, months)
        except PipelineError:
            raise PipelineError(
                f"split '{name}': no processed rows for months {months} of the run's config"
            ) from None
    return splits | {"planes": load_processed(paths, "planes")}


def check_metrics(logged: dict, reproduced: dict, tolerance: float, run_id: str) -> float:
    """The largest |logged - reproduced| of the metrics in both (NaN in both counts as
    equal); PipelineError listing every metric beyond the tolerance."""
    diffs = {}
    for key in sorted(logged.keys() & reproduced.keys()):
        a, b = float(logged[key]), float(reproduced[key])
        diffs[key] = 0.0 if math.isnan(a) and math.isnan(b) else abs(a - b)
    if not diffs:
        raise PipelineError(
            f"run {run_id}: logged none of the metrics src.model.fit.score produces"
        )
    failed = [
        f"{k}: logged {logged[k]!r}, reproduced {reproduced[k]!r}"
        for k, d in diffs.items()
        if not d <= tolerance
    ]
    if failed:
        raise PipelineError(
            f"run {run_id}: {len(failed)} of {len(diffs)} metrics differ by more than "
            f"{tolerance:g}: " + "; ".join(failed)
        )
    return max(diffs.values())


def load_logged_config(run_id: str) -> dict:
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{CONFIG_ARTIFACT}")
    except (MlflowException, OSError) as exc:
        message = f"run {run_id}: cannot read artifact {CONFIG_ARTIFACT} ({exc})"
        raise PipelineError(message) from None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.reproduce", description=__doc__.split("\n")[0])
    p.add_argument("--run-id", required=True, help="MLflow run to rebuild")
    p.add_argument(
        "--tolerance", type=float, default=1e-9, help="largest allowed |metric difference|"
    )
    return p.parse_args(argv)


def checked_config(run, paths: Paths) -> Config:
    """The run's config, once its config, data and code lineage are checked."""
    run_id, tags = run.info.run_id, run.data.tags
    cfg = check_config(load_logged_config(run_id), tags, run_id)
    data_hash = check_data(paths, tags, run_id)
    check_code(tags, git_commit())
    log.info("lineage checked: config '%s', data manifest %s", cfg.name, data_hash[:12])
    return cfg


def refit_metrics(kind: str, paths: Paths, cfg: Config) -> tuple[dict, str]:
    """The metrics of `kind` refitted on the run's training months and calibrated on its
    validation months (src.train's recipe), and the calibrator kept ("none" if none)."""
    splits = run_splits(paths, cfg)
    rows, months = len(splits["train"]), cfg.split.train_months
    log.info("refitting %s on %d rows of months %s (config '%s')", kind, rows, months, cfg.name)
    start = time.perf_counter()
    model, calibration = fit_and_calibrate(kind, splits, cfg)
    seconds, test = time.perf_counter() - start, cfg.split.test_months
    log.info("refitted in %.1fs; scoring months %s", seconds, test)
    lead = cfg.split.served_lead_hours
    return score(model, splits, lead)[0] | calibration["metrics"], calibration["method"] or "none"


def _main(argv=None) -> int:
    args = parse_args(argv)
    paths = get_paths()
    uri = connect(paths)
    try:
        run = MlflowClient().get_run(args.run_id)
    except MlflowException:
        message = f"run '{args.run_id}': not found in the tracking store {uri}"
        raise ModelNotFoundError(message) from None
    kind = run.data.params.get("model", "")
    log.info("run %s (%s, %s) from %s", args.run_id, kind, run.info.run_name, uri)
    reproduced, calibrator = refit_metrics(kind, paths, checked_config(run, paths))
    logged_calibrator = run.data.params.get("calibrator", "none")
    if calibrator != logged_calibrator:
        raise PipelineError(
            f"run {args.run_id}: logged calibrator '{logged_calibrator}', the refit kept"
            f" '{calibrator}'"
        )
    worst = check_metrics(run.data.metrics, reproduced, args.tolerance, args.run_id)
    compared = len(run.data.metrics.keys() & reproduced.keys())
    message = "reproduced %d metrics of run %s: max |difference| %.3g <= tolerance %g"
    log.info(message, compared, args.run_id, worst, args.tolerance)
    return 0


def main(argv=None) -> int:
    return run_stage("reproduce", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
