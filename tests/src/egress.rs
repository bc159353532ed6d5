//! Egress allowlists for integration tests: built from a short description, pushed and signed with
//! vouch's own code (key or keyless), plus the malformed artifacts and at-rest tampering that negative
//! tests need.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use vouch_attest::cosign;
use vouch_attest::egress::{self, Allowlist, API_VERSION};
use vouch_attest::registry::{RegistryClient, OCI_EMPTY, OCI_MANIFEST};
use vouch_attest::{ArtifactRef, Digest, SigningKey};

use crate::fake_sigstore::{FakeSigstore, Leaf};

/// An allowlist named `name` with `hosts` and `cidrs` (entry text, allowed ports; `None` = every port),
/// read through [`Allowlist::parse`] like any published one.
pub fn allowlist(
    name: &str,
    hosts: &[(&str, Option<&[u16]>)],
    cidrs: &[(&str, Option<&[u16]>)],
) -> anyhow::Result<Allowlist> {
    let entry = |key: &str, value: &str, ports: Option<&[u16]>| {
        let mut e = serde_json::json!({ key: value });
        if let Some(p) = ports {
            e["ports"] = serde_json::json!(p);
        }
        e
    };
    let doc = serde_json::json!({
        "apiVersion": API_VERSION,
        "name": name,
        "hosts": hosts.iter().map(|(h, p)| entry("host", h, *p)).collect::<Vec<_>>(),
        "cidrs": cidrs.iter().map(|(c, p)| entry("cidr", c, *p)).collect::<Vec<_>>(),
    });
    Ok(Allowlist::parse(&serde_json::to_vec(&doc)?)?)
}

/// Push `list` to `r` and sign the pushed manifest's digest with `key` (cosign `.sig` tag); returns
/// the digest reference.
pub async fn push_signed_with_key(
    client: &RegistryClient,
    r: &ArtifactRef,
    list: &Allowlist,
    key: &SigningKey,
) -> anyhow::Result<ArtifactRef> {
    let pinned = egress::push_allowlist(client, r, list).await?;
    cosign::sign_image_with_key(client, &pinned, key, BTreeMap::new()).await?;
    Ok(pinned)
}

/// Push `list` to `r` and sign it keylessly with `leaf` (certificate from the fake Fulcio; Rekor entry
/// integrated at `integrated_time` when given); returns the digest reference.
pub async fn push_signed_keyless(
    client: &RegistryClient,
    sigstore: &FakeSigstore,
    r: &ArtifactRef,
    list: &Allowlist,
    leaf: &Leaf,
    integrated_time: Option<i64>,
) -> anyhow::Result<ArtifactRef> {
    let pinned = egress::push_allowlist(client, r, list).await?;
    sigstore.sign_image(client, &pinned, leaf, integrated_time).await?;
    Ok(pinned)
}

/// Push an OCI manifest with the empty config, `artifact_type` and `layers` (media type, content) to `r`,
/// for artifacts that are not (well-formed) allowlists; returns the digest reference.
pub async fn push_artifact(
    client: &RegistryClient,
    r: &ArtifactRef,
    artifact_type: Option<&str>,
    layers: &[(&str, &[u8])],
) -> anyhow::Result<ArtifactRef> {
    let config = client.push_blob(r, b"{}").await?;
    let mut descriptors = Vec::new();
    for (media_type, content) in layers {
        let digest = client.push_blob(r, content).await?;
        descriptors.push(serde_json::json!({
            "mediaType": media_type, "digest": digest.to_string(), "size": content.len()
        }));
    }
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": config.to_string(), "size": 2},
        "layers": descriptors,
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = t.into();
    }
    let digest = client.push_manifest(r, &serde_json::to_vec(&manifest)?, OCI_MANIFEST).await?;
    Ok(r.with_digest(digest))
}

/// Overwrite the stored content of blob `digest` in the [`vouch_webhooks::dev_registry::DevRegistry`]
/// listening on `registry_host` (`127.0.0.1:PORT`): tampering at rest, which the registry does not notice
/// and serves under the old digest.
pub fn tamper_blob_at_rest(registry_host: &str, digest: &Digest, replacement: &[u8]) -> anyhow::Result<()> {
    let storage = dev_registry_storage(registry_host)?;
    let hex = digest.hex();
    let prefix = hex.get(..2).context("digest too short")?;
    let data = storage
        .join("docker/registry/v2/blobs")
        .join(digest.algorithm().name())
        .join(prefix)
        .join(hex)
        .join("data");
    if !data.is_file() {
        bail!("blob {digest} is not stored at {}", data.display());
    }
    std::fs::write(&data, replacement).with_context(|| format!("overwriting {}", data.display()))
}

/// The storage directory of the dev registry on `registry_host`, found by its configuration file (the
/// dev registry keeps config and storage in a `vouch-dev-registry-*` temporary directory).
fn dev_registry_storage(registry_host: &str) -> anyhow::Result<PathBuf> {
    let wanted = format!("addr: {registry_host}\n");
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).with_context(|| format!("listing {}", tmp.display()))? {
        let dir = entry?.path();
        let is_registry =
            dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vouch-dev-registry-"));
        if !is_registry {
            continue;
        }
        if std::fs::read_to_string(dir.join("config.yml")).is_ok_and(|c| c.contains(&wanted)) {
            return Ok(dir.join("storage"));
        }
    }
    bail!("no dev registry storage for {registry_host} under {}", tmp.display())
}
