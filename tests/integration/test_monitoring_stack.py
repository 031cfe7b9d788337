"""The monitoring stack on real components, all on 127.0.0.1: Debian's Prometheus (the repo's
prometheus.yml and alerts.yml, 1 s intervals) and Pushgateway, two gunicorn API servers
and the monitoring cycle (`python -m src.cycle --pushgateway`).

- "healthy" serves the smoke champion from a private copy of the smoke project, to a client
  sending evening flights of March (later flights are late more often, so the mean score
  moves away from the champion's baseline) with their flight numbers;
- "broken" has lost its model store and points at a dead tracking server: it answers 503;
- a third scrape target is a port nothing listens on: an API that is down.

Then the March outcomes arrive and the cycle runs against the same copy. The tests check
the series the API and the cycle export, the alerts that go pending or firing (and the ones
that must not), and that every query of the Grafana dashboard returns data. Grafana itself
cannot run here: its panels' PromQL runs against this Prometheus instead.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from src.common.paths import ROOT, SMOKE_CONFIG, Paths
from src.common.schema import API_REQUEST_FIELDS, FLIGHTS
from src.common.servers import free_port
from src.data.validate import read_snapshot
from src.monitoring.outcomes import OUTCOME_COLUMNS
from tests.conftest import point_paths_at, server_process, wait_or_fail
from tests.integration.monitoring_support import (
    ALERT_RULES,
    PROMETHEUS_CONFIG,
    active_alerts,
    dashboard_queries,
    query,
    read_dashboard,
    tool,
    values,
    wait_for,
    wait_for_value,
)
from tests.integration.support import CFG

pytestmark = pytest.mark.slow
AS_OF = "2013-03-31"  # the smoke test month (March) has ended: its outcomes are in
API_JOB, PUSHGATEWAY_JOB, CYCLE_JOB = "flight-delay-api", "pushgateway", "flight-delay-cycle"
EVENING_HOUR = 17  # flights from 17:00 on: delayed a third of the time in March, vs a fifth
BATCH_FLIGHTS = 1000  # scored in batches, enough for the mean-shift alert's 100-flight floor
WAIT_S = 90  # for any one thing Prometheus should see (1 s scrapes and rule evaluations)
STACK_S = 600  # the background clients give up after this, whatever happens


# ------------------------------------------------------------------ processes
@contextmanager
def prometheus_server(workdir: Path, api_targets: list[str], pushgateway: str):
    """Prometheus with the repo's prometheus.yml, its targets replaced by these and its
    intervals shortened to 1 s; yields the base URL."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERT_RULES)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {API_JOB, PUSHGATEWAY_JOB}, f"{PROMETHEUS_CONFIG}: jobs {set(jobs)}"
    jobs[API_JOB]["static_configs"] = [{"targets": api_targets}]
    jobs[PUSHGATEWAY_JOB]["static_configs"] = [{"targets": [pushgateway]}]
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [tool("prometheus"), f"--config.file={config_file}"]
    cmd += [f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
    log = workdir / "prometheus.log"
    base = f"http://127.0.0.1:{port}"
    with server_process(cmd, dict(os.environ), log) as proc:
        wait_or_fail(f"{base}/-/ready", proc, log, timeout=60)
        yield base


@contextmanager
def pushgateway_server(workdir: Path):
    """Debian's Pushgateway, pushes kept in memory only; yields host:port."""
    address = f"127.0.0.1:{free_port()}"
    cmd = [tool("prometheus-pushgateway"), f"--web.listen-address={address}"]
    # Debian's build persists pushes to /var/lib/prometheus/pushgateway.data by default:
    # every run would start with the previous run's cycle (and write outside the test).
    cmd.append("--persistence.file=")
    log = workdir / "pushgateway.log"
    with server_process(cmd, dict(os.environ), log) as proc:
        wait_or_fail(f"http://{address}/-/ready", proc, log, timeout=60)
        yield address


@contextmanager
def api_server(env: dict, log: Path, workers: int, ready_path: str):
    """app/gunicorn_conf.py on a free loopback port, waited for on `ready_path` (/ready needs
    a model; the broken server only ever answers /health); yields host:port."""
    address = f"127.0.0.1:{free_port()}"
    full_env = {**os.environ, **env, "FD_BIND": address, "FD_WORKERS": str(workers)}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn_conf.py", "app.main:app"]
    with server_process(cmd, full_env, log) as proc:
        wait_or_fail(f"http://{address}{ready_path}", proc, log)
        yield address


class Client:
    """Posts one flight every `interval` s to `base`/predict until stopped (at most `seconds`
    s), as a steady client would: the rate panels always have fresh data. Answers of any
    status are counted; connection errors too."""

    def __init__(self, base: str, bodies: list[bytes], interval: float, seconds: float):
        self.base, self.bodies, self.interval, self.seconds = base, bodies, interval, seconds
        self.statuses: dict[int | str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline, i = time.monotonic() + self.seconds, 0
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            status = post(f"{self.base}/predict", self.bodies[i % len(self.bodies)])
            self.statuses[status] = self.statuses.get(status, 0) + 1
            i += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def post(url: str, body: bytes) -> int | str:
    """POST JSON; the status, or the error's name when there is no answer."""
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


# ------------------------------------------------------------------ data
def private_project(paths: Paths, root: Path) -> Paths:
    """A copy of the smoke project (data, models, MLflow store) under `root`: the cycle
    registers and promotes a challenger, which the session's registry must not see. (New
    runs' artifacts still go to the session's artifact folder, where the store records
    them by absolute path; nothing else reads them.)"""
    for source, name in ((paths.data, "data"), (paths.models, "models"), (paths.mlflow, "mlruns")):
        shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("predictions"))
    return Paths(
        data=root / "data", models=root / "models", reports=root / "reports", mlflow=root / "mlruns"
    )


def evening_flights(test_split) -> list[bytes]:
    """March's evening flights as the API's request bodies, flight numbers included."""
    rows = test_split.loc[test_split["hour"] >= EVENING_HOUR, list(API_REQUEST_FIELDS)]
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return [json.dumps(r).encode() for r in records]


def publish_outcomes(paths: Paths, month: int) -> None:
    """The month's departures as observed (the public flights table) arrive."""
    raw = read_snapshot(paths, CFG.snapshot)[FLIGHTS.name]
    observed = raw.loc[raw["month"] == month, list(OUTCOME_COLUMNS)]
    paths.outcomes.mkdir(parents=True, exist_ok=True)
    observed.to_csv(paths.outcomes / f"outcomes-2013-{month:02d}.csv", index=False)


def run_cycle(env: dict, paths: Paths, pushgateway: str, log: Path) -> tuple[int, dict]:
    """`python -m src.cycle` as cron runs it, pushing to `pushgateway`: (exit code, the
    summary it wrote)."""
    cmd = [sys.executable, "-m", "src.cycle", "--config", str(SMOKE_CONFIG), "--as-of", AS_OF]
    cmd += ["--pushgateway", f"http://{pushgateway}"]
    with open(log, "wb") as out:
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        )
    summary = paths.cycle_file(AS_OF, "summary.json")
    assert summary.is_file(), f"exit {done.returncode}, no {summary}:\n{log.read_text()[-3000:]}"
    return done.returncode, json.loads(summary.read_text())


# ------------------------------------------------------------------ the stack
@pytest.fixture(scope="module")
def stack(smoke_pipeline, test_split, tmp_path_factory):
    """Everything above, started once for this module's tests and stopped after them; yields
    what the tests look at. Each step waits on what it needs, bounded."""
    work = tmp_path_factory.mktemp("monitoring")
    project = private_project(smoke_pipeline, work / "project")
    env = point_paths_at(work / "project")
    dead_registry = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    broken_env = {
        "FD_DATA_DIR": str(work / "broken-data"),
        "FD_MODELS_DIR": str(work / "broken-models"),  # empty: no export to fall back on
        "MLFLOW_TRACKING_URI": dead_registry,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    down = f"127.0.0.1:{free_port()}"  # an API that is down: nothing listens there
    bodies = evening_flights(test_split)
    with ExitStack() as running:  # stopped in reverse order, whatever fails
        pushgateway = running.enter_context(pushgateway_server(work))
        healthy = running.enter_context(api_server(env, work / "healthy.log", 2, "/ready"))
        broken = running.enter_context(api_server(broken_env, work / "broken.log", 1, "/health"))
        prometheus = running.enter_context(
            prometheus_server(work, [healthy, broken, down], pushgateway)
        )
        # Steady clients for the stack's life: rates stay fresh for the dashboard's queries.
        running.enter_context(Client(f"http://{healthy}", bodies, 0.2, STACK_S))
        running.enter_context(Client(f"http://{broken}", bodies, 0.5, STACK_S))
        # Prometheus has a sample of the champion's score series before the rush: rate() and
        # increase() count only what a series gains between samples, so a series first
        # scraped after the rush would hide it from the mean-shift alert.
        wait_for(
            lambda: values(prometheus, 'sum(fd_prediction_score_count{role="champion"})'),
            WAIT_S,
            "Prometheus to scrape the steady client's first scores",
        )
        # The evening rush, scored in batches (logged with their flight numbers).
        batch = [json.loads(b) for b in bodies[:BATCH_FLIGHTS]]
        for start in range(0, BATCH_FLIGHTS, 100):
            body = json.dumps({"flights": batch[start : start + 100]}).encode()
            assert post(f"http://{healthy}/predict/batch", body) == 200
        wait_for(
            lambda: values(prometheus, 'sum(fd_prediction_score_count{role="champion"})').get((), 0)
            >= BATCH_FLIGHTS,
            WAIT_S,
            "Prometheus to see the batches' scores",
        )
        # The rules have run on these scrapes: the dead target's alert is pending, and so is
        # the cycle's staleness alert, since no cycle has pushed yet (absent()). Each rule
        # group runs on its own clock: wait for both. (test_alerts_pending_or_firing checks
        # that the cycle's push resolves the second.)
        wait_for(
            lambda: {"FlightDelayAPIDown", "FlightDelayCycleStale"}
            <= set(active_alerts(prometheus)),
            WAIT_S,
            "FlightDelayAPIDown and FlightDelayCycleStale pending before the cycle",
        )
        publish_outcomes(project, 3)
        code, summary = run_cycle(env, project, pushgateway, work / "cycle.log")
        wait_for(
            lambda: query(
                prometheus, f'fd_cycle_last_success_timestamp_seconds{{job="{CYCLE_JOB}"}}'
            ),
            WAIT_S,
            "Prometheus to scrape the cycle's push",
        )
        yield {
            "prometheus": prometheus,
            "healthy": healthy,
            "broken": broken,
            "down": down,
            "cycle_exit": code,
            "summary": summary,
            "work": work,
        }


def context(stack) -> str:
    """Log tails for a failure message."""
    tails = []
    for name in ("healthy.log", "broken.log", "cycle.log", "prometheus.log"):
        path = stack["work"] / name
        if path.is_file():
            tails.append(f"--- {name}:\n{path.read_text()[-1500:]}")
    return "\n".join(tails)


# ------------------------------------------------------------------ the tests
def test_series_from_the_api_and_the_cycle(stack):
    prom, healthy, broken = stack["prometheus"], stack["healthy"], stack["broken"]
    summary = stack["summary"]

    def one(promql: str) -> float:
        found = values(prom, promql)
        assert len(found) == 1, f"{promql}: {found}\n{context(stack)}"
        return next(iter(found.values()))

    # Scrapes: the two servers answer, the third target is down.
    assert values(prom, f'up{{job="{API_JOB}"}}') == {
        (("instance", healthy), ("job", API_JOB)): 1.0,
        (("instance", broken), ("job", API_JOB)): 1.0,
        (("instance", stack["down"]), ("job", API_JOB)): 0.0,
    }
    # The healthy server: the champion that served the batches (the cycle may have promoted
    # another since), its out-of-sample baseline, its scores; the registry reached. The
    # broken one: 503s, no predictions, registry unreachable.
    first = summary["champion_before"]
    on_healthy = f'instance="{healthy}", version="{first}"'
    assert query(prom, f'fd_model_info{{{on_healthy}, role="champion"}}'), context(stack)
    assert 0.05 < one(f"fd_model_baseline_mean_score{{{on_healthy}}}") < 0.5
    scored = one(f'sum(fd_prediction_score_count{{{on_healthy}, role="champion"}})')
    assert scored >= BATCH_FLIGHTS
    assert one(f'sum(fd_predictions_total{{instance="{healthy}"}})') >= BATCH_FLIGHTS
    assert one(f'fd_registry_reachable{{instance="{healthy}"}}') == 1
    assert one(f'fd_registry_reachable{{instance="{broken}"}}') == 0
    assert one(f'sum(fd_http_requests_total{{instance="{broken}", status="503"}})') > 0
    assert not query(prom, f'fd_predictions_total{{instance="{broken}"}}')

    # The cycle: exit 1 (it made a decision), and what it pushed matches what it wrote.
    assert stack["cycle_exit"] == 1, context(stack)
    model = CFG.registry.model_name
    pushed = f'job="{CYCLE_JOB}", model="{model}"'
    decisions = values(prom, f"fd_cycle_decision{{{pushed}}}")
    assert {dict(k)["decision"]: v for k, v in decisions.items()} == {
        d: float(d == summary["decision"]) for d in ("promote", "reject", "none")
    }
    assert one(f"fd_cycle_champion_version{{{pushed}}}") == int(summary["champion_version"])
    assert one(f"fd_cycle_drift_share{{{pushed}}}") == pytest.approx(
        summary["drift"]["drift_share"]
    )
    assert one(f"fd_cycle_drift_alert{{{pushed}}}") == summary["drift"]["drift_detected"]
    assert one(f"fd_cycle_performance_alert{{{pushed}}}") == bool(summary["performance"]["alerts"])
    columns = values(prom, f"fd_cycle_drift_score{{{pushed}}}")
    assert {dict(k)["column"] for k in columns} == set(CFG.drift.columns)
    assert 0.5 < one(f"fd_cycle_window_roc_auc{{{pushed}}}") < 0.9
    # Live figures: the evening flights the healthy server logged, joined with March's
    # outcomes. Each was sent with its flight number and departed (the processed data holds
    # no cancelled flight), so every one joins.
    rows = {dict(k)["state"]: v for k, v in values(prom, f"fd_cycle_live_rows{{{pushed}}}").items()}
    assert rows["joined"] >= BATCH_FLIGHTS and rows["unmatched"] == rows["cancelled"] == 0, rows
    assert rows == {k: summary["live"]["counts"][k] for k in rows}
    live = values(prom, f'fd_cycle_live_roc_auc{{{pushed}, role="champion"}}')
    assert live and all(0.5 < v < 0.9 for v in live.values()), live
    assert query(prom, f"fd_cycle_live_calibration_gap{{{pushed}}}")
    ece = values(prom, f'fd_cycle_live_calibration_error{{{pushed}, role="champion"}}')
    assert ece and all(0 < v < 1 for v in ece.values()), ece
    assert one(f"fd_cycle_as_of_timestamp_seconds{{{pushed}}}") == 1364688000  # 2013-03-31
    assert one(f"time() - fd_cycle_last_success_timestamp_seconds{{{pushed}}}") < 600


def test_alerts_pending_or_firing(stack):
    """The alerts these conditions raise, and no other. Rules with `for:` are pending here
    (their windows are minutes long); the cycle's fire at once. FlightDelayCycleStale, pending
    before the cycle pushed (the fixture waits for it), is gone once it has."""
    prom, summary = stack["prometheus"], stack["summary"]
    broken, down = stack["broken"], stack["down"]
    expected = {
        "FlightDelayAPIDown": {down},
        "FlightDelayAPIHigh5xxRatio": {broken},
        "FlightDelayNoPredictions": {broken},
        "FlightDelayRegistryUnreachable": {broken},
        "FlightDelayMeanPredictionShift": None,  # by version, checked below
    }
    # The smoke slice's March drifts (tests/integration/test_drift.py), so the drift alert
    # fires; the performance alert fires when the cycle says so.
    assert summary["drift"]["drift_detected"], summary["drift"]
    expected["FlightDelayDriftAlert"] = None
    if summary["performance"]["alerts"]:
        expected["FlightDelayPerformanceAlert"] = None

    wait_for_value(lambda: sorted(active_alerts(prom)), sorted(expected), WAIT_S, "alerts")
    found = active_alerts(prom)
    for name, instances in expected.items():
        if instances is not None:
            assert {a["instance"] for a in found[name]} == instances, (name, found[name])
    # The champion that served the evening rush scored it well above its baseline.
    shifted = {a["version"] for a in found["FlightDelayMeanPredictionShift"]}
    assert summary["champion_before"] in shifted, shifted
    model = CFG.registry.model_name
    for name in ("FlightDelayDriftAlert", "FlightDelayPerformanceAlert"):
        if name in expected:
            assert [a["model"] for a in found[name]] == [model]
            assert [a["alertstate"] for a in found[name]] == ["firing"]  # no `for:`


def test_every_dashboard_query_returns_data(stack):
    """Each query of each panel of monitoring/grafana/dashboards/flight-delay.json, run as
    Grafana would run it (its interval variables substituted), returns at least one series
    with a finite value. A misspelt metric or label gives none."""
    prom = stack["prometheus"]
    empty = []
    checked = 0
    for title, ref, expr in dashboard_queries(read_dashboard()):
        result = query(prom, expr)
        finite = [r for r in result if math.isfinite(float(r["value"][1]))]
        checked += 1
        if not finite:
            empty.append(f"{title} [{ref}]: {expr}")
    assert checked >= 20
    assert not empty, "queries without data:\n" + "\n".join(empty)
