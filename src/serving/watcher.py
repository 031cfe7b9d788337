"""Hot reload: serve the export at once, poll the registry aliases, swap when they move.

Each poll resolves the champion's alias (the config's, @champion) and @challenger. A moved
champion is loaded and served; a set challenger is loaded into the service's shadow (scored
beside every request, never answering one), a removed one dropped. Unreachable registry (at
start or later): keep serving what is loaded and report it in /ready and /model. A version
that fails to load is logged and tried again next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from src.common.config import Config
from src.common.errors import ModelNotFoundError, PipelineError
from src.common.paths import Paths
from src.serving.loader import CHALLENGER, LoadedModel, load_export, load_version
from src.serving.registry import AliasTarget, RegistryReader
from src.serving.service import ModelService

log = logging.getLogger(__name__)


class AliasWatcher:
    def __init__(self, service: ModelService, cfg: Config, paths: Paths, registry: RegistryReader):
        self.service, self.cfg, self.paths, self.registry = service, cfg, paths, registry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """One poll: serve what the champion's alias points at, score in the shadow of what
        @challenger points at; load only what is not loaded yet."""
        svc, name = self.service, self.cfg.registry.model_name
        try:
            champion = self.registry.resolve_alias(name, self.cfg.registry.alias)
            challenger = self.registry.resolve_alias(name, CHALLENGER)
        except Exception as exc:  # any registry failure: keep serving, say so
            if svc.registry.reachable is not False:
                log.warning("registry unreachable: %s", str(exc)[:200])
            svc.mark_registry(False, str(exc)[:300])
            return
        errors = [self._follow_champion(champion), self._follow_challenger(challenger)]
        svc.mark_registry(True, "; ".join(e for e in errors if e) or None)

    def _follow_champion(self, target: AliasTarget) -> str | None:
        """Serve the champion alias's version; an error to report, or None."""
        svc, alias = self.service, self.cfg.registry.alias
        if target is None:
            return f"{self.cfg.registry.model_name}@{alias} is not set"
        return self._follow(svc.champion, target, alias, svc.swap)

    def _follow_challenger(self, target: AliasTarget) -> str | None:
        """Score in the shadow of @challenger's version, or of none once it is unset; an
        error to report, or None."""
        svc = self.service
        if target is None:
            if svc.shadow is not None:
                log.info("@%s unset: no more shadow scores of v%s", CHALLENGER, svc.shadow.version)
                svc.swap_shadow(None)
            return None
        return self._follow(svc.shadow, target, CHALLENGER, svc.swap_shadow)

    def _follow(
        self,
        current: LoadedModel | None,
        target: tuple[str, str | None],
        alias: str,
        serve: Callable[[LoadedModel], None],
    ) -> str | None:
        """Load the alias's version unless `current` is it, and hand it to `serve`; an error
        to report, or None. A version that fails to load is tried again next poll."""
        if is_loaded(current, target):
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


def is_loaded(model: LoadedModel | None, target: tuple[str, str | None]) -> bool:
    """Whether `model` is the alias's (version, run id). A version number names a model only
    within one store: an export (or a baked image) from another store may carry the same
    number for another run."""
    return model is not None and (model.version, model.run_id) == target
