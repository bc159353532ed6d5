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

/// A JSON object whose keys are each present once. serde_json keeps the last of duplicate keys; RFC 7515
/// §4 lets a JWS parser either reject duplicate header names or return the lexically last, and a verifier
/// that reads another copy than the signer meant would check something else: vouch rejects them.
struct UniqueKeys(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<UniqueKeys, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!("{key:?} appears twice")));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueKeys(map))
            }
        }
        d.deserialize_map(Keys)
    }
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
    let UniqueKeys(header) =
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/notation/envelopes/ca_valid_sig_env.json"
        ))
        .unwrap()
    }

    /// The vector with its protected header's JSON text rewritten by `edit` (key order and duplicates kept).
    fn with_protected(edit: impl FnOnce(&str) -> String) -> Vec<u8> {
        let mut env: Value = serde_json::from_slice(&vector()).unwrap();
        let text =
            String::from_utf8(URL_SAFE_NO_PAD.decode(env["protected"].as_str().unwrap()).unwrap()).unwrap();
        env["protected"] = URL_SAFE_NO_PAD.encode(edit(&text)).into();
        serde_json::to_vec(&env).unwrap()
    }

    #[test]
    fn duplicate_protected_header_keys_are_refused() {
        parse(&with_protected(str::to_owned)).unwrap();
        for (name, extra) in [
            ("alg", r#""alg":"ES256","#),
            ("crit", r#""crit":["io.cncf.notary.signingScheme"],"#),
            (
                "io.cncf.notary.signingScheme",
                r#""io.cncf.notary.signingScheme":"notary.x509.signingAuthority","#,
            ),
            // An escaped key is the same key once decoded.
            ("alg", r#""al\u0067":"ES256","#),
        ] {
            let env = with_protected(|h| h.replacen('{', &format!("{{{extra}"), 1));
            let err = parse(&env).unwrap_err().to_string();
            assert!(
                err.starts_with("malformed JWS protected header")
                    && err.contains(&format!("{name:?} appears twice")),
                "{extra}: {err}"
            );
        }
    }

    #[test]
    fn duplicate_envelope_members_are_refused() {
        let text = String::from_utf8(vector()).unwrap();
        let twice_payload = text.replacen('{', r#"{"payload":"e30","#, 1);
        let err = parse(twice_payload.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("duplicate field `payload`"), "{err}");
        let twice_x5c = text.replacen(r#""x5c""#, r#""x5c":[],"x5c""#, 1);
        let err = parse(twice_x5c.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("duplicate field `x5c`"), "{err}");
    }
}
