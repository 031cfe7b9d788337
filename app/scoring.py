"""The API's fast path: the model's own feature code, then the booster called directly.

`Booster.predict` spends ~60 us per call on Python-side checks before LightGBM scores one
row (~30 us for this 400-tree model). LightGBM's C API has a path made for exactly this
case, `LGBM_BoosterPredictForMatSingleRowFast` (configuration parsed once, then one call per
row); `SingleRowBooster` uses it. Same C++ predictor, so the probabilities are identical:
tests/api/test_parity.py compares them with the logged pyfunc on every test row.
"""

from __future__ import annotations

import ctypes
import threading

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _safe_call

from src.common.schema import FEATURES, REQUEST_FIELDS
from src.features import build_features

_PREDICT_NORMAL = 0  # c_api.h C_API_PREDICT_NORMAL: transformed output (probability)
_DTYPE_FLOAT64 = 1  # c_api.h C_API_DTYPE_FLOAT64


class SingleRowBooster:
    """One-row predictions through LightGBM's FastConfig C API."""

    def __init__(self, booster: lgb.Booster, ncol: int):
        self._booster = booster  # keeps the handle alive as long as the config
        self._config = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # all iterations
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(ncol),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._out = np.empty(1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()
        self._lock = threading.Lock()  # the config and output buffer are per instance

    def __call__(self, row: np.ndarray) -> float:
        row = np.ascontiguousarray(row, dtype=np.float64)
        with self._lock:
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                    self._config,
                    row.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self._out_len),
                    self._out_ptr,
                )
            )
            return float(self._out[0])

    def __del__(self):
        if getattr(self, "_config", None) and self._config.value:
            _LIB.LGBM_FastConfigFree(self._config)


class Scorer:
    """Probabilities for raw flight records from a src.model.FlightDelayModel."""

    def __init__(self, model):
        self.model = model
        booster = model.estimator if isinstance(model.estimator, lgb.Booster) else None
        self._single = SingleRowBooster(booster, len(FEATURES)) if booster else None

    def one(self, record: dict) -> float:
        if self._single is None:
            return float(self.many({f: [record[f]] for f in REQUEST_FIELDS})[0])
        X = build_features({f: [record[f]] for f in REQUEST_FIELDS}, self.model.state)
        return self._single(X[0])

    def many(self, cols: dict) -> np.ndarray:
        return self.model.predict_proba(cols)
