//! Why a model signature does not verify, in the order the checks run: the bundle, its signature under
//! the authority, the signed statement, then the model's files.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::sigstore_verify::{BundleError, VerifyError};

use super::MODEL_SIGNATURE_PREDICATE_V1;

/// Why a model signature does not verify, by the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelSignatureError {
    // The bundle.
    /// Larger than a signature may be.
    #[error("model signature bundle of {size} bytes exceeds the limit of {max} bytes")]
    BundleTooLarge {
        /// Its size.
        size: usize,
        /// The limit ([`super::MAX_BUNDLE_BYTES`]).
        max: usize,
    },
    /// Not a Sigstore bundle.
    #[error("not a Sigstore bundle: {0}")]
    Bundle(BundleError),
    /// A message signature cannot carry the model's file list.
    #[error("bundle holds a message signature; model signatures are DSSE envelopes")]
    NotDsse,
    /// The DSSE payload is not an in-toto statement with one SHA-256 subject.
    #[error("bundle payload is not a model signature statement: {reason}")]
    Payload {
        /// What is wrong.
        reason: String,
    },
    /// Another kind of signature (e.g. a cosign image signature bundle).
    #[error("predicate type is {found:?}, not {MODEL_SIGNATURE_PREDICATE_V1}")]
    WrongPredicateType {
        /// The predicate type found.
        found: String,
    },
    /// The bundle does not verify under the authority (signature, certificate, identity, log, time).
    #[error("{0}")]
    Sigstore(VerifyError),

    // The signed statement.
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
    /// Shard signatures need the file contents, not whole-file digests.
    #[error("model signature uses shard serialization, which cannot be checked against whole-file digests")]
    ShardsNeedFileContents,

    // The model's files.
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
        /// The file (`path:start:end` for a shard).
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
}

impl ModelSignatureError {
    /// Whether the model could not be read (as opposed to read and found not to match the signature).
    pub fn is_io(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}
