"""The dashboard's only way to the model: the API over HTTP (FD_API_URL, default
http://127.0.0.1:8000; X-API-Key when FD_API_KEY is set). Every failure becomes a
`Result` whose `message` is a plain sentence, never a stack trace."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from dashboard.text import moment

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 10.0


def api_url() -> str:
    return (os.environ.get("FD_API_URL") or DEFAULT_URL).rstrip("/")


def api_key() -> str | None:
    return os.environ.get("FD_API_KEY") or None


@dataclass
class Result:
    """One call's outcome. kind: "ok", "not_found" (404), "two_origins" (409 with
    `origins`), "departed" (409 with `departed`), "conflict" (another 409), "invalid" (422),
    "unauthorized" (401/403), "unavailable" (503), "down" (no answer), "error" (the rest)."""

    kind: str
    message: str = ""
    status: int | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def get(path: str, params: dict[str, Any] | None = None, base: str | None = None) -> Result:
    """GET base+path; the JSON answer, or a Result saying in words why there is none."""
    base = (base or api_url()).rstrip("/")
    query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    url = base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    return send(url, base)


def post(path: str, body: dict[str, Any], base: str | None = None) -> Result:
    """POST `body` as JSON to base+path; answered as `get` answers."""
    base = (base or api_url()).rstrip("/")
    data = json.dumps(body).encode()
    return send(base + path, base, data, {"Content-Type": "application/json"})


# What a URL that is not one (no scheme: ValueError), a server that is down, or a port that
# does not speak HTTP (HTTPException) raise: each is "the API is not answering", in words.
UNREACHABLE = (
    urllib.error.URLError, TimeoutError, ConnectionError, ValueError, http.client.HTTPException
)  # fmt: skip


def send(url: str, base: str, data: bytes | None = None, headers: dict | None = None) -> Result:
    """GET `url` (POST with `data`) at the API at `base`, asking for JSON, with the key when
    one is set."""
    headers = {"Accept": "application/json", **(headers or {})}
    if key := api_key():
        headers["X-API-Key"] = key
    try:
        request = urllib.request.Request(url, data, headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return Result("ok", status=response.status, body=_json(response.read()))
    except urllib.error.HTTPError as exc:
        with exc:
            body = _json(exc.read())
        return from_status(exc.code, body)
    except UNREACHABLE as exc:
        return down(base, exc)


def _json(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload or b"{}")
    except ValueError:
        return {"detail": payload.decode("utf-8", "replace")[:300]}
    return doc if isinstance(doc, dict) else {"value": doc}


def down(base: str, exc: BaseException) -> Result:
    reason = getattr(exc, "reason", exc)
    why = "no answer in time" if isinstance(reason, TimeoutError) else str(reason)
    return Result(
        "down",
        f"The API at {base} is not answering ({why}). Start it with `make serve`, "
        "or point FD_API_URL at a running one.",
    )


def detail_text(body: dict[str, Any]) -> str:
    """The API's `detail`: a sentence, or FastAPI's list of validation errors in words."""
    detail = body.get("detail")
    if isinstance(detail, list):
        parts = []
        for e in detail:
            where = e.get("loc", ["?"])[-1] if isinstance(e, dict) else "?"
            what = e.get("msg", "invalid") if isinstance(e, dict) else str(e)
            parts.append(f"{where}: {what}")
        return "; ".join(parts)
    return str(detail) if detail else ""


def from_status(status: int, body: dict[str, Any]) -> Result:
    """An HTTP error as a Result with a plain message."""
    detail = detail_text(body)
    if status == 404:
        kind, message = "not_found", f"No such flight: {detail}" if detail else "Not found."
    elif status == 409 and body.get("origins"):
        choices = " or ".join(body["origins"])
        kind, message = "two_origins", f"This number leaves from {choices} that day: choose one."
    elif status == 409 and body.get("departed"):
        delay = body.get("dep_delay")
        late = "" if delay is None else f" ({delay:+.0f} min against the schedule)"
        kind = "departed"
        message = f"Already left at {moment(body['departed'])}{late}: nothing to predict."
    elif status == 409:
        kind, message = "conflict", detail or "The API refused this flight (409)."
    elif status == 422:
        kind, message = "invalid", f"The API refused the request: {detail}"
    elif status in (401, 403):
        kind = "unauthorized"
        message = "The API wants a valid key: set FD_API_KEY to the API's key."
    elif status == 503:
        kind, message = "unavailable", f"The API cannot answer yet: {detail}"
    else:
        kind, message = "error", f"The API answered {status}" + (f": {detail}" if detail else ".")
    return Result(kind, message, status, body)


def flight(
    carrier: str,
    number: int,
    day: date,
    origin: str | None = None,
    explain: bool = True,
    base: str | None = None,
    features: bool = False,
) -> Result:
    """GET /flights/{carrier}/{number}/{day}[?origin=][&explain=true][&features=true]. An
    API that cannot explain this model (501) is asked again without the explanation."""
    path = f"/flights/{urllib.parse.quote(carrier.strip().upper())}/{int(number)}/{day.isoformat()}"
    params = {"origin": origin or None, "features": "true" if features else None}
    result = get(path, {**params, "explain": "true" if explain else None}, base)
    if explain and result.status == 501:
        result = get(path, params, base)
    return result


def predict(record: dict[str, Any], base: str | None = None) -> Result:
    """POST /predict: one flight's record (POST /predict's fields) scored as it is."""
    return post("/predict", record, base)


def model(base: str | None = None) -> Result:
    """GET /model: the champion the API serves, with its lineage."""
    return get("/model", base=base)


def departures(
    origin: str, start: str | None = None, hours: float | None = None, base: str | None = None
) -> Result:
    """GET /departures/{origin}[?start=][&hours=]: the airport's departures in a window
    (default: the store's clock to 6 h later), every flight scored by the API in one call."""
    path = f"/departures/{urllib.parse.quote(origin)}"
    return get(path, {"start": start, "hours": hours}, base)
