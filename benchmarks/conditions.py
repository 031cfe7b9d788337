"""The conditions a benchmark ran under, recorded beside its figures: the machine, how busy
it was before and during each measured run, and the code and libraries measured. A figure
from another machine, or from a busy one, is then recognisable as such: these machines are
shared, and the ratios against MLflow move with the load.

    conditions = start()                  # before anything runs
    before = run_start()                  # just before each measured run
    ...                                   # the run
    run |= run_conditions(before, our_cpu_seconds, wall_seconds)
    conditions = finish(conditions, measured_runs)
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

# Beyond either, other work competes with the measured processes for the CPU. MLflow's
# figures swing most with it (recorded runs: 198 to 470 req/s one flight, while this API's
# stayed within 5%), so the ratios against MLflow then flatter us or not by chance: not the
# figures to quote.
BUSY_LOAD_PER_CPU = 0.5
BUSY_OTHER_SHARE = 0.10
# psutil.cpu_times() fields that count as CPU in use (iowait and steal are not the guest's
# work; steal is reported apart: other VMs on the same host).
BUSY_FIELDS = ("user", "system", "nice", "irq", "softirq")
ROOT = Path(__file__).resolve().parents[1]


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux
    return platform.processor() or "unknown"


def git_commit(root: Path = ROOT) -> str:
    """The checked-out commit, "-dirty" if tracked files differ from it (untracked files, such
    as reports, do not count); "unknown" outside a git checkout."""
    git = ["git", "-C", str(root)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if status.strip() else "")


def version(package: str) -> str | None:
    try:
        return metadata.version(package)  # not imported: importing mlflow takes seconds
    except metadata.PackageNotFoundError:
        return None


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def start() -> dict:
    """The machine and the code, and the load before the benchmark's own processes start."""
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "load_before": [round(x, 2) for x in os.getloadavg()],  # 1, 5 and 15 minutes
        "started_utc": now_utc(),
        "python": platform.python_version(),
        "lightgbm": version("lightgbm"),
        "mlflow": version("mlflow"),
        "git_commit": git_commit(),
        # This process's: in-process timings run under it (every child gets 1).
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def run_start() -> dict:
    """Taken just before a measured run: the 1-minute load average and the machine's CPU
    times. The load includes the benchmark's own previous runs (it decays over minutes)."""
    return {"load": os.getloadavg()[0], "cpu": psutil.cpu_times()}


def run_conditions(before: dict, ours: float, wall: float, after=None) -> dict:
    """A measured run's conditions: the load just before it, and the share of the machine's
    CPU (wall x CPUs) that went elsewhere during its `wall` seconds: to other processes (the
    machine's busy CPU seconds less `ours`, those of the processes measured), and to other
    VMs on the host (steal). `after`: psutil.cpu_times() at the run's end (default: now)."""
    after = after or psutil.cpu_times()
    delta = {f: getattr(after, f, 0.0) - getattr(before["cpu"], f, 0.0) for f in after._fields}
    capacity = max(wall, 1e-9) * psutil.cpu_count()
    busy = sum(delta.get(f, 0.0) for f in BUSY_FIELDS)
    return {
        "load_before": round(before["load"], 2),
        "other_cpu_share": round(max(0.0, busy - ours) / capacity, 3),
        "steal_share": round(max(0.0, delta.get("steal", 0.0)) / capacity, 3),
    }


def spread(values: list[float]) -> list[float]:
    return [min(values), max(values)] if values else []


def finish(conditions: dict, runs: list[dict]) -> dict:
    """`conditions` with the end time and commit and, over the measured `runs` (those with
    run_conditions' keys), the range of each of those keys and the runs that were busy."""
    measured = [r for r in runs if "other_cpu_share" in r]
    busy = [r for r in measured if r["other_cpu_share"] > BUSY_OTHER_SHARE]
    return conditions | {
        "finished_utc": now_utc(),
        "git_commit_at_end": git_commit(),  # a commit landed mid-run in a shared checkout
        "measured_runs": len(measured),
        "load_before_runs": spread([r["load_before"] for r in measured]),
        "other_cpu_share_runs": spread([r["other_cpu_share"] for r in measured]),
        "steal_share_runs": spread([r["steal_share"] for r in measured]),
        "busy_runs": len(busy),
    }


def busy_warning(conditions: dict) -> str | None:
    """A warning line if the machine was busy before the benchmark (its own load does not
    count yet) or other processes took more than BUSY_OTHER_SHARE during any measured run."""
    per_cpu = conditions["load_before"][0] / conditions["logical_cpus"]
    if per_cpu <= BUSY_LOAD_PER_CPU and not conditions["busy_runs"]:
        return None
    others = conditions["other_cpu_share_runs"] or [0.0, 0.0]
    return (
        f"WARNING: busy machine: load {per_cpu:.2f} per CPU before the run (quiet: <= "
        f"{BUSY_LOAD_PER_CPU}), other processes took > {BUSY_OTHER_SHARE:.0%} of the CPU in "
        f"{conditions['busy_runs']} of {conditions['measured_runs']} runs (up to "
        f"{others[1]:.0%}). The ratios against MLflow move with the load, MLflow's figures most, "
        "and can flatter us on a busy machine: rerun on a quiet one before quoting them."
    )


def describe(conditions: dict) -> list[str]:
    """The conditions as summary lines, the busy warning last if there is one."""
    c = conditions
    load = "/".join(f"{x:.2f}" for x in c["load_before"])
    pct = lambda pair: "-".join(f"{x:.0%}" for x in pair) or "n/a"  # noqa: E731
    loads = "-".join(f"{x:.2f}" for x in c["load_before_runs"]) or "n/a"
    commit = c["git_commit"]
    if c["git_commit_at_end"] != commit:
        commit += f" ({c['git_commit_at_end']} at the end)"
    lines = [
        f"conditions: {c['cpu_model']}, {c['logical_cpus']} CPUs, {c['memory_gib']} GiB; "
        f"{c['started_utc']} to {c['finished_utc']}; commit {commit}",
        f"  python {c['python']}, lightgbm {c['lightgbm']}, mlflow {c['mlflow']}, "
        f"OMP_NUM_THREADS={c['omp_num_threads']}",
        f"  load before the run {load} (1/5/15 min); over {c['measured_runs']} measured runs: "
        f"load before {loads}, other processes {pct(c['other_cpu_share_runs'])} of the CPU, "
        f"steal {pct(c['steal_share_runs'])}",
    ]
    warning = busy_warning(c)
    return lines + ([warning] if warning else [])
