//! Writing cosign signatures and attestations with vouch's own key (tests, the demo). Production signing
//! is cosign's job; these functions write exactly its format so the verifier can be exercised end to end.

use std::collections::BTreeMap;

use super::layers::{layer_annotations, PREDICATE_TYPE_ANNOTATION, SIGNATURE_ANNOTATION};
use super::payload::SimpleSigningPayload;
use super::{CosignError, ATTESTATION_SUFFIX, DSSE_MEDIA_TYPE, SIGNATURE_SUFFIX, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::digest::Digest;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::keys::SigningKey;
use crate::reference::ArtifactRef;
use crate::registry::{Descriptor, ImageManifest, ManifestKind, RegistryClient, RegistryError, OCI_MANIFEST};

/// Media type of the (empty) image config cosign gives its signature manifests.
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The cosign tag for material attached to `artifact`'s digest: `sha256-<hex>.<suffix>`.
pub fn signature_tag(artifact: &ArtifactRef, suffix: &str) -> Result<ArtifactRef, CosignError> {
    let digest =
        artifact.digest().ok_or_else(|| CosignError::NotPinned { reference: artifact.to_string() })?;
    artifact
        .with_tag(&format!("{}.{suffix}", digest.cosign_tag_stem()))
        .map_err(|e| CosignError::Unexpected { what: "reference", reason: e.to_string() })
}

/// Sign `artifact` (pinned to a digest) with `key`: a simple-signing payload carrying `annotations` as
/// `optional`, appended as a layer to the `.sig` manifest. Returns the new signature manifest's digest.
pub async fn sign_image_with_key(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    key: &SigningKey,
    annotations: BTreeMap<String, serde_json::Value>,
) -> Result<Digest, CosignError> {
    let payload = SimpleSigningPayload::for_artifact(artifact, annotations)?.to_json();
    let signature = key.sign(&payload);
    push_signature_layer(
        client,
        artifact,
        SIGNATURE_SUFFIX,
        SIMPLE_SIGNING_MEDIA_TYPE,
        &payload,
        layer_annotations(&signature, None, None, None),
    )
    .await
}

/// Attest `statement` (in-toto statement JSON) about `artifact` with `key`: a DSSE envelope appended as a
/// layer to the `.att` manifest, with the `predicateType` annotation as cosign writes it.
pub async fn attest_with_key(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    key: &SigningKey,
    statement: &serde_json::Value,
) -> Result<Digest, CosignError> {
    let payload = serde_json::to_vec(statement)
        .map_err(|e| CosignError::Unexpected { what: "statement", reason: e.to_string() })?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key);
    let predicate_type =
        statement.get("predicateType").and_then(|p| p.as_str()).unwrap_or_default().to_owned();
    push_attestation_layer(client, artifact, &envelope, &predicate_type, BTreeMap::new()).await
}

/// Append a DSSE envelope layer to `artifact`'s `.att` manifest; `extra` adds certificate/bundle annotations.
pub async fn push_attestation_layer(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    envelope: &Envelope,
    predicate_type: &str,
    extra: BTreeMap<String, String>,
) -> Result<Digest, CosignError> {
    let blob = serde_json::to_vec(envelope)
        .map_err(|e| CosignError::Unexpected { what: "envelope", reason: e.to_string() })?;
    let mut annotations = extra;
    // cosign leaves the signature annotation empty on attestations: the signature is in the envelope.
    annotations.insert(SIGNATURE_ANNOTATION.to_owned(), String::new());
    annotations.insert(PREDICATE_TYPE_ANNOTATION.to_owned(), predicate_type.to_owned());
    push_signature_layer(client, artifact, ATTESTATION_SUFFIX, DSSE_MEDIA_TYPE, &blob, annotations).await
}

/// Append one layer (`blob` with `annotations`) to the manifest at `artifact`'s `sha256-<hex>.<suffix>` tag,
/// creating it when absent, as cosign does. Returns the new manifest's digest.
pub async fn push_signature_layer(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    suffix: &str,
    media_type: &str,
    blob: &[u8],
    annotations: BTreeMap<String, String>,
) -> Result<Digest, CosignError> {
    let tag = signature_tag(artifact, suffix)?;
    let mut layers = match client.fetch_parsed_manifest(&tag).await {
        Ok((_, ManifestKind::Image(m))) => m.layers,
        Ok((_, ManifestKind::Index(_))) => {
            return Err(CosignError::Unexpected {
                what: "signature manifest",
                reason: format!("{tag} is an index"),
            })
        }
        Err(RegistryError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let digest = client.push_blob(&tag, blob).await?;
    layers.push(Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size: blob.len() as u64,
        artifact_type: None,
        annotations,
        platform: None,
    });
    let config = config_blob(&layers);
    let config_digest = client.push_blob(&tag, &config).await?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor {
            media_type: CONFIG_MEDIA_TYPE.to_owned(),
            digest: config_digest,
            size: config.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec(&manifest)
        .map_err(|e| CosignError::Unexpected { what: "manifest", reason: e.to_string() })?;
    Ok(client.push_manifest(&tag, &bytes, OCI_MANIFEST).await?)
}

/// The image config cosign writes for signature images: empty, listing the layers as diff ids.
fn config_blob(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {}
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_cosign_scheme() {
        let d = Digest::sha256_of(b"x");
        let r: ArtifactRef = format!("reg.example/app:v1@{d}").parse().unwrap();
        let t = signature_tag(&r, "sig").unwrap();
        assert_eq!(t.tag(), Some(format!("sha256-{}.sig", d.hex()).as_str()));
        assert!(t.digest().is_none());
        let unpinned: ArtifactRef = "reg.example/app:v1".parse().unwrap();
        assert!(matches!(signature_tag(&unpinned, "sig"), Err(CosignError::NotPinned { .. })));
    }

    #[test]
    fn config_lists_layers_as_diff_ids() {
        let layer = Descriptor {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
            digest: Digest::sha256_of(b"p"),
            size: 1,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&config_blob(&[layer])).unwrap();
        assert_eq!(v["rootfs"]["diff_ids"][0], Digest::sha256_of(b"p").to_string());
    }
}
