//! Egress allowlists as OCI artifacts: an OCI 1.1 manifest with the allowlist artifact type, the empty
//! config and exactly one layer holding the document (vouch's JSON, or kars's canonical YAML).

use std::collections::BTreeMap;

use super::allowlist::MAX_DOCUMENT_BYTES;
use super::{
    Allowlist, AnyAllowlist, EgressError, KarsAllowlist, EGRESS_ALLOWLIST_ARTIFACT_TYPE,
    EGRESS_ALLOWLIST_MEDIA_TYPE, KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
};
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
    let (format, bytes) =
        fetch_document(registry, pinned, &[Format::Vouch], EGRESS_ALLOWLIST_ARTIFACT_TYPE).await?;
    debug_assert_eq!(format, Format::Vouch);
    let reference = pinned.to_string();
    Allowlist::parse(&bytes).map_err(|e| EgressError::InvalidDocument { reference, problem: Box::new(e) })
}

/// Fetch the allowlist `pinned` names in either format, chosen by the manifest's artifactType: vouch's
/// ([`EGRESS_ALLOWLIST_ARTIFACT_TYPE`], layer [`EGRESS_ALLOWLIST_MEDIA_TYPE`], JSON) or kars's
/// ([`KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE`], the layer of the same media type, canonical YAML). The same
/// checks as [`fetch_allowlist`]: by digest only, an image manifest with exactly one layer of at most 1 MiB,
/// digest-checked, then the document parsed and validated by its format's rules.
pub async fn fetch_any_allowlist(
    registry: &RegistryClient,
    pinned: &ArtifactRef,
) -> Result<AnyAllowlist, EgressError> {
    let (format, bytes) =
        fetch_document(registry, pinned, &[Format::Vouch, Format::Kars], ANY_ALLOWLIST_ARTIFACT_TYPES)
            .await?;
    let reference = pinned.to_string();
    let invalid = |e| EgressError::InvalidDocument { reference: reference.clone(), problem: Box::new(e) };
    match format {
        Format::Vouch => Allowlist::parse(&bytes).map(AnyAllowlist::Vouch).map_err(invalid),
        Format::Kars => KarsAllowlist::parse(&bytes).map(AnyAllowlist::Kars).map_err(invalid),
    }
}

/// The artifact types [`fetch_any_allowlist`] reads, for messages.
const ANY_ALLOWLIST_ARTIFACT_TYPES: &str =
    "application/vnd.vouch.egress-allowlist.v1+json or application/vnd.kars.egress-allowlist.v1+yaml";

/// An allowlist document format: its artifactType and the media type of its one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Vouch,
    Kars,
}

impl Format {
    fn artifact_type(self) -> &'static str {
        match self {
            Self::Vouch => EGRESS_ALLOWLIST_ARTIFACT_TYPE,
            Self::Kars => KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
        }
    }

    fn layer_media_type(self) -> &'static str {
        match self {
            Self::Vouch => EGRESS_ALLOWLIST_MEDIA_TYPE,
            Self::Kars => KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
        }
    }
}

/// The one layer of the allowlist artifact at `pinned`, in one of `formats` (chosen by artifactType).
async fn fetch_document(
    registry: &RegistryClient,
    pinned: &ArtifactRef,
    formats: &[Format],
    expected: &'static str,
) -> Result<(Format, Vec<u8>), EgressError> {
    if pinned.digest().is_none() {
        return Err(EgressError::NotPinned { reference: pinned.to_string() });
    }
    let reference = pinned.to_string();
    let malformed = |reason: String| EgressError::Malformed { reference: reference.clone(), reason };
    let wrong_type =
        |found: String| EgressError::WrongArtifactType { reference: reference.clone(), found, expected };
    let (_, kind) = registry.fetch_parsed_manifest(pinned).await?;
    let manifest = match kind {
        ManifestKind::Image(m) => m,
        ManifestKind::Index(_) => return Err(wrong_type("an image index".to_owned())),
    };
    let format = match manifest.artifact_type.as_deref() {
        Some(t) => match formats.iter().find(|f| f.artifact_type() == t) {
            Some(f) => *f,
            None => return Err(wrong_type(t.to_owned())),
        },
        None => return Err(wrong_type("none".to_owned())),
    };
    let layer = match manifest.layers.as_slice() {
        [layer] => layer,
        layers => return Err(malformed(format!("it has {} layers, not exactly one", layers.len()))),
    };
    if layer.media_type != format.layer_media_type() {
        return Err(malformed(format!(
            "its layer has media type {}, not {}",
            layer.media_type,
            format.layer_media_type()
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
    Ok((format, bytes))
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
