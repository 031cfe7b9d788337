# The dashboard's image (dashboard/, Streamlit; docs/dashboard.md). It is a client of the
# API over HTTP and reads the report files under /app/reports (mounted read-only), so it
# carries only dashboard/ and requirements-dashboard.txt: no model, no runtime lock, and the
# API's image carries no Streamlit. Build context: the repository root.
#
#   docker build -f docker/dashboard.Dockerfile -t flight-delay-dashboard:local .
#   docker run --rm -p 127.0.0.1:8501:8501 -e FD_API_URL=http://HOST:8000 flight-delay-dashboard:local

# ---- builder: exactly the hash-pinned lock, as in ./Dockerfile ----
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The installer pinned by hash, as ./Dockerfile does (the pip a base image bundles varies).
RUN python -m venv /opt/venv \
    && echo "pip==26.3" \
        "--hash=sha256:f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13" \
        "--hash=sha256:6c36ae7da8695be67e3cd9f7d87919667ced53f57ce2ede75d89b5912ed2bc4c" \
        >/tmp/pip.txt \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/pip.txt
COPY requirements-dashboard.txt /tmp/requirements-dashboard.txt
# The test suites bundled in numpy, pandas and pyarrow are never imported here.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --require-hashes \
        -r /tmp/requirements-dashboard.txt \
    && find /opt/venv/lib/python3.11/site-packages \
        \( -path '*/numpy/*' -o -path '*/pandas/*' -o -path '*/pyarrow/*' \) \
        -type d -name tests -prune -exec rm -rf {} +

# ---- runtime: same base (the venv's python symlink points into it) ----
FROM python:3.11-slim

# The API image's user (uid 10001), with a home: Streamlit keeps its machine id under ~.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

# Streamlit's settings as its environment variables (compose's CI override moves the address
# and port this way): every interface inside the container, no browser, and no usage
# statistics leave the machine. FD_API_URL: the compose service's name for the API.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    FD_API_URL=http://api:8000

WORKDIR /app
COPY dashboard/ /app/dashboard/
# Bytecode now, as ./Dockerfile does, since the service user cannot write it at run time;
# the import is also the image's smoke test. /app/reports: the mount point of the reports.
RUN chmod -R a+rX /app/dashboard \
    && mkdir -p /app/reports \
    && PYTHONDONTWRITEBYTECODE='' python -c "import streamlit.web.bootstrap, pandas, \
dashboard.client, dashboard.reports, dashboard.text, dashboard.what_if"

USER 10001:10001
EXPOSE 8501

# Streamlit's own health endpoint; python+urllib because the slim image has no curl/wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('STREAMLIT_SERVER_PORT', '8501')}/_stcore/health\", timeout=4)"]

CMD ["streamlit", "run", "dashboard/app.py"]
