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

/// A certificate a test CRL lists.
#[derive(Debug, Clone)]
pub struct CrlEntry {
    /// The certificate's serial number.
    pub serial: x509_cert::serial_number::SerialNumber,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
    /// The entry's reasonCode, if any.
    pub reason: Option<x509_cert::ext::pkix::CrlReason>,
    /// The entry's invalidityDate, if any.
    pub invalidity_date: Option<DateTime<Utc>>,
}

/// A DER CRL from `issuer` (the issuing certificate's subject), signed by `key` (ECDSA P-256, SHA-256),
/// valid from `this_update` to `next_update`, listing `entries`. For tests and demos, like [`sign_jws`].
pub fn sign_crl(
    key: &SigningKey,
    issuer: &x509_cert::name::Name,
    this_update: DateTime<Utc>,
    next_update: Option<DateTime<Utc>>,
    entries: &[CrlEntry],
) -> Result<Vec<u8>, der::Error> {
    use const_oid::db::rfc5280;
    use der::asn1::{BitString, GeneralizedTime, OctetString};
    use der::Encode as _;
    use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
    use x509_cert::ext::Extension;
    use x509_cert::spki::AlgorithmIdentifierOwned;

    use super::revocation::x509_time;

    let ext = |oid, value: Vec<u8>| -> Result<Extension, der::Error> {
        Ok(Extension { extn_id: oid, critical: false, extn_value: OctetString::new(value)? })
    };
    let mut revoked = Vec::with_capacity(entries.len());
    for e in entries {
        let mut exts = Vec::new();
        if let Some(reason) = e.reason {
            exts.push(ext(rfc5280::ID_CE_CRL_REASONS, reason.to_der()?)?);
        }
        if let Some(t) = e.invalidity_date {
            let since = std::time::Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0));
            exts.push(ext(
                rfc5280::ID_CE_INVALIDITY_DATE,
                GeneralizedTime::from_unix_duration(since)?.to_der()?,
            )?);
        }
        revoked.push(RevokedCert {
            serial_number: e.serial.clone(),
            revocation_date: x509_time(e.revoked_at)?,
            crl_entry_extensions: (!exts.is_empty()).then_some(exts),
        });
    }
    let alg = AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256, parameters: None };
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: alg.clone(),
        issuer: issuer.clone(),
        this_update: x509_time(this_update)?,
        next_update: next_update.map(x509_time).transpose()?,
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: None,
    };
    let signature = key.sign(&tbs.to_der()?);
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&signature)?,
    }
    .to_der()
}
