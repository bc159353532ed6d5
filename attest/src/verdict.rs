//! What verification establishes about an artifact: who signed ([`Signer`]), where the evidence was found
//! ([`Source`]), the verified [`Facts`], and the [`Verdict`] for one (digest, authority, requirement) —
//! either facts or a [`Rejection`] that says why not.
//!
//! Plain data, serialised in camelCase into reports, statuses and `check` output. A leaf: it names what
//! the verifiers produce and depends on none of them, so [`crate::verify`] (the artifact verifier) and
//! [`crate::model`] (model signatures) both build on it without importing each other. The types are
//! re-exported from [`crate::verify`], where callers have always found them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cache::Cacheable;
use crate::digest::Digest;
use crate::intoto::{Predicate, Statement};
use crate::notation::verify::CheckOutcome;
use crate::reference::ArtifactRef;
use crate::sbom::SbomFacts;
use crate::sigstore_verify::SignerFacts;

/// Who signed, as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Signer {
    /// A key, by the SHA-256 of its SPKI DER.
    Key {
        /// Key fingerprint.
        fingerprint: Digest,
    },
    /// A Fulcio certificate identity.
    Certificate {
        /// SAN (URI, email, ...).
        subject: String,
        /// OIDC issuer.
        issuer: String,
    },
    /// An X.509 signing certificate from a trust store (Notary Project signatures).
    X509 {
        /// The certificate's subject DN (RFC 4514).
        subject: String,
        /// SHA-256 of the certificate's DER.
        fingerprint: Digest,
    },
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key { fingerprint } => write!(f, "key {fingerprint}"),
            Self::Certificate { subject, issuer } => write!(f, "{subject} (issuer {issuer})"),
            Self::X509 { subject, fingerprint } => write!(f, "{subject} (certificate {fingerprint})"),
        }
    }
}

impl From<&SignerFacts> for Signer {
    fn from(s: &SignerFacts) -> Self {
        match s {
            SignerFacts::Key { fingerprint } => Self::Key { fingerprint: fingerprint.clone() },
            SignerFacts::Certificate { subject, issuer, .. } => {
                Self::Certificate { subject: subject.clone(), issuer: issuer.clone() }
            }
        }
    }
}

/// Where a piece of evidence was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Source {
    /// A layer of a cosign tag manifest (`sha256-<hex>.sig` / `.att` / `.sbom`).
    CosignTag {
        /// The tag.
        tag: String,
        /// The layer's digest.
        layer: Digest,
    },
    /// An OCI 1.1 referrer manifest (Sigstore bundle or SBOM).
    Referrer {
        /// The referrer manifest's digest.
        manifest: Digest,
    },
    /// A file inside a model artifact (a model signature kept as `model.sig`).
    ModelFile {
        /// The file's path in the model.
        path: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CosignTag { tag, layer } => write!(f, "cosign tag {tag} layer {layer}"),
            Self::Referrer { manifest } => write!(f, "referrer {manifest}"),
            Self::ModelFile { path } => write!(f, "model file {path}"),
        }
    }
}

/// A verified signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureFacts {
    /// Who signed.
    pub signer: Signer,
    /// Where the signature was found.
    pub source: Source,
    /// Rekor log index of the verified entry, if logged.
    pub rekor_log_index: Option<i64>,
    /// Earliest verified signing time (log integration or RFC 3161), if any.
    pub signing_time: Option<DateTime<Utc>>,
    /// Annotations inside the signed payload (cosign `sign -a key=value`: the simple-signing payload's
    /// `optional`, or the subject's `annotations` of a cosign v3 bundle statement). Never the manifest's
    /// own, unsigned annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, serde_json::Value>,
    /// Each Notation check and how it ended (empty for Sigstore signatures): a check the level only logs
    /// is recorded failed, revocation is recorded as not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckOutcome>,
    /// When what was verified may stop holding by time alone (a Notation signature's expiry, a certificate
    /// that was checked at the time of verification expiring, a CRL going out of date); a verdict resting
    /// on this signature is cached no longer. Absent when nothing of the kind applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// A verified attestation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationFacts {
    /// The in-toto predicate type.
    pub predicate_type: String,
    /// The predicate as signed.
    pub predicate: serde_json::Value,
    /// Who signed.
    pub signer: Signer,
    /// Where it was found.
    pub source: Source,
    /// Rekor log index, if logged.
    pub rekor_log_index: Option<i64>,
    /// Earliest verified signing time, if any.
    pub signing_time: Option<DateTime<Utc>>,
}

impl AttestationFacts {
    /// A typed view of the predicate (SLSA provenance, CycloneDX, SPDX, other).
    pub fn predicate_kind(&self) -> Predicate {
        Statement {
            statement_type: crate::intoto::STATEMENT_V1.to_owned(),
            subjects: Vec::new(),
            predicate_type: self.predicate_type.clone(),
            predicate: self.predicate.clone(),
        }
        .predicate_kind()
    }
}

/// How a valid SBOM was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SbomSource {
    /// Where.
    pub source: Source,
    /// The signer, when the SBOM came as a verified attestation; `None` for unsigned attachments.
    pub signer: Option<Signer>,
}

/// What a verified OpenSSF model signature establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSignatureFacts {
    /// Who signed.
    pub signer: Signer,
    /// Where the signature was found.
    pub source: Source,
    /// Number of model files the signature covers (all of the model's files).
    pub files: usize,
    /// The statement's subject digest (SHA-256 over the resource digests).
    pub subject_digest: Digest,
    /// Rekor log index of the verified entry, if logged.
    pub rekor_log_index: Option<i64>,
    /// Earliest verified signing time, if any.
    pub signing_time: Option<DateTime<Utc>>,
}

/// What was verified about an artifact.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// Verified signatures by the authority.
    pub signatures: Vec<SignatureFacts>,
    /// Verified attestations by the authority (of the predicate type asked).
    pub attestations: Vec<AttestationFacts>,
    /// A valid SBOM.
    pub sbom: Option<SbomFacts>,
    /// Where the SBOM came from.
    pub sbom_source: Option<SbomSource>,
    /// A verified OpenSSF model signature (for [`crate::verify::Requirement::ModelSignature`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_signature: Option<ModelSignatureFacts>,
}

/// Why the requirement is not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The requirement (`signature`, `attestation:<type>`, `sbom`).
    pub requirement: String,
    /// One sentence: what is missing or which check failed.
    pub reason: String,
    /// Why each candidate failed, `"<where>: <why>"`.
    pub candidates: Vec<String>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} not satisfied: {}", self.requirement, self.reason)
    }
}

/// The verified answer for one (digest, authority, requirement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// The artifact, pinned to the digest that was verified.
    pub reference: ArtifactRef,
    /// Facts when the requirement is met, else why not.
    pub outcome: Result<Facts, Rejection>,
}

impl Verdict {
    /// Whether the requirement is met.
    pub fn is_verified(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl Cacheable for Verdict {
    fn is_success(&self) -> bool {
        self.outcome.is_ok()
    }

    fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.outcome.as_ref().ok()?.signatures.iter().filter_map(|s| s.valid_until).min()
    }

    fn weight(&self) -> u32 {
        let predicates: usize = match &self.outcome {
            Ok(f) => f.attestations.iter().map(|a| a.predicate.to_string().len()).sum(),
            Err(r) => r.candidates.iter().map(String::len).sum(),
        };
        u32::try_from(1024 + predicates).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_facts_and_rejections_render_as_documented() {
        assert_eq!(Source::ModelFile { path: "model.sig".into() }.to_string(), "model file model.sig");
        // Facts without a model signature serialise as before.
        assert!(serde_json::to_value(Facts::default()).unwrap().get("modelSignature").is_none());
        let r = Rejection { requirement: "sbom".into(), reason: "nothing found".into(), candidates: vec![] };
        assert_eq!(r.to_string(), "sbom not satisfied: nothing found");
    }

    #[test]
    fn verdicts_cache_successes_longer_than_rejections() {
        let reference: ArtifactRef = format!("reg.example/a@{}", Digest::sha256_of(b"a")).parse().unwrap();
        let ok = Verdict { reference: reference.clone(), outcome: Ok(Facts::default()) };
        let no = Verdict {
            reference,
            outcome: Err(Rejection {
                requirement: "signature".into(),
                reason: "x".into(),
                candidates: vec!["y".repeat(5000)],
            }),
        };
        assert!(ok.is_success() && !no.is_success());
        assert!(no.weight() > ok.weight());
    }
}
