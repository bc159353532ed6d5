//! The Sigstore bundle (`*.sigstore.json`): serde types for the protobuf-specs JSON mapping (camelCase,
//! int64 as strings, bytes as base64) and the structural rules each bundle version imposes.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::tlog::TlogEntry;
use crate::digest::DigestAlgorithm;
use crate::dsse::Envelope;

/// Largest bundle accepted (DSSE payloads can be large, base64 adds a third).
pub const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;
/// Most transparency log entries accepted in one bundle.
pub const MAX_TLOG_ENTRIES: usize = 32;
/// Most RFC 3161 timestamps accepted in one bundle.
pub const MAX_TIMESTAMPS: usize = 32;
/// Most certificates accepted in an `x509CertificateChain`.
pub const MAX_CHAIN_CERTIFICATES: usize = 10;

/// Media type of bundle v0.1.
pub const MEDIA_TYPE_V0_1: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";
/// Media type of bundle v0.2.
pub const MEDIA_TYPE_V0_2: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";
/// Media type of bundle v0.3 (current spelling).
pub const MEDIA_TYPE_V0_3: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Media type of bundle v0.3 (older spelling, still produced by some clients).
pub const MEDIA_TYPE_V0_3_LEGACY: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";

/// Why a bundle is malformed or breaks the rules of its version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error("bundle of {size} bytes exceeds the limit of {MAX_BUNDLE_BYTES} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
    },
    /// Not JSON of the bundle's shape.
    #[error("malformed bundle: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A base64 field does not decode.
    #[error("bundle field {field} is not valid base64")]
    BadBase64 {
        /// JSON path of the field.
        field: &'static str,
    },
    /// The media type is not a supported bundle version.
    #[error("unsupported bundle media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
    },
    /// No certificate, chain or public key.
    #[error("bundle has no verification material (certificate, certificate chain or public key)")]
    MissingVerificationMaterial,
    /// An `x509CertificateChain` without certificates.
    #[error("bundle certificate chain is empty")]
    EmptyCertificateChain,
    /// The chain carries more certificates than allowed.
    #[error("bundle certificate chain has {count} certificates, more than {MAX_CHAIN_CERTIFICATES}")]
    ChainTooLong {
        /// Number of certificates.
        count: usize,
    },
    /// The chain carries a self-signed (root) certificate, which must come from the trust root instead.
    #[error("bundle certificate chain contains a root (self-signed) certificate at position {index}")]
    ChainContainsRoot {
        /// Position in the chain.
        index: usize,
    },
    /// A certificate in the bundle is not DER X.509.
    #[error("bundle certificate at position {index} is not a valid X.509 certificate: {reason}")]
    BadCertificate {
        /// Position (0 = leaf).
        index: usize,
        /// Parser message.
        reason: String,
    },
    /// Bundles v0.3 carry a single leaf certificate, not a chain.
    #[error("bundle v0.3 must carry a single certificate, not an x509CertificateChain")]
    ChainInV03,
    /// Neither a message signature nor a DSSE envelope.
    #[error("bundle has neither a messageSignature nor a dsseEnvelope")]
    MissingContent,
    /// The DSSE envelope is not acceptable.
    #[error("bundle DSSE envelope: {reason}")]
    BadEnvelope {
        /// What is wrong.
        reason: String,
    },
    /// An unsupported message digest algorithm.
    #[error("unsupported messageDigest algorithm {algorithm:?}")]
    UnsupportedDigestAlgorithm {
        /// The algorithm name found.
        algorithm: String,
    },
    /// The message digest has the wrong length for its algorithm.
    #[error("messageDigest has {len} bytes, wrong for {algorithm}")]
    BadDigestLength {
        /// Algorithm.
        algorithm: &'static str,
        /// Length found.
        len: usize,
    },
    /// Bundle v0.1 entries must carry a signed entry timestamp.
    #[error("bundle v0.1 transparency log entry {index} has no inclusionPromise")]
    MissingInclusionPromise {
        /// Entry position.
        index: usize,
    },
    /// Bundle v0.2+ entries must carry an inclusion proof.
    #[error("bundle v0.2+ transparency log entry {index} has no inclusionProof")]
    MissingInclusionProof {
        /// Entry position.
        index: usize,
    },
    /// A negative log index.
    #[error("transparency log entry {index} has a negative log index")]
    NegativeLogIndex {
        /// Entry position.
        index: usize,
    },
    /// Too many entries or timestamps.
    #[error("bundle has {count} {what}, more than the limit of {max}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// How many were found.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// The bundle format version, from the media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    /// v0.1: SET required.
    V0_1,
    /// v0.2: inclusion proof required.
    V0_2,
    /// v0.3: single leaf certificate.
    V0_3,
}

impl BundleVersion {
    /// The version for a media type, if supported.
    pub fn from_media_type(media_type: &str) -> Result<Self, BundleError> {
        match media_type {
            MEDIA_TYPE_V0_1 => Ok(Self::V0_1),
            MEDIA_TYPE_V0_2 => Ok(Self::V0_2),
            MEDIA_TYPE_V0_3 | MEDIA_TYPE_V0_3_LEGACY => Ok(Self::V0_3),
            other => Err(BundleError::UnsupportedMediaType { media_type: other.chars().take(200).collect() }),
        }
    }

    /// The canonical media type of this version.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::V0_1 => MEDIA_TYPE_V0_1,
            Self::V0_2 => MEDIA_TYPE_V0_2,
            Self::V0_3 => MEDIA_TYPE_V0_3,
        }
    }
}

/// A parsed Sigstore bundle (built from JSON with [`Bundle::from_json`], in code with [`Bundle::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The bundle media type (one of the `MEDIA_TYPE_*` constants).
    pub media_type: String,
    /// Certificate or key, log entries, timestamps.
    pub verification_material: VerificationMaterial,
    /// What was signed.
    pub content: BundleContent,
    /// The leaf certificate as [`Bundle::from_json`] decoded it, handed on to the first verification.
    decoded_leaf: DecodedLeaf,
}

/// A leaf certificate decoded once and taken by whoever needs it next, with the DER it was decoded from:
/// it is only taken while the bundle still carries that DER. Not part of the bundle's value (equality,
/// clones and debug output ignore it).
#[derive(Default)]
struct DecodedLeaf(std::sync::Mutex<Option<(Vec<u8>, x509_cert::Certificate)>>);

impl DecodedLeaf {
    fn keep(&self, der: &[u8], cert: x509_cert::Certificate) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((der.to_vec(), cert));
        }
    }

    fn take(&self, der: &[u8]) -> Option<x509_cert::Certificate> {
        let taken = self.0.lock().ok()?.take()?;
        (taken.0 == der).then_some(taken.1)
    }
}

impl Clone for DecodedLeaf {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for DecodedLeaf {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for DecodedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

/// What the bundle signs.
#[derive(Debug, Clone, PartialEq)]
pub enum BundleContent {
    /// A signature over an artifact (hashedrekord).
    MessageSignature {
        /// The artifact digest the signer claims (an unauthenticated hint, still checked for consistency).
        digest: Option<(DigestAlgorithm, Vec<u8>)>,
        /// The raw signature bytes.
        signature: Vec<u8>,
    },
    /// A DSSE envelope (usually an in-toto statement).
    Dsse(Envelope),
}

/// Verification material of a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationMaterial {
    /// Who signed.
    pub signer: Signer,
    /// Transparency log entries.
    pub tlog_entries: Vec<TlogEntry>,
    /// RFC 3161 timestamps (DER TimeStampResp or TimeStampToken).
    pub timestamps: Vec<Vec<u8>>,
}

/// The signer's material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A single leaf certificate (v0.3), DER.
    Certificate(Vec<u8>),
    /// Leaf first, then intermediates (v0.1, v0.2), DER; never the root.
    Chain(Vec<Vec<u8>>),
    /// A key the verifier must supply; the hint is informational only.
    PublicKey {
        /// The bundle's key hint.
        hint: String,
    },
}

impl Signer {
    /// The leaf certificate, if the signer is certificate-based.
    pub fn leaf_certificate(&self) -> Option<&[u8]> {
        match self {
            Self::Certificate(c) => Some(c),
            Self::Chain(chain) => chain.first().map(Vec::as_slice),
            Self::PublicKey { .. } => None,
        }
    }
}

// ---- JSON shapes ----

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: RawMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_signature: Option<RawMessageSignature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsse_envelope: Option<Envelope>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<RawCert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x509_certificate_chain: Option<RawChain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<RawKeyHint>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_verification_data: Option<RawTimestampData>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Serialize, Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCert>,
}

#[derive(Serialize, Deserialize)]
struct RawKeyHint {
    #[serde(default)]
    hint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<RawTimestamp>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamp {
    signed_timestamp: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_digest: Option<RawDigest>,
    signature: String,
}

#[derive(Serialize, Deserialize)]
struct RawDigest {
    algorithm: String,
    digest: String,
}

fn b64d(s: &str, field: &'static str) -> Result<Vec<u8>, BundleError> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| BundleError::BadBase64 { field })
}

fn b64e(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn digest_algorithm(name: &str) -> Result<DigestAlgorithm, BundleError> {
    match name {
        "SHA2_256" => Ok(DigestAlgorithm::Sha256),
        "SHA2_384" => Ok(DigestAlgorithm::Sha384),
        "SHA2_512" => Ok(DigestAlgorithm::Sha512),
        other => Err(BundleError::UnsupportedDigestAlgorithm { algorithm: other.chars().take(50).collect() }),
    }
}

fn digest_algorithm_name(alg: DigestAlgorithm) -> &'static str {
    match alg {
        DigestAlgorithm::Sha256 => "SHA2_256",
        DigestAlgorithm::Sha384 => "SHA2_384",
        DigestAlgorithm::Sha512 => "SHA2_512",
    }
}

impl Bundle {
    /// Parse a bundle from JSON and check the structural rules of its version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge { size: bytes.len() });
        }
        let raw: RawBundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed { reason: e.to_string() })?;
        let version = BundleVersion::from_media_type(&raw.media_type)?;
        let m = raw.verification_material;
        let signer = match (m.certificate, m.x509_certificate_chain, m.public_key) {
            (Some(c), None, None) => {
                Signer::Certificate(b64d(&c.raw_bytes, "verificationMaterial.certificate.rawBytes")?)
            }
            (None, Some(chain), None) => {
                if version >= BundleVersion::V0_3 {
                    return Err(BundleError::ChainInV03);
                }
                if chain.certificates.len() > MAX_CHAIN_CERTIFICATES {
                    return Err(BundleError::ChainTooLong { count: chain.certificates.len() });
                }
                Signer::Chain(
                    chain
                        .certificates
                        .iter()
                        .map(|c| {
                            b64d(
                                &c.raw_bytes,
                                "verificationMaterial.x509CertificateChain.certificates.rawBytes",
                            )
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            (None, None, Some(k)) => Signer::PublicKey { hint: k.hint },
            (None, None, None) => return Err(BundleError::MissingVerificationMaterial),
            _ => {
                return Err(BundleError::Malformed {
                    reason: "more than one of certificate, x509CertificateChain, publicKey".into(),
                })
            }
        };
        let timestamps = m.timestamp_verification_data.map(|t| t.rfc3161_timestamps).unwrap_or_default();
        if timestamps.len() > MAX_TIMESTAMPS {
            return Err(BundleError::TooMany {
                what: "RFC 3161 timestamps",
                count: timestamps.len(),
                max: MAX_TIMESTAMPS,
            });
        }
        let timestamps = timestamps
            .iter()
            .map(|t| {
                b64d(
                    &t.signed_timestamp,
                    "verificationMaterial.timestampVerificationData.rfc3161Timestamps.signedTimestamp",
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let content = match (raw.message_signature, raw.dsse_envelope) {
            (Some(ms), None) => {
                let digest = ms
                    .message_digest
                    .map(|d| -> Result<_, BundleError> {
                        Ok((
                            digest_algorithm(&d.algorithm)?,
                            b64d(&d.digest, "messageSignature.messageDigest.digest")?,
                        ))
                    })
                    .transpose()?;
                BundleContent::MessageSignature {
                    digest,
                    signature: b64d(&ms.signature, "messageSignature.signature")?,
                }
            }
            (None, Some(env)) => BundleContent::Dsse(env),
            (None, None) => return Err(BundleError::MissingContent),
            (Some(_), Some(_)) => {
                return Err(BundleError::Malformed {
                    reason: "both messageSignature and dsseEnvelope".into(),
                })
            }
        };
        let bundle = Self::new(
            raw.media_type,
            VerificationMaterial { signer, tlog_entries: m.tlog_entries, timestamps },
            content,
        );
        if let Some(leaf) = bundle.validated_leaf()? {
            if let Some(der) = bundle.verification_material.signer.leaf_certificate() {
                bundle.decoded_leaf.keep(der, leaf);
            }
        }
        Ok(bundle)
    }

    /// A bundle built in code (check it with [`Bundle::validate`]).
    pub fn new(
        media_type: String,
        verification_material: VerificationMaterial,
        content: BundleContent,
    ) -> Self {
        Self { media_type, verification_material, content, decoded_leaf: DecodedLeaf::default() }
    }

    /// Serialize to the protobuf-specs JSON shape.
    pub fn to_json(&self) -> Vec<u8> {
        let vm = &self.verification_material;
        let cert = |der: &[u8]| RawCert { raw_bytes: b64e(der) };
        let (certificate, x509_certificate_chain, public_key) = match &vm.signer {
            Signer::Certificate(c) => (Some(cert(c)), None, None),
            Signer::Chain(chain) => {
                (None, Some(RawChain { certificates: chain.iter().map(|c| cert(c)).collect() }), None)
            }
            Signer::PublicKey { hint } => (None, None, Some(RawKeyHint { hint: hint.clone() })),
        };
        let (message_signature, dsse_envelope) = match &self.content {
            BundleContent::MessageSignature { digest, signature } => (
                Some(RawMessageSignature {
                    message_digest: digest.as_ref().map(|(alg, d)| RawDigest {
                        algorithm: digest_algorithm_name(*alg).into(),
                        digest: b64e(d),
                    }),
                    signature: b64e(signature),
                }),
                None,
            ),
            BundleContent::Dsse(env) => (None, Some(env.clone())),
        };
        let raw = RawBundle {
            media_type: self.media_type.clone(),
            verification_material: RawMaterial {
                certificate,
                x509_certificate_chain,
                public_key,
                tlog_entries: vm.tlog_entries.clone(),
                timestamp_verification_data: (!vm.timestamps.is_empty()).then(|| RawTimestampData {
                    rfc3161_timestamps: vm
                        .timestamps
                        .iter()
                        .map(|t| RawTimestamp { signed_timestamp: b64e(t) })
                        .collect(),
                }),
            },
            message_signature,
            dsse_envelope,
        };
        // Serializing plain strings, vectors and S2's entry type cannot fail.
        serde_json::to_vec(&raw).unwrap_or_default()
    }

    /// The bundle version from the media type.
    pub fn version(&self) -> Result<BundleVersion, BundleError> {
        BundleVersion::from_media_type(&self.media_type)
    }

    /// Check the structural rules (also for bundles built in code): supported version, non-empty chain
    /// without a root, SET (v0.1) or inclusion proof (v0.2+) on every entry, decodable DSSE, sane limits.
    pub fn validate(&self) -> Result<(), BundleError> {
        self.validated_leaf().map(|_| ())
    }

    /// [`Bundle::validate`], answering the leaf certificate it decoded (`None` for a key-signed bundle), so
    /// that verification does not decode it again.
    pub(crate) fn validated_leaf(&self) -> Result<Option<x509_cert::Certificate>, BundleError> {
        let version = self.version()?;
        let vm = &self.verification_material;
        let mut leaf = None;
        match &vm.signer {
            Signer::Certificate(der) => {
                leaf = Some(match self.decoded_leaf.take(der) {
                    Some(cert) => cert,
                    None => check_cert_der(der, 0)?,
                })
            }
            Signer::Chain(chain) => {
                if chain.is_empty() {
                    return Err(BundleError::EmptyCertificateChain);
                }
                if chain.len() > MAX_CHAIN_CERTIFICATES {
                    return Err(BundleError::ChainTooLong { count: chain.len() });
                }
                for (index, der) in chain.iter().enumerate() {
                    let decoded = if index == 0 { self.decoded_leaf.take(der) } else { None };
                    let cert = match decoded {
                        Some(cert) => cert,
                        None => check_cert_der(der, index)?,
                    };
                    let tbs = &cert.tbs_certificate;
                    if tbs.subject == tbs.issuer {
                        return Err(BundleError::ChainContainsRoot { index });
                    }
                    if index == 0 {
                        leaf = Some(cert);
                    }
                }
            }
            Signer::PublicKey { .. } => {}
        }
        if vm.tlog_entries.len() > MAX_TLOG_ENTRIES {
            return Err(BundleError::TooMany {
                what: "transparency log entries",
                count: vm.tlog_entries.len(),
                max: MAX_TLOG_ENTRIES,
            });
        }
        if vm.timestamps.len() > MAX_TIMESTAMPS {
            return Err(BundleError::TooMany {
                what: "RFC 3161 timestamps",
                count: vm.timestamps.len(),
                max: MAX_TIMESTAMPS,
            });
        }
        for (index, entry) in vm.tlog_entries.iter().enumerate() {
            if entry.log_index < 0 || entry.inclusion_proof.as_ref().is_some_and(|p| p.log_index < 0) {
                return Err(BundleError::NegativeLogIndex { index });
            }
            if version == BundleVersion::V0_1 && entry.inclusion_promise.is_none() {
                return Err(BundleError::MissingInclusionPromise { index });
            }
            if version >= BundleVersion::V0_2 && entry.inclusion_proof.is_none() {
                return Err(BundleError::MissingInclusionProof { index });
            }
        }
        match &self.content {
            BundleContent::MessageSignature { digest, .. } => {
                if let Some((alg, d)) = digest {
                    if d.len() != alg.hex_len() / 2 {
                        return Err(BundleError::BadDigestLength { algorithm: alg.name(), len: d.len() });
                    }
                }
            }
            BundleContent::Dsse(env) => {
                let bad = |reason: String| BundleError::BadEnvelope { reason };
                env.payload_bytes().map_err(|e| bad(e.to_string()))?;
                env.signature_bytes().map_err(|e| bad(e.to_string()))?;
                if env.signatures.len() != 1 {
                    return Err(bad(format!(
                        "expected exactly one signature, found {}",
                        env.signatures.len()
                    )));
                }
            }
        }
        Ok(leaf)
    }
}

fn check_cert_der(der: &[u8], index: usize) -> Result<x509_cert::Certificate, BundleError> {
    use der::Decode;
    x509_cert::Certificate::from_der(der)
        .map_err(|e| BundleError::BadCertificate { index, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigstore_verify::testutil::{conformance, Conformance};

    fn json(suite: &Conformance, name: &str) -> serde_json::Value {
        let dir = suite.case(name);
        serde_json::from_slice(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap()
    }

    fn parse(v: &serde_json::Value) -> Result<Bundle, BundleError> {
        Bundle::from_json(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn parses_every_version_and_round_trips() {
        let Some(suite) = conformance() else { return };
        for name in [
            "happy-path-v0.1",
            "happy-path-v0.3",
            "intoto-with-custom-trust-root",
            "rekor2-timestamp-without-embedded-cert",
            "managed-key-and-trusted-root",
        ] {
            let v = json(&suite, name);
            let b = parse(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(Bundle::from_json(&b.to_json()).unwrap(), b, "{name}");
        }
        let b = parse(&json(&suite, "happy-path-v0.1")).unwrap();
        assert_eq!(b.version().unwrap(), BundleVersion::V0_1);
        assert!(matches!(b.verification_material.signer, Signer::Chain(_)));
        assert!(matches!(
            b.content,
            BundleContent::MessageSignature { digest: Some((DigestAlgorithm::Sha256, _)), .. }
        ));
        let b = parse(&json(&suite, "rekor2-timestamp-without-embedded-cert")).unwrap();
        assert_eq!(b.verification_material.timestamps.len(), 1);
        let b = parse(&json(&suite, "managed-key-and-trusted-root")).unwrap();
        assert!(matches!(b.verification_material.signer, Signer::PublicKey { .. }));
    }

    #[test]
    fn conformance_structural_failures_are_rejected_at_parse() {
        let Some(suite) = conformance() else { return };
        let v = json(&suite, "bundle-empty-certificate-chain_fail");
        assert_eq!(parse(&v), Err(BundleError::EmptyCertificateChain));
        assert!(matches!(
            parse(&json(&suite, "bundle-invalid-base64-signature_fail")),
            Err(BundleError::BadBase64 { .. })
        ));
        let r = parse(&json(&suite, "bundle-negative-log-index_fail"));
        assert!(
            matches!(&r, Err(BundleError::Malformed { reason }) if reason.contains("logIndex is negative")),
            "{r:?}"
        );
        assert!(matches!(
            parse(&json(&suite, "bundle-with-root-cert_fail")),
            Err(BundleError::ChainContainsRoot { .. })
        ));
    }

    #[test]
    fn version_rules() {
        let Some(suite) = conformance() else { return };
        let v01 = json(&suite, "happy-path-v0.1");
        let mut v = v01.clone();
        v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=9".into();
        assert!(matches!(parse(&v), Err(BundleError::UnsupportedMediaType { .. })));
        // v0.1 needs the SET.
        let mut v = v01.clone();
        v["verificationMaterial"]["tlogEntries"][0].as_object_mut().unwrap().remove("inclusionPromise");
        assert_eq!(parse(&v), Err(BundleError::MissingInclusionPromise { index: 0 }));
        // v0.2 needs the proof.
        let mut v = v01.clone();
        v["mediaType"] = MEDIA_TYPE_V0_2.into();
        v["verificationMaterial"]["tlogEntries"][0].as_object_mut().unwrap().remove("inclusionProof");
        assert_eq!(parse(&v), Err(BundleError::MissingInclusionProof { index: 0 }));
        // v0.3 carries a single certificate, not a chain.
        let mut v = v01.clone();
        v["mediaType"] = MEDIA_TYPE_V0_3.into();
        assert_eq!(parse(&v), Err(BundleError::ChainInV03));
        // Both content kinds, or none.
        let mut v = v01.clone();
        v.as_object_mut().unwrap().remove("messageSignature");
        assert_eq!(parse(&v), Err(BundleError::MissingContent));
        // A wrong-length digest.
        let mut v = v01;
        v["messageSignature"]["messageDigest"]["digest"] = "AAAA".into();
        assert!(matches!(parse(&v), Err(BundleError::BadDigestLength { .. })));
        assert!(matches!(Bundle::from_json(b"{}"), Err(BundleError::Malformed { .. })));
    }

    #[test]
    fn validate_applies_to_bundles_built_in_code() {
        let Some(suite) = conformance() else { return };
        let v = json(&suite, "happy-path-v0.3");
        let mut b = parse(&v).unwrap();
        // The leaf decoded at parse is handed on once, and only for the DER it came from.
        let der = b.verification_material.signer.leaf_certificate().unwrap().to_vec();
        assert!(b.decoded_leaf.take(&[1, 2, 3]).is_none(), "another DER: decoded afresh");
        let mut again = parse(&v).unwrap();
        assert!(again.validated_leaf().unwrap().is_some());
        assert!(again.decoded_leaf.take(&der).is_none(), "taken by the first check");
        again.verification_material.signer = Signer::Certificate(vec![1, 2, 3]);
        assert!(matches!(again.validate(), Err(BundleError::BadCertificate { .. })));
        b.verification_material.signer = Signer::Chain(vec![]);
        assert_eq!(b.validate(), Err(BundleError::EmptyCertificateChain));
        b.verification_material.signer = Signer::Certificate(vec![1, 2, 3]);
        assert!(matches!(b.validate(), Err(BundleError::BadCertificate { .. })));
    }
}
