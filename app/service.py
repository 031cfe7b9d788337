"""ModelService: the loaded champion plus the prediction logger, built by app.main."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np

from src.champion import LoadedModel
from src.common.schema import PREDICTION, REQUEST_FIELDS


class ModelService:
    """Scores flights with the champion and logs every prediction."""

    def __init__(self, loaded: LoadedModel | None, threshold: float, logger=None):
        self.loaded = loaded
        self.threshold = threshold
        self.logger = logger

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def predict(self, records: list[dict]) -> tuple[str, np.ndarray]:
        """Probabilities for raw flight records (dicts with REQUEST_FIELDS)."""
        cols = {f: [r[f] for r in records] for f in REQUEST_FIELDS}
        proba = self.loaded.model.predict_proba(cols)
        request_id = uuid.uuid4().hex
        if self.logger is not None:
            self.logger.log(self._log_rows(request_id, records, proba))
        return request_id, proba

    def _log_rows(self, request_id: str, records: list[dict], proba: np.ndarray) -> list[dict]:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return [
            {
                "request_id": request_id,
                "logged_at": now,
                "model_name": self.loaded.name,
                "model_version": self.loaded.version,
                **record,
                PREDICTION: float(p),
            }
            for record, p in zip(records, proba, strict=True)
        ]

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
