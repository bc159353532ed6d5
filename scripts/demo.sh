#!/usr/bin/env bash
# The local demo: start a registry on loopback, push an image, sign it with a fresh key, and verify it
# (then show what a tampered or unsigned image looks like). See `vouch demo --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -q -p vouch-webhooks --bin vouch
exec ./target/release/vouch demo "$@"
