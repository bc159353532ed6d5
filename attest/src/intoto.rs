//! in-toto attestation statements: subjects (what is attested) and a typed view of the predicate.
//!
//! Parsing never verifies a signature; use [`Statement::from_verified_dsse`] (or verify the envelope first)
//! before trusting a statement.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::digest::{Digest, DigestAlgorithm};
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
    #[error("in-toto statement does not cover {}; its subjects are: {found}", join_digests(expected))]
    SubjectMismatch {
        /// The artifact's digests that were compared (one per algorithm the subjects list).
        expected: Vec<Digest>,
        /// The subjects found, as `name (alg:hex, ...)`; a subject whose digests partly match is marked.
        found: String,
    },
    /// No subject carries a digest in an algorithm the artifact's digest is known in, so nothing can match.
    #[error(
        "no in-toto subject carries a digest in {}; the subjects' algorithms are: {} (vouch compares {})",
        known.join(", "),
        if found.is_empty() { "none".to_string() } else { found.join(", ") },
        SUPPORTED_NAMES
    )]
    NoCommonAlgorithm {
        /// Algorithms the artifact's digest is known in.
        known: Vec<&'static str>,
        /// Algorithm names the subjects list (supported or not).
        found: Vec<String>,
    },
}

/// Algorithms vouch computes and compares in subjects; any other DigestSet key (`sha1`, `md5`,
/// `gitCommit`, `dirHash`, ...) is ignored, as the in-toto DigestSet spec requires of unaccepted algorithms.
pub const SUBJECT_ALGORITHMS: [DigestAlgorithm; 3] =
    [DigestAlgorithm::Sha256, DigestAlgorithm::Sha384, DigestAlgorithm::Sha512];
const SUPPORTED_NAMES: &str = "sha256, sha384, sha512";

fn join_digests(digests: &[Digest]) -> String {
    digests.iter().map(Digest::to_string).collect::<Vec<_>>().join(" / ")
}

/// How one subject's DigestSet relates to the artifact's digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectMatch {
    /// Every algorithm both sides have agrees, and there is at least one.
    Matches,
    /// Some common algorithm agrees and another disagrees: the subject contradicts itself about this
    /// artifact and is not taken as naming it.
    Conflicts,
    /// A common algorithm disagrees and none agrees.
    Differs,
    /// No algorithm in common.
    NoCommonAlgorithm,
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
    /// The resource descriptor's `annotations` (in-toto v1): signed along with the statement. cosign v3
    /// writes an image signature's `-a key=value` annotations here (sigstore/cosign
    /// `cmd/cosign/cli/sign/sign.go`, `signDigestBundle`: the subject's `Annotations`).
    #[serde(default)]
    pub annotations: BTreeMap<String, serde_json::Value>,
}

impl Subject {
    /// Whether this subject names the artifact with this one digest (hex compared case-insensitively).
    pub fn has_digest(&self, digest: &Digest) -> bool {
        self.match_digests(std::slice::from_ref(digest)) == SubjectMatch::Matches
    }

    /// Compare with the artifact's digests (at most one per algorithm). Hex is compared without regard to
    /// case: the spec asks producers for lower case, and upper case denotes the same value.
    pub fn match_digests(&self, artifact: &[Digest]) -> SubjectMatch {
        let (mut agree, mut disagree) = (0usize, 0usize);
        for d in artifact {
            match self.digest.get(d.algorithm().name()) {
                Some(hex) if hex.eq_ignore_ascii_case(d.hex()) => agree += 1,
                Some(_) => disagree += 1,
                None => {}
            }
        }
        match (agree, disagree) {
            (0, 0) => SubjectMatch::NoCommonAlgorithm,
            (0, _) => SubjectMatch::Differs,
            (_, 0) => SubjectMatch::Matches,
            _ => SubjectMatch::Conflicts,
        }
    }

    /// The algorithms of [`SUBJECT_ALGORITHMS`] this subject lists.
    pub fn supported_algorithms(&self) -> impl Iterator<Item = DigestAlgorithm> + '_ {
        SUBJECT_ALGORITHMS.into_iter().filter(|a| self.digest.contains_key(a.name()))
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

    /// The algorithms of [`SUBJECT_ALGORITHMS`] that some subject lists: what a verifier holding the
    /// artifact's bytes has to compute.
    pub fn subject_algorithms(&self) -> BTreeSet<DigestAlgorithm> {
        self.subjects.iter().flat_map(Subject::supported_algorithms).collect()
    }

    /// Fail unless some subject carries `digest`; the error names the digest and the subjects found.
    pub fn require_subject(&self, digest: &Digest) -> Result<(), InTotoError> {
        self.require_subject_digests(std::slice::from_ref(digest))
    }

    /// Fail unless some subject names the artifact whose digests (one per algorithm) are `artifact`: a
    /// subject matches when it shares at least one algorithm with `artifact` and every shared algorithm
    /// agrees (see [`SubjectMatch`]). Algorithms only one side has are ignored.
    pub fn require_subject_digests(&self, artifact: &[Digest]) -> Result<(), InTotoError> {
        let results: Vec<SubjectMatch> = self.subjects.iter().map(|s| s.match_digests(artifact)).collect();
        if results.contains(&SubjectMatch::Matches) {
            return Ok(());
        }
        if results.iter().all(|m| *m == SubjectMatch::NoCommonAlgorithm) {
            let mut known: Vec<&'static str> = artifact.iter().map(|d| d.algorithm().name()).collect();
            known.dedup();
            let found: BTreeSet<String> = self
                .subjects
                .iter()
                .flat_map(|s| s.digest.keys().map(|k| k.chars().take(40).collect()))
                .collect();
            return Err(InTotoError::NoCommonAlgorithm { known, found: found.into_iter().collect() });
        }
        Err(InTotoError::SubjectMismatch {
            expected: artifact.to_vec(),
            found: describe_subjects(&self.subjects, &results),
        })
    }

    /// Fail unless some subject names the artifact `bytes`: its digest is computed in every supported
    /// algorithm the subjects list (npm provenance, for one, lists only sha512).
    pub fn require_subject_bytes(&self, bytes: &[u8]) -> Result<(), InTotoError> {
        let mut algorithms: Vec<DigestAlgorithm> = self.subject_algorithms().into_iter().collect();
        if algorithms.is_empty() {
            // Nothing can match; computing every algorithm makes the error say so truthfully.
            algorithms = SUBJECT_ALGORITHMS.to_vec();
        }
        let digests: Vec<Digest> = algorithms.into_iter().map(|a| Digest::of(a, bytes)).collect();
        self.require_subject_digests(&digests)
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
fn describe_subjects(subjects: &[Subject], results: &[SubjectMatch]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = subjects
        .iter()
        .zip(results)
        .take(SHOWN)
        .map(|(s, m)| {
            let digests: Vec<String> = s
                .digest
                .iter()
                .map(|(alg, hex)| {
                    format!(
                        "{}:{}",
                        alg.chars().take(40).collect::<String>(),
                        hex.chars().take(160).collect::<String>()
                    )
                })
                .collect();
            let name: String = s.name.chars().take(200).collect();
            let note = if *m == SubjectMatch::Conflicts {
                " — one algorithm matches and another does not, so it is not this artifact"
            } else {
                ""
            };
            format!("{name:?} ({}){note}", digests.join(", "))
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

    fn with_subjects(subjects: serde_json::Value) -> Statement {
        let doc = json!({"_type": STATEMENT_V1, "subject": subjects, "predicateType": "x"});
        Statement::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    #[test]
    fn sha512_only_subjects_match_the_bytes_they_name() {
        // npm provenance lists the tarball's sha512 and nothing else.
        let tarball = b"package tarball bytes";
        let sha512 = Digest::of(DigestAlgorithm::Sha512, tarball);
        let s = with_subjects(json!([{"name": "pkg:npm/a@1", "digest": {"sha512": sha512.hex()}}]));
        assert_eq!(s.subject_algorithms().into_iter().collect::<Vec<_>>(), vec![DigestAlgorithm::Sha512]);
        s.require_subject_bytes(tarball).unwrap();
        s.require_subject_digests(std::slice::from_ref(&sha512)).unwrap();
        let err = s.require_subject_bytes(b"other tarball").unwrap_err();
        assert!(matches!(err, InTotoError::SubjectMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&Digest::of(DigestAlgorithm::Sha512, b"other tarball").to_string()));
        // Known only by its sha256, the same tarball cannot be matched, and the error says why.
        let err = s.require_subject(&Digest::sha256_of(tarball)).unwrap_err();
        assert_eq!(
            err,
            InTotoError::NoCommonAlgorithm { known: vec!["sha256"], found: vec!["sha512".into()] }
        );
        assert!(err.to_string().contains("no in-toto subject carries a digest in sha256"), "{err}");
    }

    #[test]
    fn every_shared_algorithm_must_agree() {
        let bytes = b"artifact";
        let sha256 = Digest::sha256_of(bytes);
        let sha512 = Digest::of(DigestAlgorithm::Sha512, bytes);
        let wrong512 = Digest::of(DigestAlgorithm::Sha512, b"something else");
        let both_right = with_subjects(json!([{"digest": {"sha256": sha256.hex(), "sha512": sha512.hex()}}]));
        both_right.require_subject_bytes(bytes).unwrap();
        // sha256 agrees, sha512 does not: the subject contradicts itself and names no artifact we hold.
        let conflicting = with_subjects(
            json!([{"name": "c", "digest": {"sha256": sha256.hex(), "sha512": wrong512.hex()}}]),
        );
        assert_eq!(conflicting.subjects[0].match_digests(&[sha256.clone(), sha512]), SubjectMatch::Conflicts);
        let err = conflicting.require_subject_bytes(bytes).unwrap_err();
        assert!(err.to_string().contains("one algorithm matches and another does not"), "{err}");
        // Known only by sha256 there is nothing to contradict it: the spec's own example,
        // {"sha256": "abcd", "sha512": "1234"} matches {"sha256": "abcd"}.
        conflicting.require_subject(&sha256).unwrap();
        // Another subject that matches fully still makes the statement cover the artifact.
        let two = with_subjects(json!([
            {"name": "c", "digest": {"sha256": sha256.hex(), "sha512": wrong512.hex()}},
            {"name": "ok", "digest": {"sha512": Digest::of(DigestAlgorithm::Sha512, bytes).hex()}}
        ]));
        two.require_subject_bytes(bytes).unwrap();
    }

    #[test]
    fn unknown_algorithms_are_ignored_and_none_supported_is_a_clear_failure() {
        let bytes = b"artifact";
        let sha256 = Digest::sha256_of(bytes);
        // md5/sha1/gitCommit are not compared, even when their value is wrong.
        let s = with_subjects(json!([{"digest": {"md5": "00", "sha1": "nonsense", "gitCommit": "abc",
            "sha256": sha256.hex().to_uppercase()}}]));
        s.require_subject_bytes(bytes).unwrap();
        s.require_subject(&sha256).unwrap();
        let only_unknown = with_subjects(json!([{"digest": {"gitCommit": "abc", "sha1": "def"}}]));
        assert!(only_unknown.subject_algorithms().is_empty());
        let err = only_unknown.require_subject_bytes(bytes).unwrap_err();
        assert_eq!(
            err,
            InTotoError::NoCommonAlgorithm {
                known: vec!["sha256", "sha384", "sha512"],
                found: vec!["gitCommit".into(), "sha1".into()]
            }
        );
        assert!(err.to_string().contains("gitCommit, sha1"), "{err}");
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
