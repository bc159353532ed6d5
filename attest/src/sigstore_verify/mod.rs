//! Sigstore bundle verification (bundles v0.1–v0.3, message signatures and DSSE, keyless and key-based).
//!
//! Parse with [`Bundle::from_json`], build one [`Verifier`] per trust root and reuse it, then call
//! [`Verifier::verify`] with the artifact and a [`VerificationPolicy`]. Nothing is accepted unchecked:
//! structure, signature over the artifact, transparency log entries (S2's [`tlog`]), RFC 3161 timestamps,
//! the Fulcio chain at the verified signing times, SCTs and the signer identity.
//!
//! ```no_run
//! use vouch_attest::sigstore_verify::{Artifact, Bundle, CertificateIdentity, VerificationPolicy, Verifier};
//! use vouch_attest::trust_root::TrustRoot;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new(TrustRoot::public_good()?); // once, then shared
//! let bundle = Bundle::from_json(&std::fs::read("a.txt.sigstore.json")?)?;
//! let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(
//!     "me@example.com",
//!     "https://accounts.google.com",
//! )]);
//! let verified = verifier.verify(&bundle, Artifact::Bytes(&std::fs::read("a.txt")?), &policy)?;
//! println!("signed by {:?} at {:?}", verified.signer, verified.signing_time);
//! # Ok(())
//! # }
//! ```

pub mod bundle;
pub mod certificate;
pub mod claims;
pub mod identity;
pub mod policy;
pub mod sct;
#[cfg(test)]
pub(crate) mod testutil;
pub mod timestamp;
pub mod tlog;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use bundle::{Bundle, BundleContent, BundleError, BundleVersion, Signer, VerificationMaterial};
pub use claims::{Claim, UnknownClaim};
pub use identity::{AnchoredRegex, CertIdentity, CertificateIdentity, ClaimFailure, IdentityError, Matcher};
pub use policy::{Authority, VerificationPolicy};

use certificate::{CertificateError, ParsedAuthority, ParsedCert, EKU_CODE_SIGNING};
use sct::SctError;
use timestamp::TimestampError;
use tlog::{ExpectedContent, TlogError, VerifiedTlogEntry};

use crate::digest::{Digest, DigestAlgorithm};
use crate::keys::{KeyError, PublicKey};
use crate::trust_root::TrustRoot;

/// Tolerated clock skew for times that must not lie in the future.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(1);

/// What was signed: the artifact bytes, or only their digest.
#[derive(Debug, Clone)]
pub enum Artifact<'a> {
    /// The artifact itself.
    Bytes(&'a [u8]),
    /// The artifact's digest (message signatures are then checked over the digest). An in-toto subject
    /// can only match it in this one algorithm.
    Digest(Digest),
    /// The artifact's digests in several algorithms (say SHA-256 and SHA-512 of a file hashed as a
    /// stream): an in-toto subject may match any of them; a message signature and its log entry are checked
    /// against the one in the bundle's algorithm (SHA-256 when it names none).
    Digests(Vec<Digest>),
}

impl Artifact<'_> {
    /// The artifact's digest under `alg`, if it can be known.
    fn digest(&self, alg: DigestAlgorithm) -> Option<Digest> {
        match self {
            Self::Bytes(b) => Some(Digest::of(alg, b)),
            Self::Digest(d) if d.algorithm() == alg => Some(d.clone()),
            Self::Digest(_) => None,
            Self::Digests(ds) => ds.iter().find(|d| d.algorithm() == alg).cloned(),
        }
    }

    /// The artifact's own digest: SHA-256 of the bytes, or the digest given (of several: the SHA-256 one, else
    /// the first; an empty list is refused before this is asked).
    fn primary_digest(&self) -> Digest {
        match self {
            Self::Bytes(b) => Digest::sha256_of(b),
            Self::Digest(d) => d.clone(),
            Self::Digests(ds) => ds
                .iter()
                .find(|d| d.algorithm() == DigestAlgorithm::Sha256)
                .or(ds.first())
                .cloned()
                .unwrap_or_else(|| Digest::sha256_of(b"")),
        }
    }

    /// Check that `statement` names this artifact: bytes are hashed in every algorithm the subjects list;
    /// digests match only in their own algorithms.
    fn require_subject_of(
        &self,
        statement: &crate::intoto::Statement,
    ) -> Result<(), crate::intoto::InTotoError> {
        match self {
            Self::Bytes(b) => statement.require_subject_bytes(b),
            Self::Digest(d) => statement.require_subject(d),
            Self::Digests(ds) => statement.require_subject_digests(ds),
        }
    }
}

/// Who signed, as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerFacts {
    /// A long-lived key.
    Key {
        /// SHA-256 of the key's SPKI DER.
        fingerprint: Digest,
    },
    /// A Fulcio certificate.
    Certificate {
        /// The SAN (URI, email or OtherName).
        subject: String,
        /// The OIDC issuer.
        issuer: String,
        /// Certificate validity start.
        not_before: DateTime<Utc>,
        /// Certificate validity end.
        not_after: DateTime<Utc>,
    },
}

/// What a verified bundle establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// Who signed.
    pub signer: SignerFacts,
    /// The earliest verified time (integrated time or RFC 3161 genTime), if any.
    pub signing_time: Option<DateTime<Utc>>,
    /// The transparency log entries that verified.
    pub tlog_entries: Vec<VerifiedTlogEntry>,
    /// Verified RFC 3161 times.
    pub timestamps: Vec<DateTime<Utc>>,
    /// For DSSE bundles: the payload type and the verified payload.
    pub dsse_payload: Option<(String, Vec<u8>)>,
}

/// Why the signature over the artifact does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The key does not verify the message signature.
    #[error("message signature does not verify over the artifact: {0}")]
    Message(KeyError),
    /// The key does not verify the DSSE signature.
    #[error("DSSE envelope signature does not verify: {0}")]
    Dsse(String),
}

/// Why the bundle is not about the given artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The bundle's messageDigest is not the artifact's digest.
    #[error("bundle messageDigest {bundle} does not match the artifact digest {artifact}")]
    DigestMismatch {
        /// From the bundle.
        bundle: String,
        /// Of the artifact.
        artifact: String,
    },
    /// The artifact is known only by a digest of another algorithm.
    #[error("the artifact digest uses {artifact}, the bundle signs a {bundle} digest")]
    AlgorithmMismatch {
        /// Bundle algorithm.
        bundle: &'static str,
        /// Artifact digest algorithm.
        artifact: &'static str,
    },
    /// The in-toto statement is unreadable or does not name the artifact (the message, from
    /// [`crate::intoto`], says which and names the statement).
    #[error("{0}")]
    Statement(crate::intoto::InTotoError),
    /// [`Artifact::Digests`] with no digest: nothing to bind the bundle to.
    #[error("the artifact is given by an empty list of digests")]
    NoDigest,
    /// The DSSE payload is not an in-toto statement, so it cannot be bound to an artifact.
    #[error(
        "DSSE payload type {0:?} cannot be bound to an artifact (expected application/vnd.in-toto+json)"
    )]
    UnsupportedPayloadType(String),
}

/// Why a bundle did not verify; grouped by verification phase, each naming the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The bundle is malformed or breaks its version's rules.
    #[error("bundle: {0}")]
    Bundle(BundleError),
    /// The policy cannot be applied to this bundle.
    #[error("policy: {0}")]
    Policy(String),
    /// Signer material and policy do not fit (key vs certificate).
    #[error("signer: {0}")]
    Signer(String),
    /// The Fulcio certificate or chain.
    #[error("certificate: {0}")]
    Certificate(CertificateError),
    /// The certificate's identity.
    #[error("identity: {0}")]
    Identity(IdentityError),
    /// Signed certificate timestamps.
    #[error("sct: {0}")]
    Sct(SctError),
    /// A transparency log entry.
    #[error("transparency log entry {index}: {error}")]
    Tlog {
        /// Position in the bundle.
        index: usize,
        /// What failed.
        error: TlogError,
    },
    /// Too few verified log entries.
    #[error("transparency log: {verified} verified entries, {required} required")]
    TlogThreshold {
        /// Verified entries.
        verified: usize,
        /// Required.
        required: usize,
    },
    /// An RFC 3161 timestamp.
    #[error("timestamp {index}: {error}")]
    Timestamp {
        /// Position in the bundle.
        index: usize,
        /// What failed.
        error: TimestampError,
    },
    /// A signing-time rule (no verified time, time in the future, log key outside validity).
    #[error("signing time: {0}")]
    Time(String),
    /// The signature over the artifact.
    #[error("signature: {0}")]
    Signature(SignatureError),
    /// The bundle is about another artifact.
    #[error("artifact: {0}")]
    Artifact(ArtifactError),
}

impl From<BundleError> for VerifyError {
    fn from(e: BundleError) -> Self {
        Self::Bundle(e)
    }
}
impl From<CertificateError> for VerifyError {
    fn from(e: CertificateError) -> Self {
        Self::Certificate(e)
    }
}
impl From<IdentityError> for VerifyError {
    fn from(e: IdentityError) -> Self {
        Self::Identity(e)
    }
}
impl From<SctError> for VerifyError {
    fn from(e: SctError) -> Self {
        Self::Sct(e)
    }
}
impl From<SignatureError> for VerifyError {
    fn from(e: SignatureError) -> Self {
        Self::Signature(e)
    }
}
impl From<ArtifactError> for VerifyError {
    fn from(e: ArtifactError) -> Self {
        Self::Artifact(e)
    }
}

/// Verifies bundles against one trust root. Build once (it parses the trust root's certificates), share
/// freely (`Send + Sync`), call [`Verifier::verify`] as often as needed.
#[derive(Debug, Clone)]
pub struct Verifier {
    trust_root: Arc<TrustRoot>,
    fulcio: Arc<Vec<ParsedAuthority>>,
    tsas: Arc<Vec<ParsedAuthority>>,
}

/// The signer as taken from bundle and policy.
enum SigningKey<'a> {
    Certificate(Box<ParsedCert>, PublicKey),
    Key(&'a PublicKey),
}

impl Verifier {
    /// A verifier for `trust_root`.
    pub fn new(trust_root: TrustRoot) -> Self {
        Self::from_arc(Arc::new(trust_root))
    }

    /// A verifier sharing an already shared trust root.
    pub fn from_arc(trust_root: Arc<TrustRoot>) -> Self {
        let fulcio = Arc::new(ParsedAuthority::parse_all(&trust_root.certificate_authorities));
        let tsas = Arc::new(ParsedAuthority::parse_all(&trust_root.timestamp_authorities));
        Self { trust_root, fulcio, tsas }
    }

    /// The trust root this verifier uses.
    pub fn trust_root(&self) -> &TrustRoot {
        &self.trust_root
    }

    /// Verify `bundle` for `artifact` under `policy`.
    pub fn verify(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
        policy: &VerificationPolicy,
    ) -> Result<VerifiedBundle, VerifyError> {
        self.verify_at(bundle, artifact, policy, Utc::now())
    }

    /// [`Verifier::verify`] with an explicit "now" (only used to reject signing times in the future).
    pub fn verify_at(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
        policy: &VerificationPolicy,
        now: DateTime<Utc>,
    ) -> Result<VerifiedBundle, VerifyError> {
        // 1. Structure.
        let version = bundle.version()?;
        let leaf = bundle.validated_leaf()?;
        let keyless = matches!(policy.authority, Authority::Keyless { .. });
        if keyless && !policy.require_tlog {
            return Err(VerifyError::Policy(
                "keyless verification cannot be done without transparency log entries".into(),
            ));
        }
        let vm = &bundle.verification_material;

        // 2. Signer material against the policy.
        let signer =
            match (&policy.authority, &vm.signer) {
                (Authority::Keyless { .. }, Signer::PublicKey { .. }) => return Err(VerifyError::Signer(
                    "bundle is signed with a key, but keyless (certificate identity) verification was asked"
                        .into(),
                )),
                (Authority::Key(_), Signer::Certificate(_) | Signer::Chain(_)) => {
                    return Err(VerifyError::Signer(
                        "bundle carries a certificate, but verification with a key was asked".into(),
                    ))
                }
                (Authority::Key(k), Signer::PublicKey { .. }) => SigningKey::Key(k),
                (Authority::Notation(_), _) => {
                    return Err(VerifyError::Signer(
                        "a Notation authority cannot verify a Sigstore bundle".into(),
                    ))
                }
                (Authority::Keyless { .. }, s) => {
                    let der = s.leaf_certificate().ok_or(BundleError::EmptyCertificateChain)?;
                    let leaf = ParsedCert::from_parts(leaf.ok_or(BundleError::EmptyCertificateChain)?, der);
                    let key = leaf.public_key()?;
                    SigningKey::Certificate(Box::new(leaf), key)
                }
            };
        let key = match &signer {
            SigningKey::Certificate(_, k) => k,
            SigningKey::Key(k) => *k,
        };

        // 3. Signature over the artifact, and the artifact binding.
        let (signature, dsse_payload) = verify_content(&bundle.content, &artifact, key)?;

        // 4. Transparency log entries.
        let material_der = match &signer {
            SigningKey::Certificate(leaf, _) => leaf.der.clone(),
            SigningKey::Key(k) => k.to_spki_der(),
        };
        let artifact_digest = match (&bundle.content, &artifact) {
            // Of several digests, the one the bundle signs.
            (BundleContent::MessageSignature { digest: Some((alg, _)), .. }, Artifact::Digests(_)) => {
                artifact.digest(*alg).unwrap_or_else(|| artifact.primary_digest())
            }
            _ => artifact.primary_digest(),
        };
        let expected = ExpectedContent {
            signature: match &bundle.content {
                BundleContent::MessageSignature { .. } => Some(signature.as_slice()),
                BundleContent::Dsse(_) => None,
            },
            artifact_digest: match &bundle.content {
                BundleContent::MessageSignature { .. } => Some(&artifact_digest),
                BundleContent::Dsse(_) => None,
            },
            dsse: match &bundle.content {
                BundleContent::Dsse(env) => Some(env),
                BundleContent::MessageSignature { .. } => None,
            },
            verification_material: &material_der,
        };
        let require_proof = version >= BundleVersion::V0_2;
        let mut tlog_entries = Vec::with_capacity(vm.tlog_entries.len());
        for (index, entry) in vm.tlog_entries.iter().enumerate() {
            let verified = tlog::verify_entry(entry, &expected, &self.trust_root, require_proof)
                .map_err(|error| VerifyError::Tlog { index, error })?;
            tlog_entries.push(verified);
        }
        // The threshold counts logs, not entries: one entry listed twice (or two entries in one log) is
        // still the word of a single log.
        let distinct_logs = distinct_logs(&tlog_entries);
        if policy.require_tlog && distinct_logs < policy.tlog_threshold.max(1) {
            return Err(VerifyError::TlogThreshold {
                verified: distinct_logs,
                required: policy.tlog_threshold.max(1),
            });
        }

        // 5. RFC 3161 timestamps over the signature.
        let mut timestamps = Vec::with_capacity(vm.timestamps.len());
        for (index, ts) in vm.timestamps.iter().enumerate() {
            let verified = timestamp::verify_timestamp(ts, &signature, &self.tsas)
                .map_err(|error| VerifyError::Timestamp { index, error })?;
            timestamps.push(verified.time);
        }

        // 6. Signing times: every verified time source; none may lie in the future.
        let mut times: Vec<DateTime<Utc>> = tlog_entries.iter().filter_map(|e| e.integrated_time).collect();
        times.extend(timestamps.iter().copied());
        if let Some(t) = times.iter().find(|t| **t > now + CLOCK_SKEW) {
            return Err(VerifyError::Time(format!("verified signing time {t} lies in the future")));
        }
        // Rekor v2 entries carry no time, and a Rekor v1 entry without a SET carries none that is signed:
        // their log key must be valid at the TSA times.
        for (index, entry) in tlog_entries.iter().enumerate().filter(|(_, e)| e.integrated_time.is_none()) {
            if timestamps.is_empty() {
                if !entry.rekor_v2 {
                    // Key-based only (keyless fails below for want of a verified time): the entry's
                    // unsigned integratedTime was checked against the log key's validity.
                    continue;
                }
                return Err(VerifyError::Time(format!(
                    "rekor v2 entry {index} needs an RFC 3161 timestamp to check the log key's validity"
                )));
            }
            let log = self.trust_root.tlog(&entry.log_id).ok_or_else(|| VerifyError::Tlog {
                index,
                error: TlogError::UnknownLog { log_id: hex::encode(&entry.log_id) },
            })?;
            if let Some(t) = timestamps.iter().find(|t| !log.valid_for.contains(**t)) {
                let kind = if entry.rekor_v2 { "rekor v2" } else { "rekor v1 (no SET)" };
                return Err(VerifyError::Time(format!(
                    "timestamp {t} is outside the validity of the key of the {kind} log holding entry {index}"
                )));
            }
        }

        // 7. Certificate, SCT, identity (keyless).
        let signer_facts = match (&signer, &policy.authority) {
            (SigningKey::Certificate(leaf, _), Authority::Keyless { identities }) => {
                if times.is_empty() {
                    return Err(VerifyError::Time(
                        "no verified signing time (neither a verified integrated time nor an RFC 3161 timestamp)"
                            .into(),
                    ));
                }
                let chain = certificate::verify_leaf(
                    leaf,
                    &self.fulcio,
                    &times,
                    "Fulcio CA",
                    (EKU_CODE_SIGNING, "codeSigning"),
                )?;
                if policy.require_sct {
                    let issuer = chain.issuer.ok_or_else(|| {
                        VerifyError::Certificate(CertificateError::UntrustedIssuer {
                            what: "Fulcio CA",
                            issuer: "the leaf itself is listed as a CA".into(),
                        })
                    })?;
                    sct::verify_scts(leaf, issuer, &self.trust_root, 1)?;
                }
                let id = CertIdentity::from_certificate(&leaf.cert)?;
                id.check(identities)?;
                SignerFacts::Certificate {
                    subject: id.subject().to_owned(),
                    issuer: id.issuer.clone(),
                    not_before: leaf.not_before(),
                    not_after: leaf.not_after(),
                }
            }
            (SigningKey::Key(k), _) => SignerFacts::Key { fingerprint: k.fingerprint() },
            (SigningKey::Certificate(..), Authority::Key(_) | Authority::Notation(_)) => {
                return Err(VerifyError::Signer("certificate signer under a key policy".into()))
            }
        };

        Ok(VerifiedBundle {
            signer: signer_facts,
            signing_time: times.iter().min().copied(),
            tlog_entries,
            timestamps,
            dsse_payload,
        })
    }
}

/// How many different logs the verified entries come from.
fn distinct_logs(entries: &[VerifiedTlogEntry]) -> usize {
    let mut ids: Vec<&[u8]> = entries.iter().map(|e| e.log_id.as_slice()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// Verify the bundle content's signature with `key` and bind it to `artifact`. Returns the signature
/// bytes (what timestamps cover) and, for DSSE, the payload type and payload.
#[allow(clippy::type_complexity)]
fn verify_content(
    content: &BundleContent,
    artifact: &Artifact<'_>,
    key: &PublicKey,
) -> Result<(Vec<u8>, Option<(String, Vec<u8>)>), VerifyError> {
    if matches!(artifact, Artifact::Digests(ds) if ds.is_empty()) {
        return Err(ArtifactError::NoDigest.into());
    }
    match content {
        BundleContent::MessageSignature { digest, signature } => {
            if let Some((alg, claimed)) = digest {
                let actual = artifact.digest(*alg).ok_or_else(|| ArtifactError::AlgorithmMismatch {
                    bundle: alg.name(),
                    artifact: artifact.primary_digest().algorithm().name(),
                })?;
                if actual.to_bytes() != *claimed {
                    return Err(ArtifactError::DigestMismatch {
                        bundle: format!("{}:{}", alg.name(), hex::encode(claimed)),
                        artifact: actual.to_string(),
                    }
                    .into());
                }
            }
            let result = match artifact {
                Artifact::Bytes(b) => key.verify(b, signature),
                Artifact::Digest(d) => key.verify_prehashed(d.algorithm(), &d.to_bytes(), signature),
                Artifact::Digests(_) => {
                    // The digest the bundle names, else the primary one.
                    let d = digest
                        .as_ref()
                        .and_then(|(alg, _)| artifact.digest(*alg))
                        .unwrap_or_else(|| artifact.primary_digest());
                    key.verify_prehashed(d.algorithm(), &d.to_bytes(), signature)
                }
            };
            result.map_err(SignatureError::Message)?;
            Ok((signature.clone(), None))
        }
        BundleContent::Dsse(env) => {
            let payload = env.verify(key).map_err(|e| SignatureError::Dsse(e.to_string()))?;
            let sig = env
                .signature_bytes()
                .ok()
                .and_then(|s| s.into_iter().next())
                .ok_or_else(|| SignatureError::Dsse("envelope has no signature".into()))?;
            if env.payload_type != crate::dsse::IN_TOTO_PAYLOAD_TYPE {
                return Err(ArtifactError::UnsupportedPayloadType(
                    env.payload_type.chars().take(100).collect(),
                )
                .into());
            }
            let statement =
                crate::intoto::Statement::from_json(&payload).map_err(ArtifactError::Statement)?;
            artifact.require_subject_of(&statement).map_err(ArtifactError::Statement)?;
            Ok((sig, Some((env.payload_type.clone(), payload))))
        }
    }
}

#[cfg(test)]
mod tests;
