"""Batch scoring benchmark: `python -m src.predict` against the model's own in-process rate
and against `mlflow models predict`, the same model on the same files.

    python -m benchmarks.batch [--rows 1000000] [--big-rows 5000000] [--rounds 3]

The input is the processed test split repeated to --rows (Parquet, and CSV: the one format
both commands read); its label, flight number and UTC hour pass through. Each round measures, in
turn:
- in-process: the exported champion's `predict_proba` (features plus booster) over the
  rows in memory, in the job's batches: the ceiling for any job;
- the job on the Parquet file, and on the CSV file (its own rows/s for the scoring loop,
  and wall time from process start to exit);
- `mlflow models predict` on the CSV file (wall time; --env-manager local);
- the job on the Parquet file of --big-rows: its peak RSS against the 1M-row run's;
- with pyspark installed (make setup-spark), the Spark engine on the Parquet file, on
  local[2]: reported, with no goal (the same two cores, plus a JVM).
Peak RSS is the kernel's (os.wait4's ru_maxrss), not sampled. Every process runs with
OMP_NUM_THREADS=1. Each run records the CPU other processes used meanwhile (these machines
are shared). Writes reports/bench/batch.json, prints the medians and the range over rounds,
and exits 1 if a goal is missed (GOALS).
"""

from __future__ import annotations

import argparse
import importlib.util
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
import psutil
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

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
# name: (what is compared, the bound); ratios are medians over rounds.
GOALS = {
    "job_vs_in_process": ("job rows/s over in-process rows/s (Parquet)", 0.80),
    "job_vs_mlflow": ("mlflow models predict wall time over the job's (same CSV)", 3.0),
    "big_vs_small_rss": ("peak RSS at --big-rows over peak RSS at --rows", 1.15),
}
SUMMARY = re.compile(r"\(([\d,]+) rows/s\)")


def write_inputs(folder: Path, rows: int, big_rows: int) -> dict[str, Path]:
    """The processed test split, every column (the label, the flight number and the UTC hour
    pass through), repeated to `rows` (Parquet and CSV) and to `big_rows` (Parquet), in row
    groups of pyarrow's default size (1 Mi rows), as most writers leave them."""
    test = pq.read_table(get_paths().processed_file("test"))
    files = {"parquet": folder / "small.parquet", "csv": folder / "small.csv"}
    files["big"] = folder / "big.parquet"
    for name, n in (("parquet", rows), ("big", big_rows)):
        repeated = pa.concat_tables([test] * -(-n // len(test))).slice(0, n)  # no copies
        pq.write_table(repeated, files[name])
    pa_csv.write_csv(pq.read_table(files["parquet"]), files["csv"])
    return files


def in_process_rate(model_dir: Path, parquet: Path) -> float:
    """Rows/s of features plus booster over the rows already in memory (the booster the
    job uses: the configured one, src.serving.loader.booster_for)."""
    model = model_file.load(model_dir / "data" / "model.pkl", booster_for(load_config()))
    frame = pd.read_parquet(parquet)
    start = time.perf_counter()
    for i in range(0, len(frame), BATCH_ROWS):
        model.predict_proba(request_columns(frame.iloc[i : i + BATCH_ROWS]))
    return len(frame) / (time.perf_counter() - start)


def timed(cmd: list[str]) -> dict:
    """Run a command; its wall time, peak RSS and CPU, the CPU other processes used
    meanwhile (as a share of the machine), and its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    busy_before = busy_seconds()
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise PipelineError(f"{' '.join(cmd[:4])} ... exit {proc.returncode}:\n{stderr[-2000:]}")
    own = usage.ru_utime + usage.ru_stime
    others = max(0.0, busy_seconds() - busy_before - own)
    return {
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "cpu_s": own,
        "others_cpu_share": others / (wall * psutil.cpu_count()),
        "stderr": stderr,
    }


def busy_seconds() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def job(source: Path, out: Path, model_dir: Path, engine: str = "local") -> dict:
    cmd = [sys.executable, "-m", "src.predict", "--input", str(source), "--output", str(out)]
    run = timed([*cmd, "--model", str(model_dir), "--engine", engine, "--no-progress"])
    match = SUMMARY.search(run.pop("stderr"))
    if match is None:
        raise PipelineError(f"src.predict printed no summary for {source}")
    return run | {"rows_per_s": float(match.group(1).replace(",", ""))}


def spark_installed() -> bool:
    return importlib.util.find_spec("pyspark") is not None


def mlflow_predict(source: Path, out: Path, model_dir: Path) -> dict:
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow), "models", "predict", "-m", str(model_dir), "-i", str(source)]
    run = timed([*cmd, "-t", "csv", "-o", str(out), "--env-manager", "local"])
    run.pop("stderr")
    return run


def one_round(files: dict[str, Path], model_dir: Path, scratch: Path) -> dict:
    load = os.getloadavg()[0]
    result = {
        "load_1m_before": load,
        "in_process_rows_per_s": in_process_rate(model_dir, files["parquet"]),
    }
    result["job_parquet"] = job(files["parquet"], scratch / "out.parquet", model_dir)
    result["job_csv"] = job(files["csv"], scratch / "out-csv.parquet", model_dir)
    result["mlflow_csv"] = mlflow_predict(files["csv"], scratch / "mlflow.json", model_dir)
    result["job_big"] = job(files["big"], scratch / "out-big.parquet", model_dir)
    if spark_installed():  # reported beside the others; no goal (local[2] on the same 2 cores)
        result["spark_parquet"] = job(files["parquet"], scratch / "spark", model_dir, "spark")
    result["ratios"] = {
        "job_vs_in_process": result["job_parquet"]["rows_per_s"] / result["in_process_rows_per_s"],
        "job_vs_mlflow": result["mlflow_csv"]["wall_s"] / result["job_csv"]["wall_s"],
        "big_vs_small_rss": result["job_big"]["peak_rss_mib"]
        / result["job_parquet"]["peak_rss_mib"],
    }
    log.info("round: %s", {k: round(v, 3) for k, v in result["ratios"].items()})
    return result


def summarize(rounds: list[dict], args) -> dict:
    ratios = {}
    for name, (meaning, bound) in GOALS.items():
        values = [r["ratios"][name] for r in rounds]
        median = statistics.median(values)
        met = median <= bound if name == "big_vs_small_rss" else median >= bound
        ratios[name] = {"meaning": meaning, "goal": bound, "median": median,
                        "range": [min(values), max(values)], "met": met}  # fmt: skip
    return {
        "rows": args.rows,
        "big_rows": args.big_rows,
        "cpu": cpu_model(),
        "cores": psutil.cpu_count(),
        "goals": ratios,
        "rounds": rounds,
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def print_summary(result: dict) -> None:
    rounds = result["rounds"]

    def median(key, field):
        return statistics.median(r[key][field] for r in rounds)

    print(f"\nbatch scoring, {result['rows']:,} rows, {len(rounds)} round(s), {result['cpu']}")
    print(
        f"  in-process      {statistics.median(r['in_process_rows_per_s'] for r in rounds):>10,.0f} rows/s"
    )
    for key, label in (
        ("job_parquet", "job, Parquet"),
        ("job_csv", "job, CSV"),
        ("job_big", "job, big"),
    ):
        print(
            f"  {label:<15} {median(key, 'rows_per_s'):>10,.0f} rows/s  wall {median(key, 'wall_s'):6.1f} s"
            f"  peak RSS {median(key, 'peak_rss_mib'):6.0f} MiB"
        )
    if all("spark_parquet" in r for r in rounds):
        print(
            f"  {'spark, Parquet':<15} {median('spark_parquet', 'rows_per_s'):>10,.0f} rows/s"
            f"  wall {median('spark_parquet', 'wall_s'):6.1f} s  (local[2]; its JVM's memory not counted)"
        )
    print(
        f"  mlflow, CSV     {'':>17}  wall {median('mlflow_csv', 'wall_s'):6.1f} s"
        f"  peak RSS {median('mlflow_csv', 'peak_rss_mib'):6.0f} MiB"
    )
    for name, goal in result["goals"].items():
        low, high = goal["range"]
        verdict = "ok" if goal["met"] else "MISSED"
        print(
            f"  {name:<18} {goal['median']:.2f} (range {low:.2f}-{high:.2f}; goal {goal['goal']}) {verdict}"
        )
    others = [r[k]["others_cpu_share"] for r in rounds for k in ("job_parquet", "mlflow_csv")]
    loads = ", ".join(f"{r['load_1m_before']:.2f}" for r in rounds)
    print(
        f"  other processes' CPU during runs: {min(others):.0%}-{max(others):.0%} of the machine;"
        f" load before rounds: {loads}"
    )


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
    paths = get_paths()
    model_dir = paths.champion
    if not (model_dir / "MLmodel").is_file():
        raise PipelineError(f"{model_dir}: no exported champion; run `make pipeline` first")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        scratch = Path(tmp)
        log.info("writing %s and %s rows of input", f"{args.rows:,}", f"{args.big_rows:,}")
        files = write_inputs(scratch, args.rows, args.big_rows)
        rounds = [one_round(files, model_dir, scratch) for _ in range(args.rounds)]
    result = summarize(rounds, args)
    write_json(args.out or paths.reports / "bench" / "batch.json", result)
    print_summary(result)
    return 0 if all(g["met"] for g in result["goals"].values()) else 1


def main(argv=None) -> int:
    return run_stage("bench.batch", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
