"""Fast path (switch: `serve.fast_paths.batch_parse`): POST /predict/batch bodies decoded with
orjson and validated column by column, then scored, in one worker thread.

Why: the plain path (app/routes.py) lets FastAPI parse the body: `json.loads` on the event
loop, then one pydantic `Flight` per record, then the records turned into columns. For a
1000-flight batch that costs more than scoring it. Here the records become columns with one
C call each and one `FlightColumns` model validates them; the whole request runs in one
thread per worker (the GIL lets no two batches run at once, so more threads only hold more
batches in memory). docs/benchmarks.md gives what it buys (`make bench-serving`).

What it does not accept (an unknown field, a wrong type, a bad date, a malformed body) it
hands to the plain route, so every 422 is the plain path's own. tests/api/test_batch_fast_path.py
checks that both paths answer every body alike.
"""

from __future__ import annotations

from operator import itemgetter

import anyio
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import Match

from app import routes
from app.routes import Guarded, Service, batch_response
from app.schemas import BatchResponse, FlightColumns
from src.common.schema import API_REQUEST_FIELDS, FLIGHT_NUMBER, REQUEST_FIELDS

KNOWN = frozenset(API_REQUEST_FIELDS)
ROW = itemgetter(*REQUEST_FIELDS)  # the model's fields: every record has them all
PATH = "/predict/batch"


class WhenSwitchedOn(Guarded):
    """Matches only while the switch is on; otherwise the plain route for the path answers.
    Guarded as the plain route is: the key and the content type before the body."""

    def matches(self, scope):
        if not scope["app"].state.config.serve.fast_paths.batch_parse:
            return Match.NONE, {}
        return super().matches(scope)


router = APIRouter(route_class=WhenSwitchedOn)


# response_model: what FastAPI validates an answer against (the plain route's answer is a
# ready Response and passes as it is).
@router.post(PATH, include_in_schema=False, response_model=BatchResponse)
async def predict_batch(request: Request, svc: Service) -> BatchResponse | Response:
    raw = await request.body()
    limit = request.app.state.config.serve.max_batch
    limiter = one_batch_at_a_time(request)
    request_id = request.state.request_id  # set by app.middleware.ObserveAndLimit
    answer = await anyio.to_thread.run_sync(
        score_if_valid, raw, svc, limit, request_id, limiter=limiter
    )
    if answer is None:  # not a body this path takes: the plain route parses it and answers
        return await PLAIN_ROUTE(request)
    return answer


def score_if_valid(raw: bytes, svc, limit: int, request_id: str) -> BatchResponse | None:
    cols = columns_if_valid(raw)
    return None if cols is None else batch_response(svc, cols, limit, request_id)


def columns_if_valid(raw: bytes) -> dict[str, list] | None:
    """The body's flights as validated columns, or None whenever anything is off."""
    try:
        body = orjson.loads(raw)  # rejects NaN and Infinity: the plain path names the field
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or len(body) != 1:
        return None
    if "columns" in body:
        cols = body["columns"]
    elif isinstance(flights := body.get("flights"), list) and flights:
        cols = records_as_columns(flights)
    else:
        return None
    try:
        valid = FlightColumns.model_validate(cols)
    except ValidationError:
        return None
    n = len(valid.year)
    return {f: [None] * n if (v := getattr(valid, f)) is None else v for f in API_REQUEST_FIELDS}


def records_as_columns(flights: list) -> dict[str, list] | None:
    """Records as columns of every API_REQUEST field; None if a record is not an object or
    has an unknown key."""
    try:
        rows = list(map(ROW, flights))  # every model field given: the usual body, one C call
    except (KeyError, TypeError):  # a field left out, or a record that is not an object
        if not all(isinstance(r, dict) and KNOWN.issuperset(r) for r in flights):
            return None
        return {f: [r.get(f) for r in flights] for f in API_REQUEST_FIELDS}
    # Beyond the model's fields a record may hold its flight number, and nothing else.
    extra = any(len(r) != len(REQUEST_FIELDS) for r in flights)
    if extra and not all(KNOWN.issuperset(r) for r in flights):
        return None
    cols = dict(zip(REQUEST_FIELDS, map(list, zip(*rows, strict=True)), strict=True))
    cols[FLIGHT_NUMBER.name] = [r.get(FLIGHT_NUMBER.name) for r in flights]
    return cols


def one_batch_at_a_time(request: Request) -> anyio.CapacityLimiter:
    """The worker's batch thread (a limiter is made inside the event loop, on first use)."""
    state = request.app.state
    if not hasattr(state, "batch_limiter"):
        state.batch_limiter = anyio.CapacityLimiter(1)
    return state.batch_limiter


# The plain route's request handler (FastAPI's own, for app/routes.py's endpoint; the key and
# the content type are checked already). The body is read and cached on the request, so it
# parses the same bytes.
PLAIN_ROUTE = APIRoute(PATH, routes.predict_batch, methods=["POST"]).get_route_handler()
