//! OpenSSF model signatures (PyPI `model-signing` 1.x, predicate `https://model_signing/signature/v1.0`).
//!
//! A model signature is a Sigstore bundle holding a DSSE envelope whose in-toto statement lists every file
//! (or file shard) of the model with its SHA-256 in `predicate.resources`, and whose single subject digest is
//! the SHA-256 over the concatenated raw resource digests, in the listed order. Verification checks the DSSE
//! signature with the given key, the statement, that the subject digest matches the resources, and that the
//! model's files are exactly the signed resources. Only key-based signatures are handled here (public-key
//! hint, no transparency-log entry, as `model_signing sign key` writes them).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, DigestAlgorithm};
use crate::dsse::{DsseError, Envelope};
use crate::intoto::{InTotoError, Statement};
use crate::keys::PublicKey;

/// The model-signing v1.0 predicate type.
pub const MODEL_SIGNATURE_PREDICATE_V1: &str = "https://model_signing/signature/v1.0";

/// Largest signature bundle vouch will read.
pub const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;

/// Paths model-signing always ignores when verifying (git metadata).
const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// Sigstore bundle media types this module reads.
const BUNDLE_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

/// Bounds on what is read from a model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    /// Most files (or signed resources) accepted.
    pub max_files: usize,
    /// Most bytes hashed in total.
    pub max_total_bytes: u64,
    /// Deepest directory nesting walked.
    pub max_depth: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self { max_files: 100_000, max_total_bytes: 1 << 40, max_depth: 64 }
    }
}

/// What a verified model signature establishes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelSignatureFacts {
    /// SHA-256 of the verifying key's SPKI DER.
    pub key_fingerprint: Digest,
    /// Number of files of the model covered by the signature.
    pub files: usize,
    /// The statement's subject digest (SHA-256 over the resource digests).
    pub subject_digest: Digest,
}

/// Why a model signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelSigningError {
    /// The bundle is larger than [`MAX_BUNDLE_BYTES`].
    #[error("model signature bundle of {size} bytes exceeds the limit of {max} bytes")]
    BundleTooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bundle is not a Sigstore bundle with a DSSE envelope.
    #[error("malformed model signature bundle: {reason}")]
    MalformedBundle {
        /// What is wrong.
        reason: String,
    },
    /// An unknown bundle media type.
    #[error("unsupported Sigstore bundle media type {found:?}")]
    UnsupportedBundleMediaType {
        /// The media type found.
        found: String,
    },
    /// The bundle is not a key-based signature.
    #[error("model signature bundle carries {found}, not a public-key hint; only key-based model signatures are verified here")]
    NotKeyBased {
        /// What the verification material holds.
        found: &'static str,
    },
    /// The bundle names another key than the one given.
    #[error("model signature was made with another key: bundle key hint is {hint}, the given key's hint is {expected}")]
    KeyHintMismatch {
        /// The hint in the bundle (SHA-256 of the signer's PEM public key).
        hint: String,
        /// The hint of the given key.
        expected: String,
    },
    /// The DSSE signature does not verify with the key.
    #[error("model signature does not verify with the given key: {0}")]
    Signature(DsseError),
    /// The signed payload is not a valid in-toto statement.
    #[error("model signature payload: {0}")]
    Statement(InTotoError),
    /// Not a model-signing v1.0 predicate.
    #[error("model signature predicate type is {found:?}, expected {MODEL_SIGNATURE_PREDICATE_V1}")]
    WrongPredicateType {
        /// The predicate type found.
        found: String,
    },
    /// The statement's subject is not one model with a SHA-256 digest.
    #[error("model signature subject: {reason}")]
    BadSubject {
        /// What is wrong.
        reason: String,
    },
    /// The predicate does not have the required shape.
    #[error("malformed model signature predicate: {reason}")]
    MalformedPredicate {
        /// What is wrong.
        reason: String,
    },
    /// A serialization method vouch does not implement.
    #[error("unsupported model serialization method {method:?} (supported: files, shards)")]
    UnsupportedSerialization {
        /// The method found.
        method: String,
    },
    /// A hash algorithm vouch does not implement.
    #[error("unsupported model hash type {hash_type:?} (supported: sha256)")]
    UnsupportedHashType {
        /// The hash type found.
        hash_type: String,
    },
    /// A resource entry is not what the serialization produces.
    #[error("invalid model signature resource {name:?}: {reason}")]
    InvalidResource {
        /// The resource name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The signed subject digest is not the digest of the signed resources.
    #[error("model signature is inconsistent: subject digest {signed} but the resources hash to {computed}")]
    SubjectDigestMismatch {
        /// The subject digest in the statement.
        signed: Digest,
        /// The digest recomputed from the resources.
        computed: Digest,
    },
    /// More files or resources than allowed.
    #[error("model has more than {max} files")]
    TooManyFiles {
        /// The limit.
        max: usize,
    },
    /// More bytes than allowed.
    #[error("model files total {bytes} bytes, more than the limit of {max}")]
    ModelTooLarge {
        /// Total size found.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// Directory nesting deeper than allowed.
    #[error("model directory is nested deeper than {max} levels at {path:?}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where.
        path: String,
    },
    /// A signed file is absent.
    #[error("model file {name:?} is signed but missing ({count} signed file(s) missing)")]
    MissingFile {
        /// First missing file (sorted).
        name: String,
        /// How many are missing.
        count: usize,
    },
    /// A file is present that the signature does not cover.
    #[error("model file {name:?} is not covered by the signature ({count} unsigned file(s))")]
    UnexpectedFile {
        /// First unexpected file (sorted).
        name: String,
        /// How many are unexpected.
        count: usize,
    },
    /// A file's content differs from what was signed.
    #[error("model file {name:?} was modified: signed {expected}, found {actual}")]
    FileDigestMismatch {
        /// The file.
        name: String,
        /// The signed digest.
        expected: String,
        /// The digest of the file now.
        actual: String,
    },
    /// A symbolic link in the model directory.
    #[error("model contains a symbolic link at {path:?}; symbolic links are not followed")]
    Symlink {
        /// Relative path of the link.
        path: String,
    },
    /// A socket, device or other non-regular file.
    #[error("model contains {path:?}, which is neither a regular file nor a directory")]
    SpecialFile {
        /// Relative path.
        path: String,
    },
    /// A file name that is not UTF-8.
    #[error("model contains a file name that is not UTF-8: {path:?}")]
    NonUtf8Path {
        /// Lossy rendering of the path.
        path: String,
    },
    /// Reading the model failed.
    #[error("cannot read model path {path:?}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// Shard signatures need the file contents, not whole-file digests.
    #[error("model signature uses shard serialization, which cannot be checked against whole-file digests")]
    ShardsNeedFileContents,
}

type Result<T, E = ModelSigningError> = std::result::Result<T, E>;

/// Verify an OpenSSF model signature over the model directory `model_dir`, with default [`ModelLimits`].
pub fn verify_model_directory(
    model_dir: &Path,
    bundle_json: &[u8],
    key: &PublicKey,
) -> Result<ModelSignatureFacts> {
    verify_model_directory_with_limits(model_dir, bundle_json, key, &ModelLimits::default())
}

/// Verify an OpenSSF model signature over the model directory `model_dir`, reading at most `limits`.
pub fn verify_model_directory_with_limits(
    model_dir: &Path,
    bundle_json: &[u8],
    key: &PublicKey,
    limits: &ModelLimits,
) -> Result<ModelSignatureFacts> {
    let signed = SignedModel::open(bundle_json, key, limits)?;
    let mut files = walk_model(model_dir, &signed.ignore, limits)?;
    drop_signature_file(&mut files, &signed, bundle_json)?;
    let total: u64 = files.values().map(|f| f.size).sum();
    if total > limits.max_total_bytes {
        return Err(ModelSigningError::ModelTooLarge { bytes: total, max: limits.max_total_bytes });
    }
    let count = match signed.method {
        Method::Files => {
            let expected = signed.expected_files()?;
            compare_names(expected.keys(), files.keys())?;
            for (name, digest) in &expected {
                let file = files.get(name).ok_or_else(|| missing(name, 1))?;
                let actual = hash_range(&file.path, 0, file.size)?;
                check_digest(name, digest, &actual)?;
            }
            expected.len()
        }
        Method::Shards { shard_size } => {
            let expected = signed.expected_shards(shard_size)?;
            // model-signing records no shards for empty files, so they are not part of the model.
            let non_empty: BTreeMap<&String, &ModelFile> = files.iter().filter(|(_, f)| f.size > 0).collect();
            compare_names(expected.keys(), non_empty.keys().copied())?;
            for (name, shards) in &expected {
                let file = non_empty.get(name).ok_or_else(|| missing(name, 1))?;
                check_shards(name, file, shard_size, shards)?;
            }
            expected.len()
        }
    };
    Ok(signed.facts(count))
}

/// Verify an OpenSSF model signature against the files of a model known by their SHA-256 (e.g. the layers
/// of an OCI model artifact): relative path → digest of the whole file.
pub fn verify_model_manifest(
    bundle_json: &[u8],
    key: &PublicKey,
    files: &BTreeMap<String, Digest>,
) -> Result<ModelSignatureFacts> {
    let limits = ModelLimits::default();
    if files.len() > limits.max_files {
        return Err(ModelSigningError::TooManyFiles { max: limits.max_files });
    }
    let signed = SignedModel::open(bundle_json, key, &limits)?;
    let count = signed.check_whole_files(files)?;
    Ok(signed.facts(count))
}

/// What a model-signing statement establishes about a set of files, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedModelStatement {
    /// Number of files covered.
    pub files: usize,
    /// The statement's subject digest (SHA-256 over the resource digests).
    pub subject_digest: Digest,
}

/// Check a model-signing statement whose envelope signature the CALLER has verified (e.g. through the
/// Sigstore verifier, for key or keyless signers) against model files known by their SHA-256: the
/// predicate must be well-formed, the subject must be the digest of the resources, and the files (less
/// ignored paths) must be exactly the signed ones with the signed digests.
pub fn check_statement_against_files(
    statement: &Statement,
    files: &BTreeMap<String, Digest>,
) -> Result<CheckedModelStatement> {
    let limits = ModelLimits::default();
    if files.len() > limits.max_files {
        return Err(ModelSigningError::TooManyFiles { max: limits.max_files });
    }
    // The fingerprint is not part of what is returned; the caller knows who signed.
    let signed = SignedModel::from_statement(statement, Digest::sha256_of(b""), &limits)?;
    let files = signed.check_whole_files(files)?;
    Ok(CheckedModelStatement { files, subject_digest: signed.subject_digest })
}

/// How the model was turned into resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// One resource per file: `path`.
    Files,
    /// One resource per shard: `path:start:end`, shards of `shard_size` bytes.
    Shards { shard_size: u64 },
}

/// One signed resource: its name and SHA-256.
#[derive(Debug, Clone)]
struct Resource {
    name: String,
    digest: Digest,
}

/// A verified, self-consistent model signature.
#[derive(Debug)]
struct SignedModel {
    key_fingerprint: Digest,
    subject_digest: Digest,
    method: Method,
    ignore: IgnoreSet,
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: RawMaterial,
    dsse_envelope: Option<Envelope>,
    message_signature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    public_key: Option<RawKeyHint>,
    certificate: Option<serde_json::Value>,
    x509_certificate_chain: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKeyHint {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
struct RawPredicate {
    serialization: RawSerialization,
    resources: Vec<RawResource>,
}

#[derive(Deserialize)]
struct RawSerialization {
    method: String,
    hash_type: String,
    /// model-signing writes the predicate through protobuf's Struct, so numbers arrive as floats (`1024.0`).
    #[serde(default)]
    shard_size: Option<serde_json::Value>,
    #[serde(default)]
    ignore_paths: Vec<String>,
}

#[derive(Deserialize)]
struct RawResource {
    name: String,
    algorithm: String,
    digest: String,
}

impl SignedModel {
    /// Parse the bundle, verify its signature with `key`, and check the statement's internal consistency.
    fn open(bundle_json: &[u8], key: &PublicKey, limits: &ModelLimits) -> Result<Self> {
        if bundle_json.len() > MAX_BUNDLE_BYTES {
            return Err(ModelSigningError::BundleTooLarge { size: bundle_json.len(), max: MAX_BUNDLE_BYTES });
        }
        let bundle: RawBundle = serde_json::from_slice(bundle_json)
            .map_err(|e| ModelSigningError::MalformedBundle { reason: e.to_string() })?;
        if !BUNDLE_MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
            return Err(ModelSigningError::UnsupportedBundleMediaType {
                found: bundle.media_type.chars().take(200).collect(),
            });
        }
        let material = bundle.verification_material;
        if material.certificate.is_some() {
            return Err(ModelSigningError::NotKeyBased { found: "a certificate" });
        }
        if material.x509_certificate_chain.is_some() {
            return Err(ModelSigningError::NotKeyBased { found: "a certificate chain" });
        }
        let hint =
            material.public_key.ok_or(ModelSigningError::NotKeyBased { found: "no public-key hint" })?.hint;
        // model-signing's hint is the SHA-256 of the signer's PEM public key; an empty hint (older signers)
        // says nothing, and the signature check below decides either way.
        if !hint.is_empty() {
            let expected = Digest::sha256_of(key.to_pem().as_bytes());
            if !hint.eq_ignore_ascii_case(expected.hex()) {
                return Err(ModelSigningError::KeyHintMismatch {
                    hint: hint.chars().take(200).collect(),
                    expected: expected.hex().to_owned(),
                });
            }
        }
        if bundle.message_signature.is_some() {
            return Err(ModelSigningError::MalformedBundle {
                reason: "bundle holds a message signature, model signatures are DSSE envelopes".into(),
            });
        }
        let envelope = bundle.dsse_envelope.ok_or_else(|| ModelSigningError::MalformedBundle {
            reason: "bundle has no dsseEnvelope".into(),
        })?;
        let statement = Statement::from_verified_dsse(&envelope, key).map_err(|e| match e {
            InTotoError::Dsse(e) => ModelSigningError::Signature(e),
            other => ModelSigningError::Statement(other),
        })?;
        Self::from_statement(&statement, key.fingerprint(), limits)
    }

    fn from_statement(statement: &Statement, key_fingerprint: Digest, limits: &ModelLimits) -> Result<Self> {
        if statement.predicate_type != MODEL_SIGNATURE_PREDICATE_V1 {
            return Err(ModelSigningError::WrongPredicateType {
                found: statement.predicate_type.chars().take(200).collect(),
            });
        }
        let [subject] = statement.subjects.as_slice() else {
            return Err(ModelSigningError::BadSubject {
                reason: format!("expected exactly one subject, found {}", statement.subjects.len()),
            });
        };
        let subject_hex = subject
            .digest
            .get("sha256")
            .ok_or_else(|| ModelSigningError::BadSubject { reason: "subject has no sha256 digest".into() })?;
        let subject_digest: Digest = format!("sha256:{}", subject_hex.to_ascii_lowercase())
            .parse()
            .map_err(|e| ModelSigningError::BadSubject { reason: format!("{e}") })?;

        let predicate = RawPredicate::deserialize(&statement.predicate)
            .map_err(|e| ModelSigningError::MalformedPredicate { reason: e.to_string() })?;
        let serialization = predicate.serialization;
        if serialization.hash_type != "sha256" {
            return Err(ModelSigningError::UnsupportedHashType {
                hash_type: serialization.hash_type.chars().take(100).collect(),
            });
        }
        let (method, algorithm) = match serialization.method.as_str() {
            "files" => (Method::Files, "sha256".to_owned()),
            "shards" => {
                let shard_size =
                    serialization.shard_size.as_ref().and_then(whole_number).ok_or_else(|| {
                        ModelSigningError::MalformedPredicate {
                            reason: "shard serialization without a positive whole shard_size".into(),
                        }
                    })?;
                (Method::Shards { shard_size }, format!("sha256-sharded-{shard_size}"))
            }
            other => {
                return Err(ModelSigningError::UnsupportedSerialization {
                    method: other.chars().take(100).collect(),
                })
            }
        };
        let ignore = IgnoreSet::new(&serialization.ignore_paths)?;

        if predicate.resources.is_empty() {
            return Err(ModelSigningError::MalformedPredicate {
                reason: "the signature covers no resources".into(),
            });
        }
        if predicate.resources.len() > limits.max_files {
            return Err(ModelSigningError::TooManyFiles { max: limits.max_files });
        }
        let mut resources = Vec::with_capacity(predicate.resources.len());
        let mut root = Sha256::new();
        let mut seen = BTreeSet::new();
        for raw in predicate.resources {
            let invalid = |reason: String| ModelSigningError::InvalidResource {
                name: raw.name.chars().take(200).collect(),
                reason,
            };
            if raw.algorithm != algorithm {
                return Err(invalid(format!("algorithm {:?}, expected {algorithm:?}", raw.algorithm)));
            }
            let digest: Digest = format!("sha256:{}", raw.digest.to_ascii_lowercase())
                .parse()
                .map_err(|e| invalid(format!("{e}")))?;
            if !seen.insert(raw.name.clone()) {
                return Err(invalid("listed twice".into()));
            }
            root.update(digest.to_bytes());
            resources.push(Resource { name: raw.name, digest });
        }
        let computed = Digest::from_bytes(DigestAlgorithm::Sha256, &root.finalize())
            .map_err(|e| ModelSigningError::MalformedPredicate { reason: e.to_string() })?;
        if computed != subject_digest {
            return Err(ModelSigningError::SubjectDigestMismatch { signed: subject_digest, computed });
        }
        Ok(Self { key_fingerprint, subject_digest, method, ignore, resources })
    }

    /// Resources of a `files` signature: file path → digest.
    fn expected_files(&self) -> Result<BTreeMap<String, Digest>> {
        let mut out = BTreeMap::new();
        for r in &self.resources {
            check_relative_path(&r.name)
                .map_err(|reason| ModelSigningError::InvalidResource { name: r.name.clone(), reason })?;
            out.insert(r.name.clone(), r.digest.clone());
        }
        Ok(out)
    }

    /// Resources of a `shards` signature: file path → shards (start, end, digest) in offset order.
    fn expected_shards(&self, shard_size: u64) -> Result<BTreeMap<String, Vec<Shard>>> {
        let mut out: BTreeMap<String, Vec<Shard>> = BTreeMap::new();
        for r in &self.resources {
            let invalid =
                |reason: String| ModelSigningError::InvalidResource { name: r.name.clone(), reason };
            let parts: Vec<&str> = r.name.split(':').collect();
            let [path, start, end] = parts.as_slice() else {
                return Err(invalid("expected path:start:end".into()));
            };
            check_relative_path(path).map_err(invalid)?;
            let start: u64 = start.parse().map_err(|_| invalid("start is not a number".into()))?;
            let end: u64 = end.parse().map_err(|_| invalid("end is not a number".into()))?;
            if end <= start || end - start > shard_size {
                return Err(invalid(format!("shard {start}..{end} is empty or larger than {shard_size}")));
            }
            out.entry((*path).to_owned()).or_default().push(Shard { start, end, digest: r.digest.clone() });
        }
        for shards in out.values_mut() {
            shards.sort_by_key(|s| s.start);
        }
        Ok(out)
    }

    /// Compare whole-file digests with a `files` signature; returns the number of signed files.
    fn check_whole_files(&self, files: &BTreeMap<String, Digest>) -> Result<usize> {
        if let Method::Shards { .. } = self.method {
            return Err(ModelSigningError::ShardsNeedFileContents);
        }
        let present: BTreeMap<&String, &Digest> =
            files.iter().filter(|(name, _)| !self.ignore.covers(name)).collect();
        let expected = self.expected_files()?;
        compare_names(expected.keys(), present.keys().copied())?;
        for (name, digest) in &expected {
            let actual = present.get(name).ok_or_else(|| missing(name, 1))?;
            check_digest(name, digest, actual)?;
        }
        Ok(expected.len())
    }

    fn facts(&self, files: usize) -> ModelSignatureFacts {
        ModelSignatureFacts {
            key_fingerprint: self.key_fingerprint.clone(),
            files,
            subject_digest: self.subject_digest.clone(),
        }
    }
}

/// One signed shard of a file.
#[derive(Debug, Clone)]
struct Shard {
    start: u64,
    end: u64,
    digest: Digest,
}

/// Paths (relative to the model root) excluded from the model: the signed `ignore_paths` plus git metadata.
#[derive(Debug)]
struct IgnoreSet(Vec<String>);

impl IgnoreSet {
    fn new(signed: &[String]) -> Result<Self> {
        let mut paths: Vec<String> = GIT_PATHS.iter().map(|p| (*p).to_owned()).collect();
        for p in signed {
            let trimmed = p.trim_start_matches("./").trim_end_matches('/');
            // An ignore path that escapes or is the model root would exclude everything: refuse it.
            check_relative_path(trimmed).map_err(|reason| ModelSigningError::MalformedPredicate {
                reason: format!("ignore path {:?}: {reason}", p.chars().take(200).collect::<String>()),
            })?;
            paths.push(trimmed.to_owned());
        }
        Ok(Self(paths))
    }

    /// Whether `rel` (a `/`-separated relative path) is an ignored path or lies under one.
    fn covers(&self, rel: &str) -> bool {
        self.0
            .iter()
            .any(|p| rel == p || rel.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/')))
    }
}

/// A positive whole number given as a JSON integer or as a float without fraction (`1024.0`).
fn whole_number(value: &serde_json::Value) -> Option<u64> {
    // 2^53: beyond it floats no longer name every integer.
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    let n = match value.as_u64() {
        Some(n) => n,
        None => {
            let f = value.as_f64()?;
            if !(f.is_finite() && f.fract() == 0.0 && f > 0.0 && f <= MAX_EXACT) {
                return None;
            }
            // Exact: a whole float in (0, 2^53].
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = f as u64;
            n
        }
    };
    (n > 0).then_some(n)
}

/// A relative POSIX path in normal form: no leading `/`, no empty, `.` or `..` components.
fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("path is not in normal form (empty, '.' or '..' component)".into());
    }
    Ok(())
}

/// A regular file found in the model directory.
#[derive(Debug)]
struct ModelFile {
    path: PathBuf,
    size: u64,
}

/// All regular files under `root` that are not ignored, by `/`-separated relative path.
fn walk_model(root: &Path, ignore: &IgnoreSet, limits: &ModelLimits) -> Result<BTreeMap<String, ModelFile>> {
    let io = |path: &Path, e: std::io::Error| ModelSigningError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(root).map_err(|e| io(root, e))?;
    if !meta.is_dir() {
        return Err(io(root, std::io::Error::other("not a directory")));
    }
    let mut files = BTreeMap::new();
    let mut pending: Vec<(PathBuf, String, usize)> = vec![(root.to_owned(), String::new(), 0)];
    while let Some((dir, rel_dir, depth)) = pending.pop() {
        if depth > limits.max_depth {
            return Err(ModelSigningError::TooDeep { max: limits.max_depth, path: rel_dir });
        }
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| ModelSigningError::NonUtf8Path {
                path: entry.path().to_string_lossy().into_owned(),
            })?;
            let rel = if rel_dir.is_empty() { name.to_owned() } else { format!("{rel_dir}/{name}") };
            if ignore.covers(&rel) {
                continue;
            }
            // `file_type` does not follow symbolic links.
            let file_type = entry.file_type().map_err(|e| io(&entry.path(), e))?;
            if file_type.is_symlink() {
                return Err(ModelSigningError::Symlink { path: rel });
            } else if file_type.is_dir() {
                pending.push((entry.path(), rel, depth + 1));
            } else if file_type.is_file() {
                if files.len() >= limits.max_files {
                    return Err(ModelSigningError::TooManyFiles { max: limits.max_files });
                }
                let size = entry.metadata().map_err(|e| io(&entry.path(), e))?.len();
                files.insert(rel, ModelFile { path: entry.path(), size });
            } else {
                return Err(ModelSigningError::SpecialFile { path: rel });
            }
        }
    }
    Ok(files)
}

/// Leave out an unsigned file that is the signature bundle itself (model-signing's tools skip the signature
/// file when it lies inside the model, without always recording it in `ignore_paths`).
fn drop_signature_file(
    files: &mut BTreeMap<String, ModelFile>,
    signed: &SignedModel,
    bundle_json: &[u8],
) -> Result<()> {
    let signed_paths: BTreeSet<&str> = signed
        .resources
        .iter()
        .map(|r| match signed.method {
            Method::Files => r.name.as_str(),
            Method::Shards { .. } => r.name.split(':').next().unwrap_or_default(),
        })
        .collect();
    let candidates: Vec<String> = files
        .iter()
        .filter(|(name, f)| f.size == bundle_json.len() as u64 && !signed_paths.contains(name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    for name in candidates {
        let Some(file) = files.get(&name) else {
            continue;
        };
        let io = |e: std::io::Error| ModelSigningError::Io { path: file.path.clone(), reason: e.to_string() };
        // The size equals the bundle's, which is capped, so reading the file whole is bounded.
        if std::fs::read(&file.path).map_err(io)? == bundle_json {
            files.remove(&name);
        }
    }
    Ok(())
}

/// Fail on the first signed name that is absent, then on the first present name that is not signed.
fn compare_names<'a, 'b>(
    expected: impl Iterator<Item = &'a String> + Clone,
    present: impl Iterator<Item = &'b String> + Clone,
) -> Result<()> {
    let expected: BTreeSet<&str> = expected.map(String::as_str).collect();
    let present: BTreeSet<&str> = present.map(String::as_str).collect();
    let missing_names: Vec<&&str> = expected.difference(&present).collect();
    if let Some(first) = missing_names.first() {
        return Err(missing(first, missing_names.len()));
    }
    let extra: Vec<&&str> = present.difference(&expected).collect();
    if let Some(first) = extra.first() {
        return Err(ModelSigningError::UnexpectedFile { name: (**first).to_owned(), count: extra.len() });
    }
    Ok(())
}

fn missing(name: &str, count: usize) -> ModelSigningError {
    ModelSigningError::MissingFile { name: name.to_owned(), count }
}

fn check_digest(name: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(ModelSigningError::FileDigestMismatch {
        name: name.to_owned(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    })
}

/// The shards model-signing makes of a file of `size` bytes must be exactly the signed ones, each matching.
fn check_shards(name: &str, file: &ModelFile, shard_size: u64, signed: &[Shard]) -> Result<()> {
    let mut bounds = Vec::new();
    let mut start = 0;
    while start < file.size {
        let end = start.saturating_add(shard_size).min(file.size);
        bounds.push((start, end));
        start = end;
    }
    let signed_bounds: Vec<(u64, u64)> = signed.iter().map(|s| (s.start, s.end)).collect();
    if bounds != signed_bounds {
        let signed_size = signed.last().map_or(0, |s| s.end);
        return Err(ModelSigningError::FileDigestMismatch {
            name: name.to_owned(),
            expected: format!("{} shards over {signed_size} bytes", signed.len()),
            actual: format!("{} bytes", file.size),
        });
    }
    for shard in signed {
        let actual = hash_range(&file.path, shard.start, shard.end)?;
        if actual != shard.digest {
            return Err(ModelSigningError::FileDigestMismatch {
                name: format!("{name}:{}:{}", shard.start, shard.end),
                expected: shard.digest.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(())
}

/// SHA-256 of bytes `start..end` of the file, streamed.
fn hash_range(path: &Path, start: u64, end: u64) -> Result<Digest> {
    let io = |e: std::io::Error| ModelSigningError::Io { path: path.to_owned(), reason: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut reader = file.take(end.saturating_sub(start));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read_total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        read_total += n as u64;
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    if read_total != end.saturating_sub(start) {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file changed size while being read",
        )));
    }
    Digest::from_bytes(DigestAlgorithm::Sha256, &hasher.finalize())
        .map_err(|e| io(std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::IN_TOTO_PAYLOAD_TYPE;
    use crate::keys::SigningKey;
    use serde_json::json;

    /// Sign `resources` the way model-signing does, with `serialization` as given.
    fn bundle(
        key: &SigningKey,
        serialization: serde_json::Value,
        resources: &[(String, String, Digest)],
    ) -> Vec<u8> {
        let mut root = Sha256::new();
        for (_, _, d) in resources {
            root.update(d.to_bytes());
        }
        bundle_with_subject(key, serialization, resources, &hex::encode(root.finalize()))
    }

    fn bundle_with_subject(
        key: &SigningKey,
        serialization: serde_json::Value,
        resources: &[(String, String, Digest)],
        subject_hex: &str,
    ) -> Vec<u8> {
        let resources: Vec<_> = resources
            .iter()
            .map(|(name, alg, d)| json!({"name": name, "algorithm": alg, "digest": d.hex()}))
            .collect();
        let statement = json!({
            "_type": crate::intoto::STATEMENT_V1,
            "subject": [{"name": "model", "digest": {"sha256": subject_hex}}],
            "predicateType": MODEL_SIGNATURE_PREDICATE_V1,
            "predicate": {"serialization": serialization, "resources": resources},
        });
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), key);
        let hint = Digest::sha256_of(key.public_key().to_pem().as_bytes());
        serde_json::to_vec(&json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": hint.hex()}, "tlogEntries": []},
            "dsseEnvelope": envelope,
        }))
        .unwrap()
    }

    fn files_serialization() -> serde_json::Value {
        json!({"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": ["model.sig"]})
    }

    fn model_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.bin"), vec![7u8; 25]).unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        dir
    }

    fn file_resources(dir: &Path) -> Vec<(String, String, Digest)> {
        ["a.bin", "empty", "sub/b.txt"]
            .iter()
            .map(|n| {
                (n.to_string(), "sha256".to_string(), Digest::sha256_of(&std::fs::read(dir.join(n)).unwrap()))
            })
            .collect()
    }

    #[test]
    fn files_serialization_with_nested_dirs_and_ignored_signature() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let b = bundle(&key, files_serialization(), &file_resources(dir.path()));
        // The signature file inside the model is ignored, as its signed ignore_paths say.
        std::fs::write(dir.path().join("model.sig"), &b).unwrap();
        let facts = verify_model_directory(dir.path(), &b, &key.public_key()).unwrap();
        assert_eq!(facts.files, 3);
    }

    #[test]
    fn shard_serialization_is_verified_per_shard() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let shard = |name: &str, start: usize, end: usize| {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            (
                format!("{name}:{start}:{end}"),
                "sha256-sharded-10".to_string(),
                Digest::sha256_of(&bytes[start..end]),
            )
        };
        // a.bin is 25 bytes: shards 0-10, 10-20, 20-25; the empty file has no shards.
        let resources = vec![
            shard("a.bin", 0, 10),
            shard("a.bin", 10, 20),
            shard("a.bin", 20, 25),
            shard("sub/b.txt", 0, 5),
        ];
        let ser =
            json!({"method": "shards", "hash_type": "sha256", "shard_size": 10, "allow_symlinks": false});
        let b = bundle(&key, ser, &resources);
        let facts = verify_model_directory(dir.path(), &b, &key.public_key()).unwrap();
        assert_eq!(facts.files, 2);

        let mut bytes = std::fs::read(dir.path().join("a.bin")).unwrap();
        bytes[15] ^= 0x80;
        std::fs::write(dir.path().join("a.bin"), &bytes).unwrap();
        let err = verify_model_directory(dir.path(), &b, &key.public_key()).unwrap_err();
        assert!(
            matches!(&err, ModelSigningError::FileDigestMismatch { name, .. } if name == "a.bin:10:20"),
            "{err}"
        );

        bytes.push(0);
        std::fs::write(dir.path().join("a.bin"), &bytes).unwrap();
        let err = verify_model_directory(dir.path(), &b, &key.public_key()).unwrap_err();
        assert!(
            matches!(&err, ModelSigningError::FileDigestMismatch { name, .. } if name == "a.bin"),
            "{err}"
        );

        assert_eq!(
            verify_model_manifest(&b, &key.public_key(), &BTreeMap::new()),
            Err(ModelSigningError::ShardsNeedFileContents)
        );
    }

    #[test]
    fn inconsistent_subject_digest_is_rejected() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let b =
            bundle_with_subject(&key, files_serialization(), &file_resources(dir.path()), &"00".repeat(32));
        let err = verify_model_directory(dir.path(), &b, &key.public_key()).unwrap_err();
        assert!(matches!(err, ModelSigningError::SubjectDigestMismatch { .. }), "{err}");
    }

    #[test]
    fn unknown_methods_hashes_and_unsafe_ignore_paths_are_rejected() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let res = file_resources(dir.path());
        let cases = [
            (
                json!({"method": "tarball", "hash_type": "sha256", "allow_symlinks": false}),
                "unsupported model serialization method \"tarball\"",
            ),
            (
                json!({"method": "files", "hash_type": "blake3", "allow_symlinks": false}),
                "unsupported model hash type \"blake3\"",
            ),
            (json!({"method": "files", "hash_type": "sha256", "ignore_paths": ["."]}), "ignore path \".\""),
            (
                json!({"method": "files", "hash_type": "sha256", "ignore_paths": ["../x"]}),
                "ignore path \"../x\"",
            ),
            (json!({"method": "shards", "hash_type": "sha256"}), "positive whole shard_size"),
        ];
        for (ser, want) in cases {
            let err = verify_model_directory(dir.path(), &bundle(&key, ser.clone(), &res), &key.public_key())
                .unwrap_err();
            assert!(err.to_string().contains(want), "{ser}: {err}");
        }
        let traversal = vec![("../etc/passwd".to_string(), "sha256".to_string(), Digest::sha256_of(b"x"))];
        let err = verify_model_directory(
            dir.path(),
            &bundle(&key, files_serialization(), &traversal),
            &key.public_key(),
        )
        .unwrap_err();
        assert!(matches!(err, ModelSigningError::InvalidResource { .. }), "{err}");
        let mut twice = res.clone();
        twice.push(res[0].clone());
        let err = verify_model_directory(
            dir.path(),
            &bundle(&key, files_serialization(), &twice),
            &key.public_key(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err =
            verify_model_directory(dir.path(), &bundle(&key, files_serialization(), &[]), &key.public_key())
                .unwrap_err();
        assert!(err.to_string().contains("covers no resources"), "{err}");
    }

    #[test]
    fn limits_are_enforced() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let b = bundle(&key, files_serialization(), &file_resources(dir.path()));
        let few = ModelLimits { max_files: 2, ..ModelLimits::default() };
        assert_eq!(
            verify_model_directory_with_limits(dir.path(), &b, &key.public_key(), &few),
            Err(ModelSigningError::TooManyFiles { max: 2 })
        );
        let small = ModelLimits { max_total_bytes: 10, ..ModelLimits::default() };
        assert!(matches!(
            verify_model_directory_with_limits(dir.path(), &b, &key.public_key(), &small),
            Err(ModelSigningError::ModelTooLarge { bytes: 30, max: 10 })
        ));
        let shallow = ModelLimits { max_depth: 0, ..ModelLimits::default() };
        assert!(matches!(
            verify_model_directory_with_limits(dir.path(), &b, &key.public_key(), &shallow),
            Err(ModelSigningError::TooDeep { .. })
        ));
        let huge = vec![b' '; MAX_BUNDLE_BYTES + 1];
        assert!(matches!(
            verify_model_directory(dir.path(), &huge, &key.public_key()),
            Err(ModelSigningError::BundleTooLarge { .. })
        ));
    }

    #[test]
    fn statements_verified_elsewhere_are_checked_against_file_digests() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let res = file_resources(dir.path());
        let statement_of = |b: &[u8]| {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            let env: Envelope = serde_json::from_value(v["dsseEnvelope"].clone()).unwrap();
            Statement::from_dsse(&env).unwrap()
        };
        let files: BTreeMap<String, Digest> = res.iter().map(|(n, _, d)| (n.clone(), d.clone())).collect();
        let st = statement_of(&bundle(&key, files_serialization(), &res));
        let checked = check_statement_against_files(&st, &files).unwrap();
        assert_eq!(checked.files, 3);

        let mut changed = files.clone();
        changed.insert("a.bin".into(), Digest::sha256_of(b"other"));
        assert!(matches!(
            check_statement_against_files(&st, &changed),
            Err(ModelSigningError::FileDigestMismatch { name, .. }) if name == "a.bin"
        ));
        let st = statement_of(&bundle_with_subject(&key, files_serialization(), &res, &"00".repeat(32)));
        assert!(matches!(
            check_statement_against_files(&st, &files),
            Err(ModelSigningError::SubjectDigestMismatch { .. })
        ));
    }

    #[test]
    fn keyless_bundles_are_not_taken_for_key_signatures() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let mut b: serde_json::Value =
            serde_json::from_slice(&bundle(&key, files_serialization(), &file_resources(dir.path())))
                .unwrap();
        b["verificationMaterial"] = json!({"certificate": {"rawBytes": "AA=="}, "tlogEntries": []});
        let err = verify_model_directory(dir.path(), &serde_json::to_vec(&b).unwrap(), &key.public_key())
            .unwrap_err();
        assert!(matches!(err, ModelSigningError::NotKeyBased { .. }), "{err}");
    }
}
