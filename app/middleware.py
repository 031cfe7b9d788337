"""Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware). Both read the
config the lifespan loaded (`app.state.config`): middleware is fixed when the app is
built, before any config is read, and nothing is read at import."""

from __future__ import annotations

import logging
import re
import time
import uuid

import orjson
from fastapi import HTTPException
from starlette.middleware.cors import CORSMiddleware

from app import metrics

# A caller's X-Request-ID is kept if it is a plain token; otherwise the API makes one.
CALLER_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
access = logging.getLogger("app.access")


class ObserveAndLimit:
    """Counts and times every request by route template, and answers 413 to bodies over
    `serve.max_body_bytes`, whether or not they declare a Content-Length.

    Every request gets an id: the caller's X-Request-ID, else a new one. It is echoed in
    the X-Request-ID response header, is the prediction's `request_id` (the body and the
    prediction log) and, with FD_LOG_FORMAT=json, is in the request's log line."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope["app"].state
        limit = state.config.serve.max_body_bytes
        start, status, received = time.perf_counter(), 500, 0
        too_large = f"request body exceeds {limit} bytes"
        headers = dict(scope["headers"])
        request_id = request_id_of(headers)
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        async def receive_capped():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, too_large)  # FastAPI turns it into a JSON 413
            return message

        try:
            declared = headers.get(b"content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                await reply_json(send_and_note, 413, {"detail": too_large})
            else:
                await self.app(scope, receive_capped, send_and_note)
        finally:
            route = scope.get("route")
            path = route.path if route is not None else "unmatched"
            metrics.REQUESTS.labels(path, str(status)).inc()
            seconds = time.perf_counter() - start
            metrics.LATENCY.labels(path).observe(seconds)
            if state.settings.log_format == "json":
                fields = {"request_id": request_id, "method": scope["method"], "route": path}
                fields |= {"status": status, "latency_ms": round(seconds * 1000, 3)}
                access.info("%s %s %d", scope["method"], path, status, extra={"fields": fields})


def request_id_of(headers: dict[bytes, bytes]) -> str:
    caller = headers.get(b"x-request-id", b"")
    return caller.decode() if CALLER_ID.fullmatch(caller) else uuid.uuid4().hex


async def reply_json(send, status: int, body: dict) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class CORSFromConfig:
    """Starlette's CORSMiddleware with `serve.cors_origins`, built on the first request
    (the origins come from the config the lifespan loaded). No origins: CORS stays closed."""

    def __init__(self, app):
        self.app = app
        self.cors = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.cors is None:
            origins = scope["app"].state.config.serve.cors_origins
            self.cors = self.app
            if origins:
                methods, headers = ["GET", "POST"], ["Content-Type", "X-API-Key"]
                self.cors = CORSMiddleware(
                    self.app, allow_origins=origins, allow_methods=methods, allow_headers=headers
                )
        await self.cors(scope, receive, send)
