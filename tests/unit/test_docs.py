"""The docs name only what exists: every `make` target, every `python -m src.<stage>` flag,
every FD_* variable and every relative link (file and heading) that README.md,
CONTRIBUTING.md and docs/ mention."""

from __future__ import annotations

import importlib
import io
import json
import re
from contextlib import redirect_stdout
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
    """What `python -m src.<stage> --help` prints: the stage's own parser, run in this
    process (a process per stage would import MLflow and the rest each time)."""
    printed = io.StringIO()
    with redirect_stdout(printed), pytest.raises(SystemExit) as done:
        importlib.import_module(f"src.{stage}").parse_args(["--help"])
    assert done.value.code == 0, f"python -m src.{stage} --help exited {done.value.code}"
    return printed.getvalue()


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
        + re.findall(r"^\s*make ([a-z][a-z0-9-]*)", code_blocks(text), flags=re.M)
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


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped,
    spaces as hyphens (a repeated heading's `-1` suffix is not needed here)."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", without_code_blocks(text), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def without_code_blocks(text: str) -> str:
    return re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.M | re.S)


def code_blocks(text: str) -> str:
    """The fenced code blocks' lines: where a line may start with a command (in prose, a
    line can start with "make" as a verb)."""
    return "\n".join(re.findall(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", text, flags=re.M | re.S))


def relative_links() -> list[tuple[str, str]]:
    """(doc, target) for every Markdown link that is not a URL."""
    found = []
    for doc, text in doc_text().items():
        for target in re.findall(r"\]\(([^)\s]+)\)", without_code_blocks(text)):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                found.append((doc, target))
    return sorted(set(found))


def broken_link(doc: str, target: str) -> str | None:
    """Why `target`, linked from `doc`, does not resolve; None when it does."""
    file_part, _, anchor = target.partition("#")
    path = (ROOT / doc).parent / file_part if file_part else ROOT / doc
    if not path.exists():
        return f"{doc}: {target}: no such file"
    if anchor and path.suffix == ".md" and anchor not in heading_anchors(path.read_text()):
        return f"{doc}: {target}: no heading #{anchor} in {path.relative_to(ROOT)}"
    return None


def test_every_relative_link_resolves():
    links = relative_links()
    assert any(doc == "README.md" for doc, _ in links)  # the scan finds the README's links
    broken = [why for doc, target in links if (why := broken_link(doc, target))]
    assert not broken, broken


def test_the_checks_see_what_does_not_exist():
    assert "no-such-target" not in make_targets() and "model-card" in make_targets()
    assert "FD_NO_SUCH" not in variables_read() and "FD_BIND" in variables_read()
    assert "--no-such-flag" not in stage_help("predict") and "--workers" in stage_help("predict")
    assert broken_link("README.md", "docs/no-such-page.md")
    assert broken_link("README.md", "docs/batch.md#no-such-heading")
    assert broken_link("docs/batch.md", "../README.md#quick-start") is None
    assert re.findall(
        r"^make ([a-z-]+)", code_blocks("make it so\n```\nmake lint\n```\n"), re.M
    ) == ["lint"]
    assert heading_anchors("## `make loop`: the cycle, Aug–Dec") == {"make-loop-the-cycle-augdec"}


def quoted_serving_run() -> tuple[dict, str]:
    """The serving result file docs/benchmarks.md links as the run it quotes, and the text."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    (name,) = re.findall(r"\]\((bench/serving-[^)]+\.json)\)", text)
    return json.loads((ROOT / "docs" / name).read_text()), text


def test_benchmark_figures_match_the_result_file_they_quote():
    """The serving figures in docs/benchmarks.md and the README are the committed result
    file's: its medians' ratios, their ranges over rounds, and its conditions."""
    result, text = quoted_serving_run()
    ratios, ranges = result["ratios"], result["ratio_ranges"]

    def quoted(key: str, digits: int, bold: str = "") -> str:
        """As the tables write a ratio: "**12.5×** (10.6–14.1)"."""
        low, high = ranges[key]["min"], ranges[key]["max"]
        value = f"{bold}{ratios[key]:.{digits}f}×{bold}"
        return f"{value} ({low:.{digits}f}–{high:.{digits}f})"

    assert quoted("single_rps_vs_mlflow", 1, bold="**") in text
    assert quoted("single_fixed_rps_vs_mlflow", 1) in text
    assert quoted("batch_rows_vs_mlflow", 2, bold="**") in text
    assert f"**{ratios['batch_p99_vs_mlflow']:.2f}**" in text
    assert f"**{ratios['startup_vs_mlflow']:.2f}**" in text
    assert f"**{ratios['rss_vs_mlflow']:.2f}**" in text
    conditions = result["conditions"]
    low, high = conditions["other_cpu_share_runs"]
    assert f"other processes used {100 * low:.1f}–{100 * high:.1f}% of the CPU" in text
    assert f"during the {conditions['measured_runs']} measured runs" in text
    readme = (ROOT / "README.md").read_text()
    assert f"one flight was {ratios['single_rps_vs_mlflow']:.1f}×" in readme
    assert f"({ratios['single_fixed_rps_vs_mlflow']:.1f}× with the same" in readme
