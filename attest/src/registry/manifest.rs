//! OCI image manifests, image indexes and descriptors (Docker v2 schema 2 media types accepted too).

use std::collections::BTreeMap;

use crate::digest::Digest;

use super::RegistryError;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 schema 2 image manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI empty descriptor's media type (`{}` config of artifacts).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Every manifest media type vouch reads, in the order sent in `Accept`.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// A content descriptor as in the OCI image specification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Artifact type (for manifests that are artifacts, e.g. in referrers lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform of a manifest in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform an image manifest in an index is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`, ...).
    pub os: String,
    /// Operating system version.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Required operating system features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v8`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type, when it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type, for artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type, when it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type, for artifact indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests listed.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An empty OCI image index (the start of a referrers tag index).
    pub fn empty() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The entries that are runnable platform images: image manifests with a platform, leaving out
    /// BuildKit's attestation manifests (`vnd.docker.reference.type: attestation-manifest`).
    pub fn platform_manifests(&self) -> Vec<Descriptor> {
        self.manifests
            .iter()
            .filter(|d| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST)
            .filter(|d| {
                d.annotations.get("vnd.docker.reference.type").map(String::as_str)
                    != Some("attestation-manifest")
            })
            .filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
            .cloned()
            .collect()
    }
}

/// A parsed manifest: an image manifest or an index.
// Parsed a few times per verification: boxing the larger variant would only complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image (or artifact) manifest.
    Image(ImageManifest),
    /// An image index or manifest list.
    Index(ImageIndex),
}

impl ManifestKind {
    /// The `subject` of the manifest, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Self::Image(m) => m.subject.as_ref(),
            Self::Index(i) => i.subject.as_ref(),
        }
    }

    /// The annotations of the manifest.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        match self {
            Self::Image(m) => &m.annotations,
            Self::Index(i) => &i.annotations,
        }
    }
}

/// `application/json; charset=utf-8` → `application/json`.
pub(crate) fn bare_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// Parse manifest bytes; `media_type` is what the registry said (Content-Type), possibly empty.
/// The body's own `mediaType`, when present, must agree with it, so that one document cannot be read
/// as two different things.
pub fn parse_manifest(
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<ManifestKind, RegistryError> {
    let protocol = |reason: String| RegistryError::Protocol { reference: reference.to_owned(), reason };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| protocol(format!("manifest is not a JSON object: {e}")))?;
    if probe.schema_version != Some(2) {
        return Err(protocol(format!("unsupported manifest schemaVersion {:?}", probe.schema_version)));
    }
    let header_type = bare_media_type(media_type);
    let header_type =
        (!header_type.is_empty() && MANIFEST_MEDIA_TYPES.contains(&header_type)).then_some(header_type);
    let effective = match (header_type, probe.media_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(protocol(format!("Content-Type {h} contradicts the manifest's mediaType {b}")));
        }
        (_, Some(b)) => b.to_owned(),
        (Some(h), None) => h.to_owned(),
        (None, None) => match (probe.manifests.is_some(), probe.config.is_some() || probe.layers.is_some()) {
            (true, false) => OCI_INDEX.to_owned(),
            (false, true) => OCI_MANIFEST.to_owned(),
            _ => return Err(protocol("cannot tell whether the manifest is an image or an index".to_owned())),
        },
    };
    match effective.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            if probe.manifests.is_some() {
                return Err(protocol("image manifest has a \"manifests\" field".to_owned()));
            }
            serde_json::from_slice(bytes)
                .map(ManifestKind::Image)
                .map_err(|e| protocol(format!("invalid image manifest: {e}")))
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            if probe.config.is_some() || probe.layers.is_some() {
                return Err(protocol("image index has \"config\" or \"layers\"".to_owned()));
            }
            serde_json::from_slice(bytes)
                .map(ManifestKind::Index)
                .map_err(|e| protocol(format!("invalid image index: {e}")))
        }
        other => Err(protocol(format!("unsupported manifest media type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn image_json(media_type: Option<&str>) -> String {
        let mt = media_type.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"{OCI_EMPTY}","digest":"{D1}","size":2}},
            "layers":[{{"mediaType":"application/octet-stream","digest":"{D1}","size":4}}],
            "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":9}},"annotations":{{"a":"b"}}}}"#
        )
    }

    #[test]
    fn parses_oci_and_docker_image_manifests() {
        for (header, body) in [
            (OCI_MANIFEST, Some(OCI_MANIFEST)),
            ("", Some(DOCKER_MANIFEST)),
            (OCI_MANIFEST, None),
            ("application/octet-stream", None),
        ] {
            let m = parse_manifest("r", header, image_json(body).as_bytes()).unwrap();
            let ManifestKind::Image(m) = m else { panic!("not an image: {header} {body:?}") };
            assert_eq!(m.layers.len(), 1);
            assert_eq!(m.subject.unwrap().digest.to_string(), D1);
            assert_eq!(m.annotations["a"], "b");
        }
    }

    #[test]
    fn parses_indexes_and_lists_platform_manifests() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D1}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"architecture":"unknown","os":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
        );
        let ManifestKind::Index(i) = parse_manifest("r", "", body.as_bytes()).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(i.manifests.len(), 3);
        let platforms: Vec<_> =
            i.platform_manifests().into_iter().map(|d| d.platform.unwrap().architecture).collect();
        assert_eq!(platforms, ["amd64", "arm64"]);
    }

    #[test]
    fn rejects_ambiguous_or_contradictory_manifests() {
        let cases = [
            (OCI_INDEX.to_owned(), image_json(Some(OCI_MANIFEST))),
            (String::new(), r#"{"schemaVersion":1,"config":{}}"#.to_owned()),
            (String::new(), r#"{"schemaVersion":2}"#.to_owned()),
            (
                String::new(),
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"layers":[]}}"#),
            ),
            (
                String::new(),
                r#"{"schemaVersion":2,"mediaType":"application/x-other","config":{}}"#.to_owned(),
            ),
            (String::new(), "[]".to_owned()),
        ];
        for (header, body) in cases {
            let e = parse_manifest("r", &header, body.as_bytes()).unwrap_err();
            assert!(matches!(e, RegistryError::Protocol { .. }), "{body}: {e}");
        }
    }

    #[test]
    fn descriptor_round_trips_as_oci_json() {
        let json =
            format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":7,"artifactType":"x/y"}}"#);
        let d: Descriptor = serde_json::from_str(&json).unwrap();
        assert_eq!(d.artifact_type.as_deref(), Some("x/y"));
        assert_eq!(serde_json::to_string(&d).unwrap(), json);
        assert!(serde_json::from_str::<Descriptor>(&json.replace(D1, "sha256:nothex")).is_err());
    }
}
