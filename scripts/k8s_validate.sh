#!/usr/bin/env bash
# `make lint`'s Kubernetes check, offline (no cluster): render every overlay of deploy/k8s
# with kubectl's built-in kustomize, then validate the rendered resources (and the Secret
# template, which no overlay includes) against the Kubernetes API schemas with
# kubernetes-validate in strict mode, so a misspelt or unknown field fails too.
# One line per overlay. docs/kubernetes.md says what the manifests are.
#   KUBECTL=/path/to/kubectl  FD_K8S_VERSION=1.32 (the schemas' Kubernetes version)
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL=${KUBECTL:-kubectl}
VALIDATE=${KUBERNETES_VALIDATE:-.venv/bin/kubernetes-validate}
K8S_VERSION=${FD_K8S_VERSION:-1.32}
K8S=deploy/k8s

# No usable kubectl (Debian has none new enough, and none can be downloaded here): skip with
# a reason, unless CI is set (CI must validate the manifests).
unavailable() {
    echo "k8s: $1; deploy/k8s not rendered or validated" >&2
    [ -z "${CI:-}" ] || exit 1
    exit 0
}
command -v "$KUBECTL" >/dev/null || unavailable "no kubectl on PATH (KUBECTL=... picks one)"
# The overlays use kustomize v5 fields (resources: ../../base, labels, replicas, patches).
# kubectl 1.20 (Debian bookworm's kubernetes-client) bundles kustomize v2.0.3, which
# refuses them, and prints no kustomizeVersion at all.
kustomize=$("$KUBECTL" version --client -o json 2>/dev/null |
    sed -n 's/.*"kustomizeVersion": *"v\([0-9][0-9]*\)\..*/\1/p')
if [ -z "$kustomize" ] || [ "$kustomize" -lt 5 ]; then
    unavailable "$KUBECTL bundles kustomize ${kustomize:+v$kustomize}${kustomize:-of unknown version (an old kubectl)}, deploy/k8s needs v5 (kubectl >= 1.27; KUBECTL=... picks another)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

overlays=0
for dir in "$K8S"/overlays/*/; do
    name=$(basename "$dir")
    [ -f "$dir/kustomization.yaml" ] || continue
    out="$tmp/$name.yaml"
    "$KUBECTL" kustomize "$dir" >"$out"
    # --quiet: only failures and warnings; the exit code is non-zero on any failure.
    "$VALIDATE" --kubernetes-version "$K8S_VERSION" --strict --quiet "$out"
    echo "k8s: overlays/$name: $(grep -c '^kind:' "$out") resources rendered, valid against Kubernetes $K8S_VERSION (strict)"
    overlays=$((overlays + 1))
done
[ "$overlays" -gt 0 ] || { echo "k8s: no overlay under $K8S/overlays" >&2; exit 1; }

"$VALIDATE" --kubernetes-version "$K8S_VERSION" --strict --quiet "$K8S/secret.template.yaml"
echo "k8s: secret.template.yaml: valid against Kubernetes $K8S_VERSION (strict)"
