//! Test helpers: hand-built X.509 certificates and the shared test data directory.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, Ia5String, OctetString, UtcTime};
use der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::certificate::{ParsedAuthority, ParsedCert};
use crate::keys::SigningKey;
use crate::trust_root::Validity as TrustValidity;

/// The shared test data, or `None` (outside CI) when absent.
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: missing material under CI must fail
pub fn testdata() -> Option<PathBuf> {
    crate::testdata::locate().unwrap()
}

/// The Sigstore conformance `bundle-verify` cases, or `None` (outside CI) when the test material is absent.
/// A test asks once, before its first case, and skips whole; a case missing from material that is present
/// fails the test ([`Conformance::case`]), so no loop over cases can end early unnoticed.
pub fn conformance() -> Option<Conformance> {
    testdata().map(|d| Conformance(d.join("sigstore-conformance/bundle-verify")))
}

/// The `bundle-verify` directory of present test material.
pub struct Conformance(PathBuf);

impl Conformance {
    /// The directory of case `name`; panics, naming it, when the case is missing.
    pub fn case(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        assert!(dir.is_dir(), "conformance case {name} missing from {}", self.0.display());
        dir
    }

    /// The `bundle-verify` directory itself (`a.txt`, the default artifact, lives there).
    pub fn dir(&self) -> &Path {
        &self.0
    }
}

/// Seconds since the epoch as a chrono time.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

/// A raw extension.
pub fn ext(oid: ObjectIdentifier, value_der: Vec<u8>) -> Extension {
    Extension { extn_id: oid, critical: false, extn_value: OctetString::new(value_der).unwrap() }
}

/// basicConstraints.
pub fn basic_constraints(ca: bool) -> Extension {
    ext(
        const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
        BasicConstraints { ca, path_len_constraint: None }.to_der().unwrap(),
    )
}

/// extendedKeyUsage with one usage.
pub fn eku(usage: ObjectIdentifier) -> Extension {
    ext(const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE, ExtendedKeyUsage(vec![usage]).to_der().unwrap())
}

/// A URI SAN.
pub fn san_uri(uri: &str) -> Extension {
    ext(
        const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
        SubjectAltName(vec![GeneralName::UniformResourceIdentifier(Ia5String::new(uri).unwrap())])
            .to_der()
            .unwrap(),
    )
}

/// The Fulcio v2 issuer extension.
pub fn fulcio_issuer(issuer: &str) -> Extension {
    ext(
        super::identity::OID_FULCIO_ISSUER_V2,
        der::asn1::Utf8StringRef::new(issuer).unwrap().to_der().unwrap(),
    )
}

/// A Fulcio extension whose value is a DER UTF8String (`.8` onward).
pub fn fulcio_utf8(oid: &str, value: &str) -> Extension {
    ext(ObjectIdentifier::new_unwrap(oid), der::asn1::Utf8StringRef::new(value).unwrap().to_der().unwrap())
}

/// A deprecated Fulcio extension whose value is the raw string (`.1`–`.6`).
pub fn fulcio_raw(oid: &str, value: &str) -> Extension {
    ext(ObjectIdentifier::new_unwrap(oid), value.as_bytes().to_vec())
}

/// Build a certificate for `subject_key`, signed by `signer` (ECDSA P-256 SHA-256), serial 010203.
pub fn make_cert(
    subject: &str,
    issuer: &str,
    subject_key: &SigningKey,
    signer: &SigningKey,
    not_before: i64,
    not_after: i64,
    extensions: Vec<Extension>,
) -> ParsedCert {
    make_cert_with_serial(&[1, 2, 3], subject, issuer, subject_key, signer, not_before, not_after, extensions)
}

/// [`make_cert`] with the serial number `serial`.
#[allow(clippy::too_many_arguments)]
pub fn make_cert_with_serial(
    serial: &[u8],
    subject: &str,
    issuer: &str,
    subject_key: &SigningKey,
    signer: &SigningKey,
    not_before: i64,
    not_after: i64,
    extensions: Vec<Extension>,
) -> ParsedCert {
    let time = |s: i64| Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(s as u64)).unwrap());
    let name = |s: &str| {
        if s.is_empty() {
            Name::default()
        } else {
            Name::from_str(s).unwrap()
        }
    };
    let alg = AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256, parameters: None };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(serial).unwrap(),
        signature: alg.clone(),
        issuer: name(issuer),
        validity: Validity { not_before: time(not_before), not_after: time(not_after) },
        subject: name(subject),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&subject_key.public_key().to_spki_der())
            .unwrap(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let sig = signer.sign(&tbs.to_der().unwrap());
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&sig).unwrap(),
    };
    ParsedCert::from_der(&cert.to_der().unwrap()).unwrap()
}

/// A root and intermediate CA valid over [0, 2e9] and an authority made of them.
pub struct TestCa {
    /// Root key.
    pub root_key: SigningKey,
    /// Intermediate key.
    pub intermediate_key: SigningKey,
    /// The authority (intermediate, root).
    pub authority: ParsedAuthority,
}

impl TestCa {
    /// A fresh CA pair.
    pub fn new() -> Self {
        let root_key = SigningKey::generate();
        let intermediate_key = SigningKey::generate();
        let root = make_cert(
            "CN=test root",
            "CN=test root",
            &root_key,
            &root_key,
            0,
            2_000_000_000,
            vec![basic_constraints(true)],
        );
        let intermediate = make_cert(
            "CN=test intermediate",
            "CN=test root",
            &intermediate_key,
            &root_key,
            0,
            2_000_000_000,
            vec![basic_constraints(true)],
        );
        Self {
            root_key,
            intermediate_key,
            authority: ParsedAuthority::new(
                "test".into(),
                vec![intermediate, root],
                TrustValidity::default(),
            ),
        }
    }

    /// A code-signing leaf issued by the intermediate, valid over [nb, na].
    pub fn leaf(&self, key: &SigningKey, nb: i64, na: i64, san: &str, issuer: &str) -> ParsedCert {
        make_cert(
            "",
            "CN=test intermediate",
            key,
            &self.intermediate_key,
            nb,
            na,
            vec![
                basic_constraints(false),
                eku(const_oid::db::rfc5280::ID_KP_CODE_SIGNING),
                san_uri(san),
                fulcio_issuer(issuer),
            ],
        )
    }
}
