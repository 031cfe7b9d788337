"""ModelService: the serving champion, its registry status and the prediction logger.

The champion is one immutable LoadedModel behind one attribute. `swap()` replaces it in a
single assignment: a request reads `service.champion` once and finishes on that model even
if a reload lands meanwhile.
"""

from __future__ import annotations

import gc
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from app import metrics
from src.champion import LoadedModel


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    """Scores flights with the champion and logs every prediction."""

    def __init__(self, loaded: LoadedModel | None, threshold: float, logger=None):
        self.champion: LoadedModel | None = None
        self.threshold = threshold
        self.logger = logger
        self.registry = RegistryStatus()
        self.watcher = None  # app.reload.AliasWatcher, stopped by close()
        if loaded is not None:
            self.swap(loaded)

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def swap(self, loaded: LoadedModel) -> None:
        old, self.champion = self.champion, loaded
        metrics.show_model(old, loaded)
        self.registry.history.append(
            {
                "from": old and old.version,
                "to": loaded.version,
                "source": loaded.source,
                "at": _now(),
            }
        )
        # Loaded models live as long as the worker: keep the cyclic GC from re-scanning
        # them on every collection.
        gc.collect()
        gc.freeze()

    def mark_registry(self, reachable: bool, error: str | None = None) -> None:
        self.registry.reachable, self.registry.error = reachable, error
        self.registry.checked_at = _now()

    def predict_one(self, record: dict) -> tuple[str, float, LoadedModel]:
        champ = self.champion
        proba = champ.model.predict_one(record)
        request_id = uuid.uuid4().hex
        if self.logger is not None:
            self.logger.log(request_id, champ, {k: [v] for k, v in record.items()}, [proba])
        return request_id, proba, champ

    def predict_many(self, cols: dict) -> tuple[str, np.ndarray, LoadedModel]:
        """Probabilities for flights given as columns (each REQUEST field -> list of values)."""
        champ = self.champion
        proba = champ.model.predict_proba(cols)
        request_id = uuid.uuid4().hex
        if self.logger is not None:
            self.logger.log(request_id, champ, cols, proba)
        return request_id, proba, champ

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.logger is not None:
            self.logger.close()
