//! Attaching SBOMs (cosign's `.sbom` tag and OCI referrers) and Sigstore bundles (cosign v3 referrers).

use std::collections::BTreeMap;

use super::{CosignError, BUNDLE_ARTIFACT_TYPE, SBOM_SUFFIX};
use crate::digest::Digest;
use crate::reference::ArtifactRef;
use crate::registry::{Descriptor, ImageManifest, RegistryClient, OCI_EMPTY, OCI_MANIFEST};
use crate::sbom::CYCLONEDX_MEDIA_TYPE;
use crate::sigstore_verify::{Bundle, BundleContent};

/// Title annotation of a layer (a file name for tools like oras).
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// Attach a CycloneDX JSON SBOM to `artifact` both ways cosign and ORAS do: as the single layer of the
/// `sha256-<hex>.sbom` manifest, and as an OCI referrer with artifact type `application/vnd.cyclonedx+json`.
/// Returns (`.sbom` manifest digest, referrer manifest digest).
pub async fn attach_sbom(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    sbom: &[u8],
) -> Result<(Digest, Digest), CosignError> {
    let tag = super::sign::signature_tag(artifact, SBOM_SUFFIX)?;
    let blob = client.push_blob(&tag, sbom).await?;
    let config = b"{}";
    let config_digest = client.push_blob(&tag, config).await?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: descriptor("application/vnd.oci.image.config.v1+json", config_digest, config.len()),
        layers: vec![descriptor(CYCLONEDX_MEDIA_TYPE, blob, sbom.len())],
        subject: None,
        annotations: BTreeMap::new(),
    };
    let tagged = client.push_manifest(&tag, &to_json(&manifest)?, OCI_MANIFEST).await?;
    let referrer = push_sbom_referrer(client, artifact, sbom).await?;
    Ok((tagged, referrer))
}

/// Push `sbom` as an OCI 1.1 referrer of `artifact` (artifact type `application/vnd.cyclonedx+json`).
pub async fn push_sbom_referrer(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    sbom: &[u8],
) -> Result<Digest, CosignError> {
    let layer = (CYCLONEDX_MEDIA_TYPE, sbom, BTreeMap::new());
    push_artifact_referrer(client, artifact, CYCLONEDX_MEDIA_TYPE, layer, BTreeMap::new()).await
}

/// Push a Sigstore bundle as an OCI 1.1 referrer of `artifact`, laid out as cosign v3 does (artifact type
/// and layer media type `application/vnd.dev.sigstore.bundle.v0.3+json`, content annotations).
pub async fn push_bundle_referrer(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    bundle: &Bundle,
) -> Result<Digest, CosignError> {
    let json = bundle.to_json();
    let mut annotations = BTreeMap::new();
    match &bundle.content {
        BundleContent::MessageSignature { .. } => {
            annotations.insert("dev.sigstore.bundle.content".to_owned(), "message-signature".to_owned());
        }
        BundleContent::Dsse(env) => {
            annotations.insert("dev.sigstore.bundle.content".to_owned(), "dsse-envelope".to_owned());
            if let Ok(st) = crate::intoto::Statement::from_dsse(env) {
                annotations.insert("dev.sigstore.bundle.predicateType".to_owned(), st.predicate_type);
            }
        }
    }
    let digest = Digest::sha256_of(&json);
    let mut layer_annotations = BTreeMap::new();
    layer_annotations
        .insert(TITLE_ANNOTATION.to_owned(), format!("{}.sigstore.json", digest.cosign_tag_stem()));
    let layer = (BUNDLE_ARTIFACT_TYPE, json.as_slice(), layer_annotations);
    push_artifact_referrer(client, artifact, BUNDLE_ARTIFACT_TYPE, layer, annotations).await
}

/// Push a Notary Project signature envelope (`application/jose+json` or `application/cose`) as an OCI 1.1
/// referrer of `artifact`, laid out as `notation sign` does: artifact type
/// `application/vnd.cncf.notary.signature`, the envelope as the single layer.
pub async fn push_notation_signature(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    envelope_media_type: &str,
    envelope: &[u8],
) -> Result<Digest, CosignError> {
    let layer = (envelope_media_type, envelope, BTreeMap::new());
    push_artifact_referrer(client, artifact, crate::notation::SIGNATURE_ARTIFACT_TYPE, layer, BTreeMap::new())
        .await
}

/// The single layer of an artifact manifest: media type, bytes, annotations.
type ArtifactLayer<'a> = (&'a str, &'a [u8], BTreeMap<String, String>);

/// Push `layer` as the single layer of an artifact manifest (empty config) whose subject is `artifact`.
async fn push_artifact_referrer(
    client: &RegistryClient,
    artifact: &ArtifactRef,
    artifact_type: &str,
    (layer_media_type, blob, layer_annotations): ArtifactLayer<'_>,
    annotations: BTreeMap<String, String>,
) -> Result<Digest, CosignError> {
    let subject_digest = artifact
        .digest()
        .cloned()
        .ok_or_else(|| CosignError::NotPinned { reference: artifact.to_string() })?;
    let subject_manifest = client.fetch_manifest(&artifact.with_digest(subject_digest.clone())).await?;
    let blob_digest = client.push_blob(artifact, blob).await?;
    let empty = b"{}";
    let empty_digest = client.push_blob(artifact, empty).await?;
    let mut layer = descriptor(layer_media_type, blob_digest, blob.len());
    layer.annotations = layer_annotations;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(artifact_type.to_owned()),
        config: descriptor(OCI_EMPTY, empty_digest, empty.len()),
        layers: vec![layer],
        subject: Some(descriptor(&subject_manifest.media_type, subject_digest, subject_manifest.bytes.len())),
        annotations,
    };
    Ok(client.push_referrer(artifact, &to_json(&manifest)?, OCI_MANIFEST, artifact_type).await?)
}

fn descriptor(media_type: &str, digest: Digest, size: usize) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size: size as u64,
        artifact_type: None,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

fn to_json(manifest: &ImageManifest) -> Result<Vec<u8>, CosignError> {
    serde_json::to_vec(manifest)
        .map_err(|e| CosignError::Unexpected { what: "manifest", reason: e.to_string() })
}
