//! Sigstore trust roots (`trusted_root.json`): which Fulcio CAs, Rekor logs, CT logs and timestamp
//! authorities are trusted, and when. Read from files; the public-good root is embedded. No network here:
//! [`crate::tuf`] keeps a root fresh from a TUF repository.
//!
//! Read as the Sigstore protobuf-specs `TrustedRoot` (`sigstore_trustroot.proto`, `sigstore_common.proto`)
//! describes it. A document that is not a trusted root is refused ([`TrustRootError`]); an entry that
//! breaks a rule is not trusted, and is named with the rule in [`TrustRoot::ignored`] (and logged), while the
//! rest of the document is used — as sigstore-python does with keys it cannot load. The rules are the
//! variants of [`IgnoredReason`].

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::digest::Digest;
use crate::keys::PublicKey;

/// The Sigstore public-good trusted root, as shipped in the PyPI `sigstore` 4.5.1 wheel.
pub const PUBLIC_GOOD_JSON: &str = include_str!("../data/sigstore-public-good.trusted_root.json");

/// The media types read: v0.2 ("MUST be … when encoded as JSON"), v0.1 and the old v0.1 spelling (clients
/// "MAY choose to also support" them). A document without `mediaType` is read too.
pub const MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
    "application/vnd.dev.sigstore.trustedroot.v0.1+json",
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
];

/// Largest trusted_root.json accepted.
pub const MAX_TRUST_ROOT_BYTES: usize = 4 * 1024 * 1024;

/// Why a trust root could not be read at all. Single entries vouch cannot trust do not fail the document:
/// they are left out and named in [`TrustRoot::ignored`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustRootError {
    /// Not JSON of the expected shape, or not a trusted root.
    #[error("malformed trusted root: {0}")]
    Malformed(String),
    /// Larger than [`MAX_TRUST_ROOT_BYTES`].
    #[error("trusted root larger than {MAX_TRUST_ROOT_BYTES} bytes")]
    TooLarge,
}

/// An entry of a trusted root that vouch does not trust, and why; the caller logs these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted root {section}[{index}] ({name}) ignored: {reason}")]
pub struct IgnoredEntry {
    /// `tlogs`, `ctlogs`, `certificateAuthorities` or `timestampAuthorities`.
    pub section: &'static str,
    /// Position in that list.
    pub index: usize,
    /// The entry's `baseUrl` or `uri` (`"?"` when empty), to find it in the document.
    pub name: String,
    /// Which rule it breaks.
    pub reason: IgnoredReason,
}

/// The rules a trusted-root entry must meet to be trusted (protobuf-specs `sigstore_trustroot.proto`,
/// `sigstore_common.proto`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoredReason {
    /// A CA or TSA without `validFor`: "Clients MUST check timestamps against *both* the `valid_for` time
    /// range *and* the entire certificate chain", which needs a range.
    #[error("no validFor (an authority is trusted only within its stated validity)")]
    NoValidity,
    /// A log key without `publicKey.validFor` (sigstore-go refuses such logs too): it would be trusted for
    /// times before it existed.
    #[error("publicKey has no validFor (a log key is trusted only within its stated validity)")]
    NoKeyValidity,
    /// `validFor` without `start`: a TimeRange has a start; only the end is optional ("End is optional to be
    /// able to capture a period that has started but has no known end").
    #[error("validFor has no start")]
    NoValidityStart,
    /// `validFor.end` before `validFor.start`: the range trusts no time at all.
    #[error("validFor ends ({end}) before it starts ({start})")]
    EmptyValidity {
        /// The start.
        start: DateTime<Utc>,
        /// The end.
        end: DateTime<Utc>,
    },
    /// A `start` or `end` that is not an RFC 3339 time.
    #[error("validFor {field} is not an RFC 3339 time: {value:?}")]
    BadTime {
        /// `start` or `end`.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// A Rekor log whose Merkle tree hash is not SHA2_256 (or is not given): inclusion proofs could not be
    /// checked.
    #[error("hashAlgorithm is {0:?}, vouch checks SHA2_256 Merkle trees only")]
    UnsupportedHashAlgorithm(String),
    /// `logId.keyId` missing, empty or not base64 (`LogId.key_id` is REQUIRED).
    #[error("logId.keyId {0}")]
    BadLogId(String),
    /// The log's public key is missing or cannot be read under its `keyDetails`.
    #[error("publicKey {0}")]
    BadKey(String),
    /// The certificate chain is missing, empty, or holds something that is not a DER certificate.
    #[error("certChain {0}")]
    BadChain(String),
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
    ignored: Vec<IgnoredEntry>,
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
    #[serde(default)]
    hash_algorithm: Option<String>,
    #[serde(default)]
    public_key: Option<RawKey>,
    #[serde(default)]
    log_id: Option<RawLogId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    #[serde(default)]
    raw_bytes: Option<String>,
    #[serde(default)]
    key_details: String,
    #[serde(default)]
    valid_for: Option<RawValidity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    #[serde(default)]
    key_id: Option<String>,
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
    #[serde(default)]
    cert_chain: Option<RawChain>,
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
    #[serde(default)]
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("is not base64: {e}"))
}

fn time(field: &'static str, s: &Option<String>) -> Result<Option<DateTime<Utc>>, IgnoredReason> {
    s.as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| IgnoredReason::BadTime { field, value: t.chars().take(100).collect() })
        })
        .transpose()
}

/// A present `validFor`: it must have a start, parse, and not end before it starts.
fn validity(v: &RawValidity) -> Result<Validity, IgnoredReason> {
    let start = time("start", &v.start)?.ok_or(IgnoredReason::NoValidityStart)?;
    let end = time("end", &v.end)?;
    if let Some(end) = end {
        if end < start {
            return Err(IgnoredReason::EmptyValidity { start, end });
        }
    }
    Ok(Validity { start: Some(start), end })
}

/// The trusted logs of a section; the rest named in `ignored`.
fn logs(raw: Vec<RawLog>, section: &'static str, ignored: &mut Vec<IgnoredEntry>) -> Vec<TransparencyLog> {
    let mut out = Vec::new();
    for (index, l) in raw.into_iter().enumerate() {
        let name =
            if l.base_url.is_empty() { "?".to_owned() } else { l.base_url.chars().take(200).collect() };
        match log(l, section) {
            Ok(log) => out.push(log),
            Err(reason) => ignored.push(IgnoredEntry { section, index, name, reason }),
        }
    }
    out
}

fn log(l: RawLog, section: &'static str) -> Result<TransparencyLog, IgnoredReason> {
    // Rekor inclusion proofs are SHA-256 Merkle trees; a CT log's tree is never walked by vouch (SCTs only).
    if section == "tlogs" {
        match l.hash_algorithm.as_deref() {
            Some("SHA2_256") => {}
            other => {
                return Err(IgnoredReason::UnsupportedHashAlgorithm(
                    other.unwrap_or("").chars().take(40).collect(),
                ))
            }
        }
    }
    let log_id = match l.log_id.and_then(|id| id.key_id) {
        None => return Err(IgnoredReason::BadLogId("is missing".into())),
        Some(id) => b64(&id).map_err(IgnoredReason::BadLogId)?,
    };
    if log_id.is_empty() {
        return Err(IgnoredReason::BadLogId("is empty".into()));
    }
    let key = l.public_key.ok_or_else(|| IgnoredReason::BadKey("is missing".into()))?;
    let valid_for = validity(key.valid_for.as_ref().ok_or(IgnoredReason::NoKeyValidity)?)?;
    let raw =
        b64(key.raw_bytes.as_deref().ok_or_else(|| IgnoredReason::BadKey("rawBytes is missing".into()))?)
            .map_err(|e| IgnoredReason::BadKey(format!("rawBytes {e}")))?;
    let (public_key, der) = read_log_key(&raw, &key.key_details).map_err(IgnoredReason::BadKey)?;
    Ok(TransparencyLog {
        base_url: l.base_url,
        log_id,
        public_key,
        public_key_der: der,
        key_details: key.key_details,
        valid_for,
    })
}

/// Log keys are SPKI DER, except that some roots carry RSA keys as PKCS#1 (`keyDetails: PKCS1_RSA_*`).
/// Returns the key and its SPKI DER (log ids and checkpoint key hints are computed over SPKI).
fn read_log_key(raw: &[u8], key_details: &str) -> Result<(PublicKey, Vec<u8>), String> {
    match PublicKey::from_spki_der(raw) {
        Ok(k) => Ok((k, raw.to_vec())),
        Err(_) if key_details.starts_with("PKCS1_RSA") => {
            let key = PublicKey::from_pkcs1_rsa_der(raw).map_err(|e| e.to_string())?;
            let der = key.to_spki_der();
            Ok((key, der))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The trusted authorities of a section; the rest named in `ignored`.
fn cas(raw: Vec<RawCa>, section: &'static str, ignored: &mut Vec<IgnoredEntry>) -> Vec<CertificateAuthority> {
    let mut out = Vec::new();
    for (index, c) in raw.into_iter().enumerate() {
        let name = if c.uri.is_empty() { "?".to_owned() } else { c.uri.chars().take(200).collect() };
        match ca(c) {
            Ok(ca) => out.push(ca),
            Err(reason) => ignored.push(IgnoredEntry { section, index, name, reason }),
        }
    }
    out
}

fn ca(c: RawCa) -> Result<CertificateAuthority, IgnoredReason> {
    use der::Decode;
    let valid_for = validity(c.valid_for.as_ref().ok_or(IgnoredReason::NoValidity)?)?;
    let certificates = c.cert_chain.map(|ch| ch.certificates).unwrap_or_default();
    if certificates.is_empty() {
        return Err(IgnoredReason::BadChain("is missing or empty".into()));
    }
    let mut chain = Vec::with_capacity(certificates.len());
    for (i, cert) in certificates.iter().enumerate() {
        let der =
            b64(&cert.raw_bytes).map_err(|e| IgnoredReason::BadChain(format!("certificate {i} {e}")))?;
        x509_cert::Certificate::from_der(&der)
            .map_err(|e| IgnoredReason::BadChain(format!("certificate {i} is not a DER certificate: {e}")))?;
        chain.push(der);
    }
    Ok(CertificateAuthority { uri: c.uri, common_name: c.subject.common_name, chain, valid_for })
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
            if !MEDIA_TYPES.contains(&mt.as_str()) {
                return Err(TrustRootError::Malformed(format!(
                    "unexpected mediaType {mt:?} (expected one of {})",
                    MEDIA_TYPES.join(", ")
                )));
            }
        }
        let mut ignored = Vec::new();
        let root = Self {
            tlogs: logs(raw.tlogs, "tlogs", &mut ignored),
            ctlogs: logs(raw.ctlogs, "ctlogs", &mut ignored),
            certificate_authorities: cas(raw.certificate_authorities, "certificateAuthorities", &mut ignored),
            timestamp_authorities: cas(raw.timestamp_authorities, "timestampAuthorities", &mut ignored),
            ignored,
            fingerprint: Digest::sha256_of(bytes),
        };
        for entry in &root.ignored {
            tracing::warn!(section = entry.section, index = entry.index, name = %entry.name, "{entry}");
        }
        Ok(root)
    }

    /// The entries of the document that are not trusted, each with the rule it breaks; log them.
    pub fn ignored(&self) -> &[IgnoredEntry] {
        &self.ignored
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
    use serde_json::json;

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
        // An RSAPublicKey made by the OpenSSL CLI (tests/data/openssl-keys/README.md).
        let pem = include_str!("../tests/data/openssl-keys/rsa-pkcs1.pub");
        let (label, pkcs1) = crate::keys::pem_rfc7468_decode(pem).unwrap();
        assert_eq!(label, "RSA PUBLIC KEY");
        let b = base64::engine::general_purpose::STANDARD.encode(&pkcs1);
        let doc = format!(
            r#"{{"ctlogs":[{{"publicKey":{{"rawBytes":"{b}","keyDetails":"PKCS1_RSA_PKCS1V5","validFor":{{"start":"2021-01-01T00:00:00Z"}}}},"logId":{{"keyId":"AA=="}}}}]}}"#
        );
        let root = TrustRoot::from_json(doc.as_bytes()).unwrap();
        assert_eq!(root.ctlogs[0].public_key.kind(), "rsa");
        assert!(root.ignored().is_empty());
        // Without the PKCS#1 key details the same bytes are not an SPKI key: the log is not trusted.
        let wrong = doc.replace("PKCS1_RSA_PKCS1V5", "PKIX_RSA_PKCS1V15_2048_SHA256");
        let root = TrustRoot::from_json(wrong.as_bytes()).unwrap();
        assert!(root.ctlogs.is_empty());
        assert!(matches!(root.ignored()[0].reason, IgnoredReason::BadKey(_)), "{:?}", root.ignored());
    }

    #[test]
    fn validity_end_is_inclusive() {
        let t = DateTime::parse_from_rfc3339("2022-10-31T23:59:59.999Z").unwrap().with_timezone(&Utc);
        let v = Validity { start: None, end: Some(t) };
        assert!(v.contains(t));
        assert!(!v.contains(t + chrono::Duration::milliseconds(1)));
    }

    /// The public-good root with one change; every test below breaks one rule in one entry.
    fn public_good_with(change: impl FnOnce(&mut serde_json::Value)) -> TrustRoot {
        let mut doc: serde_json::Value = serde_json::from_str(PUBLIC_GOOD_JSON).unwrap();
        change(&mut doc);
        TrustRoot::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    /// The one entry left out, after checking the rest of the root is still read.
    fn only_ignored(root: &TrustRoot) -> &IgnoredEntry {
        let full = TrustRoot::public_good().unwrap();
        let kept = root.tlogs.len()
            + root.ctlogs.len()
            + root.certificate_authorities.len()
            + root.timestamp_authorities.len();
        let all = full.tlogs.len()
            + full.ctlogs.len()
            + full.certificate_authorities.len()
            + full.timestamp_authorities.len();
        assert_eq!(root.ignored().len(), 1, "{:?}", root.ignored());
        assert_eq!(kept + 1, all);
        &root.ignored()[0]
    }

    #[test]
    fn the_public_good_root_breaks_no_rule() {
        assert_eq!(TrustRoot::public_good().unwrap().ignored(), &[]);
    }

    #[test]
    fn an_entry_whose_validity_has_no_start_is_not_trusted() {
        let root = public_good_with(|d| {
            d["tlogs"][0]["publicKey"]["validFor"].as_object_mut().unwrap().remove("start");
        });
        let e = only_ignored(&root);
        assert_eq!((e.section, e.index, &e.reason), ("tlogs", 0, &IgnoredReason::NoValidityStart));
        assert!(e.to_string().contains("trusted root tlogs[0] (https://rekor.sigstore.dev) ignored"), "{e}");
        let root = public_good_with(|d| {
            d["certificateAuthorities"][1]["validFor"].as_object_mut().unwrap().remove("start");
        });
        let e = only_ignored(&root);
        assert_eq!(
            (e.section, e.index, &e.reason),
            ("certificateAuthorities", 1, &IgnoredReason::NoValidityStart)
        );
    }

    #[test]
    fn an_authority_without_validity_is_not_trusted() {
        let root = public_good_with(|d| {
            d["timestampAuthorities"][0].as_object_mut().unwrap().remove("validFor");
        });
        let e = only_ignored(&root);
        assert_eq!((e.section, &e.reason), ("timestampAuthorities", &IgnoredReason::NoValidity));
    }

    #[test]
    fn a_log_key_without_validity_is_not_trusted() {
        let root = public_good_with(|d| {
            d["ctlogs"][0]["publicKey"].as_object_mut().unwrap().remove("validFor");
        });
        let e = only_ignored(&root);
        assert_eq!((e.section, e.index, &e.reason), ("ctlogs", 0, &IgnoredReason::NoKeyValidity));
    }

    #[test]
    fn a_validity_that_ends_before_it_starts_or_does_not_parse_is_not_trusted() {
        let root = public_good_with(|d| {
            d["certificateAuthorities"][0]["validFor"]["end"] = "2000-01-01T00:00:00Z".into();
        });
        assert!(matches!(only_ignored(&root).reason, IgnoredReason::EmptyValidity { .. }));
        let root = public_good_with(|d| {
            d["tlogs"][1]["publicKey"]["validFor"]["start"] = "yesterday".into();
        });
        assert_eq!(
            only_ignored(&root).reason,
            IgnoredReason::BadTime { field: "start", value: "yesterday".into() }
        );
    }

    #[test]
    fn a_rekor_log_must_hash_its_tree_with_sha256() {
        let root = public_good_with(|d| d["tlogs"][0]["hashAlgorithm"] = "SHA2_384".into());
        assert_eq!(only_ignored(&root).reason, IgnoredReason::UnsupportedHashAlgorithm("SHA2_384".into()));
        let root = public_good_with(|d| {
            d["tlogs"][0].as_object_mut().unwrap().remove("hashAlgorithm");
        });
        assert_eq!(only_ignored(&root).reason, IgnoredReason::UnsupportedHashAlgorithm(String::new()));
        // A CT log's tree is never walked: its hash algorithm does not matter.
        let root = public_good_with(|d| {
            d["ctlogs"][0].as_object_mut().unwrap().remove("hashAlgorithm");
        });
        assert!(root.ignored().is_empty());
    }

    #[test]
    fn a_log_needs_a_log_id_and_a_readable_key() {
        for (change, want) in [
            (json!({"logId": null}), "logId.keyId is missing"),
            (json!({"logId": {"keyId": ""}}), "logId.keyId is empty"),
            (json!({"logId": {"keyId": "!!"}}), "logId.keyId is not base64"),
            (json!({"publicKey": null}), "publicKey is missing"),
        ] {
            let root = public_good_with(|d| {
                for (k, v) in change.as_object().unwrap() {
                    d["tlogs"][1][k] = v.clone();
                }
            });
            let e = only_ignored(&root);
            assert!(e.reason.to_string().starts_with(want), "{change}: {e}");
        }
        let root = public_good_with(|d| d["tlogs"][1]["publicKey"]["rawBytes"] = "AAAA".into());
        assert!(matches!(only_ignored(&root).reason, IgnoredReason::BadKey(_)));
    }

    #[test]
    fn an_authority_needs_a_chain_of_der_certificates() {
        let root =
            public_good_with(|d| d["certificateAuthorities"][0]["certChain"]["certificates"] = json!([]));
        assert_eq!(only_ignored(&root).reason, IgnoredReason::BadChain("is missing or empty".into()));
        let root = public_good_with(|d| {
            d["timestampAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] = "AAAA".into()
        });
        let e = only_ignored(&root);
        assert!(e.reason.to_string().contains("certificate 0 is not a DER certificate"), "{e}");
    }

    #[test]
    fn a_document_that_is_not_a_trusted_root_is_refused() {
        assert!(matches!(TrustRoot::from_json(b"{"), Err(TrustRootError::Malformed(_))));
        assert!(matches!(TrustRoot::from_json(b"[]"), Err(TrustRootError::Malformed(_))));
        let other = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
        assert!(
            matches!(TrustRoot::from_json(other), Err(TrustRootError::Malformed(m)) if m.contains("mediaType"))
        );
        let big = vec![b' '; MAX_TRUST_ROOT_BYTES + 1];
        assert_eq!(TrustRoot::from_json(&big).unwrap_err(), TrustRootError::TooLarge);
    }
}
