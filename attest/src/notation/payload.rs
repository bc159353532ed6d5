//! The signed payload, `{"targetArtifact": {mediaType, digest, size, annotations?}}`: it must name exactly
//! the manifest being verified.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{malformed, NotationError};
use crate::digest::Digest;

/// The descriptor a payload names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetArtifact {
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// Annotations the signer added (`notation sign --user-metadata`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: TargetArtifact,
}

/// What is being verified: the manifest as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTarget {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
}

/// Parse `payload` and check it names `expected` (digest, size and media type).
pub fn check(payload: &[u8], expected: &ExpectedTarget) -> Result<TargetArtifact, NotationError> {
    let p: Payload = serde_json::from_slice(payload).map_err(|e| malformed("payload", e))?;
    let t = p.target_artifact;
    let digest: Digest =
        t.digest.parse().map_err(|e| malformed("payload", format!("targetArtifact digest: {e}")))?;
    if digest != expected.digest {
        return Err(NotationError::TargetMismatch {
            field: "digest",
            expected: expected.digest.to_string(),
            found: t.digest,
        });
    }
    if t.size != expected.size {
        return Err(NotationError::TargetMismatch {
            field: "size",
            expected: expected.size.to_string(),
            found: t.size.to_string(),
        });
    }
    if t.media_type != expected.media_type {
        return Err(NotationError::TargetMismatch {
            field: "mediaType",
            expected: expected.media_type.clone(),
            found: t.media_type,
        });
    }
    Ok(t)
}
