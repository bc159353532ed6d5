#!/usr/bin/env bash
# Install what vouch's demo and tests need on a fresh Debian machine (idempotent).
# - docker-registry: the CNCF distribution registry, started on loopback by the tests and the demo.
# - redis-server: Redis, started on loopback by the shared verdict cache's tests and the cold-storm bench
#   (tests/src/redis_server.rs; only the binary is used, the package's own service is not needed).
# - python-tuf (PyPI `tuf`): builds the TUF repositories vouch's TUF client is tested against
#   (attest/tests/tuf/repo.py), imported by the `python3` on PATH.
# - umoci, skopeo, jq, openssl, curl: scripts/image.sh builds, pushes and describes vouch's image without a
#   Docker engine; scripts/image-test.sh checks it (Debian packages).
# - cargo-cyclonedx (crates.io, pinned): the CycloneDX SBOM of vouch's crates in the image.
# - cloudevents (PyPI, pinned): the CloudEvents SDK receiver of the --events-sink test.
# - opentelemetry-proto and protobuf (PyPI, pinned): the OTLP/HTTP receiver of the --otlp-endpoint test.
# - the MCP Inspector (npm `@modelcontextprotocol/inspector`, pinned; Node.js from Debian if missing): the real
#   MCP client `vouch mcp` is tested with, in ~/.cache/vouch-tools/mcp-inspector.
set -euo pipefail

need=()
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
for tool in umoci skopeo jq openssl curl node npm; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  pkgs=()
  for p in "${need[@]}"; do [ "$p" = node ] && pkgs+=(nodejs) || pkgs+=("$p"); done
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust toolchain) is required" >&2; exit 2; }
CARGO_CYCLONEDX_VERSION=0.5.9
if ! cargo cyclonedx --version 2>/dev/null | grep -qx ".* $CARGO_CYCLONEDX_VERSION"; then
  echo "setup: installing cargo-cyclonedx $CARGO_CYCLONEDX_VERSION from crates.io" >&2
  cargo install -q --locked --version "$CARGO_CYCLONEDX_VERSION" cargo-cyclonedx
fi
if ! python3 -c 'import tuf.api.metadata, securesystemslib.signer' 2>/dev/null; then
  echo "setup: installing python-tuf from PyPI" >&2
  # Into the python3 the tests run: its own site if writable (venv, pyenv), else the user site; a system
  # Python marked "externally managed" (PEP 668) needs --break-system-packages for the user site.
  python3 -m pip install -q --disable-pip-version-check tuf 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --user tuf 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --user --break-system-packages tuf
  python3 -c 'import tuf.api.metadata, securesystemslib.signer'
fi
# The CloudEvents Python SDK (PyPI `cloudevents`, 2.x API): the receiver webhooks/tests/cloudevents.rs sends
# vouch's decision events to.
CLOUDEVENTS_VERSION=2.2.0
if ! python3 -c 'import cloudevents.core.bindings.http' 2>/dev/null; then
  echo "setup: installing cloudevents $CLOUDEVENTS_VERSION from PyPI" >&2
  python3 -m pip install -q --disable-pip-version-check "cloudevents==$CLOUDEVENTS_VERSION" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --user "cloudevents==$CLOUDEVENTS_VERSION" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --user --break-system-packages "cloudevents==$CLOUDEVENTS_VERSION"
  python3 -c 'import cloudevents.core.bindings.http'
fi
# OpenTelemetry's protobuf bindings (PyPI `opentelemetry-proto`, with `protobuf`): the OTLP/HTTP receiver
# webhooks/tests/otlp_traces.rs exports vouch's traces to decodes ExportTraceServiceRequest with them.
OTEL_PROTO_VERSION=1.45.2
PROTOBUF_VERSION=7.36.2
if ! python3 -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
  echo "setup: installing opentelemetry-proto $OTEL_PROTO_VERSION and protobuf $PROTOBUF_VERSION from PyPI" >&2
  otel=("opentelemetry-proto==$OTEL_PROTO_VERSION" "protobuf==$PROTOBUF_VERSION")
  python3 -m pip install -q --disable-pip-version-check "${otel[@]}" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --user "${otel[@]}" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --user --break-system-packages "${otel[@]}"
  python3 -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2'
fi
# 0.15.0: the newest Inspector that runs on Node.js 20 (later ones need Node >= 22.7.5).
MCP_INSPECTOR_VERSION=0.15.0
MCP_INSPECTOR_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/vouch-tools/mcp-inspector"
if ! grep -qs "\"version\": \"$MCP_INSPECTOR_VERSION\"" "$MCP_INSPECTOR_DIR/node_modules/@modelcontextprotocol/inspector/package.json"; then
  echo "setup: installing the MCP Inspector $MCP_INSPECTOR_VERSION from npm" >&2
  mkdir -p "$MCP_INSPECTOR_DIR"
  npm install --silent --no-save --no-fund --no-audit --prefix "$MCP_INSPECTOR_DIR" \
    "@modelcontextprotocol/inspector@$MCP_INSPECTOR_VERSION" >/dev/null
  [ -x "$MCP_INSPECTOR_DIR/node_modules/.bin/mcp-inspector" ]
fi
