#!/usr/bin/env bash
# libFuzzer targets of fuzz/, built and run with the stable toolchain: no cargo-fuzz, no nightly, no
# sanitizer. rustc's SanitizerCoverage pass (the flags cargo-fuzz passes) gives libFuzzer its coverage
# feedback; panics abort and are reported as crashes; debug assertions and overflow checks are on.
#
#   bash scripts/fuzz.sh build                   build every target (release, instrumented)
#   bash scripts/fuzz.sh run TARGET SECONDS [libFuzzer args...]
#                                                fuzz one target; new inputs go to the work corpus
#   bash scripts/fuzz.sh smoke [SECONDS]         every target for SECONDS (default 5) from the committed
#                                                corpus; fails on any crash, timeout or out-of-memory
#   bash scripts/fuzz.sh seed                    copy seeds from the test data into the work corpora
#   bash scripts/fuzz.sh merge TARGET            minimize committed + work corpus into fuzz/corpus/TARGET
#   bash scripts/fuzz.sh list                    the targets
#
# Environment: FUZZ_TARGET_DIR (default fuzz/target) holds the build, the work corpora (corpus/TARGET)
# and the logs; crash inputs are written to fuzz/artifacts/TARGET/. VOUCH_TESTDATA: the test material.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
testdata="${VOUCH_TESTDATA:-$(cd .. && pwd)/shared/testdata}"
triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$CARGO_TARGET_DIR/$triple/release"

# Target and the largest input it is given (seeds are as large as the real documents they stand for).
declare -A max_len=(
  [admission_review]=65536
  [manifests]=65536
  [policy_set]=32768
  [sigstore_bundle]=32768
  [dsse_envelope]=16384
  [oci_manifest]=16384
  [cyclonedx]=131072
  [offline_bundle]=65536
  [rego_input]=16384
  [egress_allowlist]=8192
  [notation_jws]=32768
  [notation_cose]=32768
)
targets=(admission_review manifests policy_set sigstore_bundle dsse_envelope oci_manifest cyclonedx
  offline_bundle rego_input egress_allowlist notation_jws notation_cose)

die() { echo "fuzz.sh: $*" >&2; exit 2; }
known() { [[ -n "${max_len[$1]:-}" ]] || die "unknown target $1 (one of: ${targets[*]})"; }

build() {
  # Instrument only what runs in the target (--target keeps build scripts and proc macros plain, as
  # cargo-fuzz does). Not --locked: fuzz/Cargo.lock follows the vouch crates' dependencies as they change.
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
}

# Run one target; prints one summary line; returns non-zero on a crash, timeout or OOM.
#   fuzz TARGET SECONDS WORK_DIR [libFuzzer args...]
fuzz() {
  local t=$1 secs=$2 work=$3
  shift 3
  known "$t"
  [[ -x "$bin/$t" ]] || die "$bin/$t is not built (run: bash scripts/fuzz.sh build)"
  local log="$CARGO_TARGET_DIR/logs/$t.log" artifacts="$root/fuzz/artifacts/$t/"
  mkdir -p "$work" "$artifacts" "$root/fuzz/corpus/$t" "$(dirname "$log")"
  local rc=0
  "$bin/$t" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len="${max_len[$t]}" \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts" "$@" \
    "$work" "$root/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  summarize "$t" "$log" "$work" "$rc"
  return "$rc"
}

summarize() {
  local t=$1 log=$2 work=$3 rc=$4
  local execs rate cov ft corpus result
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  result=ok
  if [[ $rc -ne 0 ]]; then
    if grep -q 'ALARM: working on the last Unit\|libFuzzer: timeout' "$log"; then result=TIMEOUT
    elif grep -q 'out-of-memory' "$log"; then result=OOM
    elif grep -q 'deadly signal\|panicked' "$log"; then result=CRASH
    else result="FAILED(rc=$rc)"
    fi
    result="$result $(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/Test unit written to //' || true)"
  fi
  printf '%-17s execs=%-9s exec/s=%-6s cov=%-6s ft=%-6s corpus=%-5s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$result"
  if [[ $rc -ne 0 ]]; then
    echo "---- $log (last 40 lines)"
    tail -40 "$log"
  fi
}

# Seeds: the independent test material, the project's fixtures and examples.
seed() {
  local w="$CARGO_TARGET_DIR/corpus"
  mkdir -p "${targets[@]/#/$w/}"
  local td="$testdata"
  [[ -f "$td/README.md" ]] || die "no test material at $td (set VOUCH_TESTDATA)"
  cp webhooks/tests/data/admission/*.json "$w/admission_review/"
  for f in $(find docs/examples charts/vouch/crds charts/vouch/ci e2e -name '*.yaml' -o -name '*.yml' -o -name '*.json' 2>/dev/null); do
    cp "$f" "$w/manifests/$(echo "$f" | tr / _)"
    cp "$f" "$w/policy_set/$(echo "$f" | tr / _)"
  done
  # Documented YAML blocks (policies, profiles, manifests).
  python3 - "$w" docs/*.md <<'EOF'
import re, sys, pathlib
out = pathlib.Path(sys.argv[1])
for doc in sys.argv[2:]:
    text = open(doc).read()
    for i, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", text, re.S)):
        name = f"{pathlib.Path(doc).stem}-{i}.yaml"
        for t in ("manifests", "policy_set"):
            (out / t / name).write_text(block)
    for i, block in enumerate(re.findall(r"```json\n(.*?)```", text, re.S)):
        name = f"{pathlib.Path(doc).stem}-{i}.json"
        for t in ("egress_allowlist", "rego_input", "oci_manifest"):
            (out / t / name).write_text(block)
EOF
  for d in "$td"/sigstore-conformance/bundle-verify/*/; do
    cp "$d/bundle.sigstore.json" "$w/sigstore_bundle/$(basename "$d").json"
    # The DSSE envelopes inside DSSE bundles, and their statements.
    python3 - "$d/bundle.sigstore.json" "$w" "$(basename "$d")" <<'EOF'
import base64, json, sys, pathlib
b = json.load(open(sys.argv[1])); out = pathlib.Path(sys.argv[2]); name = sys.argv[3]
env = b.get("dsseEnvelope")
if env:
    (out / "dsse_envelope" / f"{name}.json").write_text(json.dumps(env))
    try:
        stmt = base64.b64decode(env["payload"])
        (out / "dsse_envelope" / f"{name}-statement.json").write_bytes(stmt)
        (out / "rego_input" / f"{name}-predicate.json").write_text(json.dumps(json.loads(stmt).get("predicate")))
    except Exception:
        pass
EOF
  done
  cp "$td/model-signing/model.sig" "$w/sigstore_bundle/model-signing.json"
  python3 - "$td/model-signing/model.sig" "$w/dsse_envelope/model-signing.json" <<'EOF'
import json, sys
json.dump(json.load(open(sys.argv[1]))["dsseEnvelope"], open(sys.argv[2], "w"))
EOF
  cp "$td"/sbom/*.json "$w/cyclonedx/"
  # Notation envelopes (notation-go's test vectors, attest/tests/data/notation/README.md).
  local n=attest/tests/data/notation/envelopes
  cp "$n"/*_sig_env.json "$n"/jws*.sig "$n"/withoutTimestamp.sig "$w/notation_jws/"
  cp "$n"/cose*.sig "$w/notation_cose/"
  # Manifests and model configs: selector byte, manifest, NUL, config.
  python3 - "$w/oci_manifest" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
d = "sha256:" + "1" * 64
modelpack = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "application/vnd.cncf.model.manifest.v1+json",
  "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": d, "size": 2},
  "layers": [{"mediaType": "application/vnd.cncf.model.weight.v1.tar", "digest": d, "size": 10,
              "annotations": {"org.cncf.model.filepath": "model.safetensors"}}],
  "annotations": {"org.cncf.model.openness": "open"}}
mp_config = {"descriptor": {"name": "m", "licenses": ["MIT"]}, "config": {"format": "safetensors"},
  "modelfs": {"type": "layers", "diffIds": [d]}}
modelkit = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.kitops.modelkit.config.v1+json", "digest": d, "size": 2},
  "layers": [{"mediaType": "application/vnd.kitops.modelkit.model.v1.tar+gzip", "digest": d, "size": 10}]}
kitfile = {"manifestVersion": "1.0.0", "package": {"name": "m", "license": "Apache-2.0"},
  "model": {"name": "m", "path": "model.gguf", "format": "gguf"}}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 10,
                 "platform": {"architecture": "amd64", "os": "linux"}}]}
docker = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": d, "size": 2},
  "layers": [], "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1}}
for i, (name, m, c) in enumerate([("modelpack", modelpack, mp_config), ("modelkit", modelkit, kitfile),
                                   ("index", index, None), ("docker", docker, None)]):
    body = bytes([i + 1]) + json.dumps(m).encode() + (b"\0" + json.dumps(c).encode() if c else b"")
    (out / f"{name}.bin").write_bytes(body)
EOF
  # Egress allowlists: document, NUL, endpoints.
  printf '%s\0%s\n' '{"apiVersion":"vouch.dev/egress/v1","hosts":[{"host":"api.example.com","ports":[443]},{"host":"*.internal.example"}],"cidrs":[{"cidr":"10.0.0.0/8","ports":[5432]}]}' \
    $'api.example.com:443\n10.1.2.3:5432\nfoo.internal.example\n[2001:db8::1]:53' >"$w/egress_allowlist/example.bin"
  printf '%s\0%s\n' $'apiVersion: kars.dev/v1alpha1\nkind: EgressAllowlist\nmetadata:\n  name: research-agent\n  generation: 3\nspec:\n  endpoints:\n    - host: api.github.com\n      port: 443\n    - host: telegram.org\n      port: 443\n      protocol: tcp\n' \
    $'api.telegram.org:443\ntelegram.org\n10.1.2.3:443' >"$w/egress_allowlist/kars.bin"
  VOUCH_FUZZ_WRITE_SEEDS="$w/offline_bundle" "$bin/offline_bundle" -runs=0 >/dev/null 2>&1 \
    || die "offline_bundle could not write its seeds"
  for t in "${targets[@]}"; do echo "$t: $(ls "$w/$t" | wc -l) seeds"; done
}

merge() {
  local t=$1
  known "$t"
  local work="$CARGO_TARGET_DIR/corpus/$t" out="$root/fuzz/corpus/$t" tmp
  tmp=$(mktemp -d)
  mkdir -p "$work" "$out"
  "$bin/$t" -merge=1 -rss_limit_mb=2048 -max_len="${max_len[$t]}" -timeout=10 "$tmp" "$out" "$work" \
    >"$CARGO_TARGET_DIR/logs/$t.merge.log" 2>&1 || { tail -20 "$CARGO_TARGET_DIR/logs/$t.merge.log"; exit 1; }
  rm -rf "$out"
  mv "$tmp" "$out"
  echo "$t: $(ls "$out" | wc -l) inputs, $(du -sk "$out" | cut -f1) KiB"
}

cmd=${1:-}
case "$cmd" in
  build) build ;;
  list) printf '%s\n' "${targets[@]}" ;;
  seed) seed ;;
  merge) [[ $# -eq 2 ]] || die "usage: merge TARGET"; merge "$2" ;;
  run)
    [[ $# -ge 3 ]] || die "usage: run TARGET SECONDS [libFuzzer args...]"
    t=$2 secs=$3
    shift 3
    fuzz "$t" "$secs" "$CARGO_TARGET_DIR/corpus/$t" "$@"
    ;;
  smoke)
    secs=${2:-5}
    failed=0
    for t in "${targets[@]}"; do
      # A scratch work corpus: the smoke run starts from the committed corpus and keeps nothing.
      scratch=$(mktemp -d)
      fuzz "$t" "$secs" "$scratch" || failed=$((failed + 1))
      rm -rf "$scratch"
    done
    [[ $failed -eq 0 ]] || { echo "fuzz smoke: $failed target(s) failed"; exit 1; }
    echo "fuzz smoke: ${#targets[@]} targets ok"
    ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; [[ -z "$cmd" ]] || exit 2 ;;
esac
