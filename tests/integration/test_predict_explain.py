"""`python -m src.predict --explain K` on the smoke pipeline's test flights: each row's
explanation columns are the model's own explanation (FlightDelayModel.explain, which the
API's ?explain=true answers with), its reasons with the base value sum to the booster's raw
score (the logit) within 1e-9, and a K the model cannot give is a one-line error, exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src import predict
from src.batch.files import EXPLANATION_BASE, EXPLANATION_RAW_SCORE, read_lineage, reason_columns
from src.common.paths import SMOKE_CONFIG
from src.common.schema import PREDICTION, REQUEST_FIELDS
from src.model import model as model_file
from src.model.features import request_columns
from tests.unit.test_explain import TOLERANCE, booster_raw_score

ROWS = 300


@pytest.fixture(scope="module")
def flights(test_split, tmp_path_factory):
    """ROWS test flights with an id that passes through, as a Parquet file."""
    frame = test_split.head(ROWS).reset_index(drop=True)
    frame = frame[list(REQUEST_FIELDS)].assign(flight_id=[f"f{i}" for i in range(ROWS)])
    path = tmp_path_factory.mktemp("explain") / "in.parquet"
    frame.to_parquet(path, index=False)
    return frame, path


@pytest.fixture(scope="module")
def champion(smoke_pipeline) -> model_file.FlightDelayModel:
    """The exported champion, read with the plain booster (the job's model, see --model)."""
    return model_file.load(smoke_pipeline.champion_model)


def run(*args) -> int:
    return predict.main(["--config", str(SMOKE_CONFIG), "--no-progress", *map(str, args)])


def groups(model) -> int:
    return len(model.state.explanation_groups[0])


def test_every_reason_with_the_base_sums_to_the_logit_and_equals_the_models(
    tmp_path, flights, champion, smoke_pipeline
):
    frame, path = flights
    k = groups(champion)  # every group: the reasons then sum to the raw score
    out = tmp_path / "scored.parquet"
    # --batch-rows 128: three batches, the last one short
    assert run("--input", path, "--output", out, "--explain", k, "--batch-rows", 128) == 0
    scored = pd.read_parquet(out)
    reasons = [name for i in range(1, k + 1) for name in reason_columns(i)]
    assert scored.columns.tolist()[-(2 + 2 * k) :] == [
        EXPLANATION_BASE, EXPLANATION_RAW_SCORE, *reasons
    ]  # fmt: skip
    assert scored["flight_id"].tolist() == frame["flight_id"].tolist()
    cols = request_columns(frame)
    values = scored[[reason_columns(i)[1] for i in range(1, k + 1)]].to_numpy()
    logit = booster_raw_score(champion, cols)
    np.testing.assert_allclose(
        values.sum(axis=1) + scored[EXPLANATION_BASE], logit, rtol=0, atol=TOLERANCE
    )
    np.testing.assert_allclose(scored[EXPLANATION_RAW_SCORE], logit, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(scored[PREDICTION], champion.predict_proba(cols), rtol=0, atol=0)
    for row, why in zip(scored.itertuples(index=False), champion.explain(cols, k), strict=True):
        got = [(getattr(row, g), getattr(row, v)) for g, v in map(reason_columns, range(1, k + 1))]
        assert got == [(r.group, r.value) for r in why.reasons]


def test_the_top_reasons_are_the_apis_and_the_lineage_says_how_many(tmp_path, flights, champion):
    frame, path = flights
    out = tmp_path / "scored.parquet"
    assert run("--input", path, "--output", out, "--explain", 2, "--workers", 2) == 0
    scored = pd.read_parquet(out)
    assert "reason_3_group" not in scored.columns
    why = champion.explain_one(frame.iloc[7][list(REQUEST_FIELDS)].to_dict(), 2)  # the API's
    row = scored.iloc[7]
    assert [row["reason_1_group"], row["reason_2_group"]] == [r.group for r in why.reasons]
    assert [row["reason_1_value"], row["reason_2_value"]] == [r.value for r in why.reasons]
    assert read_lineage(out)["explain_top_k"] == 2
    without = tmp_path / "plain.parquet"
    assert run("--input", path, "--output", without) == 0  # default off: no columns
    assert "explanation_base" not in pd.read_parquet(without).columns


@pytest.mark.parametrize("k", ["0", "-1", "x"])
def test_a_k_below_one_is_an_argument_error(k, tmp_path, flights, capsys):
    with pytest.raises(SystemExit) as exit_:
        run("--input", flights[1], "--output", tmp_path / "o.parquet", "--explain", k)
    assert exit_.value.code == 2
    assert "--explain" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


def test_more_reasons_than_groups_is_a_one_line_error(tmp_path, flights, champion, caplog):
    k = groups(champion) + 1
    out = tmp_path / "o.parquet"
    assert run("--input", flights[1], "--output", out, "--explain", k) == 2
    assert not out.exists()
    n = groups(champion)
    assert f"--explain {k}: this model's features form {n} groups; ask for 1 to {n}" in caplog.text


def test_the_spark_engine_refuses_explain(capsys):
    with pytest.raises(SystemExit) as exit_:
        predict.parse_args(["--input", "a", "--output", "b", "--engine", "spark", "--explain", "2"])
    assert exit_.value.code == 2
    assert "--explain runs on the local engine only" in capsys.readouterr().err


def test_a_batch_whose_rows_are_all_rejected_is_explained_as_no_rows(tmp_path, flights):
    """A file whose every row fails the checks: the rejects, an empty output with the
    explanation columns, exit 1 as without --explain (LightGBM's contributions of no rows
    raised ZeroDivisionError)."""
    frame, _ = flights
    bad = tmp_path / "bad.parquet"
    frame.head(2).assign(month=13).to_parquet(bad, index=False)
    out = tmp_path / "o.parquet"
    assert run("--input", bad, "--output", out, "--explain", 2) == 1
    scored = pd.read_parquet(out)
    assert len(scored) == 0 and {EXPLANATION_BASE, "reason_2_value"} <= set(scored.columns)
