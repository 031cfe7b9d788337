#!/usr/bin/env bash
# Debian packages the container, browser and monitoring checks need (`make system-deps`);
# idempotent.
#   docker.io    Docker engine (dockerd + containerd + runc) for `make docker-verify`
#   debootstrap  builds the local python:3.11-slim stand-in when no registry is reachable
#   chromium     the browser tests in tests/browser/ (driven by Playwright, never downloaded)
#   wrk          HTTP load generator for the serving benchmark
#   prometheus   Prometheus and promtool: the alert rules' checks (make lint, make test) and
#                the monitoring stack test (tests/integration/test_monitoring_stack.py)
#   prometheus-pushgateway  where that test's monitoring cycle pushes its results
#   openjdk-17-jre-headless  Java for pyspark (python -m src.predict --engine spark)
#   postgresql   PostgreSQL 15: the registry tests' tracking store (tests start their own
#                server in a temporary folder, as a non-root user, on loopback)
#   redis-server the online feature store's Redis backend (its tests start their own server)
# Not here: kubectl, whose kustomize v5 renders deploy/k8s in make lint. Debian's
# kubernetes-client (1.20) is too old for it; install kubectl >= 1.27 from your platform
# (make lint skips the manifests without it, and fails when CI is set).
# (Debian starts both as system services on :9090 and :9091; the tests run their own on
# free loopback ports. `systemctl disable --now prometheus prometheus-pushgateway` if unwanted.)
# Installs only what is missing, with --no-install-recommends; needs root (or sudo).
# FD_SYSTEM_DEPS="chromium wrk" narrows the list (e.g. where Docker is already installed).
set -euo pipefail

read -r -a PACKAGES <<<"${FD_SYSTEM_DEPS:-docker.io debootstrap chromium wrk prometheus prometheus-pushgateway openjdk-17-jre-headless postgresql redis-server}"

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: all present (${PACKAGES[*]})"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "system-deps: need root to install: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
install() { "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; }
# Stale package lists (a long-lived image) are the usual failure: refresh once and retry.
if ! install; then
    "${SUDO[@]}" apt-get update -q
    install
fi
