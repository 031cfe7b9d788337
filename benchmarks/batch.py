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
OMP_NUM_THREADS=1. Each run records the load before it and the CPU other processes used
meanwhile (these machines are shared), and the result the run's conditions
(benchmarks/conditions.py: machine, load, versions, commit). Writes reports/bench/batch.json,
prints the medians and the range over rounds and the conditions, warns if the machine was
busy, and exits 1 if a goal is missed (GOALS).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import resource
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


def in_process(model_dir: Path, parquet: Path) -> dict:
    """Rows/s of features plus booster over the rows already in memory (the booster the
    job uses: the configured one, src.serving.loader.booster_for), in this process."""
    model = model_file.load(model_dir / "data" / "model.pkl", booster_for(load_config()))
    frame = pd.read_parquet(parquet)
    before, cpu0 = conditions.run_start(), own_cpu_seconds()
    start = time.perf_counter()
    for i in range(0, len(frame), BATCH_ROWS):
        model.predict_proba(request_columns(frame.iloc[i : i + BATCH_ROWS]))
    wall, own = time.perf_counter() - start, own_cpu_seconds() - cpu0
    return {
        "rows_per_s": len(frame) / wall,
        "wall_s": wall,
        "cpu_s": own,
        **conditions.run_conditions(before, own, wall),
    }


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> dict:
    """Run a command; its wall time, peak RSS and CPU, the CPU other processes used
    meanwhile (as a share of the machine), and its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    before = conditions.run_start()
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
    return {
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "cpu_s": own,
        **conditions.run_conditions(before, own, wall),
        "stderr": stderr,
    }


def job(source: Path, out: Path, model_dir: Path, engine: str = "local") -> dict:
    cmd = [sys.executable, "-m", "src.predict", "--input", str(source), "--output", str(out)]
    run = timed([*cmd, "--model", str(model_dir), "--engine", engine, "--no-progress"])
    match = SUMMARY.search(run.pop("stderr"))
    if match is None:
        raise PipelineError(f"src.predict printed no summary for {source}")
    return run | {"rows_per_s": float(match.group(1).replace(",", ""))}


def spark_job(source: Path, out: Path, model_dir: Path) -> dict:
    """The job on the Spark engine. pyspark never waits for the JVM it starts, so the JVM's
    CPU is neither in the job's (os.wait4) nor taken out of the machine's: the keys say so,
    and the run stays out of the conditions' other-processes figures."""
    run = job(source, out, model_dir, "spark")
    run["cpu_s_without_jvm"] = run.pop("cpu_s")
    run["other_cpu_share_with_jvm"] = run.pop("other_cpu_share")
    return run


def spark_installed() -> bool:
    return importlib.util.find_spec("pyspark") is not None


def mlflow_predict(source: Path, out: Path, model_dir: Path) -> dict:
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow), "models", "predict", "-m", str(model_dir), "-i", str(source)]
    run = timed([*cmd, "-t", "csv", "-o", str(out), "--env-manager", "local"])
    run.pop("stderr")
    return run


def one_round(files: dict[str, Path], model_dir: Path, scratch: Path) -> dict:
    result = {
        "load_before": round(os.getloadavg()[0], 2),
        "in_process": in_process(model_dir, files["parquet"]),
    }
    result["job_parquet"] = job(files["parquet"], scratch / "out.parquet", model_dir)
    result["job_csv"] = job(files["csv"], scratch / "out-csv.parquet", model_dir)
    result["mlflow_csv"] = mlflow_predict(files["csv"], scratch / "mlflow.json", model_dir)
    result["job_big"] = job(files["big"], scratch / "out-big.parquet", model_dir)
    if spark_installed():  # reported beside the others; no goal (local[2] on the same 2 cores)
        result["spark_parquet"] = spark_job(files["parquet"], scratch / "spark", model_dir)
    result["ratios"] = {
        "job_vs_in_process": result["job_parquet"]["rows_per_s"]
        / result["in_process"]["rows_per_s"],
        "job_vs_mlflow": result["mlflow_csv"]["wall_s"] / result["job_csv"]["wall_s"],
        "big_vs_small_rss": result["job_big"]["peak_rss_mib"]
        / result["job_parquet"]["peak_rss_mib"],
    }
    log.info("round: %s", {k: round(v, 3) for k, v in result["ratios"].items()})
    return result


def summarize(rounds: list[dict], args) -> dict:
    """Each goal's ratio: its median, its value round by round and their range."""
    ratios = {}
    for name, (meaning, bound) in GOALS.items():
        values = [r["ratios"][name] for r in rounds]
        median = statistics.median(values)
        met = median <= bound if name == "big_vs_small_rss" else median >= bound
        ratios[name] = {"meaning": meaning, "goal": bound, "median": median, "rounds": values,
                        "range": [min(values), max(values)], "met": met}  # fmt: skip
    return {"rows": args.rows, "big_rows": args.big_rows, "goals": ratios, "rounds": rounds}


def measured_runs(rounds: list[dict]) -> list[dict]:
    """Every measured run of every round (in-process, the jobs, mlflow)."""
    return [run for r in rounds for run in r.values() if isinstance(run, dict) and "wall_s" in run]


# (round key, label, what to print); Spark's only if every round ran it.
ROWS = (
    ("in_process", "in-process", ("rows_per_s",)),
    ("job_parquet", "job, Parquet", ("rows_per_s", "wall_s", "peak_rss_mib")),
    ("job_csv", "job, CSV", ("rows_per_s", "wall_s", "peak_rss_mib")),
    ("job_big", "job, big", ("rows_per_s", "wall_s", "peak_rss_mib")),
    ("spark_parquet", "spark, Parquet", ("rows_per_s", "wall_s")),  # JVM memory not counted
    ("mlflow_csv", "mlflow, CSV", ("wall_s", "peak_rss_mib")),
)
# field -> (label, number format)
FIELDS = {
    "rows_per_s": ("rows/s", "{:,.0f}"),
    "wall_s": ("wall s", "{:.1f}"),
    "peak_rss_mib": ("peak RSS MiB", "{:.0f}"),
}


def print_summary(result: dict) -> None:
    """Medians with their range over rounds, the goals, then the conditions."""
    rounds = result["rounds"]
    print(f"\nbatch scoring, {result['rows']:,} rows, {len(rounds)} round(s); medians (range)")
    for key, label, fields in ROWS:
        if not all(key in r for r in rounds):
            continue
        cells = []
        for field in fields:
            name, number = FIELDS[field]
            values = [r[key][field] for r in rounds]
            low, mid, high = (
                number.format(v) for v in (min(values), statistics.median(values), max(values))
            )
            cells.append(f"{name} {mid} ({low}-{high})")
        print(f"  {label:<15} " + "; ".join(cells))
    for name, goal in result["goals"].items():
        low, high = goal["range"]
        verdict = "ok" if goal["met"] else "MISSED"
        print(
            f"  {name:<18} {goal['median']:.2f} (range {low:.2f}-{high:.2f}; goal {goal['goal']}) {verdict}"
        )
    loads = ", ".join(f"{r['load_before']:.2f}" for r in rounds)
    print(f"  load before rounds: {loads}")
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
    model_dir = paths.champion
    if not (model_dir / "MLmodel").is_file():
        raise PipelineError(f"{model_dir}: no exported champion; run `make pipeline` first")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        scratch = Path(tmp)
        log.info("writing %s and %s rows of input", f"{args.rows:,}", f"{args.big_rows:,}")
        files = write_inputs(scratch, args.rows, args.big_rows)
        rounds = [one_round(files, model_dir, scratch) for _ in range(args.rounds)]
    result = summarize(rounds, args)
    result["conditions"] = conditions.finish(started, measured_runs(rounds))
    write_json(args.out or paths.reports / "bench" / "batch.json", result)
    print_summary(result)
    return 0 if all(g["met"] for g in result["goals"].values()) else 1


def main(argv=None) -> int:
    return run_stage("bench.batch", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
