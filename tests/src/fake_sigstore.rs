//! A test Sigstore: a Fulcio-like root and intermediate CA (P-256), leaf certificates with a SAN (URI or
//! email), the Fulcio OIDC-issuer extension and the codeSigning EKU, with chosen validity; a Rekor-like
//! P-256 log key that signs SETs over hashedrekord bodies; a CT log key (P-256) that signs RFC 6962 SCTs
//! over precertificates; and the `trusted_root.json` that lists them.
//!
//! [`FakeSigstore::issue`] and [`FakeSigstore::issue_with_claims`] issue leaves without SCTs (tests that
//! use them run with `require_sct = false`); [`FakeSigstore::issue_with_sct`] issues as Fulcio does: a
//! precertificate (with the CT poison extension) logged to the CT log, and the final certificate with the
//! log's SCT embedded, so `vouch verify` (which always requires an SCT) accepts it.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine;
use der::asn1::{Ia5String, Utf8StringRef};
use der::oid::{AssociatedOid, ObjectIdentifier};
use der::{Decode as _, Encode as _};
use p256::ecdsa::{DerSignature, SigningKey as P256Key};
use p256::pkcs8::EncodePublicKey as _;
use sha2::{Digest as _, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use vouch_attest::cosign::{
    self, layer_annotations, RekorBundle, SimpleSigningPayload, SIMPLE_SIGNING_MEDIA_TYPE,
};
use vouch_attest::keys::pem_encode;
use vouch_attest::registry::RegistryClient;
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::{ArtifactRef, Digest};

/// Fulcio's OIDC issuer extension (v2, DER UTF8String).
const OID_FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// codeSigning extended key usage.
const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// RFC 6962 §3.1 precertificate poison extension (critical, value ASN.1 NULL).
const OID_CT_POISON: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
/// RFC 6962 §3.3 embedded SCT list extension.
const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// The Fulcio issuer extension as the builder wants it.
struct FulcioIssuer(String);

impl AssociatedOid for FulcioIssuer {
    const OID: ObjectIdentifier = OID_FULCIO_ISSUER_V2;
}

impl der::Encode for FulcioIssuer {
    fn encoded_len(&self) -> der::Result<der::Length> {
        Utf8StringRef::new(&self.0)?.encoded_len()
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        Utf8StringRef::new(&self.0)?.encode(writer)
    }
}

impl x509_cert::ext::AsExtension for FulcioIssuer {
    fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
}

/// A Fulcio claim extension (`1.3.6.1.4.1.57264.1.<arc>`) with its value bytes as given: the test says
/// how the value is encoded ([`legacy_claim`], [`claim`]), so the reader is checked against both encodings.
#[derive(Debug, Clone)]
pub struct ClaimExtension {
    oid: ObjectIdentifier,
    value: Vec<u8>,
}

/// A deprecated GitHub Workflow extension (`.2`–`.6`): the raw UTF-8 string, no DER (Fulcio oid-info.md).
pub fn legacy_claim(arc: u32, value: &str) -> anyhow::Result<ClaimExtension> {
    Ok(ClaimExtension {
        oid: ObjectIdentifier::new(&format!("1.3.6.1.4.1.57264.1.{arc}"))?,
        value: value.as_bytes().to_vec(),
    })
}

/// A current Fulcio extension (`.8` onward): a DER UTF8String.
pub fn claim(arc: u32, value: &str) -> anyhow::Result<ClaimExtension> {
    Ok(ClaimExtension {
        oid: ObjectIdentifier::new(&format!("1.3.6.1.4.1.57264.1.{arc}"))?,
        value: Utf8StringRef::new(value)?.to_der()?,
    })
}

// The builder wants a type with a fixed OID; `to_extension` is overridden to use the instance's OID and
// to store the value bytes unchanged.
impl AssociatedOid for ClaimExtension {
    const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1");
}

impl der::Encode for ClaimExtension {
    fn encoded_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.value.len())
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(&self.value)
    }
}

impl x509_cert::ext::AsExtension for ClaimExtension {
    fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
    fn to_extension(
        &self,
        _: &Name,
        _: &[x509_cert::ext::Extension],
    ) -> der::Result<x509_cert::ext::Extension> {
        Ok(x509_cert::ext::Extension {
            extn_id: self.oid,
            critical: false,
            extn_value: der::asn1::OctetString::new(self.value.clone())?,
        })
    }
}

/// The signer's identity in a leaf certificate.
#[derive(Debug, Clone)]
pub enum San {
    /// A URI SAN (workload identities, e.g. GitHub Actions).
    Uri(String),
    /// An email SAN.
    Email(String),
}

/// A keyless signer: an ephemeral key and the certificate issued for it.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The ephemeral key.
    pub key: P256Key,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
}

/// The test Sigstore instance.
pub struct FakeSigstore {
    root_key: P256Key,
    root_name: Name,
    root_der: Vec<u8>,
    intermediate_key: P256Key,
    intermediate_name: Name,
    intermediate_der: Vec<u8>,
    rekor_key: P256Key,
    ct_key: P256Key,
    next_log_index: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for FakeSigstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeSigstore")
    }
}

pub(crate) fn spki_of(key: &P256Key) -> anyhow::Result<SubjectPublicKeyInfoOwned> {
    let der = key.verifying_key().to_public_key_der()?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

pub(crate) fn validity(from: SystemTime, to: SystemTime) -> anyhow::Result<Validity> {
    Ok(Validity { not_before: Time::try_from(from)?, not_after: Time::try_from(to)? })
}

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

impl FakeSigstore {
    /// A fresh CA pair and log key, valid from a year ago for ten years.
    pub fn new() -> anyhow::Result<Self> {
        let now = SystemTime::now();
        let root_key = P256Key::random(&mut rand_core::OsRng);
        let root_name = Name::from_str("CN=vouch-test-fulcio-root,O=vouch-test")?;
        let mut b = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            validity(now - YEAR, now + 10 * YEAR)?,
            root_name.clone(),
            spki_of(&root_key)?,
            &root_key,
        )?;
        b.add_extension(&x509_cert::ext::pkix::KeyUsage(
            x509_cert::ext::pkix::KeyUsages::KeyCertSign | x509_cert::ext::pkix::KeyUsages::CRLSign,
        ))?;
        let root_der = b.build::<DerSignature>()?.to_der()?;

        let intermediate_key = P256Key::random(&mut rand_core::OsRng);
        let intermediate_name = Name::from_str("CN=vouch-test-fulcio-intermediate,O=vouch-test")?;
        let b = CertificateBuilder::new(
            Profile::SubCA { issuer: root_name.clone(), path_len_constraint: Some(0) },
            SerialNumber::from(2u32),
            validity(now - YEAR, now + 10 * YEAR)?,
            intermediate_name.clone(),
            spki_of(&intermediate_key)?,
            &root_key,
        )?;
        let intermediate_der = b.build::<DerSignature>()?.to_der()?;
        Ok(Self {
            root_key,
            root_name,
            root_der,
            intermediate_key,
            intermediate_name,
            intermediate_der,
            rekor_key: P256Key::random(&mut rand_core::OsRng),
            ct_key: P256Key::random(&mut rand_core::OsRng),
            next_log_index: std::sync::atomic::AtomicI64::new(1000),
        })
    }

    /// The Rekor log id: SHA-256 of the log key's SPKI DER.
    pub fn log_id(&self) -> Vec<u8> {
        let der =
            self.rekor_key.verifying_key().to_public_key_der().map(|d| d.into_vec()).unwrap_or_default();
        Sha256::digest(der).to_vec()
    }

    /// The CT log id: SHA-256 of the CT log key's SPKI DER (RFC 6962 §3.2 `LogID`).
    pub fn ct_log_id(&self) -> [u8; 32] {
        let der = self.ct_key.verifying_key().to_public_key_der().map(|d| d.into_vec()).unwrap_or_default();
        Sha256::digest(der).into()
    }

    /// The `trusted_root.json` listing the CA chain, the Rekor log key and the CT log key.
    pub fn trusted_root_json(&self) -> Vec<u8> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let start = chrono::DateTime::<chrono::Utc>::from(SystemTime::now() - YEAR).to_rfc3339();
        let log_key =
            self.rekor_key.verifying_key().to_public_key_der().map(|d| d.into_vec()).unwrap_or_default();
        let ct_key =
            self.ct_key.verifying_key().to_public_key_der().map(|d| d.into_vec()).unwrap_or_default();
        let _ = &self.root_key;
        serde_json::to_vec_pretty(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.vouch-test.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&log_key), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": start}},
                "logId": {"keyId": b64(&self.log_id())}
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "vouch-test", "commonName": "vouch-test-fulcio"},
                "uri": "https://fulcio.vouch-test.invalid",
                "certChain": {"certificates": [{"rawBytes": b64(&self.intermediate_der)}, {"rawBytes": b64(&self.root_der)}]},
                "validFor": {"start": start}
            }],
            "ctlogs": [{
                "baseUrl": "https://ctfe.vouch-test.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&ct_key), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": start}},
                "logId": {"keyId": b64(&self.ct_log_id())}
            }],
            "timestampAuthorities": []
        }))
        .unwrap_or_default()
    }

    /// The parsed trust root.
    pub fn trust_root(&self) -> anyhow::Result<TrustRoot> {
        TrustRoot::from_json(&self.trusted_root_json()).context("fake trusted root")
    }

    /// The chain annotation cosign attaches: intermediate then root, PEM.
    pub fn chain_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.intermediate_der) + &pem_encode("CERTIFICATE", &self.root_der)
    }

    /// Issue a leaf for `san` with OIDC `issuer`, valid from `not_before` to `not_after`.
    pub fn issue(
        &self,
        san: &San,
        issuer: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> anyhow::Result<Leaf> {
        self.issue_with_claims(san, issuer, not_before, not_after, &[])
    }

    /// [`Self::issue`], the leaf also carrying `claims` (Fulcio extensions, as a GitHub Actions token yields).
    pub fn issue_with_claims(
        &self,
        san: &San,
        issuer: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        claims: &[ClaimExtension],
    ) -> anyhow::Result<Leaf> {
        let key = P256Key::random(&mut rand_core::OsRng);
        let cert = self.leaf_builder(&key, san, issuer, not_before, not_after, claims, None)?;
        let cert_der = cert.to_der()?;
        Ok(Leaf { key, cert_pem: pem_encode("CERTIFICATE", &cert_der), cert_der })
    }

    /// [`Self::issue_with_claims`] as Fulcio issues: a precertificate carrying the critical CT poison
    /// extension is logged to the CT log, whose SCT (RFC 6962 §3.2, over the issuer key hash and the
    /// precertificate's TBSCertificate without the poison) is embedded in the final certificate's SCT list
    /// extension. The final certificate is the precertificate's TBSCertificate with the poison removed and
    /// the SCT list appended (what Fulcio's `IssueFinalCertificate` does), signed by the intermediate.
    pub fn issue_with_sct(
        &self,
        san: &San,
        issuer: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        claims: &[ClaimExtension],
    ) -> anyhow::Result<Leaf> {
        let key = P256Key::random(&mut rand_core::OsRng);
        let poison = x509_cert::ext::Extension {
            extn_id: OID_CT_POISON,
            critical: true,
            extn_value: der::asn1::OctetString::new(der::asn1::Null.to_der()?)?,
        };
        let precert = self.leaf_builder(&key, san, issuer, not_before, not_after, claims, Some(poison))?;
        let mut tbs = precert.tbs_certificate.clone();
        tbs.extensions
            .as_mut()
            .context("the precertificate has extensions")?
            .retain(|e| e.extn_id != OID_CT_POISON);
        let timestamp_ms = u64::try_from(not_before.duration_since(UNIX_EPOCH)?.as_millis())?;
        let sct = self.ct_log_sign(timestamp_ms, &tbs.to_der()?)?;
        // SignedCertificateTimestampList: opaque SerializedSCT<1..2^16-1> list<1..2^16-1>, in an OCTET STRING.
        let mut list = u16::try_from(sct.len() + 2)?.to_be_bytes().to_vec();
        list.extend_from_slice(&u16::try_from(sct.len())?.to_be_bytes());
        list.extend_from_slice(&sct);
        tbs.extensions.get_or_insert_with(Vec::new).push(x509_cert::ext::Extension {
            extn_id: OID_SCT_LIST,
            critical: false,
            extn_value: der::asn1::OctetString::new(der::asn1::OctetString::new(list)?.to_der()?)?,
        });
        let signature: DerSignature =
            p256::ecdsa::signature::Signer::sign(&self.intermediate_key, &tbs.to_der()?);
        let cert = x509_cert::Certificate {
            tbs_certificate: tbs,
            signature_algorithm: precert.signature_algorithm,
            signature: der::asn1::BitString::from_bytes(signature.as_bytes())?,
        };
        let cert_der = cert.to_der()?;
        Ok(Leaf { key, cert_pem: pem_encode("CERTIFICATE", &cert_der), cert_der })
    }

    /// What the CT log returns for a precertificate entry: a v1 SCT (RFC 6962 §3.2), serialized, whose
    /// signature covers version, signature_type certificate_timestamp, the timestamp, entry_type
    /// precert_entry, SHA-256 of the issuer's SPKI, the TBSCertificate (24-bit length) and the empty
    /// extensions (16-bit length).
    fn ct_log_sign(&self, timestamp_ms: u64, precert_tbs: &[u8]) -> anyhow::Result<Vec<u8>> {
        let issuer_key_hash = Sha256::digest(spki_of(&self.intermediate_key)?.to_der()?);
        let tbs_len = u32::try_from(precert_tbs.len())?.to_be_bytes();
        let mut signed = vec![0u8, 0u8]; // v1, certificate_timestamp
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&[0, 1]); // precert_entry
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend_from_slice(&tbs_len[1..]);
        signed.extend_from_slice(precert_tbs);
        signed.extend_from_slice(&[0, 0]); // no CtExtensions
        let signature: DerSignature = p256::ecdsa::signature::Signer::sign(&self.ct_key, &signed);
        let mut sct = vec![0u8]; // v1
        sct.extend_from_slice(&self.ct_log_id());
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&[0, 0]); // no extensions
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&u16::try_from(signature.as_bytes().len())?.to_be_bytes());
        sct.extend_from_slice(signature.as_bytes());
        Ok(sct)
    }

    /// A leaf for `key`, issued by the intermediate, with `extra` (the CT poison) after the claims.
    #[allow(clippy::too_many_arguments)]
    fn leaf_builder(
        &self,
        key: &P256Key,
        san: &San,
        issuer: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        claims: &[ClaimExtension],
        extra: Option<x509_cert::ext::Extension>,
    ) -> anyhow::Result<x509_cert::Certificate> {
        let serial: u32 = rand_core::RngCore::next_u32(&mut rand_core::OsRng) | 1;
        let mut b = CertificateBuilder::new(
            Profile::Leaf {
                issuer: self.intermediate_name.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            SerialNumber::from(serial),
            validity(not_before, not_after)?,
            Name::default(),
            spki_of(key)?,
            &self.intermediate_key,
        )?;
        let general_name = match san {
            San::Uri(u) => GeneralName::UniformResourceIdentifier(Ia5String::new(u)?),
            San::Email(e) => GeneralName::Rfc822Name(Ia5String::new(e)?),
        };
        b.add_extension(&SubjectAltName(vec![general_name]))?;
        b.add_extension(&ExtendedKeyUsage(vec![OID_CODE_SIGNING]))?;
        b.add_extension(&FulcioIssuer(issuer.to_owned()))?;
        for c in claims {
            b.add_extension(c)?;
        }
        let mut cert = b.build::<DerSignature>()?;
        let _ = &self.root_name;
        if let Some(ext) = extra {
            // The builder cannot add an extension of a runtime OID with its own criticality: add it to the
            // TBS and sign again.
            cert.tbs_certificate.extensions.get_or_insert_with(Vec::new).push(ext);
            let signature: DerSignature =
                p256::ecdsa::signature::Signer::sign(&self.intermediate_key, &cert.tbs_certificate.to_der()?);
            cert.signature = der::asn1::BitString::from_bytes(signature.as_bytes())?;
        }
        Ok(cert)
    }

    /// Log a hashedrekord entry for `signature` over `payload` by `cert_pem`, integrated at `integrated_time`,
    /// and return cosign's Rekor bundle (body + SET).
    pub fn log_hashedrekord(
        &self,
        payload: &[u8],
        signature: &[u8],
        cert_pem: &str,
        integrated_time: i64,
    ) -> RekorBundle {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))}},
                "signature": {"content": b64(signature), "publicKey": {"content": b64(cert_pem.as_bytes())}}
            }
        }))
        .unwrap_or_default();
        let log_index = self.next_log_index.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log_id = self.log_id();
        // serde_json's map is sorted, which for these values is RFC 8785 canonical JSON.
        let set_payload = serde_json::to_vec(&serde_json::json!({
            "body": b64(&body),
            "integratedTime": integrated_time,
            "logID": hex::encode(&log_id),
            "logIndex": log_index,
        }))
        .unwrap_or_default();
        let set: DerSignature = p256::ecdsa::signature::Signer::sign(&self.rekor_key, &set_payload);
        RekorBundle {
            signed_entry_timestamp: set.to_bytes().to_vec(),
            body,
            integrated_time,
            log_index,
            log_id,
        }
    }

    /// Sign `artifact` keylessly as cosign does: payload signed by the leaf's key, certificate and chain
    /// annotations, and (when `integrated_time` is given) a Rekor bundle. Returns the `.sig` manifest digest.
    pub async fn sign_image(
        &self,
        client: &RegistryClient,
        artifact: &ArtifactRef,
        leaf: &Leaf,
        integrated_time: Option<i64>,
    ) -> anyhow::Result<Digest> {
        let payload = SimpleSigningPayload::for_artifact(artifact, BTreeMap::new())?.to_json();
        self.push_signed(client, artifact, &payload, &payload, leaf, integrated_time).await
    }

    /// Sign and log `signed`, but store `stored` as the layer blob (tampering after signing when they differ).
    pub async fn push_signed(
        &self,
        client: &RegistryClient,
        artifact: &ArtifactRef,
        signed: &[u8],
        stored: &[u8],
        leaf: &Leaf,
        integrated_time: Option<i64>,
    ) -> anyhow::Result<Digest> {
        let sig: DerSignature = p256::ecdsa::signature::Signer::sign(&leaf.key, signed);
        let rekor = integrated_time.map(|t| self.log_hashedrekord(signed, sig.as_bytes(), &leaf.cert_pem, t));
        let annotations =
            layer_annotations(sig.as_bytes(), Some(&leaf.cert_pem), Some(&self.chain_pem()), rekor.as_ref());
        Ok(cosign::push_signature_layer(
            client,
            artifact,
            cosign::SIGNATURE_SUFFIX,
            SIMPLE_SIGNING_MEDIA_TYPE,
            stored,
            annotations,
        )
        .await?)
    }
}
