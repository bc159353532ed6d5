//! `ComplianceProfile`: what an artifact must carry beyond a signature — annotations, attestations, an
//! SBOM, model metadata — checked by vouch's built-in Rego modules and the profile's own modules
//! (see `crate::compliance`).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::Condition;

/// What an artifact must carry to comply. Every rule given must hold; an empty profile requires nothing.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vouch.dev",
    version = "v1alpha1",
    kind = "ComplianceProfile",
    shortname = "cprof",
    status = "ComplianceProfileStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceProfileSpec {
    /// Required OCI manifest annotations / image config labels, each with allowed values or a pattern.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<AnnotationRule>,
    /// Required attestations (verified by the policy's authorities), by predicate type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationRule>,
    /// SBOM requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomRule>,
    /// Rules for model artifacts (ModelPack / ModelKit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRule>,
    /// Extra Rego modules (Rego v1): `package vouch.compliance.custom.<name>`, each defining
    /// `deny contains msg if ...`; every message is a violation. They read `input` (the artifact's
    /// document) and `data.profile` (this spec without `rego`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rego: Vec<String>,
}

/// Where an annotation is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationSource {
    /// The OCI manifest's `annotations`.
    Manifest,
    /// The config: an image config's `Labels`, a model config's descriptor fields.
    Config,
    /// Both: present in at least one, and every value present must be allowed.
    #[default]
    Any,
}

impl std::fmt::Display for AnnotationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Manifest => "manifest",
            Self::Config => "config",
            Self::Any => "any",
        })
    }
}

/// A required annotation: present, and if `values` or `pattern` is given, with an allowed value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationRule {
    /// The annotation key, e.g. `org.opencontainers.image.licenses`.
    pub key: String,
    /// Where to look (default `any`).
    #[serde(default, rename = "in")]
    pub in_: AnnotationSource,
    /// Allowed values (exact match); exclusive with `pattern`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// A regular expression the whole value must match (Rust regex syntax); exclusive with `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// A required attestation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationRule {
    /// The in-toto predicate type, e.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    /// For SLSA provenance: a regular expression the whole builder id must match (v1
    /// `predicate.runDetails.builder.id`, v0.2 `predicate.builder.id`) for some verified attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_id_pattern: Option<String>,
    /// A Rego module defining `allow` (and optionally `deny` messages), true for some verified
    /// attestation of this type. Input: `predicateType`, `predicate`, `artifact` {reference, digest}, `object`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// The SBOM requirement: a verified CycloneDX SBOM must be present when `required` or `minSpecVersion`
/// is set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SbomRule {
    /// Whether an SBOM is required.
    #[serde(default)]
    pub required: bool,
    /// The lowest accepted CycloneDX `specVersion`, e.g. `"1.5"` (compared numerically; quote it in YAML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_spec_version: Option<String>,
}

/// Rules for model artifacts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRule {
    /// The artifact must be a model (ModelPack or ModelKit); otherwise the model rules apply to models only.
    #[serde(default)]
    pub required: bool,
    /// SPDX license ids the model may be used under (case-insensitive). When set, a model must declare a
    /// license and every license expression must be satisfiable with these ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_licenses: Vec<String>,
    /// Weight formats refused (case-insensitive), matched against the model config's `format`; `pickle`
    /// also refuses files named `*.pkl`, `*.pickle`, `*.pt`, `*.pth`, `*.bin`, `*.ckpt`, `*.joblib`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_formats: Vec<String>,
    /// File name endings refused in any layer's path (case-insensitive), e.g. `.pkl`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_file_extensions: Vec<String>,
    /// The model config must name its source (`sourceURL`).
    #[serde(default)]
    pub require_source_url: bool,
}

/// Status of a ComplianceProfile, written by the cluster integration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceProfileStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: True when the profile compiled; False with every problem in the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl ComplianceProfileStatus {
    /// The `Ready` condition for `generation`: True without problems, else False listing them all.
    pub fn ready(generation: Option<i64>, problems: &[String], now: &str) -> Self {
        let mut ready = Condition::ready(generation, problems, now);
        if problems.is_empty() {
            ready.message = "profile is in force".to_owned();
        }
        Self { observed_generation: generation, conditions: vec![ready] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_reads_from_yaml_with_defaults() {
        let p: ComplianceProfile = serde_yaml::from_str(
            r#"
apiVersion: vouch.dev/v1alpha1
kind: ComplianceProfile
metadata: {name: regulated-v1}
spec:
  annotations:
    - key: org.opencontainers.image.source
      pattern: "https://github.com/acme/.*"
    - key: org.opencontainers.image.licenses
      in: manifest
      values: [Apache-2.0, MIT]
  attestations:
    - predicateType: https://slsa.dev/provenance/v1
      builderIdPattern: "https://github.com/actions/runner.*"
  sbom: {minSpecVersion: "1.5"}
  model: {allowedLicenses: [Apache-2.0], deniedFormats: [pickle]}
"#,
        )
        .unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("regulated-v1"));
        let s = &p.spec;
        assert_eq!(s.annotations[0].in_, AnnotationSource::Any, "default is any");
        assert_eq!(s.annotations[1].in_, AnnotationSource::Manifest);
        assert_eq!(s.annotations[1].values, ["Apache-2.0", "MIT"]);
        assert_eq!(s.sbom, Some(SbomRule { required: false, min_spec_version: Some("1.5".into()) }));
        let m = s.model.as_ref().unwrap();
        assert!(!m.required && !m.require_source_url);
        assert_eq!(m.denied_formats, ["pickle"]);
        assert!(s.rego.is_empty());
    }

    #[test]
    fn unknown_annotation_source_is_rejected() {
        let e = serde_yaml::from_str::<AnnotationRule>("{key: a, in: layer}").unwrap_err();
        assert!(e.to_string().contains("unknown variant `layer`"), "{e}");
    }

    #[test]
    fn status_ready_lists_problems() {
        let s = ComplianceProfileStatus::ready(Some(3), &["a".into(), "b".into()], "2026-01-01T00:00:00Z");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions[0].status, "False");
        assert_eq!(s.conditions[0].message, "a; b");
    }
}
