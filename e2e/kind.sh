#!/usr/bin/env bash
# Create a kind cluster for the e2e scenarios where Docker runs: a registry container on kind's network
# (kind-registry:5000 inside the cluster, localhost:5001 from this machine), the vouch image built from the
# repository's Dockerfile and loaded into the nodes. Prints the environment e2e/run.sh needs; then:
#   eval "$(bash e2e/kind.sh)" && bash e2e/run.sh
# KIND_CLUSTER (default vouch-e2e) names the cluster; `kind delete cluster --name vouch-e2e` and
# `docker rm -f kind-registry` remove everything.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster="${KIND_CLUSTER:-vouch-e2e}"
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kind.sh: $tool is required" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "kind.sh: the Docker daemon is not reachable" >&2; exit 2; }

if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --wait 120s >&2
fi
if [ "$(docker inspect -f '{{.State.Running}}' kind-registry 2>/dev/null || true)" != "true" ]; then
  docker run -d --restart=always -p 127.0.0.1:5001:5000 --network bridge --name kind-registry registry:2 >&2
fi
# Same network as the nodes: pods resolve kind-registry through the node's resolver (Docker DNS).
docker network connect kind kind-registry 2>/dev/null || true

# Pods of the scenarios are admitted or denied, never run (their images are test artifacts), so the nodes'
# containerd needs no mirror configuration; vouch reaches the registry over plain HTTP (insecureRegistries).
docker build -t vouch:e2e . >&2
kind load docker-image vouch:e2e --name "$cluster" >&2
kubectl config use-context "kind-$cluster" >&2

echo "export E2E_REGISTRY=kind-registry:5000"
echo "export E2E_PUSH_REGISTRY=localhost:5001"
echo "export VOUCH_IMAGE=vouch:e2e"
