"""The Kubernetes manifests (deploy/k8s) agree with the code they run.

Each overlay is rendered with `kubectl kustomize` (what `kubectl apply -k` would send) and
checked against the code: the port gunicorn binds (FD_BIND) is the one the container, the
Service, the probes and the NetworkPolicy use; every environment variable set is one the
code (src/common/settings.py) or MLflow reads; the probes hit routes the app has; the
CronJob and the feed Job run modules that exist with flags their argparse accepts; the API
and the feed reach the same Redis through its Service; the grace period outlasts gunicorn's;
the pods run as the image's non-root user on a read-only root filesystem and everything they
write is a volume. Schemas are scripts/k8s_validate.sh's job (`make lint`).
No kubectl: skipped, except in CI (CI set), where it fails.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from datetime import date, timedelta
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from src.common.paths import ROOT, get_paths
from src.common.settings import Settings

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SECRET_TEMPLATE = K8S / "secret.template.yaml"
API, TRACKING, CYCLE = "api", "tracking-server", "monitoring-cycle"  # component labels
ONLINE_STORE, FEED = "online-store", "feature-feed"  # Redis and the Job that fills it
COMPONENT = "app.kubernetes.io/component"

# Variables the manifests may set that Settings does not read. MLflow reads these itself
# (`mlflow server`'s options, mlflow.environment_variables: test_mlflow_reads_them checks):
MLFLOW_READS = {
    "MLFLOW_BACKEND_STORE_URI",  # mlflow server --backend-store-uri
    "MLFLOW_ARTIFACTS_DESTINATION",  # mlflow server --artifacts-destination
    "MLFLOW_S3_ENDPOINT_URL",  # the S3 artifact store's endpoint when not AWS (MinIO)
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",  # off: no GenAI job runners
}
# ... and the drivers MLflow's stores load read these (not MLflow's names, so not checked):
DRIVER_READS = {
    "PGPASSWORD",  # libpq (psycopg): the PostgreSQL backend store's password
    "AWS_ACCESS_KEY_ID",  # boto3: the artifact bucket's credentials
    "AWS_SECRET_ACCESS_KEY",
}


def settings_variables() -> set[str]:
    """Every variable Settings reads: FD_<field> for its fields, else the field's alias."""
    prefix = Settings.model_config["env_prefix"]
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        assert alias is None or isinstance(alias, str), f"{name}: alias {alias!r} not handled"
        names.add(alias or f"{prefix}{name}".upper())
    return names


# --------------------------------------------------------------------------- rendering
def kubectl() -> str:
    path = shutil.which(os.environ.get("KUBECTL", "kubectl"))
    if path is None:
        reason = "kubectl is not on PATH (make system-deps installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@cache
def render(overlay: str) -> tuple[dict, ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl kustomize overlays/{overlay}:\n{done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


@cache
def secret_keys() -> dict[str, set[str]]:
    """The Secret template's name and keys (no overlay renders it: it is applied by hand)."""
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    return {secret["metadata"]["name"]: set(secret["stringData"])}


def image_uid(dockerfile: Path) -> int:
    """The numeric uid of the Dockerfile's last USER line (`USER 10001:10001`)."""
    users = [ln.split()[1] for ln in dockerfile.read_text().splitlines() if ln.startswith("USER ")]
    return int(users[-1].split(":")[0])


def dockerfile_cmd() -> list[str]:
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("CMD ")]
    return json.loads(lines[-1].removeprefix("CMD "))


def matches(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels / matchExpressions with In) against a pod's labels."""
    if not selector:
        return True
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", f"{expr}: only In is handled here"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


class Stack:
    """One rendered overlay."""

    def __init__(self, overlay: str, docs: tuple[dict, ...]):
        self.overlay, self.docs = overlay, docs

    def kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def workloads(self) -> list[dict]:
        return self.kind("Deployment") + self.kind("CronJob") + self.kind("Job")

    def workload(self, component: str) -> dict:
        found = [w for w in self.workloads() if w["metadata"]["labels"][COMPONENT] == component]
        assert len(found) == 1, f"overlays/{self.overlay}: {len(found)} workloads are {component}"
        return found[0]

    @staticmethod
    def pod(workload: dict) -> dict:
        spec = workload["spec"]
        return (
            spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
        )

    def container(self, component: str) -> dict:
        containers = self.pod(self.workload(component))["spec"]["containers"]
        assert len(containers) == 1, f"{component}: one container expected"
        return containers[0]

    def config_map(self, name: str) -> dict[str, str]:
        found = [c for c in self.kind("ConfigMap") if c["metadata"]["name"] == name]
        assert found, f"overlays/{self.overlay}: no ConfigMap {name} rendered"
        return found[0].get("data", {})

    def env(self, container: dict) -> dict[str, str | None]:
        """Every variable the container gets: its value, None for a Secret's or an absent
        optional key's. Each reference must resolve (a ConfigMap rendered, a key in it or
        in the Secret template)."""
        env: dict[str, str | None] = {}
        for source in container.get("envFrom", []):
            assert set(source) == {"configMapRef"}, f"{source}: only ConfigMaps via envFrom"
            env.update(self.config_map(source["configMapRef"]["name"]))
        for var in container.get("env", []):
            ref = var.get("valueFrom", {})
            if "value" in var:
                env[var["name"]] = var["value"]
            elif "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                data = self.config_map(key["name"])
                assert key["key"] in data or key.get("optional"), f"{var}: no such key"
                env[var["name"]] = data.get(key["key"])
            elif "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                assert key["key"] in secret_keys().get(key["name"], set()), (
                    f"{var['name']}: Secret {key['name']} key {key['key']} is not in "
                    f"{SECRET_TEMPLATE.relative_to(ROOT)}"
                )
                env[var["name"]] = None
            else:
                raise AssertionError(f"{var}: value, configMapKeyRef or secretKeyRef expected")
        return env


@pytest.fixture(scope="module", params=OVERLAYS)
def stack(request) -> Stack:
    return Stack(request.param, render(request.param))


@pytest.fixture
def settings_of(monkeypatch):
    """Settings as a container with this environment would read them."""

    def read(env: dict[str, str | None]) -> Settings:
        for name in settings_variables():
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            if value is not None:
                monkeypatch.setenv(name, value)
        return Settings()

    return read


def port_of(container: dict, port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    named = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    return named[port] if isinstance(port, str) else port


def probes(container: dict) -> list[dict]:
    kinds = ("startupProbe", "livenessProbe", "readinessProbe")
    return [container[k]["httpGet"] for k in kinds if k in container]


def flag_values(command: list[str]) -> dict[str, str]:
    """The `--flag value` pairs of a command line (redis-server's)."""
    return {word: command[i + 1] for i, word in enumerate(command[:-1]) if word.startswith("--")}


def bytes_of(quantity: str) -> int:
    """A Kubernetes memory quantity (384Mi) or a Redis one (256mb: Redis' mb is 2**20)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "kb": 2**10, "mb": 2**20, "gb": 2**30}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return int(quantity.removesuffix(unit)) * factor
    return int(quantity)


# --------------------------------------------------------------------------- the checks
def test_api_port_is_the_one_gunicorn_binds(stack, settings_of):
    api = stack.container(API)
    assert api["command"] == dockerfile_cmd(), "the API runs gunicorn as the Dockerfile's CMD"
    bind = settings_of(stack.env(api)).bind
    host, _, port = bind.rpartition(":")
    assert host == "0.0.0.0", f"FD_BIND={bind}: a pod must listen on every interface"
    port = int(port)
    assert port in [p["containerPort"] for p in api["ports"]]
    for probe in probes(api):
        assert port_of(api, probe["port"]) == port, f"probe {probe['path']} on another port"
    pod_labels = stack.pod(stack.workload(API))["metadata"]["labels"]
    services = [
        s
        for s in stack.kind("Service")
        if matches({"matchLabels": s["spec"]["selector"]}, pod_labels)
    ]
    assert services, "no Service selects the API's pods"
    for svc in services:
        for p in svc["spec"]["ports"]:
            assert port_of(api, p["targetPort"]) == port, f"Service {svc['metadata']['name']}"
    policies = [
        n for n in stack.kind("NetworkPolicy") if matches(n["spec"]["podSelector"], pod_labels)
    ]
    ingress_ports = [p["port"] for n in policies for r in n["spec"]["ingress"] for p in r["ports"]]
    assert ingress_ports and {port_of(api, p) for p in ingress_ports} == {port}


def test_gunicorn_binds_fd_bind(monkeypatch):
    """app/gunicorn_conf.py reads its settings at import: imported afresh, then dropped."""
    monkeypatch.setenv("FD_BIND", "0.0.0.0:8123")
    sys.modules.pop("app.gunicorn_conf", None)
    try:
        assert importlib.import_module("app.gunicorn_conf").bind == "0.0.0.0:8123"
    finally:
        sys.modules.pop("app.gunicorn_conf", None)


def test_every_variable_is_one_the_code_or_mlflow_reads(stack):
    allowed = settings_variables() | MLFLOW_READS | DRIVER_READS
    for workload in stack.workloads():
        for container in stack.pod(workload)["spec"]["containers"]:
            env = stack.env(container)
            unread = sorted(set(env) - allowed)
            assert not unread, f"{workload['metadata']['name']} sets {unread}: nothing reads them"
            # $(VAR) in the command is expanded by the kubelet only when VAR is set.
            words = container.get("command", []) + container.get("args", [])
            for word in words:
                if word.startswith("$(") and word.endswith(")"):
                    assert env.get(word[2:-1]), f"{word} in {workload['metadata']['name']}: unset"


def test_mlflow_reads_the_variables_listed_as_mlflows():
    import mlflow.environment_variables as mlflow_env
    from mlflow.cli import server

    server_options = {p.envvar for p in server.params if p.envvar}
    for name in MLFLOW_READS:
        assert hasattr(mlflow_env, name) or name in server_options, f"MLflow does not read {name}"


@cache
def app_get_paths() -> set[str]:
    """GET paths of the app as app/main.py builds it (no server, no lifespan), from its
    OpenAPI schema: a probe must use a documented route."""
    from app.main import create_app

    paths = create_app().openapi()["paths"]
    return {path for path, operations in paths.items() if "get" in operations}


def test_probe_paths_exist(stack):
    for probe in probes(stack.container(API)):
        assert probe["path"] in app_get_paths(), f"the API has no GET {probe['path']}"
    # The kubelet sends the pod IP as Host, which --allowed-hosts does not list: the
    # tracking server's probes must use the endpoints MLflow exempts from that check.
    from mlflow.server.security_utils import HEALTH_ENDPOINTS

    for probe in probes(stack.container(TRACKING)):
        assert probe["path"] in HEALTH_ENDPOINTS, f"MLflow checks the Host of {probe['path']}"


def stage_invocations(script: str) -> list[tuple[str, list[str]]]:
    """(module, arguments) of each `python -m MODULE ...` in a shell script."""
    found = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        for i in range(len(words) - 2):
            if words[i] == "python" and words[i + 1] == "-m":
                argv = []
                for word in words[i + 3 :]:
                    if word in {"||", "&&", ";", "|"}:
                        break
                    argv.append(word)
                found.append((words[i + 2], argv))
    return found


def parsed(module: str, argv: list[str]) -> argparse.Namespace:
    """`python -m module argv...` as the stage's argparse reads it: the module must exist
    and accept the flags."""
    assert (ROOT / Path(*module.split("."))).with_suffix(".py").is_file(), module
    try:
        return importlib.import_module(module).parse_args(argv)
    except SystemExit:
        pytest.fail(f"python -m {module} {shlex.join(argv)}: refused by its argparse")


def test_cronjob_runs_the_cycle_with_flags_it_accepts(stack):
    cron = stack.workload(CYCLE)
    assert cron["kind"] == "CronJob"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = stack.container(CYCLE)
    script = "\n".join(container.get("command", []) + container.get("args", []))
    runs = stage_invocations(script)
    modules = [module for module, _ in runs]
    assert "src.cycle" in modules, "the CronJob does not run src.cycle"
    assert modules.index("src.features") < modules.index(
        "src.preprocess"
    ), "preprocess reads the views"
    for module, argv in runs:
        # Shell-expanded values ("$as_of") stand in as a valid date for --as-of.
        argv = [
            "2013-10-31" if "$" in w and i and argv[i - 1] == "--as-of" else w
            for i, w in enumerate(argv)
        ]
        parsed(module, argv)
    # The date the script computes is the last day of a month (the month just ended).
    assignment = next(ln.strip() for ln in script.splitlines() if ln.strip().startswith("as_of="))
    out = subprocess.run(
        ["sh", "-c", f'{assignment}; printf %s "$as_of"'], capture_output=True, text=True
    )
    as_of = date.fromisoformat(out.stdout)
    assert (as_of + timedelta(days=1)).day == 1 and as_of < date.today()


def test_grace_period_outlasts_gunicorn(stack, settings_of):
    pod = stack.pod(stack.workload(API))["spec"]
    api = stack.container(API)
    graceful = settings_of(stack.env(api)).graceful_timeout  # FD_GRACEFUL_TIMEOUT or default
    pre_stop = api.get("lifecycle", {}).get("preStop", {})
    sleep = pre_stop.get("sleep", {}).get("seconds", 0)
    if "exec" in pre_stop:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep", f"preStop {command}: the test only knows sleep"
        sleep = int(command[1])
    grace = pod.get("terminationGracePeriodSeconds", 30)
    assert grace > sleep + graceful, f"{grace} s <= preStop {sleep} s + graceful {graceful} s"


def test_pods_run_as_the_images_user_read_only(stack):
    uids = {
        API: image_uid(ROOT / "Dockerfile"),
        CYCLE: image_uid(ROOT / "Dockerfile"),
        FEED: image_uid(ROOT / "Dockerfile"),
        TRACKING: image_uid(ROOT / "docker" / "Dockerfile"),
        ONLINE_STORE: image_uid(ROOT / "docker" / "redis" / "Dockerfile"),
    }
    for component, uid in uids.items():
        pod = stack.pod(stack.workload(component))["spec"]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == uid, component
        assert context["seccompProfile"]["type"] == "RuntimeDefault", component
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, component
            assert sc["allowPrivilegeEscalation"] is False, component
            assert sc["capabilities"]["drop"] == ["ALL"], component


def writable_volume(pod: dict, container: dict, path: PurePosixPath, kinds: set[str]) -> str:
    """The kind of volume mounted writable at or above `path` (the deepest mount wins)."""
    mounts = [
        m
        for m in container.get("volumeMounts", [])
        if path == PurePosixPath(m["mountPath"]) or PurePosixPath(m["mountPath"]) in path.parents
    ]
    assert mounts, f"{path}: on the read-only root filesystem"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    assert not mount.get("readOnly"), f"{path}: mounted read-only"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    kind = (set(volume) - {"name"}).pop()
    assert kind in kinds, f"{path}: on a {kind} volume, not {sorted(kinds)}"
    return kind


def test_everything_written_is_a_volume(stack, settings_of):
    tmp = PurePosixPath("/tmp")  # tempfile: MLflow's downloads, gunicorn's heartbeats
    # The API: the prediction log and the metrics folder, scratch space (emptyDirs).
    pod = stack.pod(stack.workload(API))["spec"]
    api = stack.container(API)
    settings = settings_of(stack.env(api))
    assert settings.data_dir, "FD_DATA_DIR unset: the prediction log would go to the image"
    assert settings.prometheus_multiproc_dir, "PROMETHEUS_MULTIPROC_DIR unset"
    for path in (get_paths(settings).predictions, settings.prometheus_multiproc_dir, tmp):
        writable_volume(pod, api, PurePosixPath(path), {"emptyDir"})
    # The cycle: its state outlives the Job (a claim), scratch space does not.
    pod = stack.pod(stack.workload(CYCLE))["spec"]
    cycle = stack.container(CYCLE)
    settings = settings_of(stack.env(cycle))
    for path in (settings.data_dir, settings.models_dir, settings.reports_dir):
        assert path, "FD_DATA_DIR, FD_MODELS_DIR and FD_REPORTS_DIR must be set for the cycle"
        writable_volume(pod, cycle, PurePosixPath(path), {"persistentVolumeClaim"})
    writable_volume(pod, cycle, tmp, {"emptyDir"})
    pod = stack.pod(stack.workload(TRACKING))["spec"]
    writable_volume(pod, stack.container(TRACKING), tmp, {"emptyDir"})
    # The feed: the raw snapshot and the feature views it builds, rebuilt by each run.
    pod = stack.pod(stack.workload(FEED))["spec"]
    feed = stack.container(FEED)
    data_dir = settings_of(stack.env(feed)).data_dir
    assert data_dir, "FD_DATA_DIR unset: the feed would write its data into the image"
    for path in (data_dir, tmp):
        writable_volume(pod, feed, PurePosixPath(path), {"emptyDir"})
    # Redis saves nothing, but its --dir must exist and be its own.
    pod = stack.pod(stack.workload(ONLINE_STORE))["spec"]
    redis = stack.container(ONLINE_STORE)
    writable_volume(pod, redis, PurePosixPath(flag_values(redis["command"])["--dir"]), {"emptyDir"})


def test_fd_config_is_the_mounted_pipeline_config(stack, settings_of):
    expected = (ROOT / "configs" / "default.yml").read_text()
    assert (
        K8S / "base" / "pipeline" / "default.yml"
    ).read_text() == expected, (
        "deploy/k8s/base/pipeline/default.yml differs from configs/default.yml: copy it"
    )
    for component in (API, CYCLE):
        pod = stack.pod(stack.workload(component))["spec"]
        container = stack.container(component)
        config = PurePosixPath(str(settings_of(stack.env(container)).config))
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config.parent))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert stack.config_map(volume["configMap"]["name"])[config.name] == expected, component


def test_selectors_select_the_right_pods(stack):
    pods = {w["metadata"]["name"]: stack.pod(w)["metadata"]["labels"] for w in stack.workloads()}
    component_of = {name: labels[COMPONENT] for name, labels in pods.items()}
    for deployment in stack.kind("Deployment"):
        assert matches(deployment["spec"]["selector"], pods[deployment["metadata"]["name"]])

    def selected(selector: dict) -> set[str]:
        return {component_of[name] for name, labels in pods.items() if matches(selector, labels)}

    for svc in stack.kind("Service"):
        assert selected({"matchLabels": svc["spec"]["selector"]}) == {
            svc["metadata"]["labels"][COMPONENT]
        }
    for pdb in stack.kind("PodDisruptionBudget"):
        assert selected(pdb["spec"]["selector"]) == {API}
    for hpa in stack.kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert component_of[target["name"]] == API and target["kind"] == "Deployment"
    # The servers without authentication and the pods that may connect to each.
    clients = {TRACKING: {API, CYCLE}, ONLINE_STORE: {API, FEED}}
    port = {server: stack.container(server)["ports"][0]["containerPort"] for server in clients}
    for policy in stack.kind("NetworkPolicy"):
        own = policy["metadata"]["labels"][COMPONENT]
        assert selected(policy["spec"]["podSelector"]) == {own}
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                assert selected(peer["podSelector"]) == clients[own], f"{own}: only its clients"
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                (server,) = selected(peer["podSelector"])
                assert own in clients[server], f"{own} may not reach {server}"
                assert [port_of(stack.container(server), p["port"]) for p in rule["ports"]] == [
                    port[server]
                ]


def test_secret_template_holds_placeholders_only(stack):
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert secret["kind"] == "Secret"
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, f"{key}: a secret template holds placeholders only"
    # Rendered by no overlay: `kubectl apply -k` must never overwrite the real Secret.
    assert not stack.kind("Secret"), f"overlays/{stack.overlay} renders a Secret"


def test_redis_is_a_bounded_cache_with_probes(stack):
    deployment = stack.workload(ONLINE_STORE)
    assert deployment["kind"] == "Deployment"
    # One instance, never two: a second, empty one behind the Service would answer lookups.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    redis = stack.container(ONLINE_STORE)
    assert redis["command"][0] == "redis-server"
    flags = flag_values(redis["command"])
    assert flags["--save"] == "" and flags["--appendonly"] == "no", "no persistence expected"
    assert flags["--maxmemory-policy"] == "noeviction", "a full store must refuse, not evict"
    limit = redis["resources"]["limits"]["memory"]
    assert bytes_of(flags["--maxmemory"]) < bytes_of(limit), f"--maxmemory above the {limit} limit"
    for kind in ("readinessProbe", "livenessProbe"):
        probe = " ".join(redis[kind]["exec"]["command"])
        assert "redis-cli" in probe and "ping" in probe and flags["--port"] in probe, kind


def test_the_api_and_the_feed_reach_one_redis(stack, settings_of):
    """FD_REDIS_URL names the Redis Service, which sends its port to the port redis-server
    listens on; the feed fills the store the API reads, and both may reach it."""
    urls = {c: settings_of(stack.env(stack.container(c))).redis_url for c in (API, FEED)}
    assert urls[API], "FD_REDIS_URL unset: the API would read a SQLite file in its pod"
    assert urls[FEED] == urls[API], f"the feed fills {urls[FEED]}, the API reads {urls[API]}"
    url = urlsplit(urls[API])
    assert url.scheme == "redis"
    services = [s for s in stack.kind("Service") if s["metadata"]["name"] == url.hostname]
    assert services, f"{urls[API]}: no Service {url.hostname}"
    redis = stack.container(ONLINE_STORE)
    redis_pod = stack.pod(stack.workload(ONLINE_STORE))["metadata"]["labels"]
    assert matches({"matchLabels": services[0]["spec"]["selector"]}, redis_pod)
    listens = int(flag_values(redis["command"])["--port"])
    assert listens in [p["containerPort"] for p in redis["ports"]]
    ports = [p for p in services[0]["spec"]["ports"] if p["port"] == (url.port or 6379)]
    assert ports and port_of(redis, ports[0]["targetPort"]) == listens
    for client in (API, FEED):
        labels = stack.pod(stack.workload(client))["metadata"]["labels"]
        egress = [
            rule
            for policy in stack.kind("NetworkPolicy")
            if matches(policy["spec"]["podSelector"], labels)
            for rule in policy["spec"].get("egress", [])
        ]
        assert any(
            any(matches(peer["podSelector"], redis_pod) for peer in rule.get("to", []))
            and listens in [port_of(redis, p["port"]) for p in rule["ports"]]
            for rule in egress
        ), f"{client}: no NetworkPolicy egress to Redis on {listens}"


def test_the_feed_job_replays_the_views_into_redis(stack, settings_of):
    job = stack.workload(FEED)
    assert job["kind"] == "Job"
    assert stack.pod(job)["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1, "a retry is safe: the feed resumes after the clock"
    # A finished Job with another pod template (a new image tag, a changed ConfigMap) makes
    # `kubectl apply -k` fail: it must go away by itself.
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    feed = stack.container(FEED)
    settings_of(stack.env(feed))  # the container's environment: src.feed's defaults read it
    script = "\n".join(feed.get("command", []) + feed.get("args", []))
    runs = stage_invocations(script)
    assert [module for module, _ in runs] == ["src.ingest", "src.features", "src.feed"]
    args = parsed(*runs[-1])
    assert args.store == "redis" and args.until is not None, "a replay into Redis up to a moment"
    assert args.redis_url == settings_of(stack.env(stack.container(API))).redis_url
