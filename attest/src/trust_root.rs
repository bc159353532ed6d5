//! Sigstore trust roots (`trusted_root.json`): which Fulcio CAs, Rekor logs, CT logs and timestamp
//! authorities are trusted, and when. Read from files; the public-good root is embedded. No network here:
//! [`crate::tuf`] keeps a root fresh from a TUF repository.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::digest::Digest;
use crate::keys::PublicKey;

/// The Sigstore public-good trusted root, as shipped in the PyPI `sigstore` 4.5.1 wheel.
pub const PUBLIC_GOOD_JSON: &str = include_str!("../data/sigstore-public-good.trusted_root.json");

/// Largest trusted_root.json accepted.
pub const MAX_TRUST_ROOT_BYTES: usize = 4 * 1024 * 1024;

/// Why a trust root could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustRootError {
    /// Not JSON of the expected shape.
    #[error("malformed trusted root: {0}")]
    Malformed(String),
    /// A key or certificate inside could not be read.
    #[error("trusted root {section}[{index}]: {reason}")]
    BadEntry {
        /// `tlogs`, `ctlogs`, `certificateAuthorities` or `timestampAuthorities`.
        section: &'static str,
        /// Position in that list.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Larger than [`MAX_TRUST_ROOT_BYTES`].
    #[error("trusted root larger than {MAX_TRUST_ROOT_BYTES} bytes")]
    TooLarge,
}

/// A time window; either end may be open. The end is inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validity {
    /// Not valid before.
    pub start: Option<DateTime<Utc>>,
    /// Not valid after (inclusive).
    pub end: Option<DateTime<Utc>>,
}

impl Validity {
    /// Whether `t` lies in the window (both ends inclusive).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

/// A transparency log (Rekor) or certificate transparency log.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    /// Base URL, informational (never contacted).
    pub base_url: String,
    /// Log id as in the trust root (`logId.keyId`, raw bytes).
    pub log_id: Vec<u8>,
    /// The log's public key.
    pub public_key: PublicKey,
    /// The key's DER SubjectPublicKeyInfo, as given.
    pub public_key_der: Vec<u8>,
    /// `keyDetails`, e.g. `PKIX_ECDSA_P256_SHA_256`, `PKIX_ED25519`.
    pub key_details: String,
    /// When entries signed by this key are acceptable.
    pub valid_for: Validity,
}

/// A certificate authority (Fulcio) or timestamp authority.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// URI, informational.
    pub uri: String,
    /// Subject common name, informational.
    pub common_name: String,
    /// DER certificates in trust-root order: leaf-most first, the root last.
    pub chain: Vec<Vec<u8>>,
    /// When certificates issued by this authority are acceptable.
    pub valid_for: Validity,
}

/// A parsed Sigstore trusted root.
#[derive(Debug, Clone)]
pub struct TrustRoot {
    /// Rekor logs (v1 and v2).
    pub tlogs: Vec<TransparencyLog>,
    /// Certificate transparency logs (SCTs).
    pub ctlogs: Vec<TransparencyLog>,
    /// Fulcio CAs.
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// RFC 3161 timestamp authorities.
    pub timestamp_authorities: Vec<CertificateAuthority>,
    fingerprint: Digest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    #[serde(default)]
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize, Default)]
struct RawValidity {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    subject: RawSubject,
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    #[serde(default)]
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawSubject {
    #[serde(default)]
    common_name: String,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("not base64: {e}"))
}

fn time(s: &Option<String>) -> Result<Option<DateTime<Utc>>, String> {
    s.as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| format!("bad time {t:?}: {e}"))
        })
        .transpose()
}

fn validity(v: &Option<RawValidity>) -> Result<Validity, String> {
    let v = match v {
        Some(v) => v,
        None => return Ok(Validity::default()),
    };
    Ok(Validity { start: time(&v.start)?, end: time(&v.end)? })
}

fn logs(raw: Vec<RawLog>, section: &'static str) -> Result<Vec<TransparencyLog>, TrustRootError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, l)| {
            let bad = |reason: String| TrustRootError::BadEntry { section, index, reason };
            let raw = b64(&l.public_key.raw_bytes).map_err(bad)?;
            let (public_key, der) = read_log_key(&raw, &l.public_key.key_details).map_err(bad)?;
            Ok(TransparencyLog {
                base_url: l.base_url,
                log_id: b64(&l.log_id.key_id).map_err(bad)?,
                public_key,
                public_key_der: der,
                key_details: l.public_key.key_details,
                valid_for: validity(&l.public_key.valid_for).map_err(bad)?,
            })
        })
        .collect()
}

/// Log keys are SPKI DER, except that some roots carry RSA keys as PKCS#1 (`keyDetails: PKCS1_RSA_*`).
/// Returns the key and its SPKI DER (log ids and checkpoint key hints are computed over SPKI).
fn read_log_key(raw: &[u8], key_details: &str) -> Result<(PublicKey, Vec<u8>), String> {
    match PublicKey::from_spki_der(raw) {
        Ok(k) => Ok((k, raw.to_vec())),
        Err(_) if key_details.starts_with("PKCS1_RSA") => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let key = rsa::RsaPublicKey::from_pkcs1_der(raw).map_err(|e| format!("PKCS#1 RSA key: {e}"))?;
            let key = PublicKey::Rsa(key);
            let der = key.to_spki_der();
            Ok((key, der))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn cas(raw: Vec<RawCa>, section: &'static str) -> Result<Vec<CertificateAuthority>, TrustRootError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, c)| {
            let bad = |reason: String| TrustRootError::BadEntry { section, index, reason };
            let chain = c
                .cert_chain
                .certificates
                .iter()
                .map(|cert| b64(&cert.raw_bytes))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            if chain.is_empty() {
                return Err(bad("empty certificate chain".into()));
            }
            Ok(CertificateAuthority {
                uri: c.uri,
                common_name: c.subject.common_name,
                chain,
                valid_for: validity(&c.valid_for).map_err(bad)?,
            })
        })
        .collect()
}

impl TrustRoot {
    /// Parse a `trusted_root.json` document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TrustRootError> {
        if bytes.len() > MAX_TRUST_ROOT_BYTES {
            return Err(TrustRootError::TooLarge);
        }
        let raw: RawRoot =
            serde_json::from_slice(bytes).map_err(|e| TrustRootError::Malformed(e.to_string()))?;
        if let Some(mt) = &raw.media_type {
            if !mt.starts_with("application/vnd.dev.sigstore.trustedroot") {
                return Err(TrustRootError::Malformed(format!("unexpected mediaType {mt:?}")));
            }
        }
        Ok(Self {
            tlogs: logs(raw.tlogs, "tlogs")?,
            ctlogs: logs(raw.ctlogs, "ctlogs")?,
            certificate_authorities: cas(raw.certificate_authorities, "certificateAuthorities")?,
            timestamp_authorities: cas(raw.timestamp_authorities, "timestampAuthorities")?,
            fingerprint: Digest::sha256_of(bytes),
        })
    }

    /// The embedded Sigstore public-good trusted root.
    pub fn public_good() -> Result<Self, TrustRootError> {
        Self::from_json(PUBLIC_GOOD_JSON.as_bytes())
    }

    /// SHA-256 of the document this root was read from: part of every cache key.
    pub fn fingerprint(&self) -> &Digest {
        &self.fingerprint
    }

    /// The Rekor log with this log id.
    pub fn tlog(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }

    /// The CT log with this log id.
    pub fn ctlog(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.ctlogs.iter().find(|l| l.log_id == log_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_embedded_public_good_root() {
        let root = TrustRoot::public_good().unwrap();
        assert_eq!(root.tlogs.len(), 2);
        assert_eq!(root.tlogs[1].public_key.kind(), "ed25519");
        assert!(root.certificate_authorities.len() >= 2);
        assert!(!root.timestamp_authorities.is_empty());
        // Rekor v1 log ids are the SHA-256 of the log key.
        let v1 = &root.tlogs[0];
        assert_eq!(Digest::sha256_of(&v1.public_key_der).to_bytes(), v1.log_id);
        assert!(root.tlog(&v1.log_id).is_some());
    }

    #[test]
    fn reads_pkcs1_rsa_log_keys() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap().to_public_key();
        let pkcs1 = key.to_pkcs1_der().unwrap();
        let b = base64::engine::general_purpose::STANDARD.encode(pkcs1.as_bytes());
        let doc = format!(
            r#"{{"ctlogs":[{{"publicKey":{{"rawBytes":"{b}","keyDetails":"PKCS1_RSA_PKCS1V5"}},"logId":{{"keyId":"AA=="}}}}]}}"#
        );
        let root = TrustRoot::from_json(doc.as_bytes()).unwrap();
        assert_eq!(root.ctlogs[0].public_key.kind(), "rsa");
        // Without the PKCS#1 key details the same bytes are not an SPKI key.
        let wrong = doc.replace("PKCS1_RSA_PKCS1V5", "PKIX_RSA_PKCS1V15_2048_SHA256");
        assert!(TrustRoot::from_json(wrong.as_bytes()).is_err());
    }

    #[test]
    fn validity_end_is_inclusive() {
        let t = DateTime::parse_from_rfc3339("2022-10-31T23:59:59.999Z").unwrap().with_timezone(&Utc);
        let v = Validity { start: None, end: Some(t) };
        assert!(v.contains(t));
        assert!(!v.contains(t + chrono::Duration::milliseconds(1)));
    }

    #[test]
    fn rejects_bad_roots_naming_the_entry() {
        assert!(matches!(TrustRoot::from_json(b"{"), Err(TrustRootError::Malformed(_))));
        let bad = br#"{"tlogs":[{"publicKey":{"rawBytes":"AAAA"},"logId":{"keyId":"AA=="}}]}"#;
        assert!(matches!(
            TrustRoot::from_json(bad),
            Err(TrustRootError::BadEntry { section: "tlogs", index: 0, .. })
        ));
    }
}
