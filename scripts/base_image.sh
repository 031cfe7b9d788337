#!/usr/bin/env bash
# Build a local stand-in for the base image `python:3.11-slim` from Debian's packages, for
# machines that reach Debian's mirror and PyPI but no container registry. The Dockerfile is
# unchanged: it names python:3.11-slim and finds this image under that tag.
#
#   scripts/base_image.sh [TAG]        (root; DOCKER_HOST selects the engine)
#
# debootstrap (minbase + python3, venv, pip, CA certificates, Debian 12 like the real image),
# then this machine's settings so apt and pip work inside builds run with --network host:
# its extra CA certificates (an intercepting proxy's), its apt proxy/validity settings and
# sources, and pip's `cert`. Takes about a minute; the result is ~190 MB.
set -euo pipefail

TAG=${1:-python:3.11-slim}
SUITE=${FD_BASE_SUITE:-bookworm}
MIRROR=${FD_BASE_MIRROR:-http://deb.debian.org/debian}
WORK_PARENT=${FD_DOCKER_STATE:-/var/lib/flight-delay-docker}

[ "$(id -u)" -eq 0 ] || { echo "base_image: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "base_image: debootstrap missing (make system-deps)" >&2; exit 1; }

mkdir -p "$WORK_PARENT"
rootfs=$(mktemp -d "$WORK_PARENT/rootfs.XXXXXX")
cleanup() {
    # Never rm -rf through a mount (debootstrap mounts proc/sys while it runs).
    if findmnt -rn -o TARGET | grep -q "^$rootfs"; then
        echo "base_image: $rootfs still has mounts; left in place" >&2
    else
        rm -rf "$rootfs"
    fi
}
trap cleanup EXIT

start=$SECONDS
echo "base_image: debootstrap $SUITE into $rootfs"
timeout 900 debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
    tail -20 "$rootfs.log" >&2
    exit 1
}
rm -f "$rootfs.log"

# The official image's conventions: `python` on PATH, pip allowed outside a venv.
ln -sf python3 "$rootfs/usr/bin/python"
rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED

# This machine's extra CA certificates, so TLS through its proxy verifies inside builds.
shopt -s nullglob
certs=(/usr/local/share/ca-certificates/*.crt)
if [ ${#certs[@]} -gt 0 ]; then
    cp "${certs[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
fi
# pip uses its own CA bundle unless told otherwise.
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"

# apt as on this machine: its sources (mirror, updates, security) and any proxy or
# Release-validity settings (a snapshot mirror has old Valid-Until dates).
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    rm -f "$rootfs/etc/apt/sources.list"
fi
for conf in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
    [ -f "$conf" ] || continue
    if grep -qiE 'Acquire::(https?::)?Proxy|Check-Valid-Until' "$conf"; then
        cp "$conf" "$rootfs/etc/apt/apt.conf.d/90host-$(basename "$conf")"
    fi
done

# Slim like the official image: no package cache, lists, docs or man pages.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

tar --numeric-owner -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' \
    -m "local stand-in for python:3.11-slim (debootstrap $SUITE, scripts/base_image.sh)" \
    - "$TAG" >/dev/null
echo "base_image: $TAG built in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
