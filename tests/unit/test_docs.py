"""The docs name only what exists: every `make` target, every `python -m src.<stage>` flag and
every FD_* variable that README.md, CONTRIBUTING.md and docs/ mention."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import pytest

from src.common.paths import ROOT
from src.common.settings import Settings

DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where a variable may be read, besides the settings object: compose, scripts, CI, tests.
READERS = ["docker-compose.yml", "docker-compose.ci.yml", "Makefile", ".ci/run"]


def doc_text() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in DOCS}


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.M))


def variables_read() -> set[str]:
    """FD_* names the settings object reads, plus those compose, scripts and CI read."""
    names = {f"FD_{field.upper()}" for field in Settings.model_fields}
    sources = [ROOT / r for r in READERS] + sorted((ROOT / "scripts").glob("*.sh"))
    sources += [p for p in sorted((ROOT / "tests").rglob("*.py")) if p.name != "test_docs.py"]
    for path in sources:
        names |= set(re.findall(r"\bFD_[A-Z0-9_]+\b", path.read_text()))
    return names


@cache
def stage_help(stage: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", f"src.{stage}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"python -m src.{stage} --help: {done.stderr[-500:]}"
    return done.stdout


def stage_flags() -> list[tuple[str, str, str]]:
    """(doc, stage, flag) for every flag written after `python -m src.<stage>` on a line."""
    found = []
    for doc, text in doc_text().items():
        for line in text.splitlines():
            for match in re.finditer(r"python -m src\.([a-z_]+)((?:\s+[^`|\n]*)?)", line):
                stage, rest = match.group(1), match.group(2)
                rest = re.split(r"\s#\s|python -m", rest)[0]  # a shell comment ends it
                found += [(doc, stage, flag) for flag in re.findall(r"(?<!\w)--[a-z][a-z-]*", rest)]
    return sorted(set(found))


def test_every_make_target_named_exists():
    targets = make_targets()
    missing = [
        f"{doc}: make {name}"
        for doc, text in doc_text().items()
        for name in re.findall(r"`make ([a-z][a-z0-9-]*)", text)
        + re.findall(r"^\s*make ([a-z][a-z0-9-]*)", text, flags=re.M)
        if name not in targets
    ]
    assert not missing, missing


def test_every_variable_named_is_read_somewhere():
    read = variables_read()
    missing = sorted(
        {
            f"{doc}: {name}"
            for doc, text in doc_text().items()
            for name in re.findall(r"\bFD_[A-Z0-9_]+\b", text)
            if name not in read
        }
    )
    assert not missing, missing


@pytest.mark.parametrize(("doc", "stage", "flag"), stage_flags())
def test_every_stage_flag_named_exists(doc, stage, flag):
    assert flag in stage_help(stage), f"{doc}: python -m src.{stage} has no {flag}"


def test_the_checks_see_what_does_not_exist():
    assert "no-such-target" not in make_targets() and "model-card" in make_targets()
    assert "FD_NO_SUCH" not in variables_read() and "FD_BIND" in variables_read()
    assert "--no-such-flag" not in stage_help("predict") and "--workers" in stage_help("predict")
