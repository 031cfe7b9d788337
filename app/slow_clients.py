"""Slow clients are cut off: a request's headers and body must arrive within
REQUEST_SECONDS of its first byte (of the connection's opening, for its first request), or
the server closes the connection. A route still waiting for the body sees the client gone.

uvicorn starts no timer while it reads a request. Its one timer, keep-alive, runs only from
an answer to the first byte of the next request. So a client that sends a byte at a time, or
sends nothing, holds its connection (a file descriptor and its buffers) for as long as it
likes, and enough of them use up a worker's descriptors. `DeadlineProtocol` is uvicorn's
httptools protocol (the one uvicorn picks when httptools is installed) with that deadline
added. gunicorn's workers use it (app/gunicorn_worker.py), and so does `make serve`
(`--http`, src/serve.py).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The whole request, up to the body limit (serve.max_body_bytes, 8 MiB), in this time: at
# least 0.8 MiB/s for the largest body. Slower senders need a buffering proxy in front.
REQUEST_SECONDS = 10


class DeadlineProtocol(HttpToolsProtocol):
    deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline = self.loop.call_later(REQUEST_SECONDS, self.too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.deadline is None:  # a later request on a kept-alive connection
            self.deadline = self.loop.call_later(REQUEST_SECONDS, self.too_slow)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.stop_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_deadline()
        super().connection_lost(exc)

    def stop_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def too_slow(self) -> None:
        self.deadline = None
        self.logger.warning(
            "%s sent no whole request in %d s: closed", self.client, REQUEST_SECONDS
        )
        self.transport.close()
