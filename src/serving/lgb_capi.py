"""Fast path (switch: `serve.fast_paths.lightgbm_c_api`): LightGBM's C library called
through ctypes, without importing the `lightgbm` package.

Why: `import lightgbm` also imports pandas, scikit-learn, SciPy and pyarrow, none of which
the API needs otherwise (memory and start time per worker), and `lightgbm.Booster.predict`
does Python-side checks on every call that cost more than scoring one row. LightGBM's C API
has a path made for one-row requests, `...SingleRowFast` (configuration parsed once). It is
the same C++ predictor as `lightgbm.Booster` (the plain path, src/model/model.py), so the
probabilities are identical: tests/api/test_parity.py compares both on every test row.
docs/benchmarks.md gives what it buys (`make bench-serving`).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import threading
from pathlib import Path

import numpy as np

_FLOAT64, _ROW_MAJOR, _PREDICT_NORMAL, _PREDICT_CONTRIB = 1, 1, 0, 3  # c_api.h constants
_PARAMS = b"num_threads=1"  # one thread per worker: workers are the parallelism


# The library's file name in LightGBM's Linux, macOS and Windows wheels, and the folders
# its own loader (lightgbm/libpath.py) looks in, relative to the package.
LIBRARY_NAMES = ("lib_lightgbm.so", "lib_lightgbm.dylib", "lib_lightgbm.dll")
LIBRARY_FOLDERS = ("lib", "bin", "..")


def library_path() -> Path:
    """LightGBM's shared library, found without importing the package (OSError if none)."""
    spec = importlib.util.find_spec("lightgbm")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise OSError("the lightgbm package is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    candidates = [package / f / name for f in LIBRARY_FOLDERS for name in LIBRARY_NAMES]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise OSError(f"no {' / '.join(LIBRARY_NAMES)} under {package}")
    return found


@functools.cache
def _lib() -> ctypes.CDLL:
    lib = ctypes.cdll.LoadLibrary(str(library_path()))
    lib.LGBM_GetLastError.restype = ctypes.c_char_p
    return lib


def available() -> str | None:
    """None when the C library loads; else why not, in one line."""
    try:
        _lib()
    except OSError as exc:
        return str(exc)
    return None


def _check(ret: int) -> None:
    if ret != 0:
        raise RuntimeError(f"LightGBM: {_lib().LGBM_GetLastError().decode()}")


def _doubles(array: np.ndarray) -> ctypes._Pointer[ctypes.c_double]:
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


class CApiBooster:
    """A LightGBM model loaded from its text form (`lightgbm.Booster.model_to_string()`);
    the same interface as src.model.model.LightGBMBooster."""

    def __init__(self, model_text: str):
        lib = _lib()
        self._handle, self._fast = ctypes.c_void_p(), ctypes.c_void_p()
        iterations, features = ctypes.c_int(), ctypes.c_int()
        _check(
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(model_text.encode()),
                ctypes.byref(iterations),
                ctypes.byref(self._handle),
            )
        )
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(features)))
        self.num_feature = features.value
        _check(
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),  # first iteration
                ctypes.c_int(-1),  # all iterations
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(self.num_feature),
                ctypes.c_char_p(_PARAMS),
                ctypes.byref(self._fast),
            )
        )
        # predict_one's arguments are converted once: per call, the ctypes conversions cost
        # more than the scoring. The fast config and these buffers serve one call at a time.
        self._row, self._one, self._out_len = (
            np.empty(self.num_feature),
            np.empty(1),
            ctypes.c_int64(),
        )
        self._one_args = (
            self._fast,
            _doubles(self._row),
            ctypes.byref(self._out_len),
            _doubles(self._one),
        )
        self._one_lock = threading.Lock()

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for the rows of a float matrix (features in training order)."""
        return self._predict_for_mat(X, _PREDICT_NORMAL, 1)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row, each feature's contribution to the raw score (logit), then the base
        value (the last column): LightGBM's pred_contrib, as lightgbm.Booster gives it."""
        return self._predict_for_mat(X, _PREDICT_CONTRIB, self.num_feature + 1)

    def _predict_for_mat(self, X: np.ndarray, predict_type: int, per_row: int) -> np.ndarray:
        """LGBM_BoosterPredictForMat on the rows of X: `per_row` values each (rows x per_row,
        or one value per row when per_row is 1)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.num_feature:  # the C call would read past X
            raise ValueError(f"expected rows of {self.num_feature} features, got shape {X.shape}")
        out, out_len = np.empty(X.shape[0] * per_row), ctypes.c_int64()
        _check(
            _lib().LGBM_BoosterPredictForMat(
                self._handle,
                X.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(X.shape[0]),
                ctypes.c_int32(self.num_feature),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(predict_type),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_char_p(_PARAMS),
                ctypes.byref(out_len),
                _doubles(out),
            )
        )
        if out_len.value != out.size:  # the C library wrote another shape than asked for
            raise RuntimeError(f"LightGBM wrote {out_len.value} values, expected {out.size}")
        return out if per_row == 1 else out.reshape(X.shape[0], per_row)

    def predict_one(self, row: np.ndarray) -> float:
        with self._one_lock:
            self._row[:] = row  # ValueError unless exactly num_feature values
            _check(_lib().LGBM_BoosterPredictForMatSingleRowFast(*self._one_args))
            return float(self._one[0])

    def __del__(self) -> None:
        # getattr: __init__ may have failed before the handles existed.
        fast, handle = getattr(self, "_fast", None), getattr(self, "_handle", None)
        if fast is not None and fast.value:
            _lib().LGBM_FastConfigFree(fast)
        if handle is not None and handle.value:
            _lib().LGBM_BoosterFree(handle)
