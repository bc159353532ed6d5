//! The bundle file: an OCI image layout in a tar, plus vouch's own index and its signature.
//!
//! ```text
//! oci-layout                  {"imageLayoutVersion":"1.0.0"}
//! index.json                  OCI image index: one descriptor per covered artifact (ref.name annotation)
//! vouch-bundle.json           BundleIndex: what everything is, and the digest + size of every blob
//! vouch-bundle.sig            DSSE envelope over vouch-bundle.json (optional; ECDSA P-256)
//! blobs/<alg>/<hex>           manifests, blobs, policies, the trusted root, keys
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::registry::Descriptor;

use super::recording::ReferrersKey;

/// `oci-layout` entry name.
pub const OCI_LAYOUT: &str = "oci-layout";
/// `index.json` entry name.
pub const INDEX_JSON: &str = "index.json";
/// vouch's index entry name.
pub const BUNDLE_JSON: &str = "vouch-bundle.json";
/// The signature entry name.
pub const BUNDLE_SIG: &str = "vouch-bundle.sig";
/// Contents of `oci-layout`.
pub const OCI_LAYOUT_JSON: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// DSSE payload type of the bundle signature.
pub const BUNDLE_PAYLOAD_TYPE: &str = "application/vnd.vouch.bundle.v1+json";
/// The only bundle format version written and read.
pub const BUNDLE_VERSION: u32 = 1;
/// Annotation naming a covered artifact's reference in `index.json` (OCI image layout convention).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Annotation with the digest-pinned reference of a covered artifact.
pub const PINNED_ANNOTATION: &str = "dev.vouch.bundle.pinned";

/// Policy-language features beyond the first policy format, by name. A bundle lists those its policies use
/// (`policyFeatures`), and a reader refuses a bundle that uses one it does not know: a policy field the
/// reader does not know would be ignored, and the policy would enforce less than it says. Readers older
/// than this list refuse any index with `policyFeatures` at all (the index denies unknown fields), and an
/// index without it is the same bytes as before, so bundles whose policies use none stay readable by them.
pub mod policy_features {
    /// `requirements.signature` as an object (authorities, minAuthorities, annotations).
    pub const SIGNATURE_RULES: &str = "signatureRules";
    /// `requirements.attestations[].authorities`.
    pub const ATTESTATION_AUTHORITIES: &str = "attestationAuthorities";
    /// `excludeImages`.
    pub const EXCLUDE_IMAGES: &str = "excludeImages";
    /// `requireDigest`.
    pub const REQUIRE_DIGEST: &str = "requireDigest";
    /// `authorities[].notation` (Notary Project signatures).
    pub const NOTATION_AUTHORITIES: &str = "notationAuthorities";
    /// `authorities[].notation.crls` (revocation from CRL files): a reader that ignored it would skip
    /// revocation checks the policy asks for.
    pub const NOTATION_CRLS: &str = "notationCrls";
    /// Every feature this build reads.
    pub const KNOWN: &[&str] = &[
        SIGNATURE_RULES,
        ATTESTATION_AUTHORITIES,
        EXCLUDE_IMAGES,
        REQUIRE_DIGEST,
        NOTATION_AUTHORITIES,
        NOTATION_CRLS,
    ];
}

/// `vouch-bundle.json`: the signed statement of what a bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleIndex {
    /// Format version ([`BUNDLE_VERSION`]).
    pub version: u32,
    /// When the bundle was made.
    pub created: DateTime<Utc>,
    /// After this the bundle is refused.
    pub expires: DateTime<Utc>,
    /// SHA-256 of `index.json`.
    pub index_digest: Digest,
    /// The artifacts the bundle was made for.
    pub artifacts: Vec<CoveredArtifact>,
    /// `registry/repository:tag` → digest (`null`: the registry did not have the tag).
    pub tags: BTreeMap<String, Option<Digest>>,
    /// Manifests (by digest) with their media types; their bytes are blobs.
    pub manifests: BTreeMap<Digest, String>,
    /// Recorded referrers answers.
    pub referrers: Vec<ReferrersEntry>,
    /// Policies (YAML) carried, by name.
    pub policies: Vec<NamedBlob>,
    /// The [`policy_features`] the policies use (sorted); a reader refuses one it does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_features: Vec<String>,
    /// The Sigstore trusted root in use when the bundle was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<Digest>,
    /// Public keys (PEM) carried for reference; authorities themselves are in the policies.
    #[serde(default)]
    pub keys: Vec<NamedBlob>,
    /// Every blob in the bundle with its size: nothing more, nothing less may be present.
    pub blobs: BTreeMap<Digest, u64>,
}

/// One artifact a bundle was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoveredArtifact {
    /// The reference as given.
    pub reference: String,
    /// The digest it resolved to.
    pub digest: Digest,
    /// Its manifest's media type.
    pub media_type: String,
}

/// One recorded referrers answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferrersEntry {
    /// Subject and filter.
    #[serde(flatten)]
    pub key: ReferrersKey,
    /// The answer.
    pub descriptors: Vec<Descriptor>,
}

/// A named blob (policy file, key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedBlob {
    /// The name (file name of a policy, label of a key).
    pub name: String,
    /// The blob's digest.
    pub digest: Digest,
}

/// The entry name of a blob: `blobs/<alg>/<hex>`.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

/// The digest a `blobs/<alg>/<hex>` entry name stands for.
pub fn blob_digest(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_round_trip_and_reject_junk() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(blob_digest(&blob_path(&d)), Some(d));
        assert_eq!(blob_digest("blobs/sha256/nothex"), None);
        assert_eq!(blob_digest("blobs/sha256/../x"), None);
        assert_eq!(blob_digest("blobs/md5/abc"), None);
    }
}
