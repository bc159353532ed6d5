//! Rekor v1 signed entry timestamps (SET, the bundle's `inclusionPromise`).

use super::{entry::b64_encode, hex_id, unix_time, TlogError};
use crate::trust_root::{TransparencyLog, TrustRoot};

/// The bytes a Rekor v1 log signs as the SET: RFC 8785 canonical JSON of
/// `{"body": base64(body), "integratedTime": n, "logID": hex(logId), "logIndex": n}`.
pub(crate) fn set_payload(
    body: &[u8],
    integrated_time: i64,
    log_index: i64,
    log_id: &[u8],
) -> Result<Vec<u8>, TlogError> {
    let payload = serde_json::json!({
        "body": b64_encode(body),
        "integratedTime": integrated_time,
        "logID": hex_id(log_id),
        "logIndex": log_index,
    });
    serde_json_canonicalizer::to_vec(&payload)
        .map_err(|e| TlogError::Malformed(format!("cannot canonicalize SET payload: {e}")))
}

/// Verify a Rekor v1 SET over an entry with the trusted log `log_id`; returns that log.
///
/// Also usable for cosign's own Rekor bundle annotation (`SignedEntryTimestamp` + `Payload`). Checks that
/// the log is trusted, the integrated time lies in its key's validity window, and the signature verifies.
pub fn verify_set<'t>(
    set: &[u8],
    body: &[u8],
    integrated_time: i64,
    log_index: i64,
    log_id: &[u8],
    trust_root: &'t TrustRoot,
) -> Result<&'t TransparencyLog, TlogError> {
    let log = trust_root.tlog(log_id).ok_or_else(|| TlogError::UnknownLog { log_id: hex_id(log_id) })?;
    if log_index < 0 {
        return Err(TlogError::Malformed(format!("logIndex is negative ({log_index})")));
    }
    if integrated_time <= 0 {
        return Err(TlogError::MissingIntegratedTime);
    }
    let t = unix_time(integrated_time)?;
    if !log.valid_for.contains(t) {
        return Err(TlogError::LogKeyNotValid { log_id: hex_id(log_id), time: t });
    }
    let payload = set_payload(body, integrated_time, log_index, log_id)?;
    log.public_key.verify(&payload, set).map_err(|_| TlogError::BadSet { log_id: hex_id(log_id) })?;
    Ok(log)
}
