"""Hot reload: serve the export at once, poll the registry alias, swap when it moves.

Unreachable registry (at start or later): keep serving what is loaded and report it in
/ready and /model. A version that fails to load is logged and tried again next poll.
"""

from __future__ import annotations

import logging
import threading
import time

from app.service import ModelService
from src.champion import load_from_export, load_version, registry_version
from src.common.config import Config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.paths import Paths

log = logging.getLogger("app.reload")


class AliasWatcher:
    def __init__(self, service: ModelService, cfg: Config, paths: Paths):
        self.service, self.cfg, self.paths = service, cfg, paths
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """One poll: load the alias's version if it is not the one being served."""
        svc = self.service
        try:
            version = registry_version(self.cfg, self.paths)
        except Exception as exc:  # any registry failure: keep serving, say so
            if svc.registry.reachable is not False:
                log.warning("registry unreachable: %s", str(exc)[:200])
            svc.mark_registry(False, str(exc)[:300])
            return
        current = svc.champion
        if current is not None and current.version == version.version:
            svc.mark_registry(True)  # the export is that version: nothing to load
            return
        started = time.monotonic()
        try:
            loaded = load_version(self.cfg, self.paths, version)
        except Exception as exc:
            log.error(
                "could not load %s v%s: %s", self.cfg.registry.model_name, version.version, exc
            )
            svc.mark_registry(True, f"load of v{version.version} failed: {str(exc)[:200]}")
            return
        svc.mark_registry(True)
        svc.swap(loaded)
        log.info(
            "serving %s v%s from the registry (loaded in %.1f s)",
            loaded.name,
            loaded.version,
            time.monotonic() - started,
        )

    def start_serving(self, interval: float) -> None:
        """Serve the export at once when there is one (no MLflow import: a worker is ready in
        about a second), then reconcile with the registry alias in the background every
        `interval` s. Without an export, wait for the registry. interval 0: never poll."""
        try:
            export = load_from_export(self.paths.champion)
            if export.name != self.cfg.registry.model_name:
                raise ModelNotFoundError(
                    f"{self.paths.champion} holds {export.name}, not {self.cfg.registry.model_name}"
                )
            self.service.swap(export)
            log.info("serving the export %s", self.paths.champion)
        except PipelineError as exc:
            log.info("%s; loading from the registry", exc)
            self.check()
            if not self.service.ready:
                log.error("no model loaded: neither an export nor a reachable registry")
        if interval > 0:
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name="alias-watcher", daemon=True
            )
            self._thread.start()

    def _run(self, interval: float) -> None:
        self.check()
        while not self._stop.wait(interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
