"""Stage 4: the model registry: register, gate, promote, roll back; export the champion.

Without --gate or --rollback, registers a run (default: the latest candidate) under --alias.
A new champion is exported to models/champion/ and its model card regenerated from the run.
"""

from __future__ import annotations

import argparse

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from src.common.config import CONFIG_HELP, Config, load_config
from src.common.errors import PipelineError
from src.common.logs import run_stage
from src.common.paths import Paths, get_paths
from src.data.processed import load_months, months_label
from src.registry.export import publish_champion
from src.registry.promotion import gate, rollback
from src.registry.versions import CHALLENGER, CHAMPION, create_version, latest_candidate, move_alias
from src.tracking.store import connect, experiment_id


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.register", description=__doc__.split("\n")[0])
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("--run-id", help="run to register (default: the latest candidate run)")
    p.add_argument("--alias", default=CHAMPION, choices=(CHAMPION, CHALLENGER))
    action = p.add_mutually_exclusive_group()
    action.add_argument("--gate", action="store_true", help="challenger vs champion, then decide")
    action.add_argument("--rollback", action="store_true", help="move @champion back one version")
    p.add_argument("--window", type=int, nargs="+", help="gate window: labelled months of 2013")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    cfg, paths = load_config(args.config), get_paths()
    connect(paths)
    try:
        _act(args, cfg, paths)
    except MlflowException as exc:  # an unreachable tracking server, an unknown --run-id...
        first_line = (str(exc.message).strip().splitlines() or [type(exc).__name__])[0]
        raise PipelineError(f"{paths.tracking_uri}: {first_line}") from None
    return 0


def _act(args: argparse.Namespace, cfg: Config, paths: Paths) -> None:
    experiment_id(cfg.train.experiment, paths)
    client = MlflowClient()
    if args.rollback:
        rollback(client, cfg, paths)
    elif args.gate:
        if not args.window:
            raise PipelineError("--gate needs --window MONTH [MONTH ...]")
        window = load_months(paths, args.window)
        gate(client, cfg, paths, window, months_label(args.window))
    else:
        run_id = args.run_id or latest_candidate(client, cfg.train.experiment)
        version = create_version(client, run_id, cfg.registry.model_name)
        name = cfg.registry.model_name
        move_alias(client, paths, name, args.alias, version.version, "register")
        if args.alias == CHAMPION:
            publish_champion(client, cfg, paths)


def main(argv=None) -> int:
    return run_stage("register", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
