#!/usr/bin/env bash
# Build vouch's container image without a Docker engine, reproducibly, as an OCI image layout; write its
# CycloneDX SBOM and SLSA provenance; optionally push it with skopeo and sign it with vouch's own
# cosign-compatible signer (`vouch sign`, `vouch attest`, `vouch attach sbom`). docs/operations.md, "The vouch
# image", says how to verify what this publishes.
#
#   scripts/image.sh [--binary PATH] [--out DIR] [--tag TAG]
#                    [--push REGISTRY/REPOSITORY [--key KEY.pem] [--insecure-registry]]
#
#   --binary PATH   the vouch binary to ship (default: `cargo build --release --locked`, target/release/vouch)
#   --out DIR       where the layout and documents go (default: target/image; emptied first)
#   --tag TAG       the tag in the layout and the registry (default: the version in webhooks/Cargo.toml)
#   --push REPO     copy the image to REPO:TAG with skopeo (`--all --preserve-digests`: the same digests)
#   --key KEY.pem   after the push: sign the image, attest the SLSA provenance and the SBOM, attach the SBOM,
#                   with this unencrypted PKCS#8 P-256 key (`openssl genpkey -algorithm EC -pkeyopt
#                   ec_paramgen_curve:P-256`). Nothing goes to a transparency log: verify with
#                   `--insecure-ignore-tlog`. Releases sign keyless with cosign (.github/workflows/release.yml).
#   --insecure-registry   the registry speaks plain HTTP (a loopback test registry)
#
# Outputs in DIR: oci/ (the image layout: index.json names TAG, an image index listing one linux/amd64
# manifest), digest (the image index's digest), sbom.cdx.json (CycloneDX 1.5: vouch's crates and the
# Debian packages copied in), provenance.json (an SLSA v1 predicate).
#
# Reproducible: the same binary, Debian packages, commit and SOURCE_DATE_EPOCH (default: the commit's time)
# give the same digest (every timestamp is SOURCE_DATE_EPOCH; umoci writes sorted tar entries with numeric
# owners). Multi-arch cannot be built here (one machine, no emulation): the index lists linux/amd64 only, and
# the release workflow builds arm64 on an arm64 runner and adds it to the index.
#
# Needs (Debian): umoci, skopeo (for --push), jq, cargo-cyclonedx (crates.io); the file tree is made by
# scripts/image-rootfs.sh, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
out=target/image
tag=""
push=""
key=""
insecure=false
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --push) push=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --insecure-registry) insecure=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "image.sh: run as root (umoci unpacks and packs files owned by 0 and 65532)" >&2; exit 2; }
[ -z "$key" ] || [ -n "$push" ] || { echo "image.sh: --key signs what --push published; give --push" >&2; exit 2; }
for tool in umoci jq cargo-cyclonedx; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is required (bash scripts/setup.sh installs it)" >&2; exit 2; }
done
[ -z "$push" ] || command -v skopeo >/dev/null || { echo "image.sh: skopeo is required for --push" >&2; exit 2; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$tag" ] || tag=$version
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "image.sh: warning: the work tree has uncommitted changes; labels and provenance name $revision" >&2
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
source_uri=${VOUCH_SOURCE_URI:-https://github.com/vouch-dev/vouch}
builder_id=${VOUCH_BUILDER_ID:-$source_uri/scripts/image.sh}
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

if [ -z "$binary" ]; then
  cargo build --release --locked -q -p vouch-webhooks --bin vouch
  binary=${CARGO_TARGET_DIR:-target}/release/vouch
fi
binary=$(readlink -f "$binary")
case "$(dpkg --print-architecture)" in
  amd64) arch=amd64 ;;
  arm64) arch=arm64 ;;
  *) echo "image.sh: unsupported architecture $(dpkg --print-architecture)" >&2; exit 2 ;;
esac

if [ -e "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/digest" ] && [ ! -d "$out/oci" ]; then
  echo "image.sh: $out holds something else than an earlier image.sh output; give another --out" >&2; exit 2
fi
rm -rf "$out"
mkdir -p "$out"
out=$(readlink -f "$out")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$out/oci

# 1. An empty image with the fixed creation time, unpacked into a bundle whose rootfs is the file tree.
umoci init --layout "$layout"
umoci new --image "$layout:build"
umoci unpack --image "$layout:build" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs"
bash scripts/image-rootfs.sh "$binary" "$work/bundle/rootfs"
find "$work/bundle/rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# 2. One layer (umoci walks the tree in name order; numeric owners; no atime/ctime), then the config.
# (umoci warns that a layer without a history entry confuses some tools: the entry would hold a build time.)
umoci repack --image "$layout:build" --no-history "$work/bundle" 2>"$work/umoci.log" \
  || { cat "$work/umoci.log" >&2; exit 1; }
umoci config --image "$layout:build" --tag "$arch" --no-history \
  --created "$created" --architecture "$arch" --os linux \
  --config.user 65532:65532 --config.workingdir / \
  --config.entrypoint /vouch --config.cmd serve --config.cmd --help \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.exposedports 8443/tcp --config.exposedports 8080/tcp \
  --config.label "org.opencontainers.image.source=$source_uri" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.licenses=Apache-2.0" \
  --config.label "org.opencontainers.image.created=$created"

# 3. An image index over the platform manifests (one here), named TAG in the layout's index.json.
blob() { echo "$layout/blobs/sha256/${1#sha256:}"; }
manifest=$(jq -c --arg tag "$arch" '.manifests[] | select(.annotations."org.opencontainers.image.ref.name" == $tag)' "$layout/index.json")
image_index=$(jq -n -c --argjson m "$manifest" --arg arch "$arch" '{
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [{mediaType: $m.mediaType, digest: $m.digest, size: $m.size,
               platform: {architecture: $arch, os: "linux"}}]
}')
printf '%s' "$image_index" > "$work/index.json"
digest=sha256:$(sha256sum "$work/index.json" | cut -d' ' -f1)
size=$(stat -c %s "$work/index.json")
mv "$work/index.json" "$(blob "$digest")"
jq -n -c --arg d "$digest" --argjson s "$size" --arg tag "$tag" '{
  schemaVersion: 2,
  manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
               annotations: {"org.opencontainers.image.ref.name": $tag}}]
}' > "$layout/index.json"
umoci gc --layout "$layout"
echo "$digest" > "$out/digest"

# 4. The SBOM: vouch's crates (cargo-cyclonedx: the dependency graph of the vouch-webhooks package for this
# target, build and dev dependencies left out) plus the Debian packages copied into the image.
cargo cyclonedx --manifest-path webhooks/Cargo.toml --format json --spec-version 1.5 \
  --target "$(rustc -vV | sed -n 's/^host: //p')" --no-build-deps --override-filename vouch-sbom -q
# It writes one file per workspace member; the vouch-webhooks one is kept. bom-refs name the checkout's path:
# made relative, so the SBOM does not depend on where the source was checked out.
mv webhooks/vouch-sbom.json "$work/crates.cdx.json"
find . -mindepth 2 -maxdepth 2 -name vouch-sbom.json -not -path './target/*' -delete
for status in "$work"/bundle/rootfs/var/lib/dpkg/status.d/*; do
  awk -F': ' '/^Package:/ {p=$2} /^Version:/ {v=$2} /^Architecture:/ {a=$2}
              END {printf "%s\t%s\t%s\n", p, v, a}' "$status"
done > "$work/debs.tsv"
jq --rawfile debs "$work/debs.tsv" --arg root "$PWD" --arg created "$created" --arg digest "$digest" --arg tag "$tag" '
  ($debs | split("\n") | map(select(length > 0) | split("\t"))) as $rows
  | walk(if type == "string" and startswith("path+file://" + $root) then "path+file://." + ltrimstr("path+file://" + $root) else . end)
  | .metadata.timestamp = $created
  | .serialNumber = ("urn:uuid:" + ($digest[7:15] + "-" + $digest[15:19] + "-5" + $digest[20:23] + "-8" + $digest[24:27] + "-" + $digest[27:39]))
  | .components += [$rows[] | {
      type: "library", "bom-ref": ("pkg:deb/debian/" + .[0] + "@" + .[1] + "?arch=" + .[2]),
      name: .[0], version: .[1], purl: ("pkg:deb/debian/" + .[0] + "@" + .[1] + "?arch=" + .[2]),
      properties: [{name: "vouch:image", value: ("copied into the vouch image " + $tag + " (" + $digest + ")")}]
    }]
  | .components |= sort_by(.purl // .name)' "$work/crates.cdx.json" > "$out/sbom.cdx.json"

# 5. SLSA v1 provenance: who built what from which source, with which inputs.
lock_digest=$(sha256sum Cargo.lock | cut -d' ' -f1)
binary_digest=$(sha256sum "$binary" | cut -d' ' -f1)
sbom_digest=$(sha256sum "$out/sbom.cdx.json" | cut -d' ' -f1)
jq -n --rawfile debs "$work/debs.tsv" \
  --arg build_type "$source_uri/blob/main/scripts/image.sh" --arg source "git+$source_uri" \
  --arg revision "$revision" --arg tag "$tag" --arg sde "$SOURCE_DATE_EPOCH" --arg arch "$arch" \
  --arg builder "$builder_id" --arg started "$started" --arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg rustc "$(rustc -V)" --arg umoci "$(umoci --version)" --arg lock "$lock_digest" \
  --arg bin "$binary_digest" --arg sbom "$sbom_digest" --arg invocation "${VOUCH_INVOCATION_ID:-}" '{
  buildDefinition: {
    buildType: $build_type,
    externalParameters: {source: $source, revision: $revision, tag: $tag, sourceDateEpoch: ($sde | tonumber),
                         platforms: ["linux/" + $arch]},
    internalParameters: {rustc: $rustc, umoci: $umoci},
    resolvedDependencies: ([{uri: ($source + "@" + $revision), digest: {gitCommit: $revision}},
                            {uri: "file:Cargo.lock", digest: {sha256: $lock}}]
      + [$debs | split("\n")[] | select(length > 0) | split("\t")
         | {uri: ("pkg:deb/debian/" + .[0] + "@" + .[1] + "?arch=" + .[2])}])
  },
  runDetails: {
    builder: {id: $builder},
    metadata: ({startedOn: $started, finishedOn: $finished}
               + (if $invocation == "" then {} else {invocationId: $invocation} end)),
    byproducts: [{name: "vouch", digest: {sha256: $bin}}, {name: "sbom.cdx.json", digest: {sha256: $sbom}}]
  }
}' > "$out/provenance.json"

echo "image: $layout:$tag $digest"
[ -n "$push" ] || exit 0

# 6. Publish with the same digests, then sign and attest with vouch's own signer.
tls=()
registry_flags=()
if $insecure; then
  tls=(--dest-tls-verify=false)
  registry_flags=(--insecure-registry "${push%%/*}")
fi
skopeo copy -q --all --preserve-digests "${tls[@]}" "oci:$layout:$tag" "docker://$push:$tag"
echo "pushed: $push:$tag@$digest"
[ -n "$key" ] || exit 0
vouch=${VOUCH:-$binary}
image="$push@$digest"
"$vouch" sign --key "$key" -a "tag=$tag" -a "revision=$revision" "${registry_flags[@]}" "$image"
"$vouch" attest --key "$key" --type slsaprovenance1 --predicate "$out/provenance.json" "${registry_flags[@]}" "$image"
"$vouch" attest --key "$key" --type cyclonedx --predicate "$out/sbom.cdx.json" "${registry_flags[@]}" "$image"
"$vouch" attach sbom --sbom "$out/sbom.cdx.json" "${registry_flags[@]}" "$image"
