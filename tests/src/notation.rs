//! A test Notary Project PKI: a root CA (P-256) and code-signing leaves with a chosen subject DN, and
//! vouch's own Notation JWS signer pushing signatures as `notation sign` lays them out (a referrer of
//! artifact type `application/vnd.cncf.notary.signature`).

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use der::oid::ObjectIdentifier;
use der::{Decode as _, Encode as _};
use p256::ecdsa::{DerSignature, SigningKey as P256Key};
use p256::pkcs8::EncodePrivateKey as _;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{CrlReason, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use vouch_attest::cosign::push_notation_signature;
use vouch_attest::keys::pem_encode;
use vouch_attest::notation::sign::{sign_crl, sign_jws, CrlEntry};
use vouch_attest::notation::verify::JWS_MEDIA_TYPE;
use vouch_attest::notation::TargetArtifact;
use vouch_attest::registry::RegistryClient;
use vouch_attest::{ArtifactRef, Digest, SigningKey};

use crate::fake_sigstore::{spki_of, validity};

const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// A root CA that issues Notation signing certificates.
pub struct NotationCa {
    key: P256Key,
    name: Name,
    /// The root certificate (DER): what a trust store holds.
    pub root_der: Vec<u8>,
}

/// A signing certificate and its key.
pub struct NotationSigner {
    /// The key, as vouch's signer takes it.
    pub key: SigningKey,
    /// The chain for `x5c`: the leaf, then the root.
    pub chain: Vec<Vec<u8>>,
}

impl NotationCa {
    /// A fresh root named `cn`, valid from a year ago for ten years.
    pub fn new(cn: &str) -> anyhow::Result<Self> {
        let now = SystemTime::now();
        let key = P256Key::random(&mut rand_core::OsRng);
        let name = Name::from_str(&format!("CN={cn},O=vouch-test,ST=WA,C=US"))?;
        let mut b = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            validity(now - YEAR, now + 10 * YEAR)?,
            name.clone(),
            spki_of(&key)?,
            &key,
        )?;
        b.add_extension(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?;
        let root_der = b.build::<DerSignature>()?.to_der()?;
        Ok(Self { key, name, root_der })
    }

    /// The root as a PEM trust store.
    pub fn trust_store_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.root_der)
    }

    /// A code-signing leaf with subject `subject` (RFC 4514), valid `not_before..not_after`.
    pub fn issue(
        &self,
        subject: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> anyhow::Result<NotationSigner> {
        let key = P256Key::random(&mut rand_core::OsRng);
        let serial: u32 = rand_core::RngCore::next_u32(&mut rand_core::OsRng) | 1;
        let mut b = CertificateBuilder::new(
            Profile::Leaf {
                issuer: self.name.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            SerialNumber::from(serial),
            validity(not_before, not_after)?,
            Name::from_str(subject)?,
            spki_of(&key)?,
            &self.key,
        )?;
        b.add_extension(&ExtendedKeyUsage(vec![OID_CODE_SIGNING]))?;
        let leaf_der = b.build::<DerSignature>()?.to_der()?;
        let pem = key.to_pkcs8_der()?.to_bytes();
        let key = SigningKey::from_pkcs8_pem(&pem_encode("PRIVATE KEY", &pem))?;
        Ok(NotationSigner { key, chain: vec![leaf_der, self.root_der.clone()] })
    }

    /// A DER CRL from this root, current (from a day ago to a week ahead), listing `revoked`'s signing
    /// certificates as revoked an hour ago for key compromise.
    pub fn crl(&self, revoked: &[&NotationSigner]) -> anyhow::Result<Vec<u8>> {
        let now = chrono::Utc::now();
        self.crl_valid(revoked, now - chrono::Duration::days(1), now + chrono::Duration::days(7))
    }

    /// A DER CRL from this root valid from `this_update` to `next_update`, listing `revoked`.
    pub fn crl_valid(
        &self,
        revoked: &[&NotationSigner],
        this_update: chrono::DateTime<chrono::Utc>,
        next_update: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<u8>> {
        let mut entries = Vec::with_capacity(revoked.len());
        for signer in revoked {
            let leaf = x509_cert::Certificate::from_der(&signer.chain[0])?;
            entries.push(CrlEntry {
                serial: leaf.tbs_certificate.serial_number,
                revoked_at: chrono::Utc::now() - chrono::Duration::hours(1),
                reason: Some(CrlReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        let pem = self.key.to_pkcs8_der()?.to_bytes();
        let key = SigningKey::from_pkcs8_pem(&pem_encode("PRIVATE KEY", &pem))?;
        Ok(sign_crl(&key, &self.name, this_update, Some(next_update), &entries)?)
    }

    /// A leaf valid from a day ago for a year.
    pub fn issue_current(&self, subject: &str) -> anyhow::Result<NotationSigner> {
        let now = SystemTime::now();
        self.issue(subject, now - Duration::from_secs(86_400), now + YEAR)
    }
}

/// Sign the manifest `image` names with `signer` (JWS, ES256) and push the signature as its referrer;
/// `expiry` is the signature's own. Returns the signature manifest's digest.
pub async fn sign_and_push(
    client: &RegistryClient,
    image: &ArtifactRef,
    signer: &NotationSigner,
    expiry: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<Digest> {
    let manifest = client.fetch_manifest(image).await?;
    let target = TargetArtifact {
        media_type: manifest.media_type.clone(),
        digest: manifest.digest.to_string(),
        size: manifest.bytes.len() as u64,
        annotations: Default::default(),
    };
    let envelope = sign_jws(&signer.key, &signer.chain, &target, chrono::Utc::now(), expiry);
    Ok(push_notation_signature(client, image, JWS_MEDIA_TYPE, &envelope).await?)
}
