"""Hot reload: serve the export at once, poll the registry aliases, swap when they move.
A set @challenger is scored in the service's shadow (never answering a request). An
unreachable registry: keep serving what is loaded and report it in /ready and /model."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from src.common.config import Config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.paths import Paths
from src.serving.loader import CHALLENGER, LoadedModel, load_export, load_version
from src.serving.registry import RegistryReader
from src.serving.service import ModelService

log = logging.getLogger(__name__)


class AliasWatcher:
    def __init__(self, service: ModelService, cfg: Config, paths: Paths, registry: RegistryReader):
        self.service, self.cfg, self.paths, self.registry = service, cfg, paths, registry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """One poll: serve what the champion's alias points at, score in the shadow of what
        @challenger points at (of none once it is unset); load only what is not loaded yet."""
        svc, name, alias = self.service, self.cfg.registry.model_name, self.cfg.registry.alias
        try:
            champion = self.registry.resolve_alias(name, alias)
            challenger = self.registry.resolve_alias(name, CHALLENGER)
        except Exception as exc:  # any registry failure: keep serving, say so
            if svc.registry.reachable is not False:
                log.warning("registry unreachable: %s", str(exc)[:200])
            svc.mark_registry(False, str(exc)[:300])
            return
        if champion is None:
            errors: list[str | None] = [f"{name}@{alias} is not set"]
        else:
            errors = [self._follow(svc.champion, champion, alias, svc.swap)]
        if challenger is not None:
            errors.append(self._follow(svc.shadow, challenger, CHALLENGER, svc.swap_shadow))
        elif svc.shadow is not None:
            log.info("@%s unset: no more shadow scores of v%s", CHALLENGER, svc.shadow.version)
            svc.swap_shadow(None)
        svc.mark_registry(True, "; ".join(e for e in errors if e) or None)

    def _follow(
        self,
        current: LoadedModel | None,
        target: tuple[str, str | None],
        alias: str,
        serve: Callable[[LoadedModel], None],
    ) -> str | None:
        """Load the alias's version unless `current` is it, and hand it to `serve`; an error
        to report, or None. A version that fails to load is tried again next poll. The run id
        counts too: an export (or a baked image) from another store may carry the same version
        number for another run."""
        if current is not None and (current.version, current.run_id) == target:
            return None
        name, version, started = self.cfg.registry.model_name, target[0], time.monotonic()
        try:
            loaded = load_version(self.cfg, self.paths, self.registry, version, alias)
        except Exception as exc:
            log.error("could not load %s v%s (@%s): %s", name, version, alias, exc)
            return f"load of v{version} (@{alias}) failed: {str(exc)[:200]}"
        serve(loaded)
        seconds = time.monotonic() - started
        log.info("serving %s v%s as @%s (loaded in %.1f s)", name, version, alias, seconds)
        return None

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
