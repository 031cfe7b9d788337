"""Hot reload: serve the export at once, poll the registry alias, swap when it moves.

Unreachable registry (at start or later): keep serving what is loaded and report it in
/ready and /model. A version that fails to load is logged and tried again next poll.
"""

from __future__ import annotations

import logging
import threading
import time

from src.common.config import Config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.paths import Paths
from src.serving.loader import load_export, load_version
from src.serving.service import ModelService

log = logging.getLogger(__name__)


class AliasWatcher:
    def __init__(self, service: ModelService, cfg: Config, paths: Paths, registry):
        self.service, self.cfg, self.paths, self.registry = service, cfg, paths, registry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """One poll: load the alias's version if it is not the one being served."""
        svc, name = self.service, self.cfg.registry.model_name
        try:
            version, run_id = self.registry.resolve_alias(name, self.cfg.registry.alias)
        except Exception as exc:  # any registry failure: keep serving, say so
            if svc.registry.reachable is not False:
                log.warning("registry unreachable: %s", str(exc)[:200])
            svc.mark_registry(False, str(exc)[:300])
            return
        # A version number names a model only within one store: an export (or a baked image)
        # from another store may carry the same number for another run.
        champ = svc.champion
        if champ is not None and (champ.version, champ.run_id) == (version, run_id):
            svc.mark_registry(True)  # already serving that version: nothing to load
            return
        started = time.monotonic()
        try:
            loaded = load_version(self.cfg, self.paths, self.registry, version)
        except Exception as exc:
            log.error("could not load %s v%s: %s", name, version, exc)
            svc.mark_registry(True, f"load of v{version} failed: {str(exc)[:200]}")
            return
        svc.mark_registry(True)
        svc.swap(loaded)
        seconds = time.monotonic() - started
        log.info("serving %s v%s from the registry (loaded in %.1f s)", name, version, seconds)

    def start(self, interval: float) -> None:
        """Serve the export at once when it is this model's (no MLflow import: a worker is
        ready in about a second), then reconcile with the registry alias in the background
        every `interval` s. Without an export, wait for the registry. interval 0: never poll."""
        try:
            self._serve_export()
        except PipelineError as exc:
            log.info("%s; loading from the registry", exc)
            self.poll()
            if not self.service.ready:
                log.error("no model loaded: neither an export nor a reachable registry")
        if interval > 0:
            self._thread = threading.Thread(
                target=self._run, args=(interval,), name="alias-watcher", daemon=True
            )
            self._thread.start()

    def _serve_export(self) -> None:
        export = load_export(self.cfg, self.paths)
        if export.name != self.cfg.registry.model_name:
            raise ModelNotFoundError(
                f"{self.paths.champion} holds {export.name}, not {self.cfg.registry.model_name}"
            )
        self.service.swap(export)
        log.info("serving the export %s (%s v%s)", self.paths.champion, export.name, export.version)

    def _run(self, interval: float) -> None:
        self.poll()
        while not self._stop.wait(interval):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
