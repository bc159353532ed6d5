#!/usr/bin/env bash
# Play the e2e scenarios (e2e/scenarios/*.yaml) and say which mode was used:
#   cluster   - a cluster is reachable (KUBECONFIG / current kubectl context): install charts/vouch with Helm
#               and apply the scenario objects with kubectl (e2e/cluster.py). Needs E2E_REGISTRY and
#               VOUCH_IMAGE (e2e/kind.sh creates a kind cluster, a registry and the image where Docker runs).
#   loopback  - no cluster: the same scenarios against the real `vouch serve` over TLS on 127.0.0.1, with
#               AdmissionReviews shaped as kube-apiserver sends them and a registry on loopback
#               (webhooks/tests/e2e_loopback.rs). Status conditions and reports need an API server and are
#               not checked in this mode; the runner lists what it did not play and why.
# E2E_MODE=cluster|loopback forces a mode (cluster then fails if no cluster is reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${E2E_MODE:-auto}"
why=""
if [ "$mode" = auto ]; then
  if ! command -v kubectl >/dev/null 2>&1; then
    mode=loopback; why="kubectl not found"
  elif ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
    mode=loopback; why="no cluster reachable with the current kubeconfig"
  else
    mode=cluster
  fi
fi
case "$mode" in
  cluster)
    kubectl version --request-timeout=5s >/dev/null 2>&1 || { echo "e2e: E2E_MODE=cluster but no cluster is reachable" >&2; exit 2; }
    echo "e2e: mode cluster (context $(kubectl config current-context))"
    for tool in cosign python3; do
      command -v "$tool" >/dev/null 2>&1 || { echo "e2e: cluster mode needs $tool" >&2; exit 2; }
    done
    if [ -z "${HELM:-}" ]; then
      cached="${VOUCH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vouch-tools}/helm/helm"
      if command -v helm >/dev/null 2>&1; then HELM=helm; elif [ -x "$cached" ]; then HELM="$cached"; else
        echo "e2e: cluster mode needs Helm 3 (run scripts/chart-test.sh once to fetch it, or set HELM)" >&2; exit 2
      fi
      export HELM
    fi
    exec python3 e2e/cluster.py
    ;;
  loopback)
    echo "e2e: mode loopback (${why:-forced by E2E_MODE}): vouch serve over TLS on 127.0.0.1, AdmissionReviews as kube-apiserver sends them"
    bash scripts/setup.sh
    exec cargo test -p vouch-webhooks --test e2e_loopback -- --nocapture
    ;;
  *)
    echo "e2e: E2E_MODE must be cluster or loopback, not $mode" >&2; exit 2
    ;;
esac
