//! Reading a bundle: every entry bounded and named as expected, every blob hashed, the index complete and
//! exact, the signature checked, the expiry honoured. Anything wrong rejects the whole bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path};

use chrono::{DateTime, Utc};

use crate::digest::Digest;
use crate::dsse::Envelope;
use crate::keys::PublicKey;
use crate::registry::{parse_manifest, ManifestKind};

use super::format::{
    blob_digest, policy_features, BundleIndex, BUNDLE_JSON, BUNDLE_PAYLOAD_TYPE, BUNDLE_SIG, BUNDLE_VERSION,
    INDEX_JSON, OCI_LAYOUT,
};
use super::recording::{RecordedManifest, Recording};
use super::BundleError;

/// Bounds on what is read from a bundle file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLimits {
    /// Largest single entry.
    pub max_entry_bytes: u64,
    /// Largest sum of all entries.
    pub max_total_bytes: u64,
    /// Most entries.
    pub max_entries: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        Self { max_entry_bytes: 256 * 1024 * 1024, max_total_bytes: 1024 * 1024 * 1024, max_entries: 100_000 }
    }
}

/// Largest metadata entry (oci-layout, index.json, vouch-bundle.json, the signature).
const MAX_METADATA_BYTES: u64 = 64 * 1024 * 1024;
/// Clock skew tolerated for a bundle created "in the future".
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The raw entries of a bundle file, checked for shape only.
pub(crate) struct RawEntries {
    pub oci_layout: Vec<u8>,
    pub index_json: Vec<u8>,
    pub bundle_json: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

/// Read the tar (plain or gzip) at `path`: regular files with expected names only, no duplicates, bounded,
/// every blob hashing to its name.
pub(crate) fn read_entries(path: &Path, limits: &BundleLimits) -> Result<RawEntries, BundleError> {
    let io = |source: std::io::Error| BundleError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let gz = file.read(&mut magic).map_err(io)? == 2 && magic == [0x1f, 0x8b];
    drop(file);
    let file = std::fs::File::open(path).map_err(io)?;
    read_archive(path, file, gz, limits)
}

/// [`read_entries`] on a bundle file already in memory (`path` only names it in errors).
pub(crate) fn read_entries_from_bytes(
    path: &Path,
    bytes: &[u8],
    limits: &BundleLimits,
) -> Result<RawEntries, BundleError> {
    read_archive(path, bytes, bytes.starts_with(&[0x1f, 0x8b]), limits)
}

fn read_archive(
    path: &Path,
    file: impl Read,
    gz: bool,
    limits: &BundleLimits,
) -> Result<RawEntries, BundleError> {
    let io = |source: std::io::Error| BundleError::Io { path: path.to_path_buf(), source };
    // Tar framing adds at most a header (and padding) per entry, plus the end blocks.
    let framing = (limits.max_entries as u64 + 2).saturating_mul(1024);
    let cap = limits.max_total_bytes.saturating_add(framing);
    let reader: Box<dyn Read + '_> =
        if gz { Box::new(flate2::read::GzDecoder::new(file).take(cap)) } else { Box::new(file.take(cap)) };
    let mut archive = tar::Archive::new(reader);
    let (mut oci_layout, mut index_json, mut bundle_json, mut signature) = (None, None, None, None);
    let mut blobs = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(io)? {
        let entry =
            entry.map_err(|e| BundleError::Malformed { entry: "(tar)".into(), reason: e.to_string() })?;
        if seen.len() >= limits.max_entries {
            return Err(BundleError::TooLarge {
                what: "entry count".into(),
                limit: limits.max_entries as u64,
            });
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = checked_name(&raw)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            // Directory entries (as `tar -c` writes them) carry nothing; their names were checked.
            continue;
        }
        if !kind.is_file() {
            return Err(BundleError::UnsafeEntry {
                entry: raw,
                reason: format!("is a {kind:?} entry, not a regular file"),
            });
        }
        if !seen.insert(name.clone()) {
            return Err(BundleError::DuplicateEntry { entry: name });
        }
        let is_blob = name.starts_with("blobs/");
        let limit =
            if is_blob { limits.max_entry_bytes } else { MAX_METADATA_BYTES.min(limits.max_entry_bytes) };
        let size = entry
            .header()
            .size()
            .map_err(|e| BundleError::Malformed { entry: name.clone(), reason: e.to_string() })?;
        if size > limit {
            return Err(BundleError::TooLarge { what: name, limit });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(BundleError::TooLarge {
                what: "the bundle's entries".into(),
                limit: limits.max_total_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 != size {
            return Err(BundleError::Malformed {
                entry: name,
                reason: "entry is shorter than its header says".into(),
            });
        }
        match name.as_str() {
            OCI_LAYOUT => oci_layout = Some(bytes),
            INDEX_JSON => index_json = Some(bytes),
            BUNDLE_JSON => bundle_json = Some(bytes),
            BUNDLE_SIG => signature = Some(bytes),
            _ => {
                let Some(digest) = blob_digest(&name) else {
                    return Err(BundleError::UnexpectedEntry { entry: name });
                };
                if !digest.matches(&bytes) {
                    return Err(BundleError::BlobDigestMismatch {
                        entry: name,
                        actual: Digest::of(digest.algorithm(), &bytes).to_string(),
                    });
                }
                blobs.insert(digest, bytes);
            }
        }
    }
    let missing = |entry: &str| BundleError::MissingEntry { entry: entry.to_owned() };
    Ok(RawEntries {
        oci_layout: oci_layout.ok_or_else(|| missing(OCI_LAYOUT))?,
        index_json: index_json.ok_or_else(|| missing(INDEX_JSON))?,
        bundle_json: bundle_json.ok_or_else(|| missing(BUNDLE_JSON))?,
        signature,
        blobs,
    })
}

/// An entry name with a leading `./` removed; absolute paths, `..` and anything odd rejected.
fn checked_name(raw: &str) -> Result<String, BundleError> {
    let unsafe_entry =
        |reason: &str| BundleError::UnsafeEntry { entry: raw.to_owned(), reason: reason.to_owned() };
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(unsafe_entry("absolute path"));
    }
    let mut parts = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(|| unsafe_entry("name is not UTF-8"))?),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry("path traversal (`..`)")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_entry("absolute path")),
        }
    }
    if raw.contains('\\') || raw.contains('\0') {
        return Err(unsafe_entry("backslash or NUL in name"));
    }
    Ok(parts.join("/"))
}

/// Who signed a bundle, when checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignatureState {
    /// Verified with the key of this fingerprint.
    Verified(Digest),
    /// The bundle carries no signature (accepted: no key was asked for).
    Unsigned,
    /// Signed, but no key was given and the caller allowed that: the signature was not checked.
    NotChecked,
}

/// Check the signature over `vouch-bundle.json`.
pub(crate) fn check_signature(
    raw: &RawEntries,
    key: Option<&PublicKey>,
    allow_unsigned: bool,
) -> Result<SignatureState, BundleError> {
    match (key, &raw.signature) {
        (Some(_), None) => Err(BundleError::Unsigned),
        (Some(key), Some(sig)) => {
            let envelope = Envelope::from_json(sig)
                .map_err(|e| BundleError::Malformed { entry: BUNDLE_SIG.into(), reason: e.to_string() })?;
            if envelope.payload_type != BUNDLE_PAYLOAD_TYPE {
                return Err(BundleError::Malformed {
                    entry: BUNDLE_SIG.into(),
                    reason: format!(
                        "payload type {:?}, expected {BUNDLE_PAYLOAD_TYPE:?}",
                        envelope.payload_type
                    ),
                });
            }
            let payload = envelope.verify(key).map_err(|e| BundleError::BadSignature {
                key: key.fingerprint().to_string(),
                reason: e.to_string(),
            })?;
            if payload != raw.bundle_json {
                return Err(BundleError::SignatureForOtherContent);
            }
            Ok(SignatureState::Verified(key.fingerprint()))
        }
        (None, Some(_)) if allow_unsigned => Ok(SignatureState::NotChecked),
        (None, Some(_)) => Err(BundleError::KeyNeeded),
        (None, None) => Ok(SignatureState::Unsigned),
    }
}

/// Parse and cross-check the index against the entries; returns the index and the content it describes.
pub(crate) fn check_index(
    raw: &RawEntries,
    now: DateTime<Utc>,
) -> Result<(BundleIndex, Recording), BundleError> {
    let malformed = |entry: &str, reason: String| BundleError::Malformed { entry: entry.to_owned(), reason };
    let layout: serde_json::Value =
        serde_json::from_slice(&raw.oci_layout).map_err(|e| malformed(OCI_LAYOUT, e.to_string()))?;
    if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
        return Err(malformed(OCI_LAYOUT, "imageLayoutVersion is not 1.0.0".into()));
    }
    let index: BundleIndex =
        serde_json::from_slice(&raw.bundle_json).map_err(|e| malformed(BUNDLE_JSON, e.to_string()))?;
    if index.version != BUNDLE_VERSION {
        return Err(BundleError::UnsupportedVersion { version: index.version });
    }
    if let Some(f) = index.policy_features.iter().find(|f| !policy_features::KNOWN.contains(&f.as_str())) {
        return Err(BundleError::UnknownPolicyFeature { feature: f.clone() });
    }
    if now > index.expires {
        return Err(BundleError::Expired { expires: index.expires, now });
    }
    if index.created > now + CLOCK_SKEW {
        return Err(BundleError::NotYetValid { created: index.created, now });
    }
    let actual = Digest::of(index.index_digest.algorithm(), &raw.index_json);
    if actual != index.index_digest {
        return Err(BundleError::IndexDigestMismatch {
            expected: index.index_digest.to_string(),
            actual: actual.to_string(),
        });
    }
    // Exactly the listed blobs, each of the listed size.
    for (d, size) in &index.blobs {
        match raw.blobs.get(d) {
            None => return Err(BundleError::MissingBlob { digest: d.to_string() }),
            Some(b) if b.len() as u64 != *size => {
                return Err(BundleError::Inconsistent {
                    reason: format!("blob {d} has {} bytes, the index says {size}", b.len()),
                })
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = raw.blobs.keys().find(|d| !index.blobs.contains_key(*d)) {
        return Err(BundleError::UnlistedBlob { digest: extra.to_string() });
    }
    let listed = |d: &Digest, what: &str| {
        if index.blobs.contains_key(d) {
            Ok(())
        } else {
            Err(BundleError::Inconsistent { reason: format!("{what} {d} is not among the bundle's blobs") })
        }
    };
    for d in index.manifests.keys() {
        listed(d, "manifest")?;
    }
    for p in &index.policies {
        listed(&p.digest, &format!("policy {:?}", p.name))?;
    }
    for k in &index.keys {
        listed(&k.digest, &format!("key {:?}", k.name))?;
    }
    if let Some(d) = &index.trusted_root {
        listed(d, "trusted root")?;
    }
    // index.json names exactly the covered artifacts, each a manifest of the bundle.
    let oci_index = match parse_manifest(INDEX_JSON, crate::registry::OCI_INDEX, &raw.index_json)
        .map_err(|e| malformed(INDEX_JSON, e.to_string()))?
    {
        ManifestKind::Index(i) => i,
        ManifestKind::Image(_) => return Err(malformed(INDEX_JSON, "is not an image index".into())),
    };
    let in_index: Vec<&Digest> = oci_index.manifests.iter().map(|d| &d.digest).collect();
    let covered: Vec<&Digest> = index.artifacts.iter().map(|a| &a.digest).collect();
    if in_index != covered {
        return Err(BundleError::Inconsistent {
            reason: "index.json does not list exactly the covered artifacts".into(),
        });
    }
    for a in &index.artifacts {
        if !index.manifests.contains_key(&a.digest) {
            return Err(BundleError::Inconsistent {
                reason: format!("the manifest of {} ({}) is not in the bundle", a.reference, a.digest),
            });
        }
    }
    let mut content = Recording { tags: index.tags.clone(), ..Recording::default() };
    for entry in &index.referrers {
        content.referrers.insert(entry.key.clone(), entry.descriptors.clone());
    }
    for (d, bytes) in &raw.blobs {
        match index.manifests.get(d) {
            Some(media_type) => {
                content.manifests.insert(
                    d.clone(),
                    RecordedManifest { media_type: media_type.clone(), bytes: bytes.clone() },
                );
            }
            None => {
                content.blobs.insert(d.clone(), bytes.clone());
            }
        }
    }
    Ok((index, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_normalised_or_rejected() {
        assert_eq!(checked_name("./blobs/sha256/ab").unwrap(), "blobs/sha256/ab");
        assert_eq!(checked_name("index.json").unwrap(), "index.json");
        for bad in ["../x", "blobs/../../etc/passwd", "/etc/passwd", "a\\b"] {
            let e = checked_name(bad).unwrap_err();
            assert!(matches!(e, BundleError::UnsafeEntry { .. }), "{bad}: {e}");
        }
        assert!(checked_name("blobs/../x").unwrap_err().to_string().contains("path traversal"));
    }
}
