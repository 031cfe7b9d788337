"""gunicorn's uvicorn worker, reading requests with app/slow_clients.py's deadline. Its own
module: uvicorn_worker imports gunicorn, which needs POSIX-only modules, and `make serve`
(plain uvicorn, any OS) imports app/slow_clients.py."""

from __future__ import annotations

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]


class Worker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": "app.slow_clients:DeadlineProtocol"}
