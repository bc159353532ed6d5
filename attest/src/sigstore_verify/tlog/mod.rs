//! Transparency-log (Rekor v1 and v2) entry verification: the log is trusted, the signed entry timestamp
//! (SET) and/or the Merkle inclusion proof with its signed checkpoint verify, and the entry body commits
//! to exactly the signature, key or certificate, and artifact (or DSSE envelope) of the bundle.
//!
//! Rekor v1 entries carry an integrated time vouched for by the SET; Rekor v2 entries (`hashedrekord` /
//! `dsse` 0.0.2) carry no time and no SET, only an inclusion proof and checkpoint: their time comes from
//! RFC 3161 timestamps, which the caller checks.

mod body;
mod checkpoint;
mod entry;
mod merkle;
mod set;
#[cfg(test)]
mod synthetic_tests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

use crate::digest::Digest;
use crate::trust_root::TrustRoot;

pub use checkpoint::{Checkpoint, NoteSignature};
pub use entry::{InclusionProof, TlogEntry, MAX_BODY_BYTES, MAX_CHECKPOINT_BYTES, MAX_PROOF_HASHES};
pub use merkle::{leaf_hash, root_from_inclusion_proof};
pub use set::verify_set;

/// What the entry body must commit to.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedContent<'a> {
    /// The message signature bytes (message-signature bundles).
    pub signature: Option<&'a [u8]>,
    /// The artifact's digest (message-signature bundles).
    pub artifact_digest: Option<&'a Digest>,
    /// The DSSE envelope (DSSE bundles).
    pub dsse: Option<&'a crate::dsse::Envelope>,
    /// The leaf certificate DER, or the public key's SPKI DER.
    pub verification_material: &'a [u8],
}

/// A transparency log entry that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTlogEntry {
    /// Global index of the entry.
    pub log_index: i64,
    /// Id of the trusted log that holds it.
    pub log_id: Vec<u8>,
    /// Integrated time, only for Rekor v1 entries whose SET verified (the only signed statement of it).
    pub integrated_time: Option<DateTime<Utc>>,
    /// Whether the entry is a Rekor v2 entry (no integrated time: timestamps must come from a TSA).
    pub rekor_v2: bool,
}

/// Why a transparency log entry did not verify. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogError {
    /// The entry is structurally invalid.
    #[error("malformed transparency log entry: {0}")]
    Malformed(String),
    /// The entry's log id names no log of the trust root.
    #[error("transparency log {log_id} is not in the trust root")]
    UnknownLog {
        /// Hex log id.
        log_id: String,
    },
    /// The integrated time lies outside the log key's validity window.
    #[error("integrated time {time} is outside the validity of the key of transparency log {log_id}")]
    LogKeyNotValid {
        /// Hex log id.
        log_id: String,
        /// The entry's integrated time.
        time: DateTime<Utc>,
    },
    /// A Rekor v1 entry without an integrated time.
    #[error("rekor v1 entry has no integrated time")]
    MissingIntegratedTime,
    /// Neither SET nor a checkpointed inclusion proof: nothing shows the log holds the entry.
    #[error("transparency log entry has neither a signed entry timestamp nor an inclusion proof with a checkpoint")]
    NoInclusionEvidence,
    /// An inclusion proof is required (bundle v0.2+, Rekor v2) but absent.
    #[error("transparency log entry has no inclusion proof, but one is required")]
    MissingInclusionProof,
    /// An inclusion proof is required but has no checkpoint.
    #[error("inclusion proof has no checkpoint, but one is required")]
    MissingCheckpoint,
    /// Something that Rekor v2 never produces.
    #[error("rekor v2 entry carries {0}, which rekor v2 does not produce")]
    UnexpectedForRekorV2(&'static str),
    /// The signed entry timestamp does not verify.
    #[error("signed entry timestamp (inclusion promise) does not verify with the key of transparency log {log_id}")]
    BadSet {
        /// Hex log id.
        log_id: String,
    },
    /// The Merkle audit path is invalid.
    #[error("inclusion proof is invalid: {0}")]
    BadInclusionProof(String),
    /// The checkpoint is not a well-formed signed note / checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    /// No checkpoint signature carries the log's name and key hint.
    #[error("checkpoint has no signature by transparency log {name:?} (key hint {key_hint})")]
    CheckpointNotSignedByLog {
        /// Name the log's signature must carry.
        name: String,
        /// Hex key hint it must carry.
        key_hint: String,
    },
    /// A signature with the log's name and key hint does not verify.
    #[error("checkpoint signature by {name:?} does not verify with the transparency log key")]
    BadCheckpointSignature {
        /// Signer name on the signature line.
        name: String,
    },
    /// The checkpoint's origin is not the log's.
    #[error("checkpoint origin {found:?} is not the transparency log's origin {expected:?}")]
    CheckpointOrigin {
        /// Origin derived from the trust root.
        expected: String,
        /// Origin on the checkpoint.
        found: String,
    },
    /// The checkpoint commits to another tree than the inclusion proof.
    #[error("checkpoint {0} does not match the inclusion proof")]
    CheckpointMismatch(&'static str),
    /// Entry kind/version vouch does not verify.
    #[error("unsupported transparency log entry kind {kind} {version}")]
    UnsupportedKind {
        /// Kind.
        kind: String,
        /// Version.
        version: String,
    },
    /// The entry's `kindVersion` disagrees with its body.
    #[error("entry says {kind} {version} but its body is {body_kind} {body_version}")]
    KindMismatch {
        /// From `kindVersion`.
        kind: String,
        /// From `kindVersion`.
        version: String,
        /// From the body.
        body_kind: String,
        /// From the body.
        body_version: String,
    },
    /// The entry body cannot be read.
    #[error("malformed transparency log entry body: {0}")]
    MalformedBody(String),
    /// The kind of entry cannot record this kind of bundle content.
    #[error("a {kind} {version} entry cannot record a {content}")]
    WrongContentType {
        /// Entry kind.
        kind: String,
        /// Entry version.
        version: String,
        /// `message signature` or `DSSE envelope`.
        content: &'static str,
    },
    /// The caller gave too little to compare the body with.
    #[error("cannot check the log entry: {0}")]
    NothingToCompare(&'static str),
    /// The entry body records something other than the bundle.
    #[error("transparency log entry {0} does not match the bundle")]
    BodyMismatch(&'static str),
}

fn hex_id(id: &[u8]) -> String {
    hex::encode(id)
}

fn unix_time(secs: i64) -> Result<DateTime<Utc>, TlogError> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| TlogError::Malformed(format!("integratedTime {secs} out of range")))
}

/// Verify one bundle transparency log entry against the trust root and what it must record.
///
/// Checks, in order: structure; the log is trusted; the body is a supported kind matching `kindVersion`
/// and records exactly `expected`; for Rekor v1 the integrated time lies in the log key's validity; the
/// SET (if any) verifies; the inclusion proof (if any) reproduces its root hash, and its checkpoint is
/// signed by the log and names the same tree. `require_inclusion_proof` (bundle v0.2+; always for
/// Rekor v2) makes a missing proof or checkpoint an error.
pub fn verify_entry(
    entry: &TlogEntry,
    expected: &ExpectedContent<'_>,
    trust_root: &TrustRoot,
    require_inclusion_proof: bool,
) -> Result<VerifiedTlogEntry, TlogError> {
    entry.validate()?;
    let log = trust_root
        .tlog(&entry.log_id)
        .ok_or_else(|| TlogError::UnknownLog { log_id: hex_id(&entry.log_id) })?;

    let body = body::EntryBody::parse(&entry.canonicalized_body)?;
    if body.kind != entry.kind || body.version != entry.kind_version {
        return Err(TlogError::KindMismatch {
            kind: entry.kind.clone(),
            version: entry.kind_version.clone(),
            body_kind: body.kind.clone(),
            body_version: body.version.clone(),
        });
    }
    body.check_matches(expected)?;
    let rekor_v2 = body.is_rekor_v2();

    let integrated_time = if rekor_v2 {
        if entry.inclusion_promise.is_some() {
            return Err(TlogError::UnexpectedForRekorV2("an inclusion promise"));
        }
        None
    } else {
        if entry.integrated_time == 0 {
            return Err(TlogError::MissingIntegratedTime);
        }
        let t = unix_time(entry.integrated_time)?;
        if !log.valid_for.contains(t) {
            return Err(TlogError::LogKeyNotValid { log_id: hex_id(&entry.log_id), time: t });
        }
        Some(t)
    };

    let set_verified = match &entry.inclusion_promise {
        Some(set) => {
            verify_set(
                set,
                &entry.canonicalized_body,
                entry.integrated_time,
                entry.log_index,
                &entry.log_id,
                trust_root,
            )?;
            true
        }
        None => false,
    };

    let must_prove = require_inclusion_proof || rekor_v2;
    let proof_verified = match &entry.inclusion_proof {
        None if must_prove => return Err(TlogError::MissingInclusionProof),
        None => false,
        Some(proof) => {
            // Rekor v2 logs are not sharded: the proof is for the entry's own index.
            if rekor_v2 && proof.log_index != entry.log_index {
                return Err(TlogError::BadInclusionProof(format!(
                    "proof is for index {} but the entry has index {}",
                    proof.log_index, entry.log_index
                )));
            }
            // The audit path must hold even when no checkpoint vouches for its root: never accept
            // material that does not check out.
            merkle::verify_inclusion(&merkle::leaf_hash(&entry.canonicalized_body), proof)?;
            if proof.checkpoint.is_empty() {
                if must_prove {
                    return Err(TlogError::MissingCheckpoint);
                }
                // Old v0.1 bundles: a proof without checkpoint proves nothing; the SET must carry it.
                tracing::debug!(log_index = entry.log_index, "inclusion proof without checkpoint ignored");
                false
            } else {
                let cp = checkpoint::verify_checkpoint(&proof.checkpoint, log)?;
                if u64::try_from(proof.tree_size).ok() != Some(cp.tree_size) {
                    return Err(TlogError::CheckpointMismatch("tree size"));
                }
                if cp.root_hash != proof.root_hash {
                    return Err(TlogError::CheckpointMismatch("root hash"));
                }
                true
            }
        }
    };

    if !set_verified && !proof_verified {
        return Err(TlogError::NoInclusionEvidence);
    }
    Ok(VerifiedTlogEntry {
        log_index: entry.log_index,
        log_id: entry.log_id.clone(),
        integrated_time: if set_verified { integrated_time } else { None },
        rekor_v2,
    })
}
