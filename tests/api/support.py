"""Helpers shared by the API tests: the smoke config and variants of it, test rows as request
records, raw JSON bodies (non-finite numbers included) and a strict JSON reader, and a
bounded wait on a condition."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from src.common.config import load_config
from src.common.paths import SMOKE_CONFIG
from src.common.schema import EXAMPLE_FLIGHT, REQUEST_FIELDS
from src.model.features import request_records

CFG = load_config(SMOKE_CONFIG)


def cfg_with(cfg=CFG, fast_paths: dict | None = None, **serve):
    """`cfg` with some `serve` settings (and `serve.fast_paths` switches) replaced."""
    update = dict(serve)
    if fast_paths is not None:
        update["fast_paths"] = cfg.serve.fast_paths.model_copy(update=fast_paths)
    return cfg.model_copy(update={"serve": cfg.serve.model_copy(update=update)})


def cfg_named(name: str, cfg=CFG):
    """`cfg` serving another registered model name."""
    return cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"model_name": name})})


def records(frame, n: int | None = None) -> list[dict]:
    """Rows of a processed split as request records (missing values as None)."""
    return request_records(frame if n is None else frame.head(n))


def columns_of(recs: list[dict]) -> dict[str, list]:
    """The records as one list per request field; a field a record leaves out (the feature
    store's, in EXAMPLE_FLIGHT) is None there, as the API reads it."""
    return {f: [r.get(f) for r in recs] for f in REQUEST_FIELDS}


def with_literal(body, field: str, literal: str) -> bytes:
    """`body` (a dict) as JSON with `field`'s value replaced by a raw JSON-ish literal such
    as NaN or -Infinity, which json.dumps would either refuse or write its own way. `field`
    may be a path: ("flights", 0, "temp")."""
    marker = "__NON_FINITE_LITERAL__"
    path = (field,) if isinstance(field, str) else tuple(field)
    doc = json.loads(json.dumps(body))  # a deep copy
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = marker
    text = json.dumps(doc)
    assert text.count(f'"{marker}"') == 1
    return text.replace(f'"{marker}"', literal).encode()


def flight_with(field: str, literal: str) -> bytes:
    return with_literal(EXAMPLE_FLIGHT, field, literal)


def _reject(constant: str):
    raise ValueError(f"not JSON: {constant}")


def strict_json(payload: bytes | str):
    """Decode as standard JSON: NaN, Infinity and -Infinity (which json.loads accepts by
    default) are errors."""
    return json.loads(payload, parse_constant=_reject)


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.1, what=""):
    """Poll `condition` until it returns something truthy (returned), at most `timeout` s;
    then fail naming `what`. Waiting on the event, not asserting how long it took, keeps the
    tests correct on a loaded 2-core machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what or condition}")
        time.sleep(interval)
