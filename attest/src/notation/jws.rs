//! JWS JSON serialization (flattened) as the Notary Project envelope (`application/jose+json`): the
//! protected header carries `alg`, `cty`, `crit` and the signed attributes; the unprotected header carries
//! the certificate chain (`x5c`), the signing agent and the timestamp countersignature.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::envelope::{
    parse_time, Envelope, SignatureAlgorithm, SignedAttributes, SigningScheme, AUTHENTIC_SIGNING_TIME,
    EXPIRY, MAX_CHAIN_CERTIFICATES, PAYLOAD_CONTENT_TYPE, SIGNING_SCHEME, SIGNING_TIME,
};
use super::{malformed, NotationError};

/// Media type of a JWS envelope.
pub const MEDIA_TYPE: &str = "application/jose+json";

const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    payload: String,
    protected: String,
    header: Unprotected,
    signature: String,
}

/// The unprotected header: unsigned, so other members (older envelopes spell `io.cncf.notary.SigningAgent`)
/// are ignored as notation-go ignores them.
#[derive(Deserialize)]
struct Unprotected {
    x5c: Vec<String>,
    #[serde(rename = "io.cncf.notary.timestampSignature")]
    timestamp_signature: Option<String>,
}

fn b64url(what: &'static str, s: &str) -> Result<Vec<u8>, NotationError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|e| malformed("JWS envelope", format!("{what} is not base64url: {e}")))
}

fn string<'a>(h: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, NotationError> {
    match h.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed("JWS protected header", format!("{name} is not a string"))),
    }
}

/// Parse a JWS envelope.
pub fn parse(bytes: &[u8]) -> Result<Envelope, NotationError> {
    let jws: Flattened = serde_json::from_slice(bytes).map_err(|e| malformed("JWS envelope", e))?;
    let protected_bytes = b64url("protected", &jws.protected)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&protected_bytes).map_err(|e| malformed("JWS protected header", e))?;
    let alg = string(&header, "alg")?.ok_or_else(|| malformed("JWS protected header", "no alg"))?;
    let algorithm = SignatureAlgorithm::from_jws(alg)?;
    match string(&header, "cty")? {
        Some(PAYLOAD_CONTENT_TYPE) => {}
        other => {
            return Err(malformed(
                "JWS protected header",
                format!("cty is {other:?}, expected {PAYLOAD_CONTENT_TYPE:?}"),
            ))
        }
    }
    let critical: Vec<String> = match header.get("crit") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| malformed("JWS protected header", "crit holds a non-string"))?,
        _ => return Err(malformed("JWS protected header", "crit must be a non-empty array")),
    };
    let time = |name: &str| string(&header, name)?.map(|v| parse_time(name, v)).transpose();
    let attributes = SignedAttributes {
        signing_scheme: SigningScheme::parse(
            string(&header, SIGNING_SCHEME)?
                .ok_or_else(|| malformed("JWS protected header", format!("no {SIGNING_SCHEME}")))?,
        )?,
        signing_time: time(SIGNING_TIME)?,
        authentic_signing_time: time(AUTHENTIC_SIGNING_TIME)?,
        expiry: time(EXPIRY)?,
    };
    attributes.validate(&critical, &|name| header.contains_key(name))?;
    if jws.header.x5c.is_empty() || jws.header.x5c.len() > MAX_CHAIN_CERTIFICATES {
        return Err(malformed(
            "JWS envelope",
            format!(
                "x5c must hold 1 to {MAX_CHAIN_CERTIFICATES} certificates, found {}",
                jws.header.x5c.len()
            ),
        ));
    }
    let certificates = jws
        .header
        .x5c
        .iter()
        .map(|c| STANDARD.decode(c).map_err(|e| malformed("JWS envelope", format!("x5c entry: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let timestamp = jws
        .header
        .timestamp_signature
        .as_deref()
        .map(|t| {
            STANDARD.decode(t).map_err(|e| malformed("JWS envelope", format!("{TIMESTAMP_SIGNATURE}: {e}")))
        })
        .transpose()?;
    Ok(Envelope {
        algorithm,
        attributes,
        payload: b64url("payload", &jws.payload)?,
        signing_input: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature: b64url("signature", &jws.signature)?,
        certificates,
        timestamp,
    })
}
