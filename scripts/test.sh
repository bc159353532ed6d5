#!/usr/bin/env bash
# Run every test: unit tests, integration tests against a real registry on loopback, the Sigstore
# conformance cases. Needs ../shared/testdata (or VOUCH_TESTDATA) for the independently produced material.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets "$@"
