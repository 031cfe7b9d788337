"""Reports and the model card are Jinja2 templates (src/templates/), rendered here."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from src.common.paths import TEMPLATES_DIR


@cache
def _environment() -> Environment:
    # StrictUndefined: a missing figure fails the render instead of printing an empty cell.
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    return env


def fmt(value: float | None, digits: int = 4) -> str:
    """A figure for a table: '–' when missing, thousands separators for counts."""
    if value is None:
        return "–"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) > 1):
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
