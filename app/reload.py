"""Hot reload: poll the registry alias and swap to a new champion when it moves.

Unreachable registry (at start or later): keep serving what is loaded, fall back to the
export in models/champion/ if nothing is, and report it in /ready and /model.
"""

from __future__ import annotations

import logging
import threading

from app.service import ModelService
from src.champion import load_from_export, load_version, registry_version
from src.common.config import Config
from src.common.errors import PipelineError
from src.common.paths import Paths

log = logging.getLogger("app.reload")


class AliasWatcher:
    def __init__(self, service: ModelService, cfg: Config, paths: Paths):
        self.service, self.cfg, self.paths = service, cfg, paths
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """One poll: load the alias's version if it differs from the one being served."""
        svc = self.service
        try:
            version = registry_version(self.cfg, self.paths)
        except Exception as exc:  # any registry failure: keep serving, say so
            if svc.registry.reachable is not False:
                log.warning("registry unreachable: %s", str(exc)[:200])
            svc.mark_registry(False, str(exc)[:300])
            return
        current = svc.champion
        if current and (current.loaded.source, current.loaded.version) == (
            "registry",
            str(version.version),
        ):
            svc.mark_registry(True)
            return
        try:
            loaded = load_version(self.cfg, version)
        except Exception as exc:
            log.error(
                "could not load %s v%s: %s", self.cfg.registry.model_name, version.version, exc
            )
            svc.mark_registry(True, f"load of v{version.version} failed: {str(exc)[:200]}")
            return
        svc.mark_registry(True)
        svc.swap(loaded)
        log.info("serving %s v%s from the registry", loaded.name, loaded.version)

    def start_serving(self, interval: float) -> None:
        """Initial load (registry, else export), then poll every `interval` s (0: never)."""
        self.check()
        if not self.service.ready:
            try:
                self.service.swap(load_from_export(self.paths.champion))
                log.info("serving the export %s", self.paths.champion)
            except PipelineError as exc:
                log.error("no model loaded: %s", exc)
        if interval > 0:
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name="alias-watcher", daemon=True
            )
            self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
