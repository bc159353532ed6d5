//! Writing a bundle: the recording, the policies and the trust material into one tar, then signed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::digest::Digest;
use crate::dsse::Envelope;
use crate::keys::SigningKey;
use crate::registry::{Descriptor, OCI_INDEX};

use super::format::{
    blob_path, BundleIndex, CoveredArtifact, NamedBlob, ReferrersEntry, BUNDLE_JSON, BUNDLE_PAYLOAD_TYPE,
    BUNDLE_SIG, BUNDLE_VERSION, INDEX_JSON, OCI_LAYOUT, OCI_LAYOUT_JSON, PINNED_ANNOTATION,
    REF_NAME_ANNOTATION,
};
use super::recording::Recording;
use super::BundleError;

/// Everything a bundle is made of.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// What verification read.
    pub recording: Recording,
    /// The artifacts the bundle is for (their manifests must be in the recording).
    pub artifacts: Vec<CoveredArtifact>,
    /// Policies: file name and YAML.
    pub policies: Vec<(String, String)>,
    /// The [`super::format::policy_features`] the policies use.
    pub policy_features: Vec<String>,
    /// The Sigstore `trusted_root.json` in use.
    pub trusted_root_json: Option<Vec<u8>>,
    /// Public keys (label, PEM) to carry along.
    pub keys: Vec<(String, String)>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Expiry.
    pub expires: DateTime<Utc>,
}

/// Entries of a tar: (name, bytes), in order.
pub type Entries = Vec<(String, Vec<u8>)>;

/// The entries of a bundle in the order written: the layout files first, then blobs by digest.
pub fn bundle_entries(
    spec: &BundleSpec,
    key: Option<&SigningKey>,
) -> Result<(BundleIndex, Entries), BundleError> {
    let mut blobs: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    let mut manifests = BTreeMap::new();
    for (d, m) in &spec.recording.manifests {
        manifests.insert(d.clone(), m.media_type.clone());
        blobs.insert(d.clone(), m.bytes.clone());
    }
    for (d, b) in &spec.recording.blobs {
        blobs.insert(d.clone(), b.clone());
    }
    let mut add = |bytes: &[u8]| {
        let d = Digest::sha256_of(bytes);
        blobs.insert(d.clone(), bytes.to_vec());
        d
    };
    let policies: Vec<NamedBlob> = spec
        .policies
        .iter()
        .map(|(name, yaml)| NamedBlob { name: name.clone(), digest: add(yaml.as_bytes()) })
        .collect();
    let keys: Vec<NamedBlob> = spec
        .keys
        .iter()
        .map(|(name, pem)| NamedBlob { name: name.clone(), digest: add(pem.as_bytes()) })
        .collect();
    let trusted_root = spec.trusted_root_json.as_deref().map(&mut add);

    let mut descriptors = Vec::new();
    for a in &spec.artifacts {
        let Some(m) = spec.recording.manifests.get(&a.digest) else {
            return Err(BundleError::Inconsistent {
                reason: format!("the manifest of {} ({}) was not recorded", a.reference, a.digest),
            });
        };
        descriptors.push(Descriptor {
            media_type: a.media_type.clone(),
            digest: a.digest.clone(),
            size: m.bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::from([
                (REF_NAME_ANNOTATION.to_owned(), a.reference.clone()),
                (PINNED_ANNOTATION.to_owned(), pinned(&a.reference, &a.digest)),
            ]),
            platform: None,
        });
    }
    let index_json = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": descriptors,
    }))
    .map_err(|e| BundleError::Inconsistent { reason: format!("cannot encode index.json: {e}") })?;

    let index = BundleIndex {
        version: BUNDLE_VERSION,
        created: spec.created,
        expires: spec.expires,
        index_digest: Digest::sha256_of(&index_json),
        artifacts: spec.artifacts.clone(),
        tags: spec.recording.tags.clone(),
        manifests,
        referrers: spec
            .recording
            .referrers
            .iter()
            .map(|(k, v)| ReferrersEntry { key: k.clone(), descriptors: v.clone() })
            .collect(),
        policies,
        policy_features: {
            let mut f = spec.policy_features.clone();
            f.sort();
            f.dedup();
            f
        },
        trusted_root,
        keys,
        blobs: blobs.iter().map(|(d, b)| (d.clone(), b.len() as u64)).collect(),
    };
    let bundle_json = serde_json::to_vec_pretty(&index)
        .map_err(|e| BundleError::Inconsistent { reason: format!("cannot encode {BUNDLE_JSON}: {e}") })?;

    let mut entries = vec![
        (OCI_LAYOUT.to_owned(), OCI_LAYOUT_JSON.as_bytes().to_vec()),
        (INDEX_JSON.to_owned(), index_json),
    ];
    if let Some(key) = key {
        let envelope = Envelope::sign(BUNDLE_PAYLOAD_TYPE, &bundle_json, key);
        let sig = serde_json::to_vec_pretty(&envelope)
            .map_err(|e| BundleError::Inconsistent { reason: format!("cannot encode {BUNDLE_SIG}: {e}") })?;
        entries.push((BUNDLE_SIG.to_owned(), sig));
    }
    entries.push((BUNDLE_JSON.to_owned(), bundle_json));
    entries.extend(blobs.into_iter().map(|(d, b)| (blob_path(&d), b)));
    Ok((index, entries))
}

/// `reference` pinned to `digest` (the tag kept for readability).
fn pinned(reference: &str, digest: &Digest) -> String {
    match reference.parse::<crate::ArtifactRef>() {
        Ok(r) => r.with_digest(digest.clone()).to_string(),
        Err(_) => format!("{reference}@{digest}"),
    }
}

/// Write a bundle to `out` (through a temporary file renamed into place), signed when `key` is given.
pub fn write_bundle(
    spec: &BundleSpec,
    key: Option<&SigningKey>,
    out: &Path,
) -> Result<BundleIndex, BundleError> {
    let (index, entries) = bundle_entries(spec, key)?;
    write_tar(out, &entries, spec.created.timestamp().max(0) as u64)?;
    Ok(index)
}

/// Write `entries` as a plain tar of regular files (mode 0644, the given mtime) to `out`, atomically.
pub fn write_tar(out: &Path, entries: &[(String, Vec<u8>)], mtime: u64) -> Result<(), BundleError> {
    let io = |source: std::io::Error| BundleError::Io { path: out.to_path_buf(), source };
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir).map_err(io)?;
    {
        let mut builder = tar::Builder::new(&mut tmp.1);
        for (name, bytes) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_path(name).map_err(io)?;
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, bytes.as_slice()).map_err(io)?;
        }
        builder.finish().map_err(io)?;
    }
    tmp.1.flush().map_err(io)?;
    tmp.1.sync_all().map_err(io)?;
    std::fs::rename(&tmp.0, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp.0);
        io(e)
    })
}

/// A new file next to the target (so the rename stays on one file system).
fn tempfile_in(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    for attempt in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = dir.join(format!(".vouch-bundle-{}-{nanos}-{attempt}.tmp", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary file name"))
}
