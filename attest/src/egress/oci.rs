//! Egress allowlists as OCI artifacts: an OCI 1.1 manifest with the allowlist artifact type, the empty
//! config and exactly one layer holding the document.

use std::collections::BTreeMap;

use super::allowlist::MAX_DOCUMENT_BYTES;
use super::{Allowlist, EgressError, EGRESS_ALLOWLIST_ARTIFACT_TYPE, EGRESS_ALLOWLIST_MEDIA_TYPE};
use crate::digest::Digest;
use crate::reference::ArtifactRef;
use crate::registry::{Descriptor, ImageManifest, ManifestKind, RegistryClient, OCI_EMPTY, OCI_MANIFEST};

/// The empty JSON object every artifact without a config uses as its config blob.
const EMPTY_CONFIG: &[u8] = b"{}";
/// File name given to the layer (`oras pull` writes it under this name).
const LAYER_TITLE: &str = "egress-allowlist.json";
/// OCI annotation for a human-readable title.
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// Fetch the allowlist `pinned` names: the manifest by digest (a tag is refused), which must be an image
/// manifest of artifactType [`EGRESS_ALLOWLIST_ARTIFACT_TYPE`] with exactly one layer of
/// [`EGRESS_ALLOWLIST_MEDIA_TYPE`] of at most 1 MiB; the layer (digest-checked) parsed and validated.
pub async fn fetch_allowlist(
    registry: &RegistryClient,
    pinned: &ArtifactRef,
) -> Result<Allowlist, EgressError> {
    if pinned.digest().is_none() {
        return Err(EgressError::NotPinned { reference: pinned.to_string() });
    }
    let reference = pinned.to_string();
    let malformed = |reason: String| EgressError::Malformed { reference: reference.clone(), reason };
    let (_, kind) = registry.fetch_parsed_manifest(pinned).await?;
    let manifest = match kind {
        ManifestKind::Image(m) => m,
        ManifestKind::Index(_) => return Err(wrong_type(pinned, "an image index".to_owned())),
    };
    match manifest.artifact_type.as_deref() {
        Some(EGRESS_ALLOWLIST_ARTIFACT_TYPE) => {}
        Some(other) => return Err(wrong_type(pinned, other.to_owned())),
        None => return Err(wrong_type(pinned, "none".to_owned())),
    }
    let layer = match manifest.layers.as_slice() {
        [layer] => layer,
        layers => return Err(malformed(format!("it has {} layers, not exactly one", layers.len()))),
    };
    if layer.media_type != EGRESS_ALLOWLIST_MEDIA_TYPE {
        return Err(malformed(format!(
            "its layer has media type {}, not {EGRESS_ALLOWLIST_MEDIA_TYPE}",
            layer.media_type
        )));
    }
    if layer.size > MAX_DOCUMENT_BYTES as u64 {
        return Err(EgressError::InvalidDocument {
            reference: reference.clone(),
            problem: Box::new(EgressError::TooLarge { size: layer.size, limit: MAX_DOCUMENT_BYTES }),
        });
    }
    // Capped at the size the manifest states: a registry cannot hand over more than was signed for.
    let cap = usize::try_from(layer.size).unwrap_or(MAX_DOCUMENT_BYTES);
    let bytes = registry.fetch_blob(pinned, &layer.digest, cap).await?;
    if bytes.len() as u64 != layer.size {
        return Err(malformed(format!(
            "its layer is {} bytes, but the manifest says {}",
            bytes.len(),
            layer.size
        )));
    }
    Allowlist::parse(&bytes).map_err(|e| EgressError::InvalidDocument { reference, problem: Box::new(e) })
}

/// Publish `list` at `r` (a tag, or a digest the manifest must hash to): the document re-read first
/// (an invalid list is never published), its layer and the empty config pushed, then the manifest.
/// Returns `r` pinned to the manifest digest; sign that reference.
pub async fn push_allowlist(
    registry: &RegistryClient,
    r: &ArtifactRef,
    list: &Allowlist,
) -> Result<ArtifactRef, EgressError> {
    let document = list.to_json();
    Allowlist::parse(&document)?;
    let config_digest = registry.push_blob(r, EMPTY_CONFIG).await?;
    let layer_digest = registry.push_blob(r, &document).await?;
    let manifest = allowlist_manifest(&list.name, config_digest, layer_digest, document.len());
    let bytes = serde_json::to_vec(&manifest).map_err(|e| EgressError::Malformed {
        reference: r.to_string(),
        reason: format!("cannot encode the manifest: {e}"),
    })?;
    let digest = registry.push_manifest(r, &bytes, OCI_MANIFEST).await?;
    Ok(r.with_digest(digest))
}

/// The OCI 1.1 artifact manifest of an allowlist document.
fn allowlist_manifest(name: &str, config: Digest, layer: Digest, layer_size: usize) -> ImageManifest {
    ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(EGRESS_ALLOWLIST_ARTIFACT_TYPE.to_owned()),
        config: Descriptor {
            media_type: OCI_EMPTY.to_owned(),
            digest: config,
            size: EMPTY_CONFIG.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: vec![Descriptor {
            media_type: EGRESS_ALLOWLIST_MEDIA_TYPE.to_owned(),
            digest: layer,
            size: layer_size as u64,
            artifact_type: None,
            annotations: BTreeMap::from([(TITLE_ANNOTATION.to_owned(), LAYER_TITLE.to_owned())]),
            platform: None,
        }],
        subject: None,
        annotations: BTreeMap::from([(TITLE_ANNOTATION.to_owned(), name.to_owned())]),
    }
}

fn wrong_type(r: &ArtifactRef, found: String) -> EgressError {
    EgressError::WrongArtifactType {
        reference: r.to_string(),
        found,
        expected: EGRESS_ALLOWLIST_ARTIFACT_TYPE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_an_oci_artifact_with_the_empty_config_and_one_layer() {
        let doc = b"{\"apiVersion\":\"vouch.dev/egress/v1\",\"name\":\"x\"}";
        let m = allowlist_manifest("x", Digest::sha256_of(EMPTY_CONFIG), Digest::sha256_of(doc), doc.len());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["artifactType"], EGRESS_ALLOWLIST_ARTIFACT_TYPE);
        assert_eq!(json["mediaType"], OCI_MANIFEST);
        assert_eq!(json["config"]["mediaType"], OCI_EMPTY);
        // The well-known digest of `{}` (OCI image spec, "empty descriptor").
        assert_eq!(
            json["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(json["layers"].as_array().unwrap().len(), 1);
        assert_eq!(json["layers"][0]["mediaType"], EGRESS_ALLOWLIST_MEDIA_TYPE);
        assert_eq!(json["layers"][0]["size"], doc.len());
        assert_eq!(json["annotations"][TITLE_ANNOTATION], "x");
    }
}
