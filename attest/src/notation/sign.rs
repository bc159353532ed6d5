//! vouch's own Notation signer, for tests and demos: a JWS envelope (`ES256`, scheme `notary.x509`) over
//! a manifest descriptor, signed with a P-256 key whose certificate chain is given. Production signing is
//! the `notation` tool's job; vouch verifies.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::envelope::{EXPIRY, PAYLOAD_CONTENT_TYPE, SIGNING_SCHEME, SIGNING_TIME};
use super::payload::TargetArtifact;
use crate::keys::SigningKey;

/// A JWS envelope for `target`, signed by `key` at `signing_time`; `certificates` (DER, the signing
/// certificate first) go in `x5c`; `expiry`, when given, is a critical signed attribute.
pub fn sign_jws(
    key: &SigningKey,
    certificates: &[Vec<u8>],
    target: &TargetArtifact,
    signing_time: DateTime<Utc>,
    expiry: Option<DateTime<Utc>>,
) -> Vec<u8> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut header = json!({
        "alg": "ES256",
        "cty": PAYLOAD_CONTENT_TYPE,
        "crit": [SIGNING_SCHEME],
        SIGNING_SCHEME: "notary.x509",
        SIGNING_TIME: time(signing_time),
    });
    if let Some(expiry) = expiry {
        header["crit"] = json!([SIGNING_SCHEME, EXPIRY]);
        header[EXPIRY] = time(expiry).into();
    }
    let protected = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(json!({ "targetArtifact": target }).to_string());
    let signature = key.sign_fixed(format!("{protected}.{payload}").as_bytes());
    json!({
        "payload": payload,
        "protected": protected,
        "header": {
            "x5c": certificates.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
            "io.cncf.notary.signingAgent": "vouch test signer",
        },
        "signature": URL_SAFE_NO_PAD.encode(signature),
    })
    .to_string()
    .into_bytes()
}
