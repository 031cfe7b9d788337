"""The one model object (src/model/model.py) on a small real model: its file round trip, the
LightGBM C-API fast path against the plain lightgbm.Booster, and the MLflow pyfunc entry.

The models are fitted once per module with `fit_model`, on the first 10,000 examples of the
unit slice (2,000 flights at their five leads, of which training takes one a flight; smoke
parameters with leaves of 50 rows, as 2,000 rows need: about a second); scoring uses the
other ~900 flights' examples.
"""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd
import pytest

from src.common.errors import PipelineError
from src.common.paths import ROOT
from src.common.schema import OPTIONAL_FIELDS, PREDICTION, REQUEST_FIELDS
from src.model.features import build_features, request_columns
from src.model.fit import fit_model, with_lightgbm
from src.model.model import (
    FlightDelayModel,
    LightGBMBooster,
    LogisticEstimator,
    _load_pyfunc,
    from_bytes,
    to_bytes,
)
from src.serving.lgb_capi import CApiBooster

TRAIN_ROWS = 10_000


def records(frame: pd.DataFrame) -> list[dict]:
    """Flights as the API hands them to the model: plain Python values, None where missing."""
    rows = frame[list(REQUEST_FIELDS)].to_dict("records")  # pandas gives Python scalars
    return [{k: None if pd.isna(v) else v for k, v in row.items()} for row in rows]


@pytest.fixture(scope="module")
def held_out(processed_slice) -> pd.DataFrame:
    """Examples of flights the models were not fitted on (index kept: 10000, 10001, ...)."""
    return processed_slice.iloc[TRAIN_ROWS:]


@pytest.fixture(scope="module")
def models(processed_slice, raw_slice, smoke_cfg) -> dict[str, FlightDelayModel]:
    train = processed_slice.head(TRAIN_ROWS)
    cfg = with_lightgbm(
        smoke_cfg, smoke_cfg.train.lightgbm.model_copy(update={"min_child_samples": 50})
    )
    return {
        kind: fit_model(kind, train, raw_slice["planes"], cfg) for kind in ("lightgbm", "logistic")
    }


@pytest.fixture(scope="module")
def lightgbm_file(models) -> bytes:
    return to_bytes(models["lightgbm"])


def test_fit_model_gives_the_model_object_of_each_kind(models, held_out):
    assert isinstance(models["lightgbm"].estimator, LightGBMBooster)
    assert isinstance(models["logistic"].estimator, LogisticEstimator)
    for kind, model in models.items():
        p = model.predict_proba(request_columns(held_out))
        assert model.kind == kind
        assert p.shape == (len(held_out),) and ((p > 0) & (p < 1)).all(), kind
        assert p.std() > 0.01, kind  # it ranks flights, not a constant


def test_fit_model_refuses_an_unknown_kind(processed_slice, raw_slice, smoke_cfg):
    with pytest.raises(PipelineError, match="model kind 'xgboost'"):
        fit_model("xgboost", processed_slice.head(100), raw_slice["planes"], smoke_cfg)


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_bytes_round_trip_gives_identical_probabilities(models, held_out, kind, tmp_path):
    model = models[kind]
    cols = request_columns(held_out)

    restored = from_bytes(to_bytes(model))

    assert restored.kind == kind and type(restored.estimator) is type(model.estimator)
    np.testing.assert_array_equal(restored.predict_proba(cols), model.predict_proba(cols))
    # MLflow's loader (loader_module="src.model.model") reads the same file from disk
    path = tmp_path / "model.pkl"
    path.write_bytes(to_bytes(model))
    np.testing.assert_array_equal(
        _load_pyfunc(str(path)).predict_proba(cols), restored.predict_proba(cols)
    )


def test_c_api_booster_equals_lightgbm_booster(lightgbm_file, held_out):
    """The serving fast path (serve.fast_paths.lightgbm_c_api) scores exactly like the plain
    path: the same C++ predictor, called without the lightgbm package."""
    plain = from_bytes(lightgbm_file)  # default: LightGBMBooster.from_text
    fast = from_bytes(lightgbm_file, booster=CApiBooster)
    assert isinstance(plain.estimator, LightGBMBooster)
    assert isinstance(fast.estimator, CApiBooster)
    cols = request_columns(held_out)

    batch = plain.predict_proba(cols)

    assert np.abs(fast.predict_proba(cols) - batch).max() <= 1e-12
    sample = records(held_out.sample(200, random_state=0))
    assert any(r["tailnum"] is None or r["wind_gust"] is None for r in sample)  # gaps exercised
    one_by_one = {
        "plain": np.array([plain.predict_one(r) for r in sample]),
        "fast": np.array([fast.predict_one(r) for r in sample]),
    }
    expected = plain.predict_proba(request_columns(pd.DataFrame(sample)))
    assert np.abs(one_by_one["fast"] - one_by_one["plain"]).max() <= 1e-12
    assert np.abs(one_by_one["fast"] - expected).max() <= 1e-12
    assert expected.std() > 0.01  # 200 different probabilities, not one repeated value


def test_c_api_booster_refuses_a_matrix_of_the_wrong_width(lightgbm_file, held_out):
    """The C call reads num_feature values per row whatever the array holds: a narrower
    matrix must be refused, as lightgbm.Booster refuses it, not misread."""
    fast = from_bytes(lightgbm_file, booster=CApiBooster)
    X = build_features(request_columns(held_out.head(5)), fast.state)
    with pytest.raises(ValueError, match="features"):
        fast.estimator.predict(X[:, :-1])
    with pytest.raises(ValueError, match="features"):
        fast.estimator.predict(X[0])  # one row, not a matrix


def test_pyfunc_predict_equals_predict_proba(models, held_out):
    model = models["lightgbm"]

    out = model.predict(held_out)

    assert list(out.columns) == [PREDICTION]
    assert out.index.equals(held_out.index)  # rows stay aligned with the caller's frame
    np.testing.assert_array_equal(
        out[PREDICTION].to_numpy(), model.predict_proba(request_columns(held_out))
    )


def test_pyfunc_scores_omitted_optional_fields_as_missing(models, held_out):
    """A caller may leave tailnum, the weather and the feature store's fields out: the same
    scores as sending them all missing (and different from the scores with them, so the
    fields do matter)."""
    model = models["lightgbm"]
    omitted = held_out.drop(columns=list(OPTIONAL_FIELDS))
    missing = held_out.assign(**dict.fromkeys(OPTIONAL_FIELDS, np.nan)).assign(tailnum=None)

    scores = model.predict(omitted)[PREDICTION].to_numpy()

    np.testing.assert_array_equal(scores, model.predict_proba(request_columns(missing)))
    assert not np.allclose(scores, model.predict_proba(request_columns(held_out)))


# ---------------------------------------------------------------- what the logged model carries
def src_imports(path) -> set[str]:
    """The src.* modules a file imports (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # `from src.model import model`: the name is itself a module
            found |= {
                f"{node.module}.{a.name}"
                for a in node.names
                if module_file(f"{node.module}.{a.name}")
            }
    return {name for name in found if name.split(".")[0] == "src" and module_file(name)}


def module_file(name: str):
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def logged_model_code() -> set[str]:
    """MODEL_CODE of src/tracking/runs.py, read without importing MLflow (an 8 s import)."""
    tree = ast.parse((ROOT / "src" / "tracking" / "runs.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MODEL_CODE":
            return set(ast.literal_eval(node.value))
    raise AssertionError("src/tracking/runs.py has no MODEL_CODE")


def test_logged_model_carries_every_module_its_loader_imports():
    """`mlflow models serve` imports src.model.model (loader_module) from the code the run
    logged: a module it needs and MODEL_CODE lacks fails only when the model is loaded."""
    needed, todo = set(), ["src.model.model"]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo += src_imports(module_file(name))
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages' __init__
    files = {module_file(n).relative_to(ROOT).as_posix() for n in needed}

    assert files == logged_model_code()
