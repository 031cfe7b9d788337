#!/usr/bin/env bash
# The batch scoring job on a Spark cluster: spark-submit in client mode, the project's code
# shipped to the executors.
#
#   scripts/spark_submit.sh [SPARK-SUBMIT OPTIONS] -- [src.predict OPTIONS]
#   scripts/spark_submit.sh --master spark://host:7077 -- --input /shared/in --output /shared/scored
#   scripts/spark_submit.sh --master 'local[2]' -- --input flights.parquet --output scored
#
# Options before `--` go to spark-submit (its --master decides; none: local[2]), the rest to
# `python -m src.predict`, with `--engine spark` added. The driver runs here, from this
# checkout (its configs, model registry, models/champion/); executors get src/ as a zip
# (--py-files) and the model from MLflow (spark_udf ships it). Executors need Python 3.11
# with requirements.txt installed (PYSPARK_PYTHON names it; default: this .venv's python,
# right for a local master or nodes that mount this checkout), and the input and output
# paths must be the same on every node (a shared filesystem): the driver renames the
# finished output folder into place. A local master binds to 127.0.0.1 with no web UI.
# Exit code: src.predict's (0 all scored, 1 some rows rejected, 2 an error).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPARK_SUBMIT=${SPARK_SUBMIT:-$ROOT/.venv/bin/spark-submit}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$ROOT/.venv/bin/python}
export PYSPARK_DRIVER_PYTHON=${PYSPARK_DRIVER_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$SPARK_SUBMIT" ] || { echo "spark_submit: no $SPARK_SUBMIT (make setup-spark)" >&2; exit 2; }

submit=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do submit+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift

master=""
for ((i = 0; i < ${#submit[@]}; i++)); do
    case ${submit[i]} in
        --master) master=${submit[i + 1]:-} ;;
        --master=*) master=${submit[i]#--master=} ;;
    esac
done
extra=(--conf spark.log.level=WARN)  # Spark's own INFO lines, from the start: off
[ -n "$master" ] || { master="local[2]"; extra+=(--master "$master"); }
if [[ $master == local* ]]; then
    export SPARK_LOCAL_IP=127.0.0.1
    extra+=(--conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1)
    extra+=(--conf spark.ui.enabled=false)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# src/ for the executors, without caches
(cd "$ROOT" && zip -qr "$work/src.zip" src -x '*__pycache__*' '*.pyc')
# The driver imports this checkout's src/ (whose paths find configs/, models/, mlruns/), not
# the zip's, which spark-submit puts first on its path.
cat >"$work/predict.py" <<EOF
import sys

sys.path.insert(0, "$ROOT")
from src.predict import main

raise SystemExit(main())
EOF

cd "$ROOT"
status=0
"$SPARK_SUBMIT" "${extra[@]}" "${submit[@]}" --py-files "$work/src.zip" \
    "$work/predict.py" --engine spark "$@" || status=$?
exit "$status"
