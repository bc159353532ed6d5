//! in-toto attestation statements: subjects (what is attested) and a typed view of the predicate.
//!
//! Parsing never verifies a signature; use [`Statement::from_verified_dsse`] (or verify the envelope first)
//! before trusting a statement.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::keys::PublicKey;

/// in-toto Statement v1 `_type`.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// in-toto Statement v0.1 `_type` (still emitted by cosign and older tools).
pub const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";
/// SLSA provenance v1 predicate type.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// SLSA provenance v0.2 predicate type.
pub const SLSA_PROVENANCE_V0_2: &str = "https://slsa.dev/provenance/v0.2";
/// CycloneDX BOM predicate type (the predicate is the BOM JSON object).
pub const CYCLONEDX_BOM: &str = "https://cyclonedx.org/bom";
/// SPDX document predicate type.
pub const SPDX_DOCUMENT: &str = "https://spdx.dev/Document";

/// Largest statement vouch will parse.
pub const MAX_STATEMENT_BYTES: usize = crate::dsse::MAX_PAYLOAD_BYTES;
/// Most subjects vouch accepts in one statement.
pub const MAX_SUBJECTS: usize = 10_000;

/// Why a statement could not be read or does not attest what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InTotoError {
    /// The statement is larger than [`MAX_STATEMENT_BYTES`].
    #[error("in-toto statement of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, or not shaped like a statement.
    #[error("malformed in-toto statement: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// `_type` is not an in-toto statement type vouch knows.
    #[error("unsupported in-toto statement type {found:?} (expected {STATEMENT_V1} or {STATEMENT_V0_1})")]
    UnsupportedStatementType {
        /// The `_type` found.
        found: String,
    },
    /// The statement attests nothing.
    #[error("in-toto statement has no subjects")]
    NoSubjects,
    /// Too many subjects.
    #[error("in-toto statement has {count} subjects, more than the limit of {max}")]
    TooManySubjects {
        /// Number of subjects found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A subject carries no digest.
    #[error("in-toto subject {index} ({name:?}) has no digest")]
    SubjectWithoutDigest {
        /// Position in the subject list.
        index: usize,
        /// The subject's name.
        name: String,
    },
    /// `predicateType` is empty.
    #[error("in-toto statement has an empty predicateType")]
    EmptyPredicateType,
    /// The DSSE envelope does not carry an in-toto statement.
    #[error("DSSE payload type is {found:?}, expected {IN_TOTO_PAYLOAD_TYPE}")]
    WrongPayloadType {
        /// The payload type found.
        found: String,
    },
    /// The DSSE envelope is malformed or its signature does not verify.
    #[error("DSSE envelope: {0}")]
    Dsse(DsseError),
    /// No subject has the artifact's digest.
    #[error("in-toto statement does not cover {expected}; its subjects are: {found}")]
    SubjectMismatch {
        /// The artifact digest that had to be attested.
        expected: Digest,
        /// The subjects found, as `name (alg:hex, ...)`.
        found: String,
    },
}

/// One attested artifact: a name and its digests by algorithm name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subject {
    /// Name (file name, image reference, ...); may be empty.
    #[serde(default)]
    pub name: String,
    /// Digests keyed by algorithm (`sha256` → hex).
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// Whether this subject's digest map holds `digest` (hex compared case-insensitively).
    pub fn has_digest(&self, digest: &Digest) -> bool {
        self.digest.get(digest.algorithm().name()).is_some_and(|hex| hex.eq_ignore_ascii_case(digest.hex()))
    }
}

/// An in-toto statement (v1 or v0.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The `_type` (one of [`STATEMENT_V1`], [`STATEMENT_V0_1`]).
    pub statement_type: String,
    /// What the statement is about.
    pub subjects: Vec<Subject>,
    /// The predicate type URI.
    pub predicate_type: String,
    /// The predicate as raw JSON (`null` when absent).
    pub predicate: serde_json::Value,
}

/// The statement as it appears on the wire.
#[derive(Deserialize)]
struct RawStatement {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

impl Statement {
    /// Parse and check a statement: size, JSON shape, `_type`, non-empty subjects with digests, predicate type.
    pub fn from_json(bytes: &[u8]) -> Result<Self, InTotoError> {
        if bytes.len() > MAX_STATEMENT_BYTES {
            return Err(InTotoError::TooLarge { size: bytes.len(), max: MAX_STATEMENT_BYTES });
        }
        let raw: RawStatement =
            serde_json::from_slice(bytes).map_err(|e| InTotoError::Malformed { reason: e.to_string() })?;
        if raw.statement_type != STATEMENT_V1 && raw.statement_type != STATEMENT_V0_1 {
            return Err(InTotoError::UnsupportedStatementType {
                found: raw.statement_type.chars().take(200).collect(),
            });
        }
        if raw.subject.is_empty() {
            return Err(InTotoError::NoSubjects);
        }
        if raw.subject.len() > MAX_SUBJECTS {
            return Err(InTotoError::TooManySubjects { count: raw.subject.len(), max: MAX_SUBJECTS });
        }
        if let Some((index, s)) = raw.subject.iter().enumerate().find(|(_, s)| s.digest.is_empty()) {
            return Err(InTotoError::SubjectWithoutDigest {
                index,
                name: s.name.chars().take(200).collect(),
            });
        }
        if raw.predicate_type.trim().is_empty() {
            return Err(InTotoError::EmptyPredicateType);
        }
        Ok(Self {
            statement_type: raw.statement_type,
            subjects: raw.subject,
            predicate_type: raw.predicate_type,
            predicate: raw.predicate,
        })
    }

    /// Parse the statement carried by a DSSE envelope WITHOUT verifying its signature; checks the payload type.
    pub fn from_dsse(envelope: &Envelope) -> Result<Self, InTotoError> {
        check_payload_type(envelope)?;
        let payload = envelope.payload_bytes().map_err(InTotoError::Dsse)?;
        Self::from_json(&payload)
    }

    /// Verify the envelope's signature with `key`, then parse the statement it carries.
    pub fn from_verified_dsse(envelope: &Envelope, key: &PublicKey) -> Result<Self, InTotoError> {
        check_payload_type(envelope)?;
        let payload = envelope.verify(key).map_err(InTotoError::Dsse)?;
        Self::from_json(&payload)
    }

    /// Whether some subject carries `digest` (same algorithm, hex compared case-insensitively).
    pub fn covers(&self, digest: &Digest) -> bool {
        self.subjects.iter().any(|s| s.has_digest(digest))
    }

    /// Fail unless some subject carries `digest`; the error names the digest and the subjects found.
    pub fn require_subject(&self, digest: &Digest) -> Result<(), InTotoError> {
        if self.covers(digest) {
            return Ok(());
        }
        Err(InTotoError::SubjectMismatch {
            expected: digest.clone(),
            found: describe_subjects(&self.subjects),
        })
    }

    /// A typed view of the predicate, chosen by the predicate type.
    pub fn predicate_kind(&self) -> Predicate {
        match self.predicate_type.as_str() {
            SLSA_PROVENANCE_V1 => match SlsaProvenance::from_v1(&self.predicate) {
                Ok(p) => Predicate::SlsaProvenanceV1(p),
                Err(reason) => self.invalid(reason),
            },
            SLSA_PROVENANCE_V0_2 => match SlsaProvenance::from_v0_2(&self.predicate) {
                Ok(p) => Predicate::SlsaProvenanceV0_2(p),
                Err(reason) => self.invalid(reason),
            },
            CYCLONEDX_BOM if self.predicate.is_object() => Predicate::CycloneDx(self.predicate.clone()),
            SPDX_DOCUMENT if self.predicate.is_object() => Predicate::Spdx(self.predicate.clone()),
            CYCLONEDX_BOM | SPDX_DOCUMENT => self.invalid("predicate is not a JSON object".into()),
            _ => Predicate::Other {
                predicate_type: self.predicate_type.clone(),
                predicate: self.predicate.clone(),
            },
        }
    }

    fn invalid(&self, reason: String) -> Predicate {
        Predicate::Invalid { predicate_type: self.predicate_type.clone(), reason }
    }
}

fn check_payload_type(envelope: &Envelope) -> Result<(), InTotoError> {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(InTotoError::WrongPayloadType {
            found: envelope.payload_type.chars().take(200).collect(),
        });
    }
    Ok(())
}

/// `name (sha256:ab…, …), …` for error messages, bounded in length.
fn describe_subjects(subjects: &[Subject]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = subjects
        .iter()
        .take(SHOWN)
        .map(|s| {
            let digests: Vec<String> = s.digest.iter().map(|(alg, hex)| format!("{alg}:{hex}")).collect();
            let name: String = s.name.chars().take(200).collect();
            format!("{name:?} ({})", digests.join(", "))
        })
        .collect();
    if subjects.len() > SHOWN {
        parts.push(format!("and {} more", subjects.len() - SHOWN));
    }
    parts.join(", ")
}

/// A typed view of a statement's predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// SLSA provenance v1.
    SlsaProvenanceV1(SlsaProvenance),
    /// SLSA provenance v0.2.
    SlsaProvenanceV0_2(SlsaProvenance),
    /// A CycloneDX BOM (the JSON object; validate with `crate::sbom::from_predicate`).
    CycloneDx(serde_json::Value),
    /// An SPDX document (the JSON object).
    Spdx(serde_json::Value),
    /// Any other predicate type, raw.
    Other {
        /// The predicate type URI.
        predicate_type: String,
        /// The raw predicate.
        predicate: serde_json::Value,
    },
    /// A known predicate type whose predicate does not have the required shape.
    Invalid {
        /// The predicate type URI.
        predicate_type: String,
        /// What is wrong.
        reason: String,
    },
}

/// The facts of a SLSA provenance predicate that policies look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlsaProvenance {
    /// `runDetails.builder.id` (v1) or `builder.id` (v0.2).
    pub builder_id: String,
    /// `buildDefinition.buildType` (v1) or `buildType` (v0.2).
    pub build_type: String,
    /// `buildDefinition.resolvedDependencies` (v1) or `materials` (v0.2).
    pub materials: Vec<Material>,
}

/// An input of a build: a resource descriptor (v1) or material (v0.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Material {
    /// URI of the input, if given.
    #[serde(default)]
    pub uri: Option<String>,
    /// Name of the input, if given (v1 only).
    #[serde(default)]
    pub name: Option<String>,
    /// Digests keyed by algorithm.
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

impl SlsaProvenance {
    fn from_v1(predicate: &serde_json::Value) -> Result<Self, String> {
        let builder_id = required_str(predicate, "/runDetails/builder/id")?;
        let build_type = required_str(predicate, "/buildDefinition/buildType")?;
        let materials = materials_at(predicate, "/buildDefinition/resolvedDependencies")?;
        Ok(Self { builder_id, build_type, materials })
    }

    fn from_v0_2(predicate: &serde_json::Value) -> Result<Self, String> {
        let builder_id = required_str(predicate, "/builder/id")?;
        let build_type = required_str(predicate, "/buildType")?;
        let materials = materials_at(predicate, "/materials")?;
        Ok(Self { builder_id, build_type, materials })
    }
}

fn required_str(value: &serde_json::Value, pointer: &str) -> Result<String, String> {
    match value.pointer(pointer) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(serde_json::Value::String(_)) => Err(format!("{pointer} is empty")),
        Some(_) => Err(format!("{pointer} is not a string")),
        None => Err(format!("{pointer} is missing")),
    }
}

fn materials_at(value: &serde_json::Value, pointer: &str) -> Result<Vec<Material>, String> {
    match value.pointer(pointer) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(list) => Vec::<Material>::deserialize(list).map_err(|e| format!("{pointer}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use serde_json::json;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn statement(predicate_type: &str, predicate: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "_type": STATEMENT_V1,
            "subject": [{"name": "img", "digest": {"sha256": HEX.to_uppercase()}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }))
        .unwrap()
    }

    #[test]
    fn covers_subject_digest_case_insensitively() {
        let s = Statement::from_json(&statement("x", json!({}))).unwrap();
        let d = Digest::sha256_of(b"test");
        assert!(s.covers(&d));
        s.require_subject(&d).unwrap();
        let other = Digest::sha256_of(b"other");
        assert!(!s.covers(&other));
        let err = s.require_subject(&other).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&other.to_string()), "{msg}");
        assert!(msg.contains("\"img\""), "{msg}");
        // Same hex under another algorithm name does not count.
        let sha512 = Digest::of(crate::DigestAlgorithm::Sha512, b"test");
        assert!(!s.covers(&sha512));
    }

    #[test]
    fn rejects_bad_statements() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                json!({"_type": "https://in-toto.io/Statement/v2", "subject": [{"digest": {"sha256": HEX}}], "predicateType": "x"}),
                "unsupported in-toto statement type",
            ),
            (json!({"_type": STATEMENT_V1, "subject": [], "predicateType": "x"}), "no subjects"),
            (
                json!({"_type": STATEMENT_V1, "subject": [{"name": "a", "digest": {}}], "predicateType": "x"}),
                "has no digest",
            ),
            (
                json!({"_type": STATEMENT_V1, "subject": [{"digest": {"sha256": HEX}}], "predicateType": ""}),
                "empty predicateType",
            ),
            (json!({"subject": [{"digest": {"sha256": HEX}}], "predicateType": "x"}), "malformed"),
            (json!([]), "malformed"),
        ];
        for (doc, want) in cases {
            let err = Statement::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
            assert!(err.to_string().contains(want), "{doc}: {err}");
        }
        let big = vec![b' '; MAX_STATEMENT_BYTES + 1];
        assert!(matches!(Statement::from_json(&big), Err(InTotoError::TooLarge { .. })));
    }

    #[test]
    fn accepts_v0_1_statements() {
        let doc = json!({"_type": STATEMENT_V0_1, "subject": [{"name": "a", "digest": {"sha256": HEX}}], "predicateType": "x"});
        let s = Statement::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(s.statement_type, STATEMENT_V0_1);
        assert_eq!(s.predicate, serde_json::Value::Null);
    }

    #[test]
    fn types_slsa_v1_and_v0_2() {
        let v1 = json!({
            "buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "resolvedDependencies": [{"uri": "git+https://github.com/a/b", "digest": {"gitCommit": "abc"}}]},
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}}
        });
        let s = Statement::from_json(&statement(SLSA_PROVENANCE_V1, v1)).unwrap();
        let Predicate::SlsaProvenanceV1(p) = s.predicate_kind() else { panic!("{:?}", s.predicate_kind()) };
        assert_eq!(p.builder_id, "https://github.com/actions/runner");
        assert_eq!(p.materials.len(), 1);
        assert_eq!(p.materials[0].digest["gitCommit"], "abc");

        let v02 = json!({"builder": {"id": "b"}, "buildType": "t", "materials": [{"uri": "u", "digest": {"sha1": "x"}}]});
        let s = Statement::from_json(&statement(SLSA_PROVENANCE_V0_2, v02)).unwrap();
        let Predicate::SlsaProvenanceV0_2(p) = s.predicate_kind() else { panic!() };
        assert_eq!((p.builder_id.as_str(), p.build_type.as_str()), ("b", "t"));

        let broken =
            Statement::from_json(&statement(SLSA_PROVENANCE_V1, json!({"buildDefinition": {}}))).unwrap();
        match broken.predicate_kind() {
            Predicate::Invalid { reason, .. } => {
                assert!(reason.contains("/runDetails/builder/id"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn types_sbom_and_other_predicates() {
        let s = Statement::from_json(&statement(CYCLONEDX_BOM, json!({"bomFormat": "CycloneDX"}))).unwrap();
        assert!(matches!(s.predicate_kind(), Predicate::CycloneDx(v) if v["bomFormat"] == "CycloneDX"));
        let s = Statement::from_json(&statement(SPDX_DOCUMENT, json!("text"))).unwrap();
        assert!(matches!(s.predicate_kind(), Predicate::Invalid { .. }));
        let s = Statement::from_json(&statement("https://example.com/p", json!({"a": 1}))).unwrap();
        assert!(
            matches!(s.predicate_kind(), Predicate::Other { predicate_type, .. } if predicate_type == "https://example.com/p")
        );
    }

    #[test]
    fn dsse_payload_type_and_signature_are_checked() {
        let key = SigningKey::generate();
        let body = statement("x", json!({}));
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &body, &key);
        assert!(Statement::from_verified_dsse(&env, &key.public_key()).is_ok());
        assert!(Statement::from_dsse(&env).is_ok());
        let other_key = SigningKey::generate();
        assert!(matches!(
            Statement::from_verified_dsse(&env, &other_key.public_key()),
            Err(InTotoError::Dsse(DsseError::BadSignature(_)))
        ));
        let wrong_type = Envelope::sign("application/json", &body, &key);
        assert!(matches!(Statement::from_dsse(&wrong_type), Err(InTotoError::WrongPayloadType { .. })));
        assert!(matches!(
            Statement::from_verified_dsse(&wrong_type, &key.public_key()),
            Err(InTotoError::WrongPayloadType { .. })
        ));
    }
}
