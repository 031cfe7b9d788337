"""Static checks of the deployment files (no Docker engine needed).

Covers Dockerfile, .dockerignore, docker-compose.yml (and its CI override where they must
agree), the CI workflow, .pre-commit-config.yaml and that every `make` target CI calls exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers
def _read(name: str) -> str:
    path = ROOT / name
    assert path.is_file(), f"{name} is missing from the repo root"
    return path.read_text(encoding="utf-8")


def _load_yaml(name: str) -> dict:
    data = yaml.safe_load(_read(name))
    assert isinstance(data, dict), f"{name} must be a YAML mapping"
    return data


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with `\\` continuations joined and
    comment lines dropped (Docker drops them inside continuations too)."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical = buf + line
        buf = ""
        keyword, _, args = logical.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not buf, "Dockerfile ends inside a line continuation"
    return out


def makefile_targets(text: str) -> set[str]:
    """Explicit rule targets (`name:` / `a b:`), not variables (`X := y`)
    nor special targets such as `.PHONY`."""
    targets: set[str] = set()
    for line in text.splitlines():
        m = re.match(
            r"^([A-Za-z0-9_][A-Za-z0-9_.%/-]*(?:[ \t]+[A-Za-z0-9_.%/-]+)*)" r"[ \t]*::?(?!=)",
            line,
        )
        if m:
            targets.update(m.group(1).split())
    return targets


def make_invocations(commands: list[str]) -> set[str]:
    """Targets named by `make ...` in shell snippets (options skipped)."""
    targets: set[str] = set()
    for cmd in commands:
        for line in cmd.splitlines():
            tokens = shlex.split(line, comments=True)
            for i, tok in enumerate(tokens):
                if tok != "make" or (i and tokens[i - 1] not in {"&&", "||", ";"}):
                    continue
                for arg in tokens[i + 1 :]:
                    if arg in {"&&", "||", ";", "|"}:
                        break
                    if arg.startswith("-") or "=" in arg:
                        continue
                    targets.add(arg)
    return targets


def _ci() -> dict:
    return _load_yaml(".github/workflows/ci.yml")


def _run_steps(job: dict) -> list[str]:
    return [step["run"] for step in job.get("steps", []) if "run" in step]


# --------------------------------------------------------------------- compose file
def with_defaults(value: str) -> str:
    """A compose value with every `${VAR:-default}` replaced by its default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", str(value))


def env_names(settings_cls) -> set[str]:
    """The variables the settings object reads: FD_<field>, or a field's own alias."""
    return {
        f.validation_alias if isinstance(f.validation_alias, str) else f"FD_{name.upper()}"
        for name, f in settings_cls.model_fields.items()
    }


def test_env_example_lists_what_settings_and_compose_read():
    from src.common.settings import Settings

    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", _read(".env.example"), flags=re.M))
    compose = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}-]", _read("docker-compose.yml")))
    assert env_names(Settings) - listed == set(), "settings missing from .env.example"
    assert compose - listed == set(), "compose variables missing from .env.example"
    assert listed - env_names(Settings) - compose == set(), ".env.example lists unread names"


def test_compose_services_and_dependency():
    compose = _load_yaml("docker-compose.yml")
    assert "version" not in compose, "modern compose spec has no `version:` key"
    assert "networks" not in compose, "use compose's default network"
    services = compose.get("services") or {}
    assert {"mlflow", "api"} <= set(services), sorted(services)

    api, mlflow = services["api"], services["mlflow"]
    assert api["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert "build" in api
    assert any(str(p).split(":")[-1] == "8000" for p in api["ports"])
    env = api["environment"]
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    # `${VAR:-default}`: overridable (FD_TRACKING_URI for the shared profile), default mlflow
    assert with_defaults(env["MLFLOW_TRACKING_URI"]) == "http://mlflow:5000"
    assert with_defaults(env["FD_CONFIG"]) == "configs/default.yml"

    # the one-shot trainer fills the registry before the api starts
    trainer = services["trainer"]
    assert trainer["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert api["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert trainer.get("restart") == "no"

    # mlflow runs the same image the api service builds
    assert mlflow.get("image") == api.get("image") or "build" in mlflow
    command = mlflow["command"]
    command = command if isinstance(command, list) else shlex.split(command)
    assert command[:2] == ["mlflow", "server"]
    assert "sqlite:////mlflow/mlflow.db" in command
    assert "/mlflow/artifacts" in command
    assert any(v.split(":")[-1] == "/mlflow" for v in mlflow["volumes"])
    assert any(
        isinstance(v, str) and v.split(":")[0] in (compose.get("volumes") or {})
        for v in mlflow["volumes"]
    ), "mlflow state must live on a named volume"


@pytest.mark.parametrize(
    ("service", "path"),
    [("mlflow", ":5000/health"), ("api", ":8000/ready"), ("dashboard", ":8501/_stcore/health")],
)
def test_compose_healthchecks(service: str, path: str):
    services = _load_yaml("docker-compose.yml")["services"]
    test = services[service]["healthcheck"]["test"]
    joined = " ".join(test) if isinstance(test, list) else test
    assert path in joined
    assert "urllib" in joined, "healthcheck must not need curl/wget in the image"


def compose_command(service: dict) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(command)


def flag_values(command: list[str]) -> dict[str, str]:
    """The `--flag value` pairs of a command line (redis-server's)."""
    return {word: command[i + 1] for i, word in enumerate(command[:-1]) if word.startswith("--")}


class ComposeLoader(yaml.SafeLoader):
    """YAML with compose's `!reset` tag (the CI override's `ports: !reset []`): no value."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def merged_service(name: str, files: list[str]) -> dict:
    """A service as compose merges it from `files`: later keys win, environments merge."""
    merged: dict = {}
    for file in files:
        service = yaml.load(_read(file), Loader=ComposeLoader)["services"].get(name, {})
        env = {**merged.get("environment", {}), **service.get("environment", {})}
        merged = {**merged, **service, "environment": env}
    return merged


def test_compose_redis_is_built_here_bounded_and_on_loopback():
    services = _load_yaml("docker-compose.yml")["services"]
    redis = services["redis"]
    # No registry to pull from: Debian's redis-server on the base image ./Dockerfile uses.
    build = redis["build"]
    instr = dockerfile_instructions(
        _read(f"{build['context']}/{build.get('dockerfile', 'Dockerfile')}")
    )
    base = [args for kw, args in dockerfile_instructions(_read("Dockerfile")) if kw == "FROM"]
    assert [args for kw, args in instr if kw == "FROM"] == [base[-1].split()[0]]
    assert any(
        kw == "RUN" and "apt-get install" in args and "redis-server" in args for kw, args in instr
    )
    assert redis["image"] != services["api"]["image"], "one tag, one build (see the mlflow service)"
    for port in redis["ports"]:
        assert str(port).startswith("127.0.0.1:"), f"redis has no password: {port} beyond loopback"
    flags = flag_values(compose_command(redis))
    assert flags["--save"] == "" and flags["--appendonly"] == "no", "no persistence expected"
    assert flags["--maxmemory"] and flags["--maxmemory-policy"] == "noeviction"
    assert redis["restart"] == "unless-stopped"


def interpolated(value: str, env: dict[str, str]) -> str:
    """A compose value with each `${VAR:-default}` read from `env`, else its default."""
    pattern = r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}"
    return re.sub(pattern, lambda m: env.get(m.group(1), m.group(2)), str(value))


@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.ci.yml"]]
)
def test_compose_api_reads_the_redis_the_feed_fills(files: list[str]):
    # docker_verify.sh picks a free port for the CI override's redis: not the default.
    env = {"FD_CI_REDIS_PORT": "16379"}
    api, feed, redis = (merged_service(name, files) for name in ("api", "feed", "redis"))
    urls = {
        name: interpolated(service["environment"]["FD_REDIS_URL"], env)
        for name, service in (("api", api), ("feed", feed))
    }
    assert urls["feed"] == urls["api"], urls
    url = urlsplit(urls["api"])
    assert (url.scheme, url.hostname) == ("redis", "redis")
    port = interpolated(flag_values(compose_command(redis))["--port"], env)
    assert url.port == int(port), f"redis listens on {port}, the API reads {urls['api']}"
    health = interpolated(" ".join(redis["healthcheck"]["test"]), env)
    assert f"redis-cli -p {port} ping" in health
    if "network_mode" in api:  # the CI override: "redis" resolves to where redis binds
        assert flag_values(compose_command(redis))["--bind"] == "127.0.0.1"
        for service in (api, feed):
            assert "redis:127.0.0.1" in service["extra_hosts"]


@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.ci.yml"]]
)
def test_compose_dashboard_asks_the_api_where_it_listens(files: list[str]):
    env = {"FD_CI_API_PORT": "18000", "FD_CI_DASHBOARD_PORT": "18501"}  # as the script picks
    api, dashboard = (merged_service(name, files) for name in ("api", "dashboard"))
    url = urlsplit(interpolated(dashboard["environment"]["FD_API_URL"], env))
    bind = interpolated(api["environment"].get("FD_BIND", "0.0.0.0:8000"), env)  # the image's
    assert (url.hostname, url.port) == ("api", int(bind.rpartition(":")[2]))
    assert dashboard["depends_on"]["api"]["condition"] == "service_healthy"
    port = interpolated(dashboard["environment"].get("STREAMLIT_SERVER_PORT", "8501"), env)
    health = interpolated(" ".join(dashboard["healthcheck"]["test"]), env)
    assert f"http://127.0.0.1:{port}/_stcore/health" in health and "urllib" in health
    assert "./reports:/app/reports:ro" in dashboard["volumes"]
    if "network_mode" in dashboard:  # the CI override: loopback, and "api" resolves there
        assert dashboard["environment"]["STREAMLIT_SERVER_ADDRESS"] == "127.0.0.1"
        assert "api:127.0.0.1" in dashboard["extra_hosts"] and not dashboard["ports"]
    else:
        assert dashboard["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_the_dashboards_image_installs_its_own_lock_only():
    """Streamlit stays out of the API's image, and the runtime stack out of the dashboard's."""
    build = _load_yaml("docker-compose.yml")["services"]["dashboard"]["build"]
    instr = dockerfile_instructions(_read(build["dockerfile"]))
    runs = [args for kw, args in instr if kw == "RUN"]
    assert any("--require-hashes" in r and "requirements-dashboard.txt" in r for r in runs)
    assert not any("requirements.txt" in args for _, args in instr)
    assert ["dashboard/", "/app/dashboard/"] in [args.split() for kw, args in instr if kw == "COPY"]
    assert "streamlit" not in _read("requirements.txt")


def test_compose_feed_fills_redis_before_the_api_starts():
    from src import feed as feed_stage

    compose = _load_yaml("docker-compose.yml")
    api, feed = compose["services"]["api"], compose["services"]["feed"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    # Also what lets `up --wait` exit 0: a one-shot that no service waits for fails it.
    assert api["depends_on"]["feed"]["condition"] == "service_completed_successfully"
    assert feed["depends_on"]["redis"]["condition"] == "service_healthy"
    assert feed.get("restart") == "no" and feed["image"] == api["image"]
    script = with_defaults("\n".join(compose_command(feed)))
    runs = re.findall(r"python -m (src\.\w+)([^\n]*)", script)
    assert [module for module, _ in runs] == ["src.ingest", "src.features", "src.feed"]
    args = feed_stage.parse_args(shlex.split(runs[-1][1]))
    assert args.store == "redis" and args.until is not None, "a replay into redis up to a moment"
    # The views it builds are kept on a named volume at the stages' data folder.
    volumes = [str(v).split(":") for v in feed["volumes"]]
    assert any(v[0] in compose["volumes"] and v[1] == "/app/data" for v in volumes)


def test_compose_tracking_servers_start_no_job_runners():
    services = _load_yaml("docker-compose.yml")["services"]
    servers = [n for n, s in services.items() if s.get("command", [])[:2] == ["mlflow", "server"]]
    assert sorted(servers) == ["mlflow", "mlflow-shared"]
    for name in servers:
        env = services[name].get("environment") or {}
        assert env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false", name


# ----------------------------------------------------------------------- Dockerfile
def test_dockerfile_install_healthcheck_and_cmd():
    instr = dockerfile_instructions(_read("Dockerfile"))
    runs = [args for kw, args in instr if kw == "RUN"]
    assert any(
        "pip install" in r and "--require-hashes" in r and "requirements.txt" in r for r in runs
    ), "dependencies must be installed from the hash-pinned lock"

    health = [args for kw, args in instr if kw == "HEALTHCHECK"]
    assert health and "NONE" not in health[-1].split()
    assert "127.0.0.1:" in health[-1] and "/health" in health[-1] and "FD_BIND" in health[-1]

    env = " ".join(args for kw, args in instr if kw == "ENV")
    for setting in (
        "OMP_NUM_THREADS=1",
        "PYTHONUNBUFFERED=1",
        "PATH=/opt/venv/bin:",
        "FD_BIND=0.0.0.0:8000",
        "MLFLOW_DISABLE_TELEMETRY=true",
    ):
        assert setting in env, setting
    assert ("EXPOSE", "8000") in instr
    cmd = [args for kw, args in instr if kw == "CMD"][-1]
    assert cmd == '["gunicorn", "-c", "app/gunicorn_conf.py", "app.main:app"]'
    copies = " ".join(args for kw, args in instr if kw == "COPY")
    for src in ("src/", "app/", "configs/", "/opt/venv"):
        assert src in copies, src


def repo_module_exists(name: str) -> bool:
    """A module of this repo (src.x, app.y, benchmarks.z) as a file or a package folder."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def repo_modules(names) -> set[str]:
    return {n for n in names if n.split(".")[0] in {"src", "app", "benchmarks"}}


def test_modules_the_deploy_files_run_exist():
    """Modules moved or renamed (src.bench -> benchmarks.serving, ...) break `make` targets,
    the trainer service and the image build only when they run: caught here instead."""
    makefile = repo_modules(re.findall(r"\$\(PY\) -m ([\w.]+)", _read("Makefile")))
    compose = _read("docker-compose.yml")
    stages = re.search(r"for stage in ([\w ]+);\s*do\s*python -m src\.\$\$stage", compose)
    assert stages, "the trainer no longer runs `python -m src.$$stage` per stage"
    trainer = {f"src.{stage}" for stage in stages.group(1).split()}
    order = stages.group(1).split()
    assert order.index("features") < order.index("preprocess"), "preprocess reads the views"
    instr = dockerfile_instructions(_read("Dockerfile"))
    imports = [m for kw, args in instr if kw == "RUN" for m in re.findall(r'import ([^"]+)"', args)]
    assert imports, "the Dockerfile's import check (bytecode + smoke test) is gone"
    image = repo_modules(name.strip() for line in imports for name in line.split(","))

    for where, modules in (("Makefile", makefile), ("compose", trainer), ("Dockerfile", image)):
        assert modules, where
        missing = sorted(m for m in modules if not repo_module_exists(m))
        assert not missing, f"{where} runs modules absent from the repo: {missing}"
    assert {"src.ingest", "src.preprocess", "src.train", "src.register"} <= makefile & trainer


def test_dockerignore_excludes_state_but_not_models():
    lines = {
        line.strip().strip("/")
        for line in _read(".dockerignore").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    for needed in (".venv", ".git", "data", "mlruns", "reports", ".pytest_cache"):
        assert needed in lines, f".dockerignore should exclude {needed}"
    assert any("__pycache__" in line for line in lines)
    assert not any(
        line == "models" or line.startswith("models/") for line in lines
    ), "models/ is baked into the image and must stay in the build context"


# ------------------------------------------------------------------------------- CI
def ci_steps() -> list[str]:
    """The make targets `make ci` runs, in order (the Makefile's CI_STEPS)."""
    found = re.search(r"^CI_STEPS := (.+)$", _read("Makefile"), flags=re.M)
    assert found, "the Makefile has no CI_STEPS"
    return found.group(1).split()


def test_one_ci_definition():
    """GitHub runs .ci/run, .ci/run runs `make system-deps` and `make ci`, and `make ci` runs
    CI_STEPS: one list of checks, wherever CI runs, the weekly run included."""
    jobs = _ci()["jobs"]
    runs = _run_steps(jobs["ci"])
    assert any(re.search(r"(^|\s)bash \.ci/run\b", r) for r in runs), "ci job must run .ci/run"
    assert make_invocations(runs) == set(), "the ci job runs make targets of its own"
    # The Debian release .ci/run's packages come from: the same chromium as on a CI machine.
    assert jobs["ci"]["container"]["image"] == "debian:bookworm"
    workflow = _read(".github/workflows/ci.yml")
    assert "google-chrome" not in workflow and "FD_CHROMIUM" not in workflow
    script = [line for line in _read(".ci/run").splitlines() if not line.lstrip().startswith("#")]
    assert make_invocations(script) == {"system-deps", "ci"}
    # The audit job is the one extra (it needs the vulnerability database online).
    audit = " ".join(_run_steps(jobs["audit"]))
    assert re.search(r"pip-audit\b.*-r requirements\.txt", audit)
    assert make_invocations(_run_steps(jobs["audit"])) == set() and "pytest" not in audit
    must = ["setup", "lint", "test", "pipeline", "loop", "smoke", "docker-verify"]
    assert [s for s in ci_steps() if s in must] == must, "CI's checks, in this order"


def test_ci_make_targets_exist_in_makefile():
    script = _read(".ci/run").splitlines()
    called = make_invocations(script) | set(ci_steps())
    for job in _ci()["jobs"].values():
        called |= make_invocations(_run_steps(job))
    missing = called - makefile_targets(_read("Makefile"))
    assert not missing, f"CI calls make targets absent from the Makefile: {missing}"


def test_helper_parsers():
    text = (
        ".PHONY: setup lint\nPY := python\nVENV ?= .venv\n"
        "setup: requirements.txt\n\t$(PY) -m venv $(VENV)\n"
        "lint format:\n\truff check .\nclean::\n\trm -rf x\n"
    )
    assert makefile_targets(text) == {"setup", "lint", "format", "clean"}
    assert make_invocations(["make setup", "cd x && make -j2 V=1 lint", "echo make it"]) == {
        "setup",
        "lint",
    }


# ------------------------------------------------------------------------ pre-commit
def test_pre_commit_hooks_pinned_to_dev_lock():
    repos = {r["repo"]: r for r in _load_yaml(".pre-commit-config.yaml")["repos"]}
    ruff = repos["https://github.com/astral-sh/ruff-pre-commit"]
    black = repos["https://github.com/psf/black"]
    assert {h["id"] for h in ruff["hooks"]} & {"ruff", "ruff-check"}
    assert "black" in {h["id"] for h in black["hooks"]}

    lock = _read("requirements-dev.txt")
    pins = dict(re.findall(r"^(ruff|black)==(\S+)", lock, flags=re.MULTILINE))
    assert str(ruff["rev"]) == f"v{pins['ruff']}", "keep ruff hook == dev lock"
    assert str(black["rev"]) == pins["black"], "keep black hook == dev lock"
