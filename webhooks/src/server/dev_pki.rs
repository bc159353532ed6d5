//! A throwaway certificate authority for tests, benchmarks and the quickstart: a P-256 root and serving
//! certificates for loopback names, made with the RustCrypto X.509 builder (no OpenSSL, no rcgen).

use std::net::IpAddr;
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use der::asn1::{Ia5String, OctetString};
use der::{Decode as _, Encode as _};
use p256::ecdsa::{DerSignature, SigningKey as P256Key};
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// serverAuth extended key usage.
const OID_SERVER_AUTH: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// clientAuth extended key usage.
const OID_CLIENT_AUTH: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// codeSigning extended key usage.
const OID_CODE_SIGNING: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A leaf certificate (PEM) and its PKCS#8 private key (PEM): a serving or a client certificate.
#[derive(Clone)]
pub struct ServingPair {
    /// Leaf certificate, PEM.
    pub cert_pem: String,
    /// Leaf private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Leaf certificate, DER.
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for ServingPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingPair").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// A root CA that signs serving certificates.
pub struct DevCa {
    key: P256Key,
    name: Name,
    cert_der: Vec<u8>,
    next_serial: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").field("name", &self.name.to_string()).finish_non_exhaustive()
    }
}

fn fresh_key() -> anyhow::Result<P256Key> {
    let pem = vouch_attest::SigningKey::generate().to_pkcs8_pem();
    P256Key::from_pkcs8_pem(&pem).context("re-reading a fresh P-256 key")
}

fn spki_of(key: &P256Key) -> anyhow::Result<SubjectPublicKeyInfoOwned> {
    let der = key.verifying_key().to_public_key_der()?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

fn validity() -> anyhow::Result<Validity> {
    let now = SystemTime::now();
    Ok(Validity { not_before: Time::try_from(now - DAY)?, not_after: Time::try_from(now + 30 * DAY)? })
}

impl DevCa {
    /// A fresh root CA named `CN=<common_name>`, valid from yesterday for a month.
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        let key = fresh_key()?;
        let name = Name::from_str(&format!("CN={common_name},O=vouch-dev"))?;
        // The Root profile adds basicConstraints CA and keyCertSign/cRLSign key usage itself.
        let b = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            validity()?,
            name.clone(),
            spki_of(&key)?,
            &key,
        )?;
        let cert_der = b.build::<DerSignature>()?.to_der()?;
        Ok(Self { key, name, cert_der, next_serial: std::sync::atomic::AtomicU32::new(2) })
    }

    /// A CRL from this CA that revokes nothing, current from yesterday for a week (DER): what an operator
    /// hands a Notation authority so that revocation is checked rather than skipped.
    pub fn empty_crl_der(&self) -> anyhow::Result<Vec<u8>> {
        let pem = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&self.key, p256::pkcs8::LineEnding::LF)?;
        let key = vouch_attest::SigningKey::from_pkcs8_pem(&pem)?;
        let now = chrono::Utc::now();
        let crl = vouch_attest::notation::sign::sign_crl(
            &key,
            &self.name,
            now - chrono::Duration::days(1),
            Some(now + chrono::Duration::days(7)),
            &[],
        )?;
        Ok(crl)
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM (e.g. the webhook configuration's caBundle, base64-encoded).
    pub fn cert_pem(&self) -> String {
        vouch_attest::keys::pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// A serving certificate for these DNS names and IP addresses, with a fresh P-256 key.
    pub fn issue_server(&self, dns_names: &[&str], ips: &[IpAddr]) -> anyhow::Result<ServingPair> {
        let mut names = Vec::new();
        for d in dns_names {
            names.push(GeneralName::DnsName(Ia5String::new(d)?));
        }
        for ip in ips {
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            names.push(GeneralName::IpAddress(OctetString::new(octets)?));
        }
        self.issue(dns_names.first().unwrap_or(&"vouch"), names, OID_SERVER_AUTH)
    }

    /// A client certificate (clientAuth) for `CN=<common_name>`, with a fresh P-256 key: what the API
    /// server presents to a webhook that requires one (`--client-ca`).
    pub fn issue_client(&self, common_name: &str) -> anyhow::Result<ServingPair> {
        self.issue(common_name, Vec::new(), OID_CLIENT_AUTH)
    }

    /// A code-signing certificate (codeSigning) with the subject DN `subject` (RFC 4514), with a fresh
    /// P-256 key: a Notary Project signer for the demo.
    pub fn issue_code_signing(&self, subject: &str) -> anyhow::Result<ServingPair> {
        self.issue_named(Name::from_str(subject)?, Vec::new(), OID_CODE_SIGNING)
    }

    fn issue(
        &self,
        common_name: &str,
        names: Vec<GeneralName>,
        usage: der::oid::ObjectIdentifier,
    ) -> anyhow::Result<ServingPair> {
        self.issue_named(Name::from_str(&format!("CN={common_name},O=vouch-dev"))?, names, usage)
    }

    fn issue_named(
        &self,
        subject: Name,
        names: Vec<GeneralName>,
        usage: der::oid::ObjectIdentifier,
    ) -> anyhow::Result<ServingPair> {
        let key = fresh_key()?;
        let serial = self.next_serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut b = CertificateBuilder::new(
            Profile::Leaf {
                issuer: self.name.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            SerialNumber::from(serial),
            validity()?,
            subject,
            spki_of(&key)?,
            &self.key,
        )?;
        if !names.is_empty() {
            b.add_extension(&SubjectAltName(names))?;
        }
        b.add_extension(&ExtendedKeyUsage(vec![usage]))?;
        let cert_der = b.build::<DerSignature>()?.to_der()?;
        let key_pem = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, p256::pkcs8::LineEnding::LF)?;
        Ok(ServingPair {
            cert_pem: vouch_attest::keys::pem_encode("CERTIFICATE", &cert_der),
            key_pem: key_pem.to_string(),
            cert_der,
        })
    }
}
