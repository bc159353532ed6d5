//! The bundle's `tlogEntries` items as serde types (protobuf JSON mapping: camelCase, int64 as strings,
//! bytes as base64), validated on the way in.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::TlogError;

/// Largest canonicalized entry body accepted.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most audit-path hashes accepted: a tree of 2^64 leaves needs no more.
pub const MAX_PROOF_HASHES: usize = 64;
/// Largest checkpoint (signed note) accepted.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;

/// One transparency log entry as a Sigstore bundle carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawEntry", into = "RawEntry")]
pub struct TlogEntry {
    /// Global index of the entry in the log.
    pub log_index: i64,
    /// The log's id (`logId.keyId`, raw bytes).
    pub log_id: Vec<u8>,
    /// Entry kind, e.g. `hashedrekord`, `intoto`, `dsse`.
    pub kind: String,
    /// Entry kind version, e.g. `0.0.1`.
    pub kind_version: String,
    /// Seconds since the epoch when Rekor v1 integrated the entry; 0 when absent (Rekor v2).
    pub integrated_time: i64,
    /// The signed entry timestamp (SET), Rekor v1 only.
    pub inclusion_promise: Option<Vec<u8>>,
    /// The Merkle inclusion proof with its checkpoint.
    pub inclusion_proof: Option<InclusionProof>,
    /// The entry body exactly as the log hashed it.
    pub canonicalized_body: Vec<u8>,
}

/// An RFC 6962 inclusion proof with the checkpoint (signed tree head) it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the leaf in the tree the proof is for (a shard index for sharded Rekor v1 logs).
    pub log_index: i64,
    /// Root hash the proof leads to.
    pub root_hash: Vec<u8>,
    /// Size of that tree.
    pub tree_size: i64,
    /// Audit path, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The checkpoint as a signed note; empty when the bundle has none.
    pub checkpoint: String,
}

/// Decode protobuf-JSON bytes: standard or URL-safe alphabet, padding optional.
pub(crate) fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Built at compile time: `GeneralPurpose::new` computes the decode table.
    const ANY_PADDING: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, ANY_PADDING);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, ANY_PADDING);
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).map_err(|_| "not base64".to_owned())
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An int64 in protobuf JSON: a decimal string, or (leniently) a JSON number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Int64(i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Str(String),
            Num(i64),
        }
        match Either::deserialize(d)? {
            Either::Num(n) => Ok(Self(n)),
            Either::Str(s) => s
                .parse::<i64>()
                .map(Self)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an int64"))),
        }
    }
}

impl Serialize for Int64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    log_index: Int64,
    log_id: RawLogId,
    kind_version: RawKindVersion,
    #[serde(default, skip_serializing_if = "is_zero")]
    integrated_time: Int64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inclusion_promise: Option<RawPromise>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inclusion_proof: Option<RawProof>,
    canonicalized_body: String,
}

fn is_zero(n: &Int64) -> bool {
    n.0 == 0
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct RawKindVersion {
    kind: String,
    version: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    signed_entry_timestamp: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    #[serde(default)]
    log_index: Int64,
    root_hash: String,
    #[serde(default)]
    tree_size: Int64,
    #[serde(default)]
    hashes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Clone, Serialize, Deserialize)]
struct RawCheckpoint {
    #[serde(default)]
    envelope: String,
}

fn field(name: &'static str) -> impl Fn(String) -> TlogError {
    move |reason| TlogError::Malformed(format!("{name}: {reason}"))
}

fn non_negative(name: &'static str, n: i64) -> Result<i64, TlogError> {
    if n < 0 {
        return Err(TlogError::Malformed(format!("{name} is negative ({n})")));
    }
    Ok(n)
}

impl TryFrom<RawEntry> for TlogEntry {
    type Error = TlogError;

    fn try_from(raw: RawEntry) -> Result<Self, TlogError> {
        if raw.canonicalized_body.len() > MAX_BODY_BYTES / 3 * 4 + 4 {
            return Err(TlogError::Malformed(format!(
                "canonicalizedBody larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        let entry = Self {
            log_index: non_negative("logIndex", raw.log_index.0)?,
            log_id: b64_decode(&raw.log_id.key_id).map_err(field("logId.keyId"))?,
            kind: raw.kind_version.kind,
            kind_version: raw.kind_version.version,
            integrated_time: non_negative("integratedTime", raw.integrated_time.0)?,
            inclusion_promise: raw
                .inclusion_promise
                .map(|p| {
                    b64_decode(&p.signed_entry_timestamp)
                        .map_err(field("inclusionPromise.signedEntryTimestamp"))
                })
                .transpose()?,
            inclusion_proof: raw.inclusion_proof.map(InclusionProof::try_from).transpose()?,
            canonicalized_body: b64_decode(&raw.canonicalized_body).map_err(field("canonicalizedBody"))?,
        };
        entry.validate()?;
        Ok(entry)
    }
}

impl TryFrom<RawProof> for InclusionProof {
    type Error = TlogError;

    fn try_from(raw: RawProof) -> Result<Self, TlogError> {
        if raw.hashes.len() > MAX_PROOF_HASHES {
            return Err(TlogError::Malformed(format!(
                "inclusion proof has {} hashes, more than {MAX_PROOF_HASHES}",
                raw.hashes.len()
            )));
        }
        let checkpoint = raw.checkpoint.map(|c| c.envelope).unwrap_or_default();
        if checkpoint.len() > MAX_CHECKPOINT_BYTES {
            return Err(TlogError::Malformed(format!("checkpoint larger than {MAX_CHECKPOINT_BYTES} bytes")));
        }
        Ok(Self {
            log_index: non_negative("inclusionProof.logIndex", raw.log_index.0)?,
            root_hash: b64_decode(&raw.root_hash).map_err(field("inclusionProof.rootHash"))?,
            tree_size: non_negative("inclusionProof.treeSize", raw.tree_size.0)?,
            hashes: raw
                .hashes
                .iter()
                .map(|h| b64_decode(h).map_err(field("inclusionProof.hashes")))
                .collect::<Result<_, _>>()?,
            checkpoint,
        })
    }
}

impl From<TlogEntry> for RawEntry {
    fn from(e: TlogEntry) -> Self {
        Self {
            log_index: Int64(e.log_index),
            log_id: RawLogId { key_id: b64_encode(&e.log_id) },
            kind_version: RawKindVersion { kind: e.kind, version: e.kind_version },
            integrated_time: Int64(e.integrated_time),
            inclusion_promise: e
                .inclusion_promise
                .map(|s| RawPromise { signed_entry_timestamp: b64_encode(&s) }),
            inclusion_proof: e.inclusion_proof.map(|p| RawProof {
                log_index: Int64(p.log_index),
                root_hash: b64_encode(&p.root_hash),
                tree_size: Int64(p.tree_size),
                hashes: p.hashes.iter().map(|h| b64_encode(h)).collect(),
                checkpoint: (!p.checkpoint.is_empty()).then_some(RawCheckpoint { envelope: p.checkpoint }),
            }),
            canonicalized_body: b64_encode(&e.canonicalized_body),
        }
    }
}

impl TlogEntry {
    /// Parse one `tlogEntries` item from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TlogError> {
        serde_json::from_slice(bytes).map_err(|e| TlogError::Malformed(e.to_string()))
    }

    /// Structural rules (the fields are public, so [`super::verify_entry`] checks them again).
    pub fn validate(&self) -> Result<(), TlogError> {
        non_negative("logIndex", self.log_index)?;
        non_negative("integratedTime", self.integrated_time)?;
        if self.log_id.is_empty() {
            return Err(TlogError::Malformed("logId.keyId is empty".into()));
        }
        if self.kind.is_empty() || self.kind_version.is_empty() {
            return Err(TlogError::Malformed("kindVersion is incomplete".into()));
        }
        if self.canonicalized_body.is_empty() {
            return Err(TlogError::Malformed("canonicalizedBody is empty".into()));
        }
        if self.canonicalized_body.len() > MAX_BODY_BYTES {
            return Err(TlogError::Malformed(format!(
                "canonicalizedBody larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        if let Some(p) = &self.inclusion_proof {
            non_negative("inclusionProof.logIndex", p.log_index)?;
            non_negative("inclusionProof.treeSize", p.tree_size)?;
            if p.hashes.len() > MAX_PROOF_HASHES {
                return Err(TlogError::Malformed(format!(
                    "inclusion proof has {} hashes, more than {MAX_PROOF_HASHES}",
                    p.hashes.len()
                )));
            }
            if p.checkpoint.len() > MAX_CHECKPOINT_BYTES {
                return Err(TlogError::Malformed(format!(
                    "checkpoint larger than {MAX_CHECKPOINT_BYTES} bytes"
                )));
            }
        }
        Ok(())
    }
}
