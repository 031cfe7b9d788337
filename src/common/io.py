"""File I/O helpers: hashing and atomic writes (temporary file + rename)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary readable files
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(target: Path, writer: Callable[[Path], object]) -> None:
    """Run `writer` on a temporary path, then rename it over `target`."""
    with atomic_path(target) as tmp:
        writer(tmp)


def write_json(target: Path, obj: Any) -> None:
    write_atomic(target, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def write_parquet(target: Path, df: pd.DataFrame) -> None:
    # Fixed engine and no pandas index so the same frame always gives the same bytes.
    write_atomic(target, lambda p: df.to_parquet(p, engine="pyarrow", index=False))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
