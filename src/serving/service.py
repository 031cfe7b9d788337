"""ModelService: the served champion, its registry status and the prediction log.

The champion is one immutable LoadedModel behind one attribute. `swap()` replaces it in a
single assignment: a request reads `service.champion` once and finishes on that model even
if a reload lands meanwhile.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from src.serving.loader import LoadedModel, utc_now
from src.serving.prediction_log import PredictionLogger


@dataclass
class RegistryStatus:
    reachable: bool | None = None  # None: not asked yet
    checked_at: str | None = None
    error: str | None = None
    history: list[dict] = field(default_factory=list)  # swaps: from/to version, when

    def as_dict(self) -> dict:
        return {
            "reachable": self.reachable,
            "checked_at": self.checked_at,
            "error": self.error,
            "reloads": self.history[-10:],
        }


class ModelService:
    """Scores flights with the champion and logs every prediction. `on_swap(old, new)` is
    told of every model change (the API updates its metrics gauge)."""

    def __init__(
        self,
        threshold: float,
        logger: PredictionLogger | None = None,
        on_swap: Callable[[LoadedModel | None, LoadedModel], None] | None = None,
    ):
        self.champion: LoadedModel | None = None
        self.threshold = threshold
        self.logger = logger
        self.on_swap = on_swap
        self.registry = RegistryStatus()
        self.watcher = None  # src.serving.watcher.AliasWatcher, stopped by close()

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def swap(self, loaded: LoadedModel) -> None:
        old, self.champion = self.champion, loaded
        if self.on_swap is not None:
            self.on_swap(old, loaded)
        entry = {"from": old and old.version, "to": loaded.version, "source": loaded.source}
        self.registry.history.append({**entry, "at": utc_now()})
        # Loaded models live as long as the worker: keep the cyclic GC from re-scanning
        # them on every collection.
        gc.collect()
        gc.freeze()

    def mark_registry(self, reachable: bool, error: str | None = None) -> None:
        self.registry.reachable, self.registry.error = reachable, error
        self.registry.checked_at = utc_now()

    def predict_one(self, record: dict) -> tuple[str, float, LoadedModel]:
        """One flight (a record of REQUEST fields): (request id, probability, model)."""
        champ = self.champion
        proba = champ.model.predict_one(record)
        return self._log(champ, {k: [v] for k, v in record.items()}, [proba]), proba, champ

    def predict_many(self, cols: dict) -> tuple[str, np.ndarray, LoadedModel]:
        """Flights as columns (each REQUEST field -> its values): (request id, probabilities,
        model)."""
        champ = self.champion
        proba = champ.model.predict_proba(cols)
        return self._log(champ, cols, proba), proba, champ

    def _log(self, champ: LoadedModel, cols: dict, proba) -> str:
        request_id = uuid.uuid4().hex
        if self.logger is not None:
            self.logger.log(request_id, champ.name, champ.version, cols, proba)
        return request_id

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.logger is not None:
            self.logger.close()
