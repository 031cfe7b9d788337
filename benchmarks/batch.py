"""Batch scoring benchmark: `python -m src.predict` against the model's in-process rate, its
Spark engine and `mlflow models predict`, the same model on the same files.

    python -m benchmarks.batch [--rows 1000000] [--big-rows 5000000] [--rounds 3]

The input: the processed test split repeated to --rows (Parquet, and CSV: the one format both
commands read) and to --big-rows (Parquet). Each round measures in turn: in-process scoring
(the champion's predict_proba on the rows in memory, in the job's batches: the ceiling for
any job); the job on the Parquet, CSV and big files; the Spark engine on the Parquet file on
local[2] (with pyspark installed); `mlflow models predict` on the CSV file. Each command runs
under a small parent that reports its peak RSS and CPU (os.wait4): a child's peak RSS counts
its parent's size at the fork, and this process holds the rows. Writes
reports/bench/batch.json, prints medians, ranges over rounds and the conditions
(benchmarks/conditions.py), and exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from benchmarks import conditions
from src.batch.files import BATCH_ROWS
from src.common.config import load_config
from src.common.errors import PipelineError
from src.common.io import write_json
from src.common.logs import run_stage
from src.common.paths import ROOT, get_paths
from src.model import model as model_file
from src.model.features import request_columns
from src.serving.loader import booster_for

log = logging.getLogger("bench.batch")
GOALS = {  # name: (what is compared, bound); on medians over rounds
    "job_vs_in_process": ("job rows/s over in-process rows/s (Parquet)", ">=", 0.80),
    "job_vs_mlflow": ("mlflow models predict's wall time over the job's (same CSV)", ">=", 3.0),
    "spark_vs_job": ("Spark engine rows/s (local[2]) over the job's (Parquet)", ">=", 0.35),
    "big_vs_small_rss": ("the job's peak RSS at --big-rows over at --rows", "<=", 1.15),
}
# A parent of a few MiB that runs its arguments and prints their exit code, peak RSS (KiB)
# and CPU seconds. It adopts their orphans (Spark's JVM) and waits for them too (at most 2
# minutes), so their CPU counts; the peak RSS is the largest process's.
SPAWN = """import ctypes, json, os, resource, signal, subprocess, sys
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
signal.alarm(120)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([status, use.ru_maxrss, use.ru_utime + use.ru_stime]))
"""
SUMMARY = re.compile(r"\(([\d,]+) rows/s\)")
FIELDS = {"rows_per_s": ("rows/s", "{:,.0f}"), "wall_s": ("wall s", "{:.1f}"),
          "peak_rss_mib": ("peak RSS MiB", "{:.0f}")}  # fmt: skip


def write_inputs(folder: Path, rows: int, big_rows: int) -> dict[str, Path]:
    test = pq.read_table(get_paths().processed_file("test"))
    files = {"parquet": folder / "small.parquet", "csv": folder / "small.csv"}
    files["big"] = folder / "big.parquet"
    for name, n in (("parquet", rows), ("big", big_rows)):
        pq.write_table(pa.concat_tables([test] * -(-n // len(test))).slice(0, n), files[name])
    pa_csv.write_csv(pq.read_table(files["parquet"]), files["csv"])
    return files


def in_process(model_dir: Path, parquet: Path) -> dict:
    """Rows/s of features and booster (the job's: booster_for the config) over rows in memory."""
    model = model_file.load(model_dir / "data" / "model.pkl", booster_for(load_config()))
    frame = pd.read_parquet(parquet)
    before, cpu0, start = conditions.run_start(), time.process_time(), time.perf_counter()
    for i in range(0, len(frame), BATCH_ROWS):
        model.predict_proba(request_columns(frame.iloc[i : i + BATCH_ROWS]))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"rows_per_s": len(frame) / wall, "wall_s": wall, "cpu_s": cpu,
            **conditions.run_conditions(before, cpu, wall)}  # fmt: skip


def timed(cmd: list[str]) -> dict:
    """Run a command under SPAWN: its wall time, peak RSS and CPU, the conditions, stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    before, start = conditions.run_start(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SPAWN, *cmd], cwd=ROOT, env=env, text=True,
                          capture_output=True)  # fmt: skip
    wall = time.perf_counter() - start
    status, maxrss_kib, cpu = json.loads(proc.stdout) if proc.returncode == 0 else (-1, 0, 0)
    if status != 0:
        raise PipelineError(f"{' '.join(cmd[:4])} ... exit {status}:\n{proc.stderr[-2000:]}")
    return {"wall_s": wall, "peak_rss_mib": maxrss_kib / 1024, "cpu_s": cpu,
            **conditions.run_conditions(before, cpu, wall), "stderr": proc.stderr}  # fmt: skip


def job(source: Path, out: Path, model_dir: Path, engine: str = "local") -> dict:
    """`src.predict` with a thread per CPU (as local[2] runs a task per CPU; its default is
    one): its summary's rows/s, and timed's figures."""
    cmd = [sys.executable, "-m", "src.predict", "--input", str(source), "--output", str(out)]
    cmd += ["--model", str(model_dir), "--engine", engine, "--workers", str(os.cpu_count())]
    run = timed([*cmd, "--no-progress"])
    match = SUMMARY.search(run.pop("stderr"))
    if match is None:
        raise PipelineError(f"src.predict printed no summary for {source}")
    return run | {"rows_per_s": float(match.group(1).replace(",", ""))}


def one_round(files: dict[str, Path], model_dir: Path, scratch: Path) -> dict:
    r = {"load_before": round(os.getloadavg()[0], 2)}
    r["in_process"] = in_process(model_dir, files["parquet"])
    r["job_parquet"] = job(files["parquet"], scratch / "out.parquet", model_dir)
    r["job_csv"] = job(files["csv"], scratch / "out-csv.parquet", model_dir)
    mlflow = [str(Path(sys.executable).with_name("mlflow")), "models", "predict", "-m"]
    mlflow += [str(model_dir), "-i", str(files["csv"]), "-t", "csv", "--env-manager", "local"]
    r["mlflow_csv"] = timed([*mlflow, "-o", str(scratch / "mlflow.json")])
    r["mlflow_csv"].pop("stderr")
    r["job_big"] = job(files["big"], scratch / "out-big.parquet", model_dir)
    r["ratios"] = {
        "job_vs_in_process": r["job_parquet"]["rows_per_s"] / r["in_process"]["rows_per_s"],
        "job_vs_mlflow": r["mlflow_csv"]["wall_s"] / r["job_csv"]["wall_s"],
        "big_vs_small_rss": r["job_big"]["peak_rss_mib"] / r["job_parquet"]["peak_rss_mib"],
    }
    if importlib.util.find_spec("pyspark"):
        spark = job(files["parquet"], scratch / "spark", model_dir, "spark")
        # pyspark's worker daemon ignores SIGCHLD, so the kernel drops its workers' figures:
        # the CPU counted is the driver's and the JVM's, and the run stays out of the
        # conditions' other-processes figures.
        spark["cpu_s_without_workers"] = spark.pop("cpu_s")
        spark["other_cpu_share_with_workers"] = spark.pop("other_cpu_share")
        r["spark_parquet"] = spark
        r["ratios"]["spark_vs_job"] = spark["rows_per_s"] / r["job_parquet"]["rows_per_s"]
    log.info("round: %s", {k: round(v, 3) for k, v in r["ratios"].items()})
    return r


def summarize(rounds: list[dict], args) -> dict:
    """Each goal's ratio: its median, its value round by round and their range; a goal no
    round measured (Spark's, without pyspark) is left out."""
    goals = {}
    for name, (meaning, op, bound) in GOALS.items():
        values = [r["ratios"][name] for r in rounds if name in r["ratios"]]
        if values:
            median = statistics.median(values)
            goals[name] = {"meaning": meaning, "goal": f"{op} {bound}", "median": median,
                           "rounds": values, "range": [min(values), max(values)],
                           "met": median >= bound if op == ">=" else median <= bound}  # fmt: skip
    return {"rows": args.rows, "big_rows": args.big_rows, "goals": goals, "rounds": rounds}


def measured_runs(rounds: list[dict]) -> list[dict]:
    """The measured runs of every round (in-process, the jobs, Spark's, mlflow's)."""
    return [run for r in rounds for run in r.values() if isinstance(run, dict) and "wall_s" in run]


def print_summary(result: dict) -> None:
    """Each run's figures: median (range over rounds); then the goals and the conditions."""
    rounds = result["rounds"]
    print(f"\nbatch scoring, {result['rows']:,} rows, {len(rounds)} round(s); medians (range)")
    for key in (k for k, run in rounds[0].items() if isinstance(run, dict) and "wall_s" in run):
        cells = []
        for field, (name, number) in FIELDS.items():
            if v := sorted(r[key][field] for r in rounds if field in r[key]):
                low, mid, high = (number.format(x) for x in (v[0], statistics.median(v), v[-1]))
                cells.append(f"{name} {mid} ({low}-{high})")
        print(f"  {key:<14} " + "; ".join(cells))
    for name, g in result["goals"].items():
        low, high = g["range"]
        print(f"  {name:<18} {g['median']:.2f} (range {low:.2f}-{high:.2f}; goal {g['goal']})"
              f" {'ok' if g['met'] else 'MISSED'}")  # fmt: skip
    print(f"  load before rounds: {', '.join(str(r['load_before']) for r in rounds)}")
    print("\n".join(conditions.describe(result["conditions"])))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.batch", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--big-rows", type=int, default=5_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="default: reports/bench/batch.json")
    return p.parse_args(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    started = conditions.start()  # before the bench's own work loads the machine
    paths = get_paths()
    if not (paths.champion / "MLmodel").is_file():
        raise PipelineError(f"{paths.champion}: no exported champion; run `make pipeline` first")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        log.info("writing %s and %s rows of input", f"{args.rows:,}", f"{args.big_rows:,}")
        files = write_inputs(Path(tmp), args.rows, args.big_rows)
        rounds = [one_round(files, paths.champion, Path(tmp)) for _ in range(args.rounds)]
    result = summarize(rounds, args)
    result["conditions"] = conditions.finish(started, measured_runs(rounds))
    write_json(args.out or paths.reports / "bench" / "batch.json", result)
    print_summary(result)
    return 0 if all(g["met"] for g in result["goals"].values()) else 1


def main(argv=None) -> int:
    return run_stage("bench.batch", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
