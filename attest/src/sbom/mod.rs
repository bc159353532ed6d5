//! SBOMs: CycloneDX JSON documents, parsed and validated against the official CycloneDX JSON schemas.
//!
//! cyclonedx-bom 0.8 reads only up to spec 1.5 while generators emit 1.6, so validation uses the official
//! schemas (vendored under `attest/schemas/cyclonedx/`) for every version 1.4–1.7, and the facts policies
//! need are read from the validated JSON directly.

mod schema;

pub use schema::SpecVersion;

use crate::digest::Digest;

/// Media type of CycloneDX JSON (OCI artifactType / layer media type).
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// Largest SBOM document vouch will parse.
pub const MAX_SBOM_BYTES: usize = 32 * 1024 * 1024;

/// How many schema violations an error lists.
const SHOWN_VIOLATIONS: usize = 5;
/// How many schema violations are counted at most (a broken document can have very many).
const COUNTED_VIOLATIONS: usize = 1_000;

/// The format of an SBOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SbomFormat {
    /// CycloneDX, JSON encoding.
    CycloneDxJson,
}

/// What vouch reports about a valid SBOM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SbomFacts {
    /// `specVersion`, e.g. `1.6`.
    pub spec_version: String,
    /// `serialNumber` (a `urn:uuid:`), if present.
    pub serial_number: Option<String>,
    /// Number of components, nested ones included (the `metadata.component` subject is not counted).
    pub component_count: usize,
    /// SHA-256 of the document bytes (for an in-toto predicate: of its JCS canonical form).
    pub digest: Digest,
    /// The document format.
    pub format: SbomFormat,
}

/// One schema violation: where (JSON pointer into the document) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer of the offending value (`""` is the document root).
    pub pointer: String,
    /// What the schema requires there.
    pub message: String,
}

/// Why an SBOM was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    /// Larger than [`MAX_SBOM_BYTES`].
    #[error("SBOM of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON.
    #[error("SBOM is not valid JSON: {reason}")]
    NotJson {
        /// The parser's message.
        reason: String,
    },
    /// JSON, but not a CycloneDX document.
    #[error("not a CycloneDX document: {reason}")]
    NotCycloneDx {
        /// What is missing or wrong.
        reason: String,
    },
    /// A CycloneDX version vouch does not validate.
    #[error("unsupported CycloneDX specVersion {found:?} (supported: 1.4, 1.5, 1.6, 1.7)")]
    UnsupportedSpecVersion {
        /// The `specVersion` found.
        found: String,
    },
    /// The document violates the official schema of its version.
    #[error(
        "CycloneDX {spec_version} document violates the official schema ({} violations): {}",
        count_text(.count, .truncated),
        describe(.violations)
    )]
    SchemaInvalid {
        /// The document's version.
        spec_version: SpecVersion,
        /// The first few violations.
        violations: Vec<SchemaViolation>,
        /// Number of violations counted.
        count: usize,
        /// Whether counting stopped early.
        truncated: bool,
    },
    /// The embedded schema failed to compile (a build defect; fails closed).
    #[error("CycloneDX {spec_version} schema unavailable: {reason}")]
    SchemaUnavailable {
        /// The version whose schema failed.
        spec_version: SpecVersion,
        /// The compiler's message.
        reason: String,
    },
}

fn count_text(count: &usize, truncated: &bool) -> String {
    if *truncated {
        format!("more than {count}")
    } else {
        count.to_string()
    }
}

fn describe(violations: &[SchemaViolation]) -> String {
    violations.iter().map(|v| format!("at {:?}: {}", v.pointer, v.message)).collect::<Vec<_>>().join("; ")
}

/// Parse and validate a CycloneDX JSON document: size cap, JSON, `bomFormat`, supported `specVersion`,
/// schema validity; then report its facts.
pub fn parse_cyclonedx(bytes: &[u8]) -> Result<SbomFacts, SbomError> {
    if bytes.len() > MAX_SBOM_BYTES {
        return Err(SbomError::TooLarge { size: bytes.len(), max: MAX_SBOM_BYTES });
    }
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| SbomError::NotJson { reason: e.to_string() })?;
    facts_of(&document, Digest::sha256_of(bytes))
}

/// Validate a CycloneDX BOM given as an in-toto predicate (predicate type `https://cyclonedx.org/bom`).
///
/// The digest is the SHA-256 of the predicate's JCS (RFC 8785) canonical form, since no document bytes exist.
pub fn from_predicate(value: &serde_json::Value) -> Result<SbomFacts, SbomError> {
    let canonical =
        serde_json_canonicalizer::to_vec(value).map_err(|e| SbomError::NotJson { reason: e.to_string() })?;
    if canonical.len() > MAX_SBOM_BYTES {
        return Err(SbomError::TooLarge { size: canonical.len(), max: MAX_SBOM_BYTES });
    }
    facts_of(value, Digest::sha256_of(&canonical))
}

fn facts_of(document: &serde_json::Value, digest: Digest) -> Result<SbomFacts, SbomError> {
    let object = document
        .as_object()
        .ok_or_else(|| SbomError::NotCycloneDx { reason: "document is not a JSON object".into() })?;
    match object.get("bomFormat") {
        Some(serde_json::Value::String(f)) if f == "CycloneDX" => {}
        Some(other) => {
            return Err(SbomError::NotCycloneDx {
                reason: format!("bomFormat is {}, expected \"CycloneDX\"", truncate(&other.to_string())),
            })
        }
        None => return Err(SbomError::NotCycloneDx { reason: "bomFormat is missing".into() }),
    }
    let spec_text = match object.get("specVersion") {
        Some(serde_json::Value::String(v)) => v.as_str(),
        Some(other) => return Err(SbomError::UnsupportedSpecVersion { found: truncate(&other.to_string()) }),
        None => return Err(SbomError::NotCycloneDx { reason: "specVersion is missing".into() }),
    };
    let spec_version = SpecVersion::parse(spec_text)
        .ok_or_else(|| SbomError::UnsupportedSpecVersion { found: truncate(spec_text) })?;
    validate(document, spec_version)?;
    Ok(SbomFacts {
        spec_version: spec_version.as_str().to_owned(),
        serial_number: object.get("serialNumber").and_then(|v| v.as_str()).map(str::to_owned),
        component_count: count_components(document),
        digest,
        format: SbomFormat::CycloneDxJson,
    })
}

fn validate(document: &serde_json::Value, spec_version: SpecVersion) -> Result<(), SbomError> {
    let validator = schema::validator(spec_version)
        .map_err(|reason| SbomError::SchemaUnavailable { spec_version, reason })?;
    if validator.is_valid(document) {
        return Ok(());
    }
    let mut violations = Vec::new();
    let mut count = 0;
    for error in validator.iter_errors(document).take(COUNTED_VIOLATIONS + 1) {
        count += 1;
        if violations.len() < SHOWN_VIOLATIONS {
            violations.push(SchemaViolation {
                pointer: error.instance_path.to_string(),
                message: truncate(&error.to_string()),
            });
        }
    }
    let truncated = count > COUNTED_VIOLATIONS;
    Err(SbomError::SchemaInvalid {
        spec_version,
        violations,
        count: count.min(COUNTED_VIOLATIONS),
        truncated,
    })
}

/// All entries of `components`, recursively through each component's own `components`.
fn count_components(document: &serde_json::Value) -> usize {
    let mut count = 0;
    // An explicit stack: nesting depth is bounded by the JSON parser, but recursion is not needed.
    let mut pending: Vec<&serde_json::Value> = vec![document];
    while let Some(node) = pending.pop() {
        if let Some(children) = node.get("components").and_then(|c| c.as_array()) {
            count += children.len();
            pending.extend(children.iter());
        }
    }
    count
}

/// Bound text taken from a document before it goes into an error message.
fn truncate(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bom(version: &str, components: serde_json::Value) -> serde_json::Value {
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": version,
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "version": 1,
            "components": components,
        })
    }

    #[test]
    fn accepts_minimal_documents_of_every_supported_version() {
        for v in SpecVersion::ALL {
            let doc = bom(
                v.as_str(),
                json!([{"type": "library", "name": "a", "components": [{"type": "library", "name": "b"}]}]),
            );
            let bytes = serde_json::to_vec(&doc).unwrap();
            let facts = parse_cyclonedx(&bytes).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(facts.spec_version, v.as_str());
            assert_eq!(facts.component_count, 2, "nested components count");
            assert_eq!(facts.digest, Digest::sha256_of(&bytes));
            assert_eq!(facts.serial_number.as_deref(), Some("urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"));
        }
    }

    #[test]
    fn schema_violations_carry_pointers() {
        let nameless = bom("1.6", json!([{"type": "library"}]));
        let err = parse_cyclonedx(&serde_json::to_vec(&nameless).unwrap()).unwrap_err();
        let SbomError::SchemaInvalid { violations, .. } = &err else { panic!("{err}") };
        assert!(violations.iter().any(|v| v.pointer == "/components/0"), "{err}");
        assert!(err.to_string().contains("name"), "{err}");

        let bad_type = bom("1.5", json!([{"type": "spaceship", "name": "x"}]));
        let err = parse_cyclonedx(&serde_json::to_vec(&bad_type).unwrap()).unwrap_err();
        let SbomError::SchemaInvalid { violations, .. } = &err else { panic!("{err}") };
        assert!(violations.iter().any(|v| v.pointer == "/components/0/type"), "{err}");
    }

    #[test]
    fn rejects_unsupported_versions_and_non_cyclonedx() {
        for v in ["1.3", "9.9", "1.6.0"] {
            let err = parse_cyclonedx(&serde_json::to_vec(&bom(v, json!([]))).unwrap()).unwrap_err();
            assert!(matches!(err, SbomError::UnsupportedSpecVersion { ref found } if found == v), "{err}");
        }
        let numeric = json!({"bomFormat": "CycloneDX", "specVersion": 1.6});
        assert!(matches!(
            parse_cyclonedx(&serde_json::to_vec(&numeric).unwrap()),
            Err(SbomError::UnsupportedSpecVersion { .. })
        ));
        let spdx = json!({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT"});
        assert!(matches!(
            parse_cyclonedx(&serde_json::to_vec(&spdx).unwrap()),
            Err(SbomError::NotCycloneDx { .. })
        ));
        let other = json!({"bomFormat": "SPDX", "specVersion": "1.6"});
        assert!(matches!(
            parse_cyclonedx(&serde_json::to_vec(&other).unwrap()),
            Err(SbomError::NotCycloneDx { .. })
        ));
        assert!(matches!(parse_cyclonedx(b"[1,2]"), Err(SbomError::NotCycloneDx { .. })));
        assert!(matches!(parse_cyclonedx(b"{"), Err(SbomError::NotJson { .. })));
    }

    #[test]
    fn rejects_oversized_documents() {
        let big = vec![b' '; MAX_SBOM_BYTES + 1];
        assert!(matches!(parse_cyclonedx(&big), Err(SbomError::TooLarge { .. })));
    }

    #[test]
    fn validates_predicates_with_canonical_digest() {
        let doc = bom("1.6", json!([{"type": "library", "name": "a"}]));
        let facts = from_predicate(&doc).unwrap();
        assert_eq!(facts.component_count, 1);
        assert_eq!(facts.digest, Digest::sha256_of(&serde_json_canonicalizer::to_vec(&doc).unwrap()));
        let invalid = bom("1.6", json!([{"name": "a"}]));
        assert!(matches!(from_predicate(&invalid), Err(SbomError::SchemaInvalid { .. })));
    }
}
