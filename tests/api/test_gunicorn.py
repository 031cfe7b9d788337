"""The production server (gunicorn + uvicorn workers) on loopback: graceful shutdown keeps
every logged prediction, a worker killed with SIGKILL loses none it answered, steady load
at 32 connections, and faults under load: the champion alias moved, then the tracking
server killed. Bad settings fail in one line; no server touches a shared control socket.
Every loop is bounded in time."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import psutil
import pytest
import yaml
from mlflow import MlflowClient

from src.common.paths import ROOT
from src.common.schema import EXAMPLE_FLIGHT
from src.serving.prediction_log import read_log
from tests.api.support import CFG, cfg_with, records, wait_until
from tests.conftest import gunicorn, mlflow_server

pytestmark = pytest.mark.slow
# Long enough for a leak to show in the workers' RSS against the warmed-up baseline; a
# longer soak by hand: FD_LOAD_SECONDS=60 make test PYTEST_ARGS=tests/api/test_gunicorn.py
LOAD_SECONDS = float(os.environ.get("FD_LOAD_SECONDS", "20"))
# Requests answered before the RSS baseline is taken: every worker has parsed, scored and
# logged many flights (buffers, caches and the prediction log's queue at their working size).
WARM_REQUESTS = 300


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def flights(test_split, n: int = 500) -> list[bytes]:
    return [json.dumps(r).encode() for r in records(test_split, n)]


class Load:
    """`connections` keep-alive clients POSTing flights until stopped or `seconds` pass.
    Records (time, status, model version) for every request; any exception is an error.
    Each request has its own X-Request-ID: `answered` lists those of the 200s, `failed`
    those of the requests that got no answer."""

    def __init__(self, base: str, bodies: list[bytes], connections: int, seconds: float):
        self.host, self.port = base.removeprefix("http://").split(":")
        self.bodies, self.seconds = bodies, seconds
        self.results: list[tuple[float, int, str | None]] = []
        self.errors: list[str] = []
        self.answered: list[str] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, args=(i,)) for i in range(connections)
        ]

    def _client(self, offset: int) -> None:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=10)
        deadline, i = time.monotonic() + self.seconds, offset
        while not self._stop.is_set() and time.monotonic() < deadline:
            body = self.bodies[i % len(self.bodies)]
            request_id = f"load-{offset}-{i}"
            headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
            i += 1
            try:
                conn.request("POST", "/predict", body, headers)
                response = conn.getresponse()
                payload = response.read()
                version = (
                    json.loads(payload).get("model_version") if response.status == 200 else None
                )
                with self._lock:
                    self.results.append((time.monotonic(), response.status, version))
                    if response.status == 200:
                        self.answered.append(request_id)
            except Exception as exc:  # noqa: BLE001 - every failure counts
                with self._lock:
                    self.errors.append(repr(exc))
                    self.failed.append(request_id)
                conn.close()
                conn = http.client.HTTPConnection(self.host, int(self.port), timeout=10)
        conn.close()

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def wait(self):
        for t in self._threads:
            t.join(timeout=self.seconds + 30)

    def statuses(self) -> set[int]:
        return {status for _, status, _ in self.results}

    def since(self, t: float) -> list[tuple[float, int, str | None]]:
        with self._lock:
            return [r for r in self.results if r[0] > t]


def worker_rss(master_pid: int) -> int:
    return sum(p.memory_info().rss for p in psutil.Process(master_pid).children())


def test_graceful_shutdown_keeps_every_prediction(smoke_pipeline, tmp_path, test_split):
    bodies = flights(test_split, 40)
    with gunicorn({"FD_DATA_DIR": str(tmp_path)}) as (base, master):
        ids = []
        for body in bodies * 5:
            req = urllib.request.Request(
                f"{base}/predict", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                ids.append(json.loads(r.read())["request_id"])
        os.killpg(master.pid, signal.SIGTERM)  # what `docker stop` and systemd send
        assert master.wait(timeout=60) == 0
    rows, torn = read_log(tmp_path / "predictions")
    assert len(rows) == len(ids) == 200 and torn == 0
    assert set(rows["request_id"]) == set(ids)
    assert rows["delay_probability"].between(0, 1).all() and rows["origin"].notna().all()


KILL_DRILL_SECONDS = 12  # of load; the worker is killed 4 s in


def test_kill_9_of_a_worker_loses_no_answered_prediction(smoke_pipeline, tmp_path, test_split):
    """SIGKILL runs no shutdown code: what a killed worker answered must be on disk already.
    The master replaces it, the new worker serves, and SIGTERM ends the run."""
    folder = tmp_path / "predictions"
    with gunicorn({"FD_DATA_DIR": str(tmp_path)}) as (base, master):
        workers = {p.pid for p in psutil.Process(master.pid).children()}
        start = time.monotonic()
        with Load(base, flights(test_split), 8, KILL_DRILL_SECONDS) as load:
            time.sleep(4)
            # The worker holding most of the load's connections (kept alive, they need not
            # be shared evenly): one that answers requests all the time.
            held = {pid: clients_of(pid) for pid in workers}
            killed = max(held, key=held.__getitem__)
            assert held[killed] > 0, held
            os.kill(killed, signal.SIGKILL)
            now = wait_until(
                lambda: len(pids := {p.pid for p in psutil.Process(master.pid).children()}) == 2
                and killed not in pids
                and pids,
                timeout=60,
                interval=0.1,
                what="the master to replace the killed worker",
            )
            load.wait()
        seconds = time.monotonic() - start
        sent, answered = len(load.answered) + len(load.failed), len(load.answered)
        (new,) = now - workers
        # The load's kept-alive connections stay with the old worker: new connections, one
        # request each, until one reaches the new worker (its own log file), bounded.
        wait_until(
            lambda: post_flight(base, load) and list(folder.glob(f"predictions-*-{new}-*.jsonl")),
            timeout=60,
            interval=0.05,
            what=f"the new worker {new} to answer",
        )
        os.killpg(master.pid, signal.SIGTERM)
        assert master.wait(timeout=60) == 0
    rows, torn = read_log(folder)
    logged = list(rows["request_id"])
    print(  # the drill's figures (pytest -s)
        f"kill -9 drill: {sent} requests in {seconds:.1f} s, {answered} answered 200, "
        f"{len(load.failed)} failed; then {len(load.answered) - answered} on new connections "
        f"until the new worker answered; {len(logged)} rows logged, {torn} torn lines"
    )
    assert torn == 0 and len(logged) == len(set(logged))  # whole lines, each request once
    assert set(load.answered) <= set(logged)  # every answer was logged
    # A request can be logged and lose its answer when its worker dies between the two, so
    # a logged request without an answer must be one that failed; a connection fails once
    # (the request it had in flight on the killed worker).
    assert set(logged) - set(load.answered) <= set(load.failed), load.errors
    assert len(load.failed) <= 8, load.errors
    assert len(load.answered) > 20 * KILL_DRILL_SECONDS


def clients_of(pid: int) -> int:
    """The established TCP connections of a worker: its clients."""
    connections = psutil.Process(pid).net_connections(kind="tcp")
    return sum(c.status == psutil.CONN_ESTABLISHED for c in connections)


def post_flight(base: str, load: Load) -> bool:
    """One flight on a new connection, counted in `load` as its clients' requests are."""
    request_id = f"after-{len(load.answered)}"
    headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
    body = json.dumps(EXAMPLE_FLIGHT).encode()
    request = urllib.request.Request(f"{base}/predict", body, headers)
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
    load.answered.append(request_id)
    return True


def test_a_bad_setting_is_one_line_and_exit_2():
    env = {**os.environ, "FD_WORKERS": "0", "FD_BIND": "127.0.0.1:1"}  # never bound
    cmd = [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "app.main:app"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "gunicorn: FD_WORKERS='0': Input should be greater than or equal to 1"
    ]


def test_no_control_socket_is_shared(smoke_pipeline, tmp_path):
    """gunicorn's default control socket is one path per user (~/.gunicorn/gunicorn.ctl,
    or under XDG_RUNTIME_DIR): two servers would fight over it. None is made."""
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    runtime.mkdir()
    env = {"FD_DATA_DIR": str(tmp_path), "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    with gunicorn(env, workers=1) as (first, _), gunicorn(env, workers=1) as (second, _):
        assert get_json(f"{first}/health") == get_json(f"{second}/health") == {"status": "ok"}
        sockets = [p for p in tmp_path.rglob("*") if p.is_socket()]
    assert sockets == []


def test_steady_load_at_32_connections(smoke_pipeline, tmp_path, test_split):
    with gunicorn({"FD_DATA_DIR": str(tmp_path)}) as (base, master):
        # Both workers have reached the registry once (its client is imported lazily, which
        # would otherwise count as growth under load): 20 /ready answers in a row say so
        # (each goes to either worker).
        deadline, in_sync = time.monotonic() + 120, 0
        while in_sync < 20 and time.monotonic() < deadline:
            in_sync = in_sync + 1 if get_json(f"{base}/ready")["registry"]["reachable"] else 0
            time.sleep(0.05)
        assert in_sync == 20
        with Load(base, flights(test_split), 32, LOAD_SECONDS) as load:
            # Warmed up (counted in answers, not seconds): then the RSS baseline.
            wait_until(lambda: len(load.results) >= WARM_REQUESTS, LOAD_SECONDS / 2, 0.05)
            rss_start = worker_rss(master.pid)
            load.wait()
            rss_end = worker_rss(master.pid)
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    assert load.errors == [] and load.statuses() == {200}
    # It really was under load: a floor of 20 answers/s, which two workers exceed many
    # times over even when the 2 cores are shared with other jobs (a throughput floor that
    # only a stalled or crashed server misses, not a latency bound).
    assert len(load.results) > 20 * LOAD_SECONDS
    assert rss_end <= 1.10 * rss_start, (rss_start, rss_end)
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('fd_http_requests_total{route="/predict",status="200"}')
    )
    assert served == len(load.results)  # both workers' counters, summed


def test_alias_move_then_tracking_server_loss_under_load(
    smoke_pipeline, tmp_path, test_split, monkeypatch
):
    """A copy of the smoke registry behind a real `mlflow server`: @champion moves to v2
    while requests flow, then the server is killed; not one request fails."""
    db = tmp_path / "registry.db"
    shutil.copy(smoke_pipeline.mlflow / "mlflow.db", db)
    config = tmp_path / "serve.yml"
    # Fast paths on (the defaults, stated): the workers poll and load over REST.
    serve = cfg_with(reload_seconds=1, fast_paths={"registry_rest": True, "lightgbm_c_api": True})
    config.write_text(yaml.safe_dump(serve.model_dump()))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # this test's own client: patient
    log = tmp_path / "gunicorn.log"

    with mlflow_server(f"sqlite:///{db}", tmp_path / "artifacts") as (registry, server):
        client = MlflowClient(registry)
        name = CFG.registry.model_name
        v1 = client.get_model_version_by_alias(name, "champion")
        model_id = v1.source.removeprefix("models:/")  # MLflow 3 logged model behind v1
        v2 = client.create_model_version(name, v1.source, v1.run_id, model_id=model_id)
        env = {
            "FD_DATA_DIR": str(tmp_path / "data"),
            "FD_CONFIG": str(config),
            "MLFLOW_TRACKING_URI": registry,
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",  # for any MlflowClient call in the workers
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        }
        with gunicorn(env, log=log) as (base, master):
            assert get_json(f"{base}/model")["version"] == v1.version
            with Load(base, flights(test_split), 8, 240) as load:
                wait_until(lambda: len(load.results) >= WARM_REQUESTS, 60, 0.05, "warm-up")
                rss_before = worker_rss(master.pid)
                client.set_registered_model_alias(name, "champion", v2.version)
                moved = time.monotonic()
                # Each worker polls and loads v2 on its own (its model file over REST, well
                # under a second). Wait until both have: 3 s in which every answer came from
                # v2 (at least 20 of them). The window is no timing assertion: a worker
                # still on v1 goes on answering with v1 while it loads v2 (in its watcher
                # thread), so on a slow machine the window only comes later; the asserts
                # below check that no v1 answer followed it.
                switched = wait_for_only(load, v2.version, since=moved, window=3, timeout=120)
                rss_after = worker_rss(master.pid)
                os.killpg(server.pid, signal.SIGKILL)
                killed = time.monotonic()
                # Predictions keep flowing, and a worker's next poll (every 1 s) finds the
                # registry gone: wait for both, bounded.
                ready = wait_until(
                    lambda: len(load.since(killed)) > 100
                    and (r := get_json(f"{base}/ready"))["registry"]["reachable"] is False
                    and r,
                    timeout=60,
                    interval=0.2,
                    what="100 answers and a failed poll after the registry died",
                )
            after_kill = load.since(killed)

    context = f"gunicorn log tail:\n{log.read_text()[-3000:]}"
    assert switched is not None, f"v{v2.version} not served by every worker; {context}"
    assert load.errors == [] and load.statuses() == {200}, context
    first_v2 = min(t for t, _, v in load.results if v == v2.version)
    assert {v for t, _, v in load.results if t < first_v2} == {v1.version}
    # Once every worker has swapped, never back to v1, with or without the registry.
    assert {v for t, _, v in load.results if t >= switched} == {v2.version}
    assert len(after_kill) > 100  # predictions kept flowing without the registry
    # No MLflow import in the workers for the reload (registry_rest on). Importing MLflow
    # costs a worker 120-200 MiB of RSS (measured: `import mlflow` alone in the REST
    # loader took both workers from 157 to 403 MiB in this test; with MlflowClient and its
    # model loader, ~210 MiB each in-process), so workers that imported it would add
    # 240-400 MiB: far above this bound of 100 MiB for both, which leaves room for the
    # second model (a few MiB) and allocator noise. RSS is what can be seen from outside a
    # worker; tests/api/test_parity.py asserts `'mlflow' not in sys.modules` directly for
    # the same load path in a fresh process.
    assert rss_after - rss_before < 2 * 50 * 2**20, (rss_before, rss_after)
    assert ready["model_version"] == v2.version and ready["registry"]["reachable"] is False


def wait_for_only(load: Load, version: str, since: float, window: float, timeout: float):
    """The start of the first `window` s after `since` in which every answer came from
    `version` (at least 20 answers), or None after `timeout` s."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = time.monotonic()
        recent = [v for t, _, v in list(load.results) if now - window <= t and t > since]
        if len(recent) >= 20 and set(recent) == {version}:
            return now - window
    return None
