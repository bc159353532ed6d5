//! Compliance profiles per (artifact, policy): the profile the policy assigns (`complianceProfile`) and
//! the one the workload selects (annotation `vouch.dev/compliance-profile` on the object or its pod
//! template). The profile's Rego runs on the input document of docs/compliance.md, built only from verified
//! facts (signatures, attestations, SBOM verified with the policy's authorities) and from the
//! digest-pinned manifest and config (content-addressed, so read without a signature).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use vouch_attest::registry::ManifestKind;
use vouch_attest::verify::{ArtifactVerifier, Requirement, VerifyError};
use vouch_attest::{ArtifactRef, Digest};

use super::{cannot_verify, AdmissionInput, ArtifactCheck, Engine, ObjectJson};
use crate::compliance::PROFILE_ANNOTATION;
use crate::crd::SignatureFormat;
use crate::decision::FindingResult;
use crate::policy_set::CompiledPolicy;

/// Largest image or model config read for its labels.
const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Most manifests whose annotations are kept (content-addressed, so never stale).
pub(super) const MANIFEST_CACHE_ENTRIES: u64 = 10_000;

/// What the pinned manifest and its config say (the `manifest` and `config` members of the input).
#[derive(Debug, Clone)]
pub(super) struct ManifestFacts {
    manifest: Value,
    config: Value,
}

/// Manifest facts by digest.
pub(super) type ManifestCache = moka::future::Cache<Digest, Arc<ManifestFacts>>;

/// The profiles that apply to an artifact under `policy`: the policy's, then the workload's (once each).
pub(super) fn profiles_for(policy: &CompiledPolicy, input: &AdmissionInput) -> Vec<String> {
    let mut out: Vec<String> = policy.compliance_profile.iter().cloned().collect();
    if let Some(selected) = workload_profile(input) {
        if !out.contains(&selected) {
            out.push(selected);
        }
    }
    out
}

/// `vouch.dev/compliance-profile` of the object, else of its pod template.
fn workload_profile(input: &AdmissionInput) -> Option<String> {
    let object = input.object.as_ref()?.read();
    let spec = crate::extract::pod_spec_pointer(&input.kind.group, &input.kind.kind);
    let template = spec.and_then(|s| s.strip_suffix("/spec")).filter(|t| !t.is_empty());
    // The object's own annotation when it is a string (even an empty one), else the template's.
    fn annotated(owner: &Value) -> Option<&str> {
        owner.get("metadata")?.get("annotations")?.get(PROFILE_ANNOTATION)?.as_str()
    }
    annotated(object)
        .or_else(|| annotated(crate::extract::value_at(object, template?)?))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

/// The outcome of one profile for one artifact: pass, or fail/error with the reason.
pub(super) struct Outcome {
    pub(super) result: FindingResult,
    pub(super) reason: String,
}

impl Outcome {
    fn fail(reason: String) -> Self {
        Self { result: FindingResult::Fail, reason }
    }
    fn error(reason: String) -> Self {
        Self { result: FindingResult::Error, reason }
    }
}

impl Engine {
    /// Evaluate profile `name` for the artifact of `at` (pinned) under its policy.
    pub(super) async fn check_profile(
        &self,
        at: ArtifactCheck<'_>,
        name: &str,
        verifier: &ArtifactVerifier,
    ) -> Outcome {
        let ArtifactCheck { loaded, policy, artifact, pinned, input } = at;
        let profile = match loaded.set.profiles().get(name).map(|p| &p.compiled) {
            None => return Outcome::fail(format!("unknown compliance profile {name:?}")),
            Some(Err(problems)) => {
                return Outcome::fail(format!("compliance profile {name} is invalid: {problems}"))
            }
            Some(Ok(p)) => p.clone(),
        };
        let needs = profile.needs();
        let mut signatures = Vec::new();
        let mut attestations = Vec::new();
        let mut sbom = Value::Null;
        let mut requirements = vec![Requirement::Signature];
        requirements.extend(
            needs
                .attestation_predicate_types
                .iter()
                .map(|t| Requirement::Attestation { predicate_type: t.clone() }),
        );
        if needs.sbom {
            requirements.push(Requirement::Sbom);
        }
        for auth in policy.authorities.iter().filter(|a| a.format == SignatureFormat::Cosign) {
            let Some(v) = loaded.verifiers.get(&super::verifier_key(auth)) else { continue };
            let v = match v.with_credentials(&credentials_of(policy, input)) {
                Ok(v) => v,
                Err(_) => continue,
            };
            for requirement in &requirements {
                let verdict = match v.verify(pinned, &auth.authority, requirement).await {
                    Ok(v) => v,
                    Err(e) if e.is_transient() => return Outcome::error(cannot_verify(&e)),
                    // Not verified: the fact is simply absent from the document.
                    Err(_) => continue,
                };
                let Ok(facts) = verdict.outcome else { continue };
                for s in &facts.signatures {
                    signatures.push(json!({ "signer": s.signer }));
                }
                for a in &facts.attestations {
                    attestations.push(json!({
                        "predicateType": a.predicate_type,
                        "predicate": a.predicate,
                        "signer": a.signer,
                    }));
                }
                if let (Some(s), true) = (&facts.sbom, sbom.is_null()) {
                    sbom = json!({
                        "specVersion": s.spec_version,
                        "components": s.component_count,
                        "digest": s.digest.to_string(),
                    });
                }
            }
        }
        dedup(&mut signatures);
        dedup(&mut attestations);
        let model = match verifier.model(pinned).await {
            Ok(m) => m,
            Err(e) if e.is_transient() => return Outcome::error(cannot_verify(&e)),
            Err(e) => return Outcome::fail(format!("cannot read the model: {e}")),
        };
        let manifest = match self.manifest_facts(verifier, pinned, model.as_deref()).await {
            Ok(m) => m,
            Err(e) if e.is_transient() => return Outcome::error(cannot_verify(&e)),
            Err(e) => return Outcome::fail(format!("cannot read the manifest: {e}")),
        };
        // The whole object (not only what extraction reads); unreadable: the profile is not met.
        let object = match input.object.as_ref().map(ObjectJson::whole).transpose() {
            Ok(o) => o,
            Err(e) => return Outcome::fail(format!("profile not evaluated: {e}")),
        };
        let document = json!({
            "profile": { "name": name },
            "object": object,
            "artifact": {
                "reference": pinned.to_string(),
                "digest": pinned.digest().map(ToString::to_string),
                "location": { "kind": artifact.location.kind, "name": artifact.location.name },
                "manifest": manifest.manifest,
                "config": manifest.config,
                "signatures": signatures,
                "attestations": attestations,
                "sbom": sbom,
                "model": model.as_deref(),
            },
        });
        let Ok(permit) = self.shared.rego_permits.clone().acquire_owned().await else {
            return Outcome::error("compliance not evaluated (engine shutting down)".into());
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            profile.evaluate(&document).map_err(|e| e.to_string())
        })
        .await;
        match outcome {
            Ok(Ok(violations)) if violations.is_empty() => {
                Outcome { result: FindingResult::Pass, reason: format!("complies with profile {name}") }
            }
            Ok(Ok(violations)) => Outcome::fail(violations.join("; ")),
            Ok(Err(e)) => Outcome::fail(format!("profile {name} could not be evaluated: {e}")),
            Err(e) => Outcome::fail(format!("profile {name} could not be evaluated: {e}")),
        }
    }

    /// The manifest's media type, artifact type and annotations, and its config's labels (image) or
    /// descriptor fields (model); cached by digest.
    async fn manifest_facts(
        &self,
        verifier: &ArtifactVerifier,
        pinned: &ArtifactRef,
        model: Option<&vouch_attest::model::ModelFacts>,
    ) -> Result<Arc<ManifestFacts>, VerifyError> {
        let digest = pinned
            .digest()
            .cloned()
            .ok_or_else(|| VerifyError::Config { reason: "compliance needs a pinned reference".into() })?;
        let model_config = model.map(|m| model_annotations(&m.config_raw));
        let registry = verifier.registry();
        self.shared
            .manifests
            .try_get_with(digest, async {
                let fetched = registry.fetch_manifest(pinned).await?;
                let parsed = fetched.parse()?;
                let (manifest, config) = match parsed {
                    ManifestKind::Image(m) => {
                        let labels = match model_config {
                            Some(fields) => fields,
                            None => {
                                let bytes =
                                    registry.fetch_blob(pinned, &m.config.digest, MAX_CONFIG_BYTES).await?;
                                image_labels(&bytes)
                            }
                        };
                        (
                            json!({
                                "mediaType": m.media_type.unwrap_or(fetched.media_type),
                                "artifactType": m.artifact_type,
                                "annotations": m.annotations,
                            }),
                            json!({ "mediaType": m.config.media_type, "annotations": labels }),
                        )
                    }
                    ManifestKind::Index(i) => (
                        json!({
                            "mediaType": fetched.media_type,
                            "artifactType": Value::Null,
                            "annotations": i.annotations,
                        }),
                        json!({ "mediaType": Value::Null, "annotations": {} }),
                    ),
                };
                Ok::<_, vouch_attest::registry::RegistryError>(Arc::new(ManifestFacts { manifest, config }))
            })
            .await
            .map_err(VerifyError::Registry)
    }
}

fn credentials_of(policy: &CompiledPolicy, input: &AdmissionInput) -> vouch_attest::registry::Credentials {
    let mut credentials = input.pull_credentials.clone();
    if let Some(c) = &policy.credentials {
        credentials.merge(c.clone());
    }
    credentials
}

fn dedup(list: &mut Vec<Value>) {
    let mut seen = std::collections::BTreeSet::new();
    list.retain(|v| seen.insert(v.to_string()));
}

/// `config.Labels` of an image config (empty when absent or unreadable).
fn image_labels(bytes: &[u8]) -> Value {
    let labels = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|c| c.pointer("/config/Labels").cloned())
        .filter(Value::is_object);
    labels.unwrap_or_else(|| json!({}))
}

/// A model config's descriptor fields as annotations: strings as they are, lists of strings joined by ",".
fn model_annotations(config: &Value) -> Value {
    let mut out = Map::new();
    for section in ["/descriptor", "/config", "/package/0", "/model"] {
        let Some(fields) = config.pointer(section).and_then(Value::as_object) else { continue };
        for (k, v) in fields {
            let text = match v {
                Value::String(s) => Some(s.clone()),
                Value::Array(items) => {
                    let parts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    parts.map(|p| p.join(","))
                }
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            if let Some(text) = text {
                out.entry(k.clone()).or_insert(Value::String(text));
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_descriptor_fields_become_annotations() {
        let config = json!({"descriptor": {"name": "m", "licenses": ["MIT", "Apache-2.0"]},
            "config": {"format": "safetensors", "paramSize": "8b"}});
        let a = model_annotations(&config);
        assert_eq!(a["name"], "m");
        assert_eq!(a["licenses"], "MIT,Apache-2.0");
        assert_eq!(a["format"], "safetensors");
    }

    #[test]
    fn image_labels_are_read_from_the_config() {
        let a = image_labels(br#"{"config": {"Labels": {"org.opencontainers.image.source": "https://x"}}}"#);
        assert_eq!(a["org.opencontainers.image.source"], "https://x");
        assert_eq!(image_labels(b"not json"), json!({}));
    }
}
