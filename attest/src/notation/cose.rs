//! COSE_Sign1 (RFC 9052, tagged) as the Notary Project envelope (`application/cose`): the protected header
//! carries `alg`, `crit`, the content type and the signed attributes (text labels, times as CBOR tag 1);
//! the unprotected header carries the chain (`x5chain`, label 33), the signing agent and the timestamp
//! countersignature. Parsed with `coset`; the signature is checked over the Sig_structure with aws-lc-rs.

use chrono::{DateTime, Utc};
use coset::cbor::value::Value;
use coset::iana;
use coset::{
    Algorithm, ContentType, Label, RegisteredLabel, RegisteredLabelWithPrivate, TaggedCborSerializable,
};

use super::envelope::{
    Envelope, SignatureAlgorithm, SignedAttributes, SigningScheme, AUTHENTIC_SIGNING_TIME, EXPIRY,
    MAX_CHAIN_CERTIFICATES, PAYLOAD_CONTENT_TYPE, SIGNING_SCHEME, SIGNING_TIME,
};
use super::{malformed, NotationError};

/// Media type of a COSE envelope.
pub const MEDIA_TYPE: &str = "application/cose";

const X5CHAIN: i64 = 33;
const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";

fn algorithm(alg: Option<&Algorithm>) -> Result<SignatureAlgorithm, NotationError> {
    use iana::Algorithm as A;
    Ok(match alg {
        Some(RegisteredLabelWithPrivate::Assigned(A::PS256)) => SignatureAlgorithm::Ps256,
        Some(RegisteredLabelWithPrivate::Assigned(A::PS384)) => SignatureAlgorithm::Ps384,
        Some(RegisteredLabelWithPrivate::Assigned(A::PS512)) => SignatureAlgorithm::Ps512,
        Some(RegisteredLabelWithPrivate::Assigned(A::ES256)) => SignatureAlgorithm::Es256,
        Some(RegisteredLabelWithPrivate::Assigned(A::ES384)) => SignatureAlgorithm::Es384,
        Some(RegisteredLabelWithPrivate::Assigned(A::ES512)) => SignatureAlgorithm::Es512,
        other => return Err(NotationError::Integrity(format!("unsupported signature algorithm {other:?}"))),
    })
}

fn text_label(label: &Label) -> Option<&str> {
    match label {
        Label::Text(t) => Some(t),
        Label::Int(_) => None,
    }
}

fn value<'a>(rest: &'a [(Label, Value)], name: &str) -> Option<&'a Value> {
    rest.iter().find(|(l, _)| text_label(l) == Some(name)).map(|(_, v)| v)
}

fn time(rest: &[(Label, Value)], name: &str) -> Result<Option<DateTime<Utc>>, NotationError> {
    let Some(v) = value(rest, name) else { return Ok(None) };
    let bad =
        || malformed("COSE protected header", format!("{name} is not a CBOR epoch time (tag 1, integer)"));
    match v {
        Value::Tag(1, inner) => match inner.as_ref() {
            Value::Integer(i) => {
                let secs = i64::try_from(*i).map_err(|_| bad())?;
                DateTime::from_timestamp(secs, 0).map(Some).ok_or_else(bad)
            }
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// Parse a COSE_Sign1 envelope.
pub fn parse(bytes: &[u8]) -> Result<Envelope, NotationError> {
    let sign1 = coset::CoseSign1::from_tagged_slice(bytes).map_err(|e| malformed("COSE envelope", e))?;
    let header = &sign1.protected.header;
    let algorithm = algorithm(header.alg.as_ref())?;
    match &header.content_type {
        Some(ContentType::Text(t)) if t == PAYLOAD_CONTENT_TYPE => {}
        other => {
            return Err(malformed(
                "COSE protected header",
                format!("content type is {other:?}, expected {PAYLOAD_CONTENT_TYPE:?}"),
            ))
        }
    }
    if header.crit.is_empty() {
        return Err(malformed("COSE protected header", "crit must be a non-empty array"));
    }
    let critical: Vec<String> = header
        .crit
        .iter()
        .map(|c| match c {
            RegisteredLabel::Text(t) => t.clone(),
            RegisteredLabel::Assigned(a) => format!("{a:?}"),
        })
        .collect();
    let scheme = match value(&header.rest, SIGNING_SCHEME) {
        Some(Value::Text(s)) => SigningScheme::parse(s)?,
        _ => return Err(malformed("COSE protected header", format!("no text {SIGNING_SCHEME}"))),
    };
    let attributes = SignedAttributes {
        signing_scheme: scheme,
        signing_time: time(&header.rest, SIGNING_TIME)?,
        authentic_signing_time: time(&header.rest, AUTHENTIC_SIGNING_TIME)?,
        expiry: time(&header.rest, EXPIRY)?,
    };
    attributes.validate(&critical, &|name| value(&header.rest, name).is_some())?;

    let unprotected = &sign1.unprotected.rest;
    let chain = unprotected.iter().find(|(l, _)| *l == Label::Int(X5CHAIN)).map(|(_, v)| v);
    let certificates: Vec<Vec<u8>> = match chain {
        Some(Value::Bytes(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|v| match v {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err(malformed("COSE envelope", "x5chain holds a non-bstr")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(malformed("COSE envelope", "no x5chain (label 33) in the unprotected header")),
    };
    if certificates.is_empty() || certificates.len() > MAX_CHAIN_CERTIFICATES {
        return Err(malformed(
            "COSE envelope",
            format!(
                "x5chain must hold 1 to {MAX_CHAIN_CERTIFICATES} certificates, found {}",
                certificates.len()
            ),
        ));
    }
    let timestamp = match value(unprotected, TIMESTAMP_SIGNATURE) {
        None => None,
        Some(Value::Bytes(b)) => Some(b.clone()),
        Some(_) => return Err(malformed("COSE envelope", format!("{TIMESTAMP_SIGNATURE} is not a bstr"))),
    };
    let payload = sign1.payload.clone().ok_or_else(|| malformed("COSE envelope", "detached payload"))?;
    Ok(Envelope {
        algorithm,
        attributes,
        payload,
        signing_input: sign1.tbs_data(b""),
        signature: sign1.signature.clone(),
        certificates,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use coset::cbor::value::Value;

    use super::*;

    fn vector() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/notation/envelopes/coseWithTimestamp.sig"
        ))
        .unwrap()
    }

    /// The envelope with `edit` applied to its (decoded) protected and unprotected header maps.
    fn edited(edit: impl FnOnce(&mut Vec<(Value, Value)>, &mut Vec<(Value, Value)>)) -> Vec<u8> {
        let outer: Value = coset::cbor::de::from_reader(vector().as_slice()).unwrap();
        let Value::Tag(18, inner) = outer else { panic!("COSE_Sign1 tag") };
        let Value::Array(mut parts) = *inner else { panic!("array") };
        let Value::Bytes(protected) = &parts[0] else { panic!("bstr") };
        let Value::Map(mut protected) = coset::cbor::de::from_reader(protected.as_slice()).unwrap() else {
            panic!("map")
        };
        let Value::Map(mut unprotected) = parts[1].clone() else { panic!("map") };
        edit(&mut protected, &mut unprotected);
        let mut bytes = Vec::new();
        coset::cbor::ser::into_writer(&Value::Map(protected), &mut bytes).unwrap();
        parts[0] = Value::Bytes(bytes);
        parts[1] = Value::Map(unprotected);
        let mut out = Vec::new();
        coset::cbor::ser::into_writer(&Value::Tag(18, Box::new(Value::Array(parts))), &mut out).unwrap();
        out
    }

    #[test]
    fn duplicate_header_labels_are_refused() {
        // The re-encoding itself changes nothing: the vector parses.
        parse(&edited(|_, _| {})).unwrap();
        let label = |name: &str| Value::Text(name.into());
        for (what, envelope) in [
            ("alg", edited(|p, _| p.push((Value::Integer(1.into()), Value::Integer((-37).into()))))),
            (
                "signing scheme",
                edited(|p, _| {
                    p.push((label(SIGNING_SCHEME), Value::Text("notary.x509.signingAuthority".into())))
                }),
            ),
            ("x5chain", edited(|_, u| u.push((Value::Integer(X5CHAIN.into()), Value::Bytes(vec![0x30]))))),
        ] {
            let err = parse(&envelope).unwrap_err().to_string();
            assert!(err.starts_with("malformed COSE envelope") && err.contains("duplicate"), "{what}: {err}");
        }
    }
}
