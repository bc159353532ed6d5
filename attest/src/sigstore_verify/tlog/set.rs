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
    let (body, log_id) = (b64_encode(body), hex_id(log_id));
    // The keys are in RFC 8785 order and base64 and hex need no escaping; integers up to 2^53 are written
    // as plain decimals in canonical JSON. Larger ones take the canonicalizer's number form.
    const EXACT: i64 = 1 << 53;
    if (-EXACT..=EXACT).contains(&integrated_time) && (-EXACT..=EXACT).contains(&log_index) {
        return Ok(format!(
            r#"{{"body":"{body}","integratedTime":{integrated_time},"logID":"{log_id}","logIndex":{log_index}}}"#
        )
        .into_bytes());
    }
    let payload = serde_json::json!({
        "body": body,
        "integratedTime": integrated_time,
        "logID": log_id,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_payload_is_the_canonical_json_of_the_entry() {
        let canonical = |body: &[u8], time: i64, index: i64, id: &[u8]| {
            let v = serde_json::json!({
                "body": b64_encode(body), "integratedTime": time, "logID": hex_id(id), "logIndex": index,
            });
            serde_json_canonicalizer::to_vec(&v).unwrap()
        };
        let bodies: [&[u8]; 3] = [b"", b"{\"kind\":\"hashedrekord\"}", &[0xff, 0x00, 0xfe, 0x3e, 0x3f]];
        let numbers = [0, 1, -1, 1_700_000_000, 123_456_789, (1 << 53) - 1, 1 << 53, -(1 << 53)];
        for body in bodies {
            for (time, index) in numbers.iter().zip(numbers.iter().rev()) {
                let id = [0xc0, 0xd2, 0x3d, 0x6a];
                let got = set_payload(body, *time, *index, &id).unwrap();
                assert_eq!(got, canonical(body, *time, *index, &id), "{time} {index}");
            }
        }
        // Beyond 2^53 the canonicalizer decides, as before.
        let big = set_payload(b"x", (1 << 53) + 1, 1, &[1]).unwrap();
        assert_eq!(big, canonical(b"x", (1 << 53) + 1, 1, &[1]));
    }
}
