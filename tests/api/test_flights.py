"""GET /flights/{carrier}/{number}/{day}: a flight known by its number and New York date,
found in the online store and scored by the smoke champion, on the smoke snapshot's real
rows fed to the store up to 15 August 2013, 12:00 UTC. UA 236 leaves that day from JFK at
06:30 (gone by the clock) and from EWR at 20:00: a real flight number with two origins."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from contextlib import closing

import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from src.common.paths import ROOT
from src.common.schema import API_REQUEST_FIELDS, STORE_FIELDS
from src.common.servers import free_port
from src.data.validate import read_snapshot
from src.featurestore.offline import as_of, build_views
from src.featurestore.online import feed
from src.featurestore.online_redis import RedisStore
from src.featurestore.online_sqlite import SQLiteStore
from src.featurestore.views import VIEWS
from src.serving.prediction_log import read_log
from tests.api.support import CFG
from tests.integration.redis_support import redis_server

CLOCK = pd.Timestamp("2013-08-15T12:00Z")
START = pd.Timestamp("2013-08-06T00:00Z")  # the feed's first events: a window, not the year
EWR_236 = "/flights/UA/236/2013-08-15?origin=EWR"


@pytest.fixture(scope="module")
def raw(smoke_pipeline) -> dict:
    return read_snapshot(smoke_pipeline, CFG.snapshot)


@pytest.fixture(scope="module")
def fed_tables(raw) -> dict[str, pd.DataFrame]:
    """The views' events the store is fed: START..CLOCK."""
    tables = build_views(raw)
    return {name: t[t[VIEWS[name].event_time].between(START, CLOCK)] for name, t in tables.items()}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, fed_tables):
    """A data folder whose online store (SQLite) is fed up to CLOCK."""
    data = tmp_path_factory.mktemp("data")
    with SQLiteStore(data / "online" / "features.sqlite") as store:
        feed(store, fed_tables, until=CLOCK)
    return data


def client_on(env: dict[str, str]):
    """A TestClient of the default app with `env` set while it runs."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with TestClient(create_app()) as c:
            yield c


@pytest.fixture(scope="module")
def client(smoke_pipeline, data_dir):
    yield from client_on({"FD_DATA_DIR": str(data_dir)})


def expected_record(raw: dict, fed_tables: dict, origin: str) -> dict:
    """UA 236 of 15 August from `origin` as POST /predict takes it, built without the
    online store: the raw row's local schedule, the offline as-of join at CLOCK."""
    f = raw["flights"]
    row = f[(f["carrier"] == "UA") & (f["flight"] == 236) & (f["month"] == 8)]
    row = row[(row["day"] == 15) & (row["origin"] == origin)]
    keys = row[["carrier", "flight", "origin"]].assign(
        sched_dep=row["time_hour"] + pd.to_timedelta(row["minute"], unit="min"), as_of=CLOCK
    )
    joined = as_of(keys.reset_index(drop=True), fed_tables).iloc[0]
    lead = (joined["sched_dep"] - CLOCK) / pd.Timedelta(hours=1)
    known = {**row.iloc[0].to_dict(), **joined.to_dict(), "lead_hours": lead}
    return {f: None if pd.isna(known[f]) else known[f] for f in API_REQUEST_FIELDS}


def plain(record: dict) -> dict:
    """NumPy scalars as JSON numbers."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in record.items()}


def test_a_flight_by_number_is_scored_as_post_predict_scores_its_record(
    client, raw, fed_tables, data_dir
):
    r = client.get(EWR_236)
    assert r.status_code == 200, r.text
    body = r.json()
    record = plain(expected_record(raw, fed_tables, "EWR"))
    assert record["hour"] == 20 and record["day"] == 15 and record["lead_hours"] == 12.0
    by_post = client.post("/predict", json=record).json()
    assert body["delay_probability"] == by_post["delay_probability"]
    if "lead_hours" in client.app.state.service.loaded_champion().model.features:
        # A champion trained on the store's fields reads them: the equality holds them.
        blank = {**record, **dict.fromkeys(c.name for c in STORE_FIELDS)}
        p_blank = client.post("/predict", json=blank).json()["delay_probability"]
        assert p_blank != body["delay_probability"]
    assert body["delayed"] == (body["delay_probability"] >= CFG.serve.threshold)
    assert body["threshold"] == CFG.serve.threshold and body["model_version"] == "1"
    assert {k: body[k] for k in ("carrier", "flight", "origin", "dest")} == {
        "carrier": "UA",
        "flight": 236,
        "origin": "EWR",
        "dest": "FLL",
    }
    assert body["sched_dep"] == "2013-08-16T00:00:00Z" and body["as_of"] == "2013-08-15T12:00:00Z"
    assert body["lead_hours"] == 12.0
    ages = body["feature_age_s"]
    assert list(ages) == ["timetable", "weather", "plane_last_leg", "airport_state"]
    assert ages["timetable"] == 6.5 * 86400 and all(a >= 0 for a in ages.values())
    # The log holds the flight number and every field it was scored on: the record above.
    assert_logged(data_dir, body["request_id"], record)


def assert_logged(data_dir, request_id: str, record: dict) -> None:
    """The prediction log's one line for `request_id` holds `record`'s values."""
    rows, _ = read_log(data_dir / "predictions")
    logged = rows[rows["request_id"] == request_id]
    assert len(logged) == 1
    for field, value in record.items():
        got = logged.iloc[0][field]
        assert (value is None and pd.isna(got)) or got == value, field


def test_features_true_adds_the_record_scored_which_post_predict_scores_the_same(
    client, raw, fed_tables, data_dir
):
    """The what-if's starting point: the record as built without the store, as logged, and
    scored the same by POST /predict. Absent unless asked."""
    unasked = client.get(EWR_236).json()
    assert "features" not in unasked
    r = client.get(f"{EWR_236}&features=true")
    assert r.status_code == 200, r.text
    body = r.json()
    features = body.pop("features")
    assert features == plain(expected_record(raw, fed_tables, "EWR"))
    assert_logged(data_dir, body["request_id"], features)
    assert body.keys() == unasked.keys()
    by_post = client.post("/predict", json=features).json()
    assert by_post["delay_probability"] == pytest.approx(body["delay_probability"], abs=1e-9)


def test_an_unknown_flight_is_404_naming_it(client):
    r = client.get("/flights/UA/9999/2013-08-15")
    assert r.status_code == 404
    assert r.json()["detail"].startswith("no flight UA 9999 on 2013-08-15 in the timetable")
    # A week and more ahead, the timetable is not published yet at the clock.
    r = client.get("/flights/UA/236/2013-08-29")
    assert r.status_code == 404 and "UA 236 on 2013-08-29" in r.json()["detail"]
    r = client.get("/flights/UA/236/2013-08-15?origin=LGA")
    assert r.status_code == 404 and "UA 236 on 2013-08-15 from LGA" in r.json()["detail"]


def test_a_number_leaving_from_two_airports_is_409_listing_them(client):
    r = client.get("/flights/UA/236/2013-08-15")
    assert r.status_code == 409
    assert r.json()["origins"] == ["JFK", "EWR"]
    assert "?origin=JFK or ?origin=EWR" in r.json()["detail"]


def test_a_flight_gone_by_the_clock_is_409_with_its_departure(client):
    r = client.get("/flights/UA/236/2013-08-15?origin=JFK")
    assert r.status_code == 409
    body = r.json()
    assert body["departed"] == "2013-08-15T10:26:00Z" and body["dep_delay"] == -4.0
    assert "UA 236 from JFK left at 2013-08-15T10:26:00Z" in body["detail"]


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/flights/united/236/2013-08-15", "carrier"),
        ("/flights/UA/0/2013-08-15", "number"),
        ("/flights/UA/23x/2013-08-15", "number"),
        ("/flights/UA/236/2013-02-30", "day"),
        ("/flights/UA/236/15-08-2013", "day"),
        ("/flights/UA/236/0001-01-01", "day"),  # no flight, and before pandas can count
        ("/flights/UA/236/2013-08-15?origin=BOS", "origin"),
    ],
)
def test_a_malformed_flight_is_422_naming_the_part(client, path, where):
    r = client.get(path)
    assert r.status_code == 422
    assert [e["loc"][-1] for e in r.json()["detail"]] == [where]


def test_no_store_then_an_empty_one_are_503_until_the_feed_runs(
    smoke_pipeline, tmp_path, fed_tables
):
    """The store is opened once, at the first request that finds it, and closed at
    shutdown; the API never creates the file."""
    path = tmp_path / "online" / "features.sqlite"
    for c in client_on({"FD_DATA_DIR": str(tmp_path)}):
        r = c.get(EWR_236)
        assert r.status_code == 503 and "run `python -m src.feed`" in r.json()["detail"]
        assert not path.exists()
        SQLiteStore(path).close()  # the tables, no clock: never fed
        r = c.get(EWR_236)
        assert r.status_code == 503 and "empty: run `python -m src.feed`" in r.json()["detail"]
        store = c.app.state.online_store.store
        with SQLiteStore(path) as feeder:
            feed(feeder, fed_tables, until=CLOCK)
        assert c.get(EWR_236).status_code == 200
        assert c.app.state.online_store.store is store  # opened once
    with pytest.raises(Exception, match="closed database"):
        store.clock_ns()


def test_the_api_key_guards_flights_too(smoke_pipeline, data_dir):
    for c in client_on({"FD_DATA_DIR": str(data_dir), "FD_API_KEY": "k3y"}):
        assert c.get(EWR_236).status_code == 401
        assert c.get(EWR_236, headers={"X-API-Key": "k3y"}).status_code == 200


def test_the_api_starts_without_the_store_code():
    """pandas (and Redis's client) are imported at the first GET /flights, not at start."""
    code = "import sys, app.main; print(sorted({'pandas', 'redis'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_on_redis_the_same_flight_gets_the_same_answer(smoke_pipeline, client, fed_tables):
    """FD_REDIS_URL set: the store is Redis; down (at start or later), it is a 503 that
    does not echo its URL."""
    with redis_server() as url:
        with RedisStore(url) as store:
            feed(store, fed_tables, until=CLOCK)
        for c in client_on({"FD_REDIS_URL": url}):
            on_redis = c.get(EWR_236).json()
            assert c.get("/flights/UA/236/2013-08-15").json()["origins"] == ["JFK", "EWR"]
            admin = redis.Redis.from_url(url)
            with closing(admin), contextlib.suppress(redis.ConnectionError):
                admin.shutdown(nosave=True)  # the server goes away under the API
            r = c.get(EWR_236)
            assert r.status_code == 503 and r.json()["detail"] == (
                "the online store (Redis) is not answering"
            )
    on_sqlite = client.get(EWR_236).json()
    ignore = {"request_id"}
    assert {k: v for k, v in on_redis.items() if k not in ignore} == {
        k: v for k, v in on_sqlite.items() if k not in ignore
    }
    down = f"redis://127.0.0.1:{free_port()}/0"
    for c in client_on({"FD_REDIS_URL": down}):
        r = c.get(EWR_236)
        assert r.status_code == 503 and down not in r.text


def test_sqlite_reads_run_on_the_event_loop_redis_reads_in_the_thread_pool(
    client, fed_tables, monkeypatch
):
    """An open SQLite store is read on the event loop (no hop to the thread pool: a quarter
    of the route's requests/s), with or without an explanation; Redis reads go to the
    pool. Every hop counts, the route's own and its dependencies' (a plain `def` one runs
    in the pool)."""
    import anyio.to_thread

    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counted(fn, *args, **kwargs):
        hops.append(getattr(fn, "func", fn).__name__)  # starlette hands over a partial
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    assert client.get(EWR_236).status_code == 200  # opens the store (if no test has yet)
    hops.clear()
    assert client.get(EWR_236).status_code == 200
    assert hops == []
    assert client.get(EWR_236 + "&explain=true").status_code == 200
    assert hops == []
    with redis_server() as url:
        with RedisStore(url) as store:
            feed(store, fed_tables, until=CLOCK)
        for c in client_on({"FD_REDIS_URL": url}):
            hops.clear()
            assert c.get(EWR_236).status_code == 200 and c.get(EWR_236).status_code == 200
            assert hops == ["flight_answer", "flight_answer"]
