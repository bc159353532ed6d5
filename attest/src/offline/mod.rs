//! Offline verification bundles for air-gapped sites.
//!
//! On the connected side a [`Recorder`] keeps every successful read of a verification (a [`Recorded`]
//! source around the network, [`RegistryClient::recording`]); [`write_bundle`] puts that, the policies and
//! the trust material into one OCI image layout tar with a signed index. On the air-gapped side
//! [`OfflineBundle::open`] checks the whole file before anything in it is used, and
//! [`OfflineBundle::verifier`] gives an [`ArtifactVerifier`] whose registry client answers from the bundle
//! alone ([`OfflineStore`], which has no HTTP client). What the bundle does not cover fails like an
//! unreachable registry ("not in the offline bundle"), so each policy's failure policy decides.

mod format;
mod reader;
mod recording;
mod store;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use format::{
    blob_digest, blob_path, policy_features, BundleIndex, CoveredArtifact, NamedBlob, ReferrersEntry,
    BUNDLE_JSON, BUNDLE_PAYLOAD_TYPE, BUNDLE_SIG, BUNDLE_VERSION, INDEX_JSON, OCI_LAYOUT,
    REF_NAME_ANNOTATION,
};
pub use reader::BundleLimits;
pub use recording::{
    referrers_key, tag_key, Recorded, RecordedManifest, Recorder, Recording, RecordingOverflow, ReferrersKey,
};
pub use store::{not_in_bundle, OfflineStore};
pub use writer::{bundle_entries, write_bundle, write_tar, BundleSpec, Entries};

use crate::cache::CacheConfig;
use crate::digest::Digest;
use crate::keys::PublicKey;
use crate::registry::{RegistryClient, RegistryConfig};
use crate::trust_root::TrustRoot;
use crate::verify::{ArtifactVerifier, VerifierConfig, VerifyError, VerifyOptions};

/// Why a bundle was rejected (or could not be written). Nothing from a rejected bundle is used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The bundle file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An entry or the whole bundle is over a limit.
    #[error("{what} is larger than the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// An entry that could escape the bundle when unpacked (absolute path, `..`, a link or device).
    #[error("unsafe entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry name as stored.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// An entry a bundle never has.
    #[error("unexpected entry {entry:?}")]
    UnexpectedEntry {
        /// The entry name.
        entry: String,
    },
    /// The same entry twice (the second could shadow the checked first).
    #[error("duplicate entry {entry:?}")]
    DuplicateEntry {
        /// The entry name.
        entry: String,
    },
    /// A required entry is absent.
    #[error("missing entry {entry:?}")]
    MissingEntry {
        /// The entry name.
        entry: String,
    },
    /// An entry cannot be parsed.
    #[error("malformed {entry}: {reason}")]
    Malformed {
        /// The entry name.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob's bytes do not hash to its name (a changed byte).
    #[error("blob {entry} does not match its digest (content hashes to {actual})")]
    BlobDigestMismatch {
        /// The entry name.
        entry: String,
        /// What the content hashes to.
        actual: String,
    },
    /// A blob the index lists is not in the bundle (a removed entry).
    #[error("blob {digest} is listed in vouch-bundle.json but missing from the bundle")]
    MissingBlob {
        /// The digest.
        digest: String,
    },
    /// A blob the index does not list (an added entry).
    #[error("blob {digest} is in the bundle but not listed in vouch-bundle.json")]
    UnlistedBlob {
        /// The digest.
        digest: String,
    },
    /// `index.json` is not the one the signed index names.
    #[error("index.json does not match the digest in vouch-bundle.json (expected {expected}, got {actual})")]
    IndexDigestMismatch {
        /// Digest in vouch-bundle.json.
        expected: String,
        /// Digest of index.json.
        actual: String,
    },
    /// The index contradicts itself or the entries.
    #[error("inconsistent bundle: {reason}")]
    Inconsistent {
        /// What does not fit.
        reason: String,
    },
    /// A key was given but the bundle carries no signature.
    #[error("the bundle is unsigned but a bundle key was given: refusing it")]
    Unsigned,
    /// The bundle is signed but no key was given to check it with.
    #[error("the bundle is signed: give its public key (--bundle-key) to check the signature")]
    KeyNeeded,
    /// The signature does not verify with the key (wrong key or altered signature).
    #[error("the bundle signature does not verify with key {key}: {reason}")]
    BadSignature {
        /// Fingerprint of the key tried.
        key: String,
        /// What failed.
        reason: String,
    },
    /// The signature is valid but signs another vouch-bundle.json (a signature swapped in from another
    /// bundle).
    #[error(
        "the bundle signature is valid but signs a different vouch-bundle.json (signature of another bundle)"
    )]
    SignatureForOtherContent,
    /// The bundle is past its expiry.
    #[error("the bundle expired at {expires} (now {now})")]
    Expired {
        /// Expiry.
        expires: DateTime<Utc>,
        /// The time checked against.
        now: DateTime<Utc>,
    },
    /// The bundle claims to be made in the future.
    #[error("the bundle was created at {created}, after now ({now})")]
    NotYetValid {
        /// Creation time.
        created: DateTime<Utc>,
        /// The time checked against.
        now: DateTime<Utc>,
    },
    /// The policies use a policy feature this build does not know (it would ignore the field).
    #[error(
        "the bundle's policies use {feature:?}, which this build of vouch does not know; it would ignore \
         the field and enforce less than the policy says: read the bundle with a newer vouch"
    )]
    UnknownPolicyFeature {
        /// The feature's name.
        feature: String,
    },
    /// A format version this build does not read.
    #[error("bundle format version {version} is not supported (this build reads version 1)")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The trusted root carried cannot be used.
    #[error("the bundle's trusted root is invalid: {reason}")]
    TrustRoot {
        /// What is wrong.
        reason: String,
    },
    /// The recording overflowed while the bundle was being made.
    #[error("recording: {0}")]
    Recording(#[from] RecordingOverflow),
    /// The verifier could not be built.
    #[error("verifier: {0}")]
    Verifier(#[from] VerifyError),
}

/// How a bundle is opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The bundle key: when given, the bundle must be signed with it.
    pub key: Option<PublicKey>,
    /// Without a key, accept a signed bundle without checking its signature (listing only).
    pub allow_unsigned: bool,
    /// The time expiry is checked against.
    pub now: DateTime<Utc>,
    /// Size bounds.
    pub limits: BundleLimits,
}

impl OpenOptions {
    /// Checked with `key` (if any) against the current time and the default limits.
    pub fn new(key: Option<PublicKey>) -> Self {
        Self { key, allow_unsigned: false, now: Utc::now(), limits: BundleLimits::default() }
    }
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct OfflineBundle {
    path: PathBuf,
    index: BundleIndex,
    content: Arc<Recording>,
    policies: Vec<(String, String)>,
    keys: Vec<(String, String)>,
    trusted_root: Option<TrustRoot>,
    signed_by: Option<Digest>,
    signed: bool,
}

/// What a bundle covers, for listings (`vouch bundle verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleContents {
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Expiry.
    pub expires: DateTime<Utc>,
    /// Fingerprint of the key whose signature verified (`None`: unsigned or not checked).
    pub signed_by: Option<Digest>,
    /// Whether the bundle carries a signature.
    pub signed: bool,
    /// Covered artifacts.
    pub artifacts: Vec<CoveredArtifact>,
    /// Tags recorded (definite "not found" answers included).
    pub tags: usize,
    /// Manifests held.
    pub manifests: usize,
    /// Other blobs held (signatures, attestations, SBOMs, configs, policies, keys, the trusted root).
    pub blobs: usize,
    /// Referrers answers recorded.
    pub referrers: usize,
    /// Bytes of content.
    pub content_bytes: u64,
    /// Policy files carried.
    pub policies: Vec<String>,
    /// The trusted root carried, by digest.
    pub trusted_root: Option<Digest>,
    /// Keys carried, by label.
    pub keys: Vec<String>,
}

impl OfflineBundle {
    /// Open and check a bundle file: every blob hashes to its digest, the index is complete and exact,
    /// the signature verifies with `key` (when given: an unsigned bundle is then refused; without a key a
    /// signed bundle is refused, an unsigned one is checked for integrity only), not expired.
    pub fn open(path: &Path, key: Option<&PublicKey>) -> Result<Self, BundleError> {
        Self::open_with(path, &OpenOptions::new(key.cloned()))
    }

    /// [`Self::open`] with explicit options.
    pub fn open_with(path: &Path, options: &OpenOptions) -> Result<Self, BundleError> {
        let raw = reader::read_entries(path, &options.limits)?;
        Self::from_entries(path, raw, options)
    }

    /// [`Self::open_with`] on a bundle file's bytes already in memory; `path` only names it.
    pub fn from_bytes(path: &Path, bytes: &[u8], options: &OpenOptions) -> Result<Self, BundleError> {
        let raw = reader::read_entries_from_bytes(path, bytes, &options.limits)?;
        Self::from_entries(path, raw, options)
    }

    fn from_entries(
        path: &Path,
        raw: reader::RawEntries,
        options: &OpenOptions,
    ) -> Result<Self, BundleError> {
        // The signature first: nothing of an unauthenticated index is interpreted beyond its framing.
        let state = reader::check_signature(&raw, options.key.as_ref(), options.allow_unsigned)?;
        let (index, content) = reader::check_index(&raw, options.now)?;
        let text = |d: &Digest, what: &str| -> Result<String, BundleError> {
            let bytes = raw.blobs.get(d).ok_or_else(|| BundleError::MissingBlob { digest: d.to_string() })?;
            String::from_utf8(bytes.clone())
                .map_err(|_| BundleError::Malformed { entry: what.to_owned(), reason: "not UTF-8".into() })
        };
        let policies = index
            .policies
            .iter()
            .map(|p| Ok((p.name.clone(), text(&p.digest, &format!("policy {}", p.name))?)))
            .collect::<Result<Vec<_>, BundleError>>()?;
        let keys = index
            .keys
            .iter()
            .map(|k| Ok((k.name.clone(), text(&k.digest, &format!("key {}", k.name))?)))
            .collect::<Result<Vec<_>, BundleError>>()?;
        let trusted_root = match &index.trusted_root {
            Some(d) => {
                let bytes =
                    raw.blobs.get(d).ok_or_else(|| BundleError::MissingBlob { digest: d.to_string() })?;
                Some(
                    TrustRoot::from_json(bytes)
                        .map_err(|e| BundleError::TrustRoot { reason: e.to_string() })?,
                )
            }
            None => None,
        };
        let signed = raw.signature.is_some();
        let signed_by = match state {
            reader::SignatureState::Verified(fp) => Some(fp),
            reader::SignatureState::Unsigned | reader::SignatureState::NotChecked => None,
        };
        Ok(Self {
            path: path.to_path_buf(),
            signed,
            signed_by,
            index,
            content: Arc::new(content),
            policies,
            keys,
            trusted_root,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked index.
    pub fn index(&self) -> &BundleIndex {
        &self.index
    }

    /// Whether a signature was verified with the given key (`false`: unsigned, or not checked).
    pub fn is_authenticated(&self) -> bool {
        self.signed_by.is_some()
    }

    /// The policies it carries: (file name, YAML).
    pub fn policies_yaml(&self) -> Vec<(String, String)> {
        self.policies.clone()
    }

    /// The public keys it carries: (label, PEM).
    pub fn keys_pem(&self) -> Vec<(String, String)> {
        self.keys.clone()
    }

    /// The Sigstore trusted root in use when it was made.
    pub fn trusted_root(&self) -> Option<TrustRoot> {
        self.trusted_root.clone()
    }

    /// The recorded content (read-only).
    pub fn content(&self) -> &Recording {
        &self.content
    }

    /// What it covers.
    pub fn contents(&self) -> BundleContents {
        BundleContents {
            created: self.index.created,
            expires: self.index.expires,
            signed_by: self.signed_by.clone(),
            signed: self.signed,
            artifacts: self.index.artifacts.clone(),
            tags: self.index.tags.len(),
            manifests: self.index.manifests.len(),
            blobs: self.index.blobs.len().saturating_sub(self.index.manifests.len()),
            referrers: self.index.referrers.len(),
            content_bytes: self.content.content_bytes(),
            policies: self.index.policies.iter().map(|p| p.name.clone()).collect(),
            trusted_root: self.index.trusted_root.clone(),
            keys: self.index.keys.iter().map(|k| k.name.clone()).collect(),
        }
    }

    /// A registry client that reads only from the bundle (zero network), and nothing after its expiry.
    pub fn registry_client(&self, config: RegistryConfig) -> RegistryClient {
        RegistryClient::offline(
            config,
            OfflineStore::new(self.content.clone()).with_expiry(self.index.expires),
        )
    }

    /// A verifier that reads only from the bundle (zero network), against the bundle's trusted root
    /// (the embedded public-good root when it carries none).
    pub fn verifier(
        &self,
        cache: CacheConfig,
        options: VerifyOptions,
    ) -> Result<ArtifactVerifier, BundleError> {
        let trust_root = match &self.trusted_root {
            Some(t) => t.clone(),
            None => TrustRoot::public_good().map_err(|e| BundleError::TrustRoot { reason: e.to_string() })?,
        };
        let registry = RegistryConfig::default();
        let client = self.registry_client(registry.clone());
        Ok(ArtifactVerifier::with_registry_client(
            VerifierConfig { registry, trust_root, cache, options },
            client,
        )?)
    }
}

#[cfg(test)]
mod tests;
