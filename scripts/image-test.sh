#!/usr/bin/env bash
# The vouch image, end to end (issue #20): build it with scripts/image.sh from the release binary, push it to a
# real registry on loopback (Debian's docker-registry) and sign it with a fresh key; verify the signature,
# the SLSA provenance and the SBOM with `vouch verify --key`; check the SBOM lists vouch's crates and the
# Debian packages; pull the image back, unpack it and run `/vouch --version` and `/vouch serve --help` in it
# as uid 65532 on a read-only root (unshare + chroot, so as root); build it again and compare digests.
# Ends with "image: N passed, 0 failed". Needs root, and what scripts/setup.sh installs.
# VOUCH_IMAGE_BINARY=path: test an image of that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "image-test: needs root (chroot, unshare, files owned by 65532)" >&2; exit 2; }

passed=0
pass() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { echo "FAILED: $1" >&2; echo "image: $passed passed, 1 failed"; exit 1; }

tmp=$(mktemp -d)
registry_pid=""
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The release binary, as releases ship it (VOUCH_IMAGE_BINARY: another build, e.g. a debug one while
# working on this script).
if [ -n "${VOUCH_IMAGE_BINARY:-}" ]; then
  vouch=$(readlink -f "$VOUCH_IMAGE_BINARY")
else
  build_start=$(date +%s)
  cargo build --release --locked -q -p vouch-webhooks --bin vouch
  echo "release build: $(( $(date +%s) - build_start ))s"
  vouch=$(readlink -f "${CARGO_TARGET_DIR:-target}/release/vouch")
fi

# A registry on a free loopback port, as vouch_webhooks::dev_registry starts it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/registry"
cat > "$tmp/registry/config.yml" <<EOF
version: 0.1
log: {level: info, formatter: text}
storage:
  filesystem: {rootdirectory: $tmp/registry/storage}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: vouch-image-test-$port}
EOF
# REGISTRY_* variables would override the configuration: none reach the registry.
unset_registry_env=()
for name in $(compgen -e | grep '^REGISTRY_' || true); do unset_registry_env+=(-u "$name"); done
env "${unset_registry_env[@]}" docker-registry serve "$tmp/registry/config.yml" > "$tmp/registry/log" 2>&1 &
registry_pid=$!
host=127.0.0.1:$port
for _ in $(seq 100); do
  curl -fsS "http://$host/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$host/v2/" >/dev/null || { cat "$tmp/registry/log" >&2; fail "registry did not start"; }

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/key.pem" 2>/dev/null
openssl pkey -in "$tmp/key.pem" -pubout -out "$tmp/key.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | openssl pkey -pubout -out "$tmp/other.pub"

# 1. Build, push, sign, attest, attach.
start=$(date +%s)
VOUCH_BUILDER_ID=https://github.com/vouch-dev/vouch/.github/workflows/release.yml@refs/tags/v0.0.0 \
  bash scripts/image.sh --binary "$vouch" --out "$tmp/a" --tag test \
  --push "$host/vouch" --key "$tmp/key.pem" --insecure-registry
echo "image build + push + sign: $(( $(date +%s) - start ))s"
digest=$(cat "$tmp/a/digest")
image="$host/vouch@$digest"
[ "$(skopeo inspect --raw --tls-verify=false "docker://$host/vouch:test" | sha256sum | cut -d' ' -f1)" = "${digest#sha256:}" ] \
  || fail "the registry's vouch:test is not the layout's index $digest"
[ "$(skopeo inspect --raw --tls-verify=false "docker://$image" | jq -r .mediaType)" = application/vnd.oci.image.index.v1+json ] \
  || fail "the image is not an image index"
pass "image index $digest built and pushed with its digest unchanged"

# 2. vouch verifies what it published (key signatures carry no Rekor entry: --insecure-ignore-tlog).
verify() { "$vouch" verify "$image" --insecure-registry "$host" --insecure-ignore-tlog "$@"; }
verify --key "$tmp/key.pub" > "$tmp/verify.txt" || fail "vouch verify --key: $(cat "$tmp/verify.txt")"
grep -q "signature by key" "$tmp/verify.txt" || fail "no key signature in: $(cat "$tmp/verify.txt")"
pass "vouch verify --key accepts the signature"
if verify --key "$tmp/other.pub" > /dev/null 2>&1; then fail "another key verified the image"; fi
pass "vouch verify --key refuses another key"
verify --key "$tmp/key.pub" --require attestation:https://slsa.dev/provenance/v1 >/dev/null \
  || fail "no verified SLSA v1 provenance"
pass "SLSA provenance attestation verifies"
verify --key "$tmp/key.pub" --require sbom --output json > "$tmp/sbom-verdict.json" || fail "no verified SBOM"
components=$(jq '.components | length' "$tmp/a/sbom.cdx.json")
jq -e --argjson n "$components" '.outcome.Ok.sbom.component_count == $n and .outcome.Ok.sbomSource.signer.kind == "key"' \
  "$tmp/sbom-verdict.json" >/dev/null \
  || fail "the verified SBOM is not the built one ($components components), signed: $(cat "$tmp/sbom-verdict.json")"
pass "SBOM verifies: the signed CycloneDX attestation, schema-valid, $components components"

# 3. The attached SBOM (cosign's .sbom tag) as the registry serves it: vouch's crates and Debian packages.
sbom_tag="sha256-${digest#sha256:}.sbom"
layer=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$host/v2/vouch/manifests/$sbom_tag" | jq -r '.layers[0].digest')
curl -fsS "http://$host/v2/vouch/blobs/$layer" > "$tmp/attached.cdx.json"
cmp -s "$tmp/attached.cdx.json" "$tmp/a/sbom.cdx.json" || fail "the attached SBOM differs from the built one"
names=$(jq -r '.components[].name' "$tmp/attached.cdx.json")
for crate in vouch-attest vouch-policies kube rustls aws-lc-rs tokio libc6 libgcc-s1 ca-certificates; do
  grep -qx "$crate" <<<"$names" || fail "the SBOM does not list $crate"
done
jq -e '.metadata.component.name == "vouch-webhooks"' "$tmp/attached.cdx.json" >/dev/null \
  || fail "the SBOM is not about vouch-webhooks"
pass "attached SBOM lists vouch's crates and the Debian packages in the image"

# 4. Pull the platform image back, unpack it, run it as the chart does: uid 65532, read-only root, no shell.
skopeo copy -q --src-tls-verify=false "docker://$image" "oci:$tmp/pulled:vouch"
umoci unpack --image "$tmp/pulled:vouch" "$tmp/bundle" >/dev/null
root=$tmp/bundle/rootfs
[ ! -e "$root/bin/sh" ] && [ ! -e "$root/usr/bin/apt" ] || fail "the image has a shell or a package manager"
jq -e '.process.user.uid == 65532 and .process.user.gid == 65532 and .process.args == ["/vouch","serve","--help"]' \
  "$tmp/bundle/config.json" >/dev/null || fail "the image config does not run /vouch as 65532"
pass "image config: /vouch as 65532:65532, no shell"
in_image() {
  # A private mount namespace whose view of the root is read-only, then chroot as 65532.
  unshare --mount --fork -- sh -c '
    root=$1; shift
    mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" || exit 90
    if touch "$root/written" 2>/dev/null; then exit 91; fi
    exec chroot --userspec=65532:65532 "$root" "$@"' sh "$root" "$@"
}
in_image /vouch --version > "$tmp/version.txt" || fail "/vouch --version failed in the image ($?)"
grep -q "^vouch $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)$" "$tmp/version.txt" \
  || fail "unexpected version: $(cat "$tmp/version.txt")"
pass "/vouch --version as 65532 on a read-only root: $(cat "$tmp/version.txt")"
in_image /vouch serve --help > "$tmp/serve-help.txt" || fail "/vouch serve --help failed in the image"
grep -q -- "--tls-cert" "$tmp/serve-help.txt" || fail "serve --help printed no --tls-cert"
pass "/vouch serve --help as 65532 on a read-only root"

# 5. Reproducible: the same inputs give the same digest.
bash scripts/image.sh --binary "$vouch" --out "$tmp/b" --tag test
[ "$(cat "$tmp/b/digest")" = "$digest" ] || fail "rebuilt digest $(cat "$tmp/b/digest") differs from $digest"
pass "a second build gives the same digest $digest"
SOURCE_DATE_EPOCH=$(( $(git log -1 --format=%ct) + 1 )) bash scripts/image.sh --binary "$vouch" --out "$tmp/c" --tag test
[ "$(cat "$tmp/c/digest")" != "$digest" ] || fail "a build with another SOURCE_DATE_EPOCH gave the same digest"
pass "another SOURCE_DATE_EPOCH gives another digest"

# 6. vouch admits itself: the release policy (docs/examples/vouch-image), with this test's key standing in for
# the release workflow's keyless identity, passes the chart rendered with this image's digest (`vouch check`:
# the webhook's decisions); with another key it does not.
helm=${HELM:-${VOUCH_TOOLS_CACHE:-$HOME/.cache/vouch-tools}/helm/helm}
[ -x "$helm" ] || fail "no Helm at $helm (scripts/chart-test.sh fetches it; scripts/test.sh runs that first)"
"$helm" template vouch charts/vouch --set image.repository="$host/vouch" --set image.digest="$digest" \
  > "$tmp/chart.yaml"
grep -q "image: \"$image\"" "$tmp/chart.yaml" || fail "the rendered chart does not run $image"
policy_with_key() {
  # The authorities block of the release policy replaced by a key authority; images: the test repository.
  awk -v key="$1" -v repo="$host/vouch" '
    /^  images:/ { print "  images: [\"" repo "\"]"; next }
    /^  authorities:/ { print; print "    - name: test-key"; print "      key:"; print "        requireTlog: false";
                        print "        pem: |"; while ((getline line < key) > 0) print "          " line; skip = 1; next }
    /^  [a-z]/ { skip = 0 }
    !skip' docs/examples/vouch-image/vouch-release-policy.yaml
}
policy_with_key "$tmp/key.pub" > "$tmp/policy.yaml"
grep -q "subjectRegExp" "$tmp/policy.yaml" && fail "the keyless authority was not replaced"
check() { "$vouch" check -f "$tmp/chart.yaml" --policy "$1" --insecure-registry "$host" --no-match allow; }
check "$tmp/policy.yaml" > "$tmp/check.txt" 2>&1 || fail "vouch check denied its own image: $(cat "$tmp/check.txt")"
sed "s/^/  check: /" "$tmp/check.txt"
grep -q "policy vouch-release: attestation https://slsa.dev/provenance/v1: verified against key test-key; condition met" "$tmp/check.txt" \
  || fail "the release policy's builder condition was not met: $(cat "$tmp/check.txt")"
pass "the release policy (key stand-in) admits the chart's Deployment of this image"
policy_with_key "$tmp/other.pub" > "$tmp/policy-other.yaml"
if check "$tmp/policy-other.yaml" > "$tmp/check-other.txt" 2>&1; then fail "another key's policy admitted the image"; fi
grep -q "signature" "$tmp/check-other.txt" || fail "unexpected denial: $(cat "$tmp/check-other.txt")"
pass "with another key the chart is denied"

# 7. The Dockerfile makes its runtime tree with the same script and timestamps (no Docker engine here to run
# it): that tree, made as its build stage makes it, is the one unpacked from the pushed image, file by file.
grep -q 'bash scripts/image-rootfs.sh /vouch /rootfs' Dockerfile && grep -q '^COPY --from=build /rootfs /$' Dockerfile \
  || fail "the Dockerfile does not build its runtime tree with scripts/image-rootfs.sh"
bash scripts/image-rootfs.sh "$vouch" "$tmp/docker-rootfs"
find "$tmp/docker-rootfs" -exec touch -h -d "@$(git log -1 --format=%ct)" {} +
tree() { (cd "$1" && find . -printf '%p %M %U:%G %s %T@\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }
tree "$tmp/docker-rootfs" > "$tmp/docker-tree.txt"
tree "$root" > "$tmp/image-tree.txt"
diff "$tmp/docker-tree.txt" "$tmp/image-tree.txt" >&2 || fail "the image's tree differs from the Dockerfile's"
pass "the Dockerfile's runtime tree is the image's: $(grep -c . "$tmp/docker-tree.txt") lines of paths, modes, owners, sizes, times, hashes"

echo "image: $passed passed, 0 failed"
