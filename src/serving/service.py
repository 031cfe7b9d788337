"""ModelService: the served champion, the challenger in its shadow, the registry status and
the prediction log. Each model is one immutable LoadedModel behind one attribute, swapped in
a single assignment: a request reads it once and finishes on that model even if a reload
lands meanwhile. The prediction log scores the shadow off the request path."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from src.common.errors import ModelNotFoundError
from src.serving.loader import CHALLENGER, CHAMPION, LoadedModel, utc_now
from src.serving.prediction_log import PredictionLogger, Probabilities

if TYPE_CHECKING:
    from src.model.features import Columns
    from src.model.model import Explanation
    from src.serving.watcher import AliasWatcher

# on_swap(role, old, new): a model changed in a role (new is None: the challenger removed).
SwapCallback = Callable[[str, LoadedModel | None, LoadedModel | None], None]


@dataclass
class RegistryStatus:
    reachable: bool | None = None  # None: not asked yet
    checked_at: str | None = None
    error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # swaps: from/to version, when

    def as_dict(self) -> dict[str, Any]:
        status = {"reachable": self.reachable, "checked_at": self.checked_at, "error": self.error}
        return status | {"reloads": self.history[-10:]}


class ModelService:
    """Scores flights with the champion and logs every prediction. The API's metrics hear of
    every model change (`on_swap`) and registry check (`on_registry(reachable)`)."""

    def __init__(
        self,
        threshold: float,
        logger: PredictionLogger | None = None,
        on_swap: SwapCallback | None = None,
        on_registry: Callable[[bool], None] | None = None,
    ):
        self.champion: LoadedModel | None = None
        self.shadow: LoadedModel | None = None  # the registry's @challenger, if set
        self.threshold, self.logger = threshold, logger
        self.on_swap, self.on_registry = on_swap, on_registry
        self.registry = RegistryStatus()
        self.watcher: AliasWatcher | None = None  # stopped by close()

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def loaded_champion(self) -> LoadedModel:
        """The champion (read once: a swap may land meanwhile). ModelNotFoundError before one
        is loaded; the API answers 503 before it gets here (app.routes.get_service)."""
        champ = self.champion
        if champ is None:
            raise ModelNotFoundError("no model loaded")
        return champ

    def swap(self, loaded: LoadedModel) -> None:
        old, self.champion = self.champion, loaded
        if self.on_swap is not None:
            self.on_swap(CHAMPION, old, loaded)
        entry = {"from": old and old.version, "to": loaded.version, "source": loaded.source}
        self.registry.history.append({**entry, "at": utc_now()})
        keep_out_of_gc()

    def swap_shadow(self, loaded: LoadedModel | None) -> None:
        """Score requests in the shadow of `loaded` from now on (None: stop)."""
        old, self.shadow = self.shadow, loaded
        if self.on_swap is not None:
            self.on_swap(CHALLENGER, old, loaded)
        keep_out_of_gc()

    def mark_registry(self, reachable: bool, error: str | None = None) -> None:
        self.registry.reachable, self.registry.error = reachable, error
        self.registry.checked_at = utc_now()
        if self.on_registry is not None:
            self.on_registry(reachable)

    def predict_one(self, record: dict[str, Any], request_id: str) -> tuple[float, LoadedModel]:
        """One flight (a record of API_REQUEST fields; the model reads its own), logged
        under `request_id`: (probability, model)."""
        champ = self.loaded_champion()
        proba = champ.model.predict_one(record)
        self._log(request_id, champ, {k: [v] for k, v in record.items()}, [proba])
        return proba, champ

    def predict_and_explain_one(
        self, record: dict[str, Any], request_id: str, top_k: int
    ) -> tuple[float, Explanation, LoadedModel]:
        """predict_one with the flight's `top_k` reasons, logged the same: (probability,
        explanation, model). NotExplainable for a model without contributions."""
        champ = self.loaded_champion()
        proba, why = champ.model.predict_and_explain_one(record, top_k)
        self._log(request_id, champ, {k: [v] for k, v in record.items()}, [proba])
        return proba, why, champ

    def predict_many(self, cols: Columns, request_id: str) -> tuple[np.ndarray, LoadedModel]:
        """Flights as columns (each API_REQUEST field -> its values), logged under
        `request_id`: (probabilities, model)."""
        champ = self.loaded_champion()
        proba = champ.model.predict_proba(cols)
        self._log(request_id, champ, cols, proba)
        return proba, champ

    def _log(
        self, request_id: str, champ: LoadedModel, cols: Columns, proba: Probabilities
    ) -> None:
        if self.logger is not None:
            self.logger.log(request_id, champ.name, champ.version, cols, proba, self.shadow)

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.logger is not None:
            self.logger.close()


def keep_out_of_gc() -> None:
    """Loaded models live as long as the worker: keep the cyclic GC from re-scanning them
    on every collection."""
    gc.collect()
    gc.freeze()
