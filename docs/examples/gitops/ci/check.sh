#!/usr/bin/env bash
# CI gate: render the manifests exactly as they will be applied and check them with vouch before they are
# merged or synced. Exit 0: clean; 1: violations; 2: the manifests, the policies or the flags are wrong.
#
#   docs/examples/gitops/ci/check.sh [APP_DIR] [POLICY_DIR]
#
# RENDER renders APP_DIR to stdout: `kubectl kustomize` (default), `kustomize build`, or
# `helm template my-release ./chart -f values-prod.yaml --namespace shop` (set RENDER to the whole command
# and APP_DIR to "").
# VOUCH is the vouch binary (default: vouch on PATH); VOUCH_CHECK_ARGS adds flags (e.g. --output sarif).
set -euo pipefail

APP_DIR="${1-docs/examples/gitops/app/overlays/prod}"
POLICY_DIR="${2:-docs/examples/gitops/policies}"
RENDER="${RENDER:-kubectl kustomize}"
VOUCH="${VOUCH:-vouch}"

# pipefail: a failed render fails the step; vouch check also refuses an empty input (exit 2).
# shellcheck disable=SC2086 # RENDER and VOUCH_CHECK_ARGS are word-split on purpose.
$RENDER $APP_DIR | "$VOUCH" check -f - --policy "$POLICY_DIR" ${VOUCH_CHECK_ARGS:-}
