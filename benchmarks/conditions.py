"""The conditions a benchmark ran under, recorded beside its figures: the machine, how busy it
was before and during each measured run, the code and the libraries. These machines are
shared, and the ratios against MLflow move with the load.

    started = start()                                      # before anything runs
    before = run_start()                                   # just before each measured run
    run |= run_conditions(before, our_cpu_seconds, wall)   # after it
    result["conditions"] = finish(started, runs)
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

# Beyond either, other work competes with the measured processes for the CPU, and MLflow's
# figures swing most with it: the ratios against MLflow are then not the figures to quote.
BUSY_LOAD_PER_CPU = 0.5
BUSY_OTHER_SHARE = 0.10
BUSY_FIELDS = ("user", "system", "nice", "irq", "softirq")  # CPU in use; steal apart
ROOT = Path(__file__).resolve().parents[1]


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def git_commit(root: Path = ROOT) -> str:
    """The checked-out commit, "-dirty" if tracked files differ from it (untracked ones, such
    as reports, do not count); "unknown" outside a git checkout."""
    git = ["git", "-C", str(root)]
    try:
        head, status = (
            subprocess.run([*git, *args], capture_output=True, text=True, check=True).stdout
            for args in (["rev-parse", "--short", "HEAD"], ["status", "--porcelain", "-uno"])
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.strip() + ("-dirty" if status.strip() else "")


def version(package: str) -> str | None:
    try:
        return metadata.version(package)  # not imported: importing mlflow takes seconds
    except metadata.PackageNotFoundError:
        return None


def start() -> dict:
    """The machine and the code, and the load before the benchmark's own processes start."""
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "load_before": [round(x, 2) for x in os.getloadavg()],  # 1, 5 and 15 minutes
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "lightgbm": version("lightgbm"),
        "mlflow": version("mlflow"),
        "git_commit": git_commit(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),  # in-process runs' (children: 1)
    }


def run_start() -> dict:
    """Just before a measured run: the 1-minute load (the benchmark's earlier runs included)
    and the machine's CPU times."""
    return {"load": os.getloadavg()[0], "cpu": psutil.cpu_times()}


def run_conditions(before: dict, ours: float, wall: float, after=None) -> dict:
    """The load before a measured run, and the share of the machine's CPU (wall x CPUs) that
    went during it to other processes (the busy CPU seconds less `ours`, those of the
    processes measured) and to other VMs (steal). `after`: CPU times at its end (now)."""
    after = after or psutil.cpu_times()
    delta = {f: getattr(after, f, 0.0) - getattr(before["cpu"], f, 0.0) for f in after._fields}
    capacity = max(wall, 1e-9) * psutil.cpu_count()
    busy = sum(delta.get(f, 0.0) for f in BUSY_FIELDS)
    return {
        "load_before": round(before["load"], 2),
        "other_cpu_share": round(max(0.0, busy - ours) / capacity, 3),
        "steal_share": round(max(0.0, delta.get("steal", 0.0)) / capacity, 3),
    }


def finish(conditions: dict, runs: list[dict]) -> dict:
    """`conditions` with the end time and commit, and over the measured runs (those with
    run_conditions' keys) the range of each of those keys and how many were busy."""
    measured = [r for r in runs if "other_cpu_share" in r]
    result = conditions | {
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit_at_end": git_commit(),  # a commit may land mid-run in a shared checkout
        "measured_runs": len(measured),
        "busy_runs": sum(r["other_cpu_share"] > BUSY_OTHER_SHARE for r in measured),
    }
    for key in ("load_before", "other_cpu_share", "steal_share"):
        values = [r[key] for r in measured]
        result[f"{key}_runs"] = [min(values), max(values)] if values else []
    return result


def describe(c: dict) -> list[str]:
    """The conditions as lines; last, a warning if the machine was busy before the benchmark
    or other processes took more than BUSY_OTHER_SHARE of the CPU during a measured run."""
    span = lambda pair, f="{:.0%}": "-".join(map(f.format, pair)) or "n/a"  # noqa: E731
    commit = c["git_commit"]
    if c["git_commit_at_end"] != commit:
        commit += f" ({c['git_commit_at_end']} at the end)"
    lines = [
        f"conditions: {c['cpu_model']}, {c['logical_cpus']} CPUs, {c['memory_gib']} GiB; "
        f"{c['started_utc']} to {c['finished_utc']}; commit {commit}",
        f"  python {c['python']}, lightgbm {c['lightgbm']}, mlflow {c['mlflow']}, "
        f"OMP_NUM_THREADS={c['omp_num_threads']}",
        f"  load before the run {span(c['load_before'], '{:.2f}').replace('-', '/')} (1/5/15"
        f" min); over {c['measured_runs']} measured runs: load before"
        f" {span(c['load_before_runs'], '{:.2f}')}, other processes"
        f" {span(c['other_cpu_share_runs'])} of the CPU, steal {span(c['steal_share_runs'])}",
    ]
    per_cpu = c["load_before"][0] / c["logical_cpus"]
    if per_cpu > BUSY_LOAD_PER_CPU or c["busy_runs"]:
        lines.append(
            f"WARNING: busy machine: load {per_cpu:.2f} per CPU before the run (quiet: <= "
            f"{BUSY_LOAD_PER_CPU}), other processes took > {BUSY_OTHER_SHARE:.0%} of the CPU in "
            f"{c['busy_runs']} of {c['measured_runs']} runs (up to "
            f"{span(c['other_cpu_share_runs'][1:] or [0])}). The ratios against MLflow move "
            "with the load, MLflow's figures most: rerun on a quiet machine before quoting them."
        )
    return lines
