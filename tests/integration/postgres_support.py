"""A throwaway PostgreSQL server for the tracking-store tests: Debian's binaries, a cluster
in a temporary folder, listening on a free 127.0.0.1 port, password (SCRAM) auth for the
role that owns database `mlflow`: the names and URI form of docker-compose.yml's `shared`
profile. Every wait is bounded; the server is stopped (pg_ctl stop -m fast) and its folder
removed whatever happens in between.

PostgreSQL refuses to run as root: as root (the tests here, and a CI container), initdb,
pg_ctl and the server run as the `postgres` system user that Debian's package creates, in a
folder of their own owned by it (pytest's temporary folders are root-only); as anyone else,
they run as whoever runs the tests.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.common.servers import free_port

DEBIAN_ROOT = Path("/usr/lib/postgresql")  # /usr/lib/postgresql/<major>/bin
TOOLS = ("initdb", "pg_ctl", "pg_isready")
DATABASE = USER = "mlflow"  # as docker-compose.yml's shared profile (POSTGRES_DB/USER)
SERVER_USER = "postgres"  # who runs the server when the tests run as root
START_S = 60  # for the server to accept connections
STOP_S = 60


def missing(reason: str):
    """Skip with the reason, except in CI (CI set), where it fails: CI installs PostgreSQL
    (`make system-deps`). As tests/integration/monitoring_support.py's tool() does."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def bindir() -> Path:
    """The folder holding initdb, pg_ctl and pg_isready: the newest Debian major version
    under /usr/lib/postgresql (Debian keeps them off PATH), else the one pg_ctl on PATH."""
    candidates = sorted(
        (p for p in DEBIAN_ROOT.glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.insert(0, Path(on_path).resolve().parent)
    for folder in reversed(candidates):
        if all(os.access(folder / t, os.X_OK) for t in TOOLS):
            return folder
    missing(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: `make system-deps` installs postgresql"
    )
    raise AssertionError  # unreachable: missing() skips or fails


@dataclass(frozen=True)
class Postgres:
    """A running server: where it listens, and the role the tests (and MLflow) log in as."""

    port: int
    password: str
    major: int
    host: str = "127.0.0.1"
    user: str = USER
    database: str = DATABASE

    def uri(self, database: str | None = None, driver: str = "postgresql") -> str:
        """A backend store URI with the credentials in it, as docker-compose.yml writes it
        (postgresql://: psycopg 3 under SQLAlchemy 2.1); libpq and psycopg read it too."""
        db = database or self.database
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        """A new, empty database owned by the test role; returns its URI."""
        import psycopg

        with psycopg.connect(self.uri("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        return self.uri(name)

    def query(self, sql: str, params: tuple | None = None, database: str | None = None):
        """Rows of `sql` (a literal % is a placeholder only when `params` are given)."""
        import psycopg

        with psycopg.connect(self.uri(database)) as conn:
            return conn.execute(sql, params).fetchall()


def as_server_user(cmd: list[str]) -> list[str]:
    """`cmd` as the user the server may run as: `postgres` when we are root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", SERVER_USER, "--", *cmd]


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(
        as_server_user(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done


def server_folder() -> Path:
    """A temporary folder of its own, owned by the user the server runs as."""
    root = Path(tempfile.mkdtemp(prefix="fd-postgres-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(root)
            missing(f"running as root and no '{SERVER_USER}' user to run PostgreSQL as")
        os.chown(root, account.pw_uid, account.pw_gid)
        if shutil.which("runuser") is None:
            shutil.rmtree(root)
            missing("running as root and no runuser to start PostgreSQL as 'postgres'")
    return root


def wait_ready(tools: Path, port: int, log: Path, timeout: float = START_S) -> None:
    """pg_isready until the server accepts connections: at most `timeout` s and 600 tries."""
    cmd = [str(tools / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-d", "postgres"]
    deadline = time.monotonic() + timeout
    for _ in range(600):
        if subprocess.run(cmd, timeout=10).returncode == 0:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"PostgreSQL not ready on 127.0.0.1:{port} within {timeout:.0f} s:\n{tail}")


def start(tools: Path, root: Path, data: Path, log: Path, tries: int = 3) -> int:
    """pg_ctl start on a free loopback port (another one if that port was taken meanwhile,
    at most `tries` times); returns the port once pg_isready says it accepts connections."""
    for attempt in range(1, tries + 1):
        port = free_port()
        # Loopback only, its socket in its own folder; no fsync: a throwaway cluster, and
        # the machine's disk is shared.
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        ctl = [str(tools / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
        try:  # -w: returns once the server runs, or at once with an error if it exited
            run([*ctl, "-w", "-t", str(START_S), "start"], cwd=root, timeout=START_S + 30)
        except RuntimeError:
            if attempt == tries or "could not bind" not in log.read_text(errors="replace"):
                raise
            continue
        wait_ready(tools, port, log)
        return port
    raise AssertionError  # unreachable


def stop(tools: Path, root: Path, data: Path) -> None:
    """pg_ctl stop -m fast (open sessions cut, clean shutdown); -m immediate if that fails."""
    for mode in ("fast", "immediate"):
        cmd = [str(tools / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", str(STOP_S), "stop"]
        try:
            run(cmd, cwd=root, timeout=STOP_S + 30)
            return
        except (RuntimeError, subprocess.TimeoutExpired):
            if mode == "immediate":
                raise


def major_version(tools: Path) -> int:
    """pg_ctl --version: "pg_ctl (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" -> 15."""
    out = subprocess.run(
        [str(tools / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    return int(out.split("(PostgreSQL)")[1].split()[0].split(".")[0])


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """initdb + pg_ctl start on a free loopback port, database `mlflow` created; yields the
    server; pg_ctl stop -m fast and the folder removed on the way out, failures included."""
    tools = bindir()
    major = major_version(tools)
    root = server_folder()
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    password = secrets.token_urlsafe(18)  # URL-safe: goes into the URI as is
    started = False
    try:
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        # The superuser is the test role (as the postgres image makes POSTGRES_USER), with
        # SCRAM passwords for every connection, local socket included: no trust anywhere.
        initdb = [str(tools / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}"]
        run([*initdb, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"], cwd=root)
        pwfile.unlink()
        started = True  # from here on, a server may be running: stop it on the way out
        port = start(tools, root, data, log)
        server = Postgres(port=port, password=password, major=major)
        server.create_database(DATABASE)
        yield server
    finally:
        try:
            if started and (data / "postmaster.pid").exists():
                stop(tools, root, data)
        finally:
            shutil.rmtree(root, ignore_errors=True)
