# Flight-delay MLOps pipeline. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SMOKE := configs/smoke.yml
# CONFIG=path picks a pipeline config; unset, each stage uses configs/default.yml and the
# API the config its exported champion was registered with.
CONFIG ?=
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG))
# Where the stages keep data and reports (src/common/paths.py reads the same variables).
DATA := $(or $(FD_DATA_DIR),data)
REPORTS := $(or $(FD_REPORTS_DIR),reports)
# One OpenMP thread per process: processes run side by side on few cores, and OpenMP threads
# beyond the free cores spin waiting for each other.
export OMP_NUM_THREADS := 1

.PHONY: help ci setup setup-spark lock smoke pipeline features feed test test-fast lint format eda mlflow serve serve-prod bench bench-serving bench-batch predict model-card drift cycle loop tune rollback reproduce clean system-deps docker-verify browser-test lock-shared dashboard

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Everything CI checks, in order, after `make system-deps`. .ci/run (run on a clean clone)
# and .github/workflows/ci.yml run this target and nothing else, so the two cannot drift
# (tests/unit/test_deploy_files.py). The full pipeline enforces the quality thresholds, the
# loop must beat the frozen model, and smoke runs last so the image docker-verify builds
# bakes in the smoke export, as for a user whose last command was `make smoke`.
CI_STEPS := setup setup-spark lint test pipeline loop smoke docker-verify
ci: export CI := 1# tests needing Debian tools (promtool, kubectl...) fail, not skip, without them
ci: export FD_REQUIRE_BROWSER := 1# the browser tests fail, not skip, without chromium
ci: export HYPOTHESIS_PROFILE := ci# the same generated cases every run (tests/conftest.py)
# make loop fails unless the loop pays. Its sensitivity table is left out: a report for
# docs/monitoring.md (refreshed by a `make loop` by hand) that no CI check reads, most of the
# loop's time; tests/integration/test_loop.py checks its replay against the real one.
ci: export LOOP_ARGS := --strict --no-sensitivity
ci: export MLFLOW_DISABLE_TELEMETRY := true# nothing may leave loopback
ci: export DO_NOT_TRACK := true
ci: ## What CI runs, in order (after make system-deps): setup, lint, test, pipeline, loop, smoke, docker-verify
	@start=$$SECONDS; for step in $(CI_STEPS); do \
		echo "== make ci [$$((SECONDS - start)) s]: make $$step"; \
		$(MAKE) --no-print-directory $$step || exit; \
	done; echo "== make ci: finished in $$((SECONDS - start)) s"

# --compile-bytecode: uv, unlike pip, installs no .pyc files, and with PYTHONDONTWRITEBYTECODE
# set none is ever written: every process (each stage, server and test worker) would compile
# MLflow, SQLAlchemy and the rest from source each time it imports them.
setup: ## Create .venv with exactly the hash-pinned locks (runtime + dev): anything else is removed
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-uv.txt
	$(VENV)/bin/uv pip sync --python $(PY) --require-hashes --compile-bytecode requirements.txt requirements-dev.txt

setup-spark: ## Add pyspark (its own hash-pinned lock) for `--engine spark`; after make setup, which removes it
	$(VENV)/bin/uv pip install --python $(PY) --require-hashes --compile-bytecode -r requirements-spark.txt

lock: ## Re-resolve requirements*.txt from requirements*.in (uv, hash-pinned)
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes requirements-uv.in -o requirements-uv.txt
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes requirements.in -o requirements.txt
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes requirements-dev.in -o requirements-dev.txt
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes requirements-dashboard.in -o requirements-dashboard.txt
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes requirements-spark.in -o requirements-spark.txt

# Every stage with one config (arguments: $(1)); drift's exit 1 (= drift found) is a result,
# not a failure. The batch job's exit 1 (rows rejected) fails the run: the test split passed
# preprocessing's checks, so a rejected row there means the two sets of rules disagree.
define run_stages
	$(PY) -m src.ingest $(1)
	$(PY) -m src.features $(1)
	$(PY) -m src.preprocess $(1)
	$(PY) -m src.train $(1)
	$(PY) -m src.register $(1)
	$(PY) -m src.serve $(1) --check
	$(PY) -m src.predict $(1) --input $(DATA)/processed/test.parquet --output $(DATA)/scored/test.parquet
	$(PY) -m src.drift $(1); rc=$$?; [ $$rc -le 1 ] || exit $$rc
endef

smoke: ## Every stage on a small slice (train Jan, validate Feb, test + batch scoring + drift Mar)
	$(call run_stages,--config $(SMOKE))

pipeline: ## Full data: ingest, features, preprocess, train (quality-gated), register, serve check, batch scoring, drift
	$(call run_stages,$(CONFIG_ARG))

# The suite under coverage ([tool.coverage] in pyproject.toml): a per-module report of src/
# and app/, failing under 85% of lines. A test failure fails the target, and the report is
# printed either way. PYTEST_ARGS narrows the run; the 85% then does not apply (it is a
# figure of the whole suite), but the report still shows what that part covers.
# The tests run in one pytest-xdist worker per core (-n auto), each test file on one worker
# (--dist loadfile in pyproject.toml); coverage follows the workers and every process they
# start, and `coverage combine` joins them. PYTEST_ARGS="-n 0 ..." runs in one process.
COV := $(VENV)/bin/coverage
test: ## Run the whole test suite under coverage, every tier CI runs (per-module report; fails under 85% of src/ and app/)
	@rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(COV) run -m pytest -n auto $(PYTEST_ARGS); tests=$$?; \
	$(COV) combine --quiet && $(COV) report $(if $(PYTEST_ARGS),--fail-under=0); covered=$$?; \
	[ $$tests -ne 0 ] && exit $$tests; exit $$covered

# What to run while you work: every test not marked `slow` (pyproject.toml), so no server
# in a subprocess; the smoke pipeline they share is built once. No coverage: make test
# measures it.
test-fast: ## The quick tier, to run while you work: every test not marked slow (no server)
	$(PY) -m pytest -n auto -m "not slow" $(PYTEST_ARGS)

lint: ## ruff check + black --check; import contracts (lint-imports); mypy (src, app); hadolint; compose files; promtool; k8s manifests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/black --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile docker/Dockerfile docker/redis/Dockerfile docker/dashboard.Dockerfile
	$(VENV)/bin/docker-compose -f docker-compose.yml config -q
	$(VENV)/bin/docker-compose -f docker-compose.yml -f docker-compose.ci.yml config -q
	$(VENV)/bin/docker-compose -f docker-compose.yml --profile shared config -q
	$(VENV)/bin/docker-compose -f docker-compose.yml --profile monitoring config -q
	promtool check rules monitoring/prometheus/alerts.yml
	promtool check config monitoring/prometheus/prometheus.yml
	scripts/k8s_validate.sh

format: ## ruff --fix + black
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/black .

eda: ## Execute notebooks/eda.ipynb (checks the facts in EDA_DECISIONS.md)
	$(PY) -m pytest -q tests/integration/test_notebook.py

mlflow: ## MLflow UI + registry on http://127.0.0.1:5000 against the local store
	mkdir -p mlruns
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server --host 127.0.0.1 --port 5000 --workers 1 \
		--backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --default-artifact-root $(CURDIR)/mlruns/artifacts

serve: ## Serve the champion on http://127.0.0.1:8000 (docs at /docs)
	$(PY) -m src.serve $(CONFIG_ARG)

serve-prod: ## gunicorn + 2 uvicorn workers on 127.0.0.1:8000 (app/gunicorn_conf.py)
	FD_CONFIG=$(CONFIG) $(VENV)/bin/gunicorn -c app/gunicorn_conf.py app.main:app

bench: ## Both benchmarks: serving (needs wrk), then batch scoring; after make pipeline
	$(PY) -m benchmarks.serving $(CONFIG_ARG); serving=$$?; \
	$(PY) -m benchmarks.batch; batch=$$?; \
	exit $$(( serving > batch ? serving : batch )) # a missed goal does not skip the other

bench-serving: ## The API (fast paths on and off, shadow) vs `mlflow models serve` (needs wrk)
	$(PY) -m benchmarks.serving $(CONFIG_ARG)

bench-batch: ## python -m src.predict vs in-process scoring and `mlflow models predict`, 1M/5M rows
	$(PY) -m benchmarks.batch

features: ## Build the offline feature store (data/features/) from the raw snapshot; after ingest
	$(PY) -m src.features $(CONFIG_ARG)

feed: ## Apply the feature views' events to the online store (SQLite; Redis when FD_REDIS_URL is set): make feed [UNTIL=2013-03-01T12:00Z] [SPEED=600: a replay, 10 min a second]
	$(PY) -m src.feed $(if $(UNTIL),--until $(UNTIL)) $(if $(SPEED),--speed $(SPEED))

predict: ## Score a file or folder of flights: make predict INPUT=flights.parquet OUTPUT=scored.parquet
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make predict INPUT=<file|folder> OUTPUT=<file.parquet> [MODEL=models:/...]"; exit 2; }
	$(PY) -m src.predict $(CONFIG_ARG) --input $(INPUT) --output $(OUTPUT) $(if $(MODEL),--model $(MODEL))

drift: ## Drift check of a month (MONTH=9) or the prediction log (MONTH=log)
	$(PY) -m src.drift $(CONFIG_ARG) $(if $(filter log,$(MONTH)),--predictions,$(if $(MONTH),--month $(MONTH)))

cycle: ## The monitoring cycle, the production job: make cycle AS_OF=2013-10-31 (exit 0/1/2)
	@test -n "$(AS_OF)" || { echo "usage: make cycle AS_OF=YYYY-MM-DD"; exit 2; }
	$(PY) -m src.cycle $(CONFIG_ARG) --as-of $(AS_OF)

loop: ## Replay the cycle Aug-Dec through a real server (report in reports/loop/)
	$(PY) -m src.simulate $(CONFIG_ARG) $(LOOP_ARGS)

TRIALS ?= 40
tune: ## Search LightGBM's parameters on the time-series folds (TRIALS=40; writes configs/tuned.yml)
	$(PY) -m src.train $(CONFIG_ARG) --tune $(TRIALS)

rollback: ## Move @champion back to the previous champion (alias history)
	$(PY) -m src.register $(CONFIG_ARG) --rollback

reproduce: ## Rebuild a logged model from its lineage and compare metrics: RUN_ID=...
	@test -n "$(RUN_ID)" || { echo "usage: make reproduce RUN_ID=<mlflow run id>"; exit 2; }
	$(PY) -m src.reproduce --run-id $(RUN_ID)

system-deps: ## Debian packages for docker-verify, browser tests, bench (root; only what is missing)
	scripts/system_deps.sh

docker-verify: ## Build the image, run the compose stack (CI override), predict, tear down
	scripts/docker_verify.sh

browser-test: ## The browser tests alone (Debian's chromium via Playwright)
	$(PY) -m pytest tests/browser

# The dashboard (docs/dashboard.md): reads the API at FD_API_URL (default
# http://127.0.0.1:8000, X-API-Key from FD_API_KEY) and the files under reports/; no usage
# statistics leave the machine.
dashboard: ## Streamlit dashboard on http://127.0.0.1:8501: a flight's delay, the model's health (needs make serve)
	$(VENV)/bin/streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port 8501 \
		--server.headless true --browser.gatherUsageStats false

lock-shared: ## Re-lock docker/mlflow-shared.txt (the `shared` profile's MLflow server)
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --generate-hashes docker/mlflow-shared.in -o docker/mlflow-shared.txt

model-card: ## Refresh the committed MODEL_CARD.md from the full pipeline's card (after make pipeline)
	@test -f $(REPORTS)/model_card/flight-delay.md || { echo "no $(REPORTS)/model_card/flight-delay.md: run make pipeline first"; exit 2; }
	cp $(REPORTS)/model_card/flight-delay.md MODEL_CARD.md

clean: ## Remove generated data, models, reports and the local MLflow store (keeps data/raw)
	rm -rf data/processed data/predictions data/scored models/champion reports mlruns
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
