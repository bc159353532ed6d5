//! Compliance profiles, evaluated with Rego (regorus). vouch's own checks are the Rego modules in
//! `policies/rego/compliance/` (compiled into the binary); a profile adds its own modules. Everything is
//! parsed and analysed once ([`CompiledProfile::compile`]); each evaluation works on a clone.
//!
//! The modules read `input` (the artifact's document, see docs/compliance.md) and `data.profile` (the
//! profile's spec without `rego`, plus its `name`); each defines `deny contains msg if ...`, and every
//! message is a violation.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;

use crate::crd::ComplianceProfileSpec;
use crate::rego::RegoCondition;

/// The annotation by which a workload (object or pod template metadata) selects a profile.
pub const PROFILE_ANNOTATION: &str = "vouch.dev/compliance-profile";

/// The package every user module must live under.
pub const CUSTOM_PACKAGE_PREFIX: &str = "vouch.compliance.custom.";

/// vouch's built-in modules: (file name, package, source). `lib` defines helpers and no `deny`.
const BUILT_IN: [(&str, &str, &str); 5] = [
    ("lib.rego", "vouch.compliance.lib", include_str!("../rego/compliance/lib.rego")),
    ("annotations.rego", "vouch.compliance.annotations", include_str!("../rego/compliance/annotations.rego")),
    (
        "attestations.rego",
        "vouch.compliance.attestations",
        include_str!("../rego/compliance/attestations.rego"),
    ),
    ("sbom.rego", "vouch.compliance.sbom", include_str!("../rego/compliance/sbom.rego")),
    ("model.rego", "vouch.compliance.model", include_str!("../rego/compliance/model.rego")),
];

/// Wall-clock budget of one evaluation, all modules together (regorus checks it between steps; a single
/// builtin call such as a huge `numbers.range` is not interrupted).
const EVAL_BUDGET: Duration = Duration::from_secs(2);
/// Largest user module accepted.
const MAX_MODULE_BYTES: usize = 256 * 1024;
/// Most user modules per profile.
const MAX_MODULES: usize = 32;
/// Largest input document accepted (serialised JSON).
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;
/// Violations reported per evaluation; the rest are counted.
const MAX_VIOLATIONS: usize = 32;
/// Longest violation message kept (characters); longer ones are cut with "...".
const MAX_MESSAGE_CHARS: usize = 1024;

/// A profile could not be evaluated (this is not a violation: the engine decides by failure policy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplianceError {
    /// The input document is larger than [`MAX_INPUT_BYTES`].
    #[error("the input document is larger than {limit} bytes")]
    InputTooLarge {
        /// The profile.
        profile: String,
        /// The limit.
        limit: usize,
    },
    /// A module failed at run time (a builtin error, a conflict, the time budget).
    #[error("module {module} failed: {reason}")]
    Eval {
        /// The profile.
        profile: String,
        /// The module (`annotations.rego`, `rego[0]`, `attestations[1].condition`).
        module: String,
        /// What went wrong.
        reason: String,
    },
}

/// What the engine must verify so that the profile sees the facts it checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileNeeds {
    /// Predicate types of the required attestations (sorted, unique).
    pub attestation_predicate_types: Vec<String>,
    /// Whether a verified SBOM is needed.
    pub sbom: bool,
    /// Whether model facts are needed.
    pub model: bool,
}

/// A module whose `deny` set is collected.
#[derive(Debug, Clone)]
struct DenyModule {
    /// Name used in errors.
    name: String,
    /// `data.<package>.deny`.
    rule: String,
}

/// An attestation rule's Rego condition.
#[derive(Debug, Clone)]
struct AttestationCondition {
    /// `attestations[i].condition`.
    name: String,
    predicate_type: String,
    condition: RegoCondition,
}

/// A profile compiled once: clone freely, evaluate concurrently (from blocking threads).
#[derive(Clone)]
pub struct CompiledProfile {
    /// The profile's name.
    pub name: String,
    engine: regorus::Engine,
    modules: Vec<DenyModule>,
    conditions: Vec<AttestationCondition>,
    needs: ProfileNeeds,
}

impl std::fmt::Debug for CompiledProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledProfile")
            .field("name", &self.name)
            .field("modules", &self.modules.iter().map(|m| &m.name).collect::<Vec<_>>())
            .field("needs", &self.needs)
            .finish()
    }
}

impl CompiledProfile {
    /// Validate the spec and compile the built-in modules with the profile's own; every problem at once.
    pub fn compile(name: &str, spec: &ComplianceProfileSpec) -> Result<Self, Vec<String>> {
        let mut problems = validate(spec);
        let conditions = compile_conditions(name, spec, &mut problems);
        let data = match profile_data(name, spec) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                return Err(problems);
            }
        };
        let base = match built_in_engine(&data) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("built-in compliance modules: {e}"));
                return Err(problems);
            }
        };
        let mut engine = base.clone();
        let mut modules: Vec<DenyModule> = BUILT_IN
            .iter()
            .filter(|(file, _, _)| *file != "lib.rego")
            .map(|(file, package, _)| DenyModule {
                name: (*file).to_owned(),
                rule: format!("data.{package}.deny"),
            })
            .collect();
        if spec.rego.len() > MAX_MODULES {
            problems.push(format!("rego: {} modules, at most {MAX_MODULES} are accepted", spec.rego.len()));
        } else {
            for (i, module) in spec.rego.iter().enumerate() {
                let module_name = format!("rego[{i}]");
                match check_user_module(&base, &module_name, module) {
                    Ok(package) => {
                        // Checked alone against the built-ins; added to the shared engine only when good.
                        if let Err(e) = engine.add_policy(module_name.clone(), module.clone()) {
                            problems.push(format!("{module_name}: {e}"));
                            continue;
                        }
                        let rule = format!("data.{package}.deny");
                        if !modules.iter().any(|m| m.rule == rule) {
                            modules.push(DenyModule { name: module_name, rule });
                        }
                    }
                    Err(e) => problems.push(format!("{module_name}: {e}")),
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // Analyse everything together once (two user modules may still conflict); clones start prepared.
        if let Err(e) = prepare(&mut engine) {
            return Err(vec![format!("rego: the modules do not work together: {e}")]);
        }
        Ok(Self { name: name.to_owned(), engine, modules, conditions, needs: needs_of(spec) })
    }

    /// What the engine must verify for this profile.
    pub fn needs(&self) -> ProfileNeeds {
        self.needs.clone()
    }

    /// The violations of the artifact described by `input` (empty = compliant), one sentence each.
    /// CPU-bound: call from a blocking thread.
    pub fn evaluate(&self, input: &serde_json::Value) -> Result<Vec<String>, ComplianceError> {
        if !fits(input, MAX_INPUT_BYTES) {
            return Err(ComplianceError::InputTooLarge {
                profile: self.name.clone(),
                limit: MAX_INPUT_BYTES,
            });
        }
        let deadline = Instant::now() + EVAL_BUDGET;
        let fail = |module: &str, reason: String| ComplianceError::Eval {
            profile: self.name.clone(),
            module: module.to_owned(),
            reason,
        };
        let mut engine = self.engine.clone();
        engine.set_input(regorus::Value::from(input.clone()));
        let mut violations = Vec::new();
        for module in &self.modules {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(fail(&module.name, format!("the time budget of {EVAL_BUDGET:?} ran out")));
            }
            engine.set_execution_timer_config(ExecutionTimerConfig {
                limit: left,
                check_interval: NonZeroU32::MIN,
            });
            let value =
                engine.eval_rule(module.rule.clone()).map_err(|e| fail(&module.name, e.to_string()))?;
            for m in messages(&value).map_err(|e| fail(&module.name, e))? {
                push_unique(&mut violations, m);
            }
            // Attestation conditions report right after the built-in attestation checks.
            if module.name == "attestations.rego" {
                for m in self.condition_violations(input)? {
                    push_unique(&mut violations, m);
                }
            }
        }
        if violations.len() > MAX_VIOLATIONS {
            let more = violations.len() - MAX_VIOLATIONS;
            violations.truncate(MAX_VIOLATIONS);
            violations.push(format!("... and {more} more violations"));
        }
        Ok(violations)
    }

    /// For each attestation rule with a condition: a violation unless some verified attestation of its
    /// type satisfies it. Nothing when there is no attestation of the type (the built-in check says so).
    fn condition_violations(&self, input: &serde_json::Value) -> Result<Vec<String>, ComplianceError> {
        let attestations = input
            .pointer("/artifact/attestations")
            .and_then(serde_json::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut out = Vec::new();
        for c in &self.conditions {
            let of_type: Vec<&serde_json::Value> = attestations
                .iter()
                .filter(|a| {
                    a.get("predicateType").and_then(serde_json::Value::as_str) == Some(&c.predicate_type)
                })
                .collect();
            if of_type.is_empty() {
                continue;
            }
            let mut reasons = Vec::new();
            let mut met = false;
            for a in of_type {
                let condition_input = serde_json::json!({
                    "predicateType": c.predicate_type,
                    "predicate": a.get("predicate"),
                    "artifact": {
                        "reference": input.pointer("/artifact/reference"),
                        "digest": input.pointer("/artifact/digest"),
                    },
                    "object": input.get("object"),
                });
                let outcome = c.condition.evaluate(&condition_input).map_err(|e| ComplianceError::Eval {
                    profile: self.name.clone(),
                    module: c.name.clone(),
                    reason: e.to_string(),
                })?;
                if outcome.allow {
                    met = true;
                    break;
                }
                for r in outcome.reasons {
                    push_unique(&mut reasons, r);
                }
            }
            if !met {
                let why =
                    if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join(", ")) };
                out.push(format!(
                    "no verified {} attestation meets the condition of {}{why}",
                    c.predicate_type, c.name
                ));
            }
        }
        Ok(out)
    }
}

/// Whether `value` serialises to at most `limit` bytes (stops counting at the limit).
fn fits(value: &serde_json::Value, limit: usize) -> bool {
    struct Counter {
        left: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self.left.checked_sub(buf.len()).ok_or(std::io::ErrorKind::FileTooLarge)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter { left: limit }, value).is_ok()
}

fn push_unique(list: &mut Vec<String>, mut item: String) {
    if let Some((cut, _)) = item.char_indices().nth(MAX_MESSAGE_CHARS) {
        item.truncate(cut);
        item.push_str("...");
    }
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Problems of the spec that need no Rego: empty keys, bad regexes, versions, exclusive fields.
fn validate(spec: &ComplianceProfileSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let check_regex = |problems: &mut Vec<String>, field: String, pattern: &str| {
        if let Err(e) = regex::Regex::new(&format!("^(?:{pattern})$")) {
            problems.push(format!("{field}: not a valid regular expression: {e}"));
        }
    };
    for (i, a) in spec.annotations.iter().enumerate() {
        if a.key.trim().is_empty() {
            problems.push(format!("annotations[{i}]: key is empty"));
        }
        if !a.values.is_empty() && a.pattern.is_some() {
            problems.push(format!("annotations[{i}]: values and pattern are exclusive"));
        }
        if let Some(p) = &a.pattern {
            check_regex(&mut problems, format!("annotations[{i}].pattern"), p);
        }
    }
    for (i, a) in spec.attestations.iter().enumerate() {
        if a.predicate_type.trim().is_empty() {
            problems.push(format!("attestations[{i}]: predicateType is empty"));
        }
        if let Some(p) = &a.builder_id_pattern {
            check_regex(&mut problems, format!("attestations[{i}].builderIdPattern"), p);
        }
    }
    if let Some(v) = spec.sbom.as_ref().and_then(|s| s.min_spec_version.as_deref()) {
        let numeric =
            !v.is_empty() && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !numeric {
            problems.push(format!("sbom.minSpecVersion: {v:?} is not a version like \"1.5\""));
        }
    }
    if let Some(m) = &spec.model {
        if m.allowed_licenses.iter().any(|l| l.trim().is_empty()) {
            problems.push("model.allowedLicenses: an entry is empty".to_owned());
        }
        if m.denied_formats.iter().any(|l| l.trim().is_empty()) {
            problems.push("model.deniedFormats: an entry is empty".to_owned());
        }
        if m.denied_file_extensions.iter().any(|l| l.trim().is_empty()) {
            problems.push("model.deniedFileExtensions: an entry is empty".to_owned());
        }
    }
    problems
}

fn compile_conditions(
    profile: &str,
    spec: &ComplianceProfileSpec,
    problems: &mut Vec<String>,
) -> Vec<AttestationCondition> {
    let mut out = Vec::new();
    for (i, a) in spec.attestations.iter().enumerate() {
        let Some(module) = &a.condition else { continue };
        let name = format!("attestations[{i}].condition");
        match RegoCondition::compile(&format!("{profile}/{name}"), module) {
            Ok(condition) => {
                out.push(AttestationCondition { name, predicate_type: a.predicate_type.clone(), condition })
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    out
}

/// `data.profile`: the spec without `rego`, plus the name.
fn profile_data(name: &str, spec: &ComplianceProfileSpec) -> Result<regorus::Value, String> {
    let mut value = serde_json::to_value(spec).map_err(|e| format!("the profile does not serialise: {e}"))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("rego");
        map.insert("name".to_owned(), serde_json::Value::String(name.to_owned()));
    }
    Ok(regorus::Value::from(serde_json::json!({ "profile": value })))
}

/// A fresh engine with the built-in modules and `data`, analysed.
fn built_in_engine(data: &regorus::Value) -> Result<regorus::Engine, String> {
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: EVAL_BUDGET,
        check_interval: NonZeroU32::MIN,
    });
    // `print` in a user module is collected with the clone and dropped, never written to stderr.
    engine.set_gather_prints(true);
    for (file, _, source) in BUILT_IN {
        engine.add_policy(file.to_owned(), source.to_owned()).map_err(|e| format!("{file}: {e}"))?;
    }
    engine.add_data(data.clone()).map_err(|e| e.to_string())?;
    prepare(&mut engine)?;
    Ok(engine)
}

/// Analyse every module (unsafe variables, unknown functions, recursion show up here, not at admission).
fn prepare(engine: &mut regorus::Engine) -> Result<(), String> {
    engine.set_input(regorus::Value::new_object());
    engine.eval_rule("data.vouch.compliance.lib.ready".to_owned()).map(|_| ()).map_err(|e| e.to_string())
}

/// Check one user module alone with the built-ins: size, package, a `deny` rule, analysis. Its package.
fn check_user_module(base: &regorus::Engine, name: &str, module: &str) -> Result<String, String> {
    if module.len() > MAX_MODULE_BYTES {
        return Err(format!("larger than {MAX_MODULE_BYTES} bytes"));
    }
    let mut engine = base.clone();
    let package = engine
        .add_policy(name.to_owned(), module.to_owned())
        .map_err(|e| format!("does not compile: {e}"))?;
    let package = package.strip_prefix("data.").unwrap_or(&package).to_owned();
    let custom = package.strip_prefix(CUSTOM_PACKAGE_PREFIX).is_some_and(|rest| {
        rest.split('.').all(|c| {
            let mut chars = c.chars();
            chars.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        })
    });
    if !custom {
        return Err(format!("package {package} must be {CUSTOM_PACKAGE_PREFIX}<name>"));
    }
    let declares = engine.has_declared_rule_rooted_at(name, "deny").map_err(|e| e.to_string())?;
    if !declares {
        return Err(format!("package {package} does not define `deny`"));
    }
    prepare(&mut engine).map_err(|e| format!("does not compile: {e}"))?;
    Ok(package)
}

/// The messages of a `deny` value: a set or array of strings (undefined = none).
fn messages(value: &regorus::Value) -> Result<Vec<String>, String> {
    if *value == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let items = match json {
        serde_json::Value::Array(items) => items,
        other => return Err(format!("`deny` is {other}, not a set of messages")),
    };
    Ok(items
        .into_iter()
        .map(|i| match i {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .collect())
}

fn needs_of(spec: &ComplianceProfileSpec) -> ProfileNeeds {
    let mut types: Vec<String> = spec.attestations.iter().map(|a| a.predicate_type.clone()).collect();
    types.sort();
    types.dedup();
    ProfileNeeds {
        attestation_predicate_types: types,
        sbom: spec.sbom.as_ref().is_some_and(|s| s.required || s.min_spec_version.is_some()),
        model: spec.model.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AnnotationRule, AnnotationSource, AttestationRule, ModelRule, SbomRule};
    use serde_json::{json, Value};

    const SLSA: &str = "https://slsa.dev/provenance/v1";

    fn regulated() -> ComplianceProfileSpec {
        ComplianceProfileSpec {
            annotations: vec![
                AnnotationRule {
                    key: "org.opencontainers.image.source".into(),
                    pattern: Some("https://github.com/acme/.+".into()),
                    ..Default::default()
                },
                AnnotationRule {
                    key: "org.opencontainers.image.licenses".into(),
                    in_: AnnotationSource::Manifest,
                    values: vec!["Apache-2.0".into(), "MIT".into()],
                    ..Default::default()
                },
            ],
            attestations: vec![AttestationRule {
                predicate_type: SLSA.into(),
                builder_id_pattern: Some("https://github.com/actions/runner.*".into()),
                condition: None,
            }],
            sbom: Some(SbomRule { required: true, min_spec_version: Some("1.5".into()) }),
            model: None,
            rego: vec![],
        }
    }

    /// A complete input document of a compliant image.
    fn image() -> Value {
        json!({
            "profile": {"name": "regulated-v1"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"}},
            "artifact": {
                "reference": "ghcr.io/acme/app:1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "location": {"kind": "container", "name": "app"},
                "manifest": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": null,
                    "annotations": {
                        "org.opencontainers.image.source": "https://github.com/acme/app",
                        "org.opencontainers.image.licenses": "Apache-2.0"
                    }
                },
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "annotations": {}},
                "signatures": [{"signer": {"kind": "key", "fingerprint": "sha256:ab"}}],
                "attestations": [{
                    "predicateType": SLSA,
                    "predicate": {"runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}},
                    "signer": {"kind": "key", "fingerprint": "sha256:ab"}
                }],
                "sbom": {"specVersion": "1.6", "components": 12, "digest": "sha256:22"},
                "model": null
            }
        })
    }

    fn set(doc: &mut Value, pointer: &str, value: Value) {
        *doc.pointer_mut(pointer).unwrap() = value;
    }

    fn compile(spec: &ComplianceProfileSpec) -> CompiledProfile {
        CompiledProfile::compile("regulated-v1", spec).unwrap()
    }

    #[test]
    fn a_compliant_image_has_no_violations() {
        let p = compile(&regulated());
        assert_eq!(p.evaluate(&image()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn an_empty_profile_requires_nothing() {
        let p = compile(&ComplianceProfileSpec::default());
        assert!(p.evaluate(&json!({})).unwrap().is_empty());
        assert_eq!(p.needs(), ProfileNeeds::default());
    }

    #[test]
    fn each_rule_names_its_violation() {
        let p = compile(&regulated());
        let mut doc = image();
        set(
            &mut doc,
            "/artifact/manifest/annotations",
            json!({"org.opencontainers.image.licenses": "GPL-3.0"}),
        );
        set(
            &mut doc,
            "/artifact/attestations/0/predicate/runDetails/builder/id",
            json!("https://evil.example"),
        );
        set(&mut doc, "/artifact/sbom/specVersion", json!("1.4"));
        assert_eq!(
            p.evaluate(&doc).unwrap(),
            [
                "annotation org.opencontainers.image.source is missing",
                r#"manifest annotation org.opencontainers.image.licenses is "GPL-3.0", not one of ["Apache-2.0", "MIT"]"#,
                "no verified https://slsa.dev/provenance/v1 attestation has a builder id matching \
                 https://github.com/actions/runner.* (found: https://evil.example)",
                "SBOM spec version 1.4 is below the minimum 1.5",
            ]
        );
        set(&mut doc, "/artifact/attestations", json!([]));
        set(&mut doc, "/artifact/sbom", Value::Null);
        let v = p.evaluate(&doc).unwrap();
        assert!(
            v.contains(&"no verified attestation of type https://slsa.dev/provenance/v1".to_owned()),
            "{v:?}"
        );
        assert!(v.contains(&"a verified SBOM is required but none was found".to_owned()), "{v:?}");
    }

    #[test]
    fn model_rules_read_the_model_facts() {
        let spec = ComplianceProfileSpec {
            model: Some(ModelRule {
                allowed_licenses: vec!["Apache-2.0".into()],
                denied_formats: vec!["pickle".into()],
                require_source_url: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = compile(&spec);
        assert!(p.needs().model);
        let mut doc = image();
        assert!(p.evaluate(&doc).unwrap().is_empty(), "an image is not judged by model rules");
        set(
            &mut doc,
            "/artifact/model",
            json!({
                "format": "modelPack",
                "manifestAnnotations": {},
                "config": {"licenses": ["GPL-3.0"], "format": "pickle", "datasetsUrl": []},
                "layers": [{"kind": "weight", "mediaType": "application/vnd.cncf.model.weight.v1.raw",
                            "digest": "sha256:33", "size": 5, "path": "model.pkl", "archive": "raw"}]
            }),
        );
        assert_eq!(
            p.evaluate(&doc).unwrap(),
            [
                "license GPL-3.0 is not in the allowed list [Apache-2.0]",
                "model file model.pkl (weight layer sha256:33) is in the denied format pickle",
                "model weight format pickle is denied (denied formats: [pickle])",
                "the model config has no sourceURL",
            ]
        );
    }

    #[test]
    fn a_user_module_adds_violations_and_reads_the_profile() {
        let mut spec = regulated();
        spec.rego.push(
            r#"package vouch.compliance.custom.namespaces
import rego.v1
deny contains msg if {
    input.object.metadata.namespace == "prod"
    count(input.artifact.signatures) < 2
    msg := sprintf("profile %s: prod needs two signatures, %s has %d", [data.profile.name, input.artifact.reference, count(input.artifact.signatures)])
}
"#
            .into(),
        );
        let p = compile(&spec);
        let v = p.evaluate(&image()).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].starts_with("profile regulated-v1: prod needs two signatures, ghcr.io/acme/app:1.0@sha256:"),
            "{v:?}"
        );
        let mut doc = image();
        set(&mut doc, "/object/metadata/namespace", json!("dev"));
        assert!(p.evaluate(&doc).unwrap().is_empty());
    }

    #[test]
    fn user_modules_may_use_the_shared_helpers() {
        let mut spec = ComplianceProfileSpec::default();
        spec.rego.push(
            "package vouch.compliance.custom.v\nimport rego.v1\nimport data.vouch.compliance.lib\n\
             deny contains \"old\" if lib.version_less(input.v, \"2.0\")\n"
                .into(),
        );
        let p = compile(&spec);
        assert_eq!(p.evaluate(&json!({"v": "1.10"})).unwrap(), ["old"]);
        assert!(p.evaluate(&json!({"v": "2.0.1"})).unwrap().is_empty());
    }

    #[test]
    fn a_user_module_that_does_not_compile_is_named() {
        let mut spec = regulated();
        spec.rego.push(
            "package vouch.compliance.custom.ok\nimport rego.v1\ndeny contains \"x\" if false\n".into(),
        );
        spec.rego
            .push("package vouch.compliance.custom.bad\nimport rego.v1\ndeny contains msg if {\n".into());
        let e = CompiledProfile::compile("p", &spec).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("rego[1]: does not compile"), "{e:?}");
        // Semantic errors (an unsafe variable) are found at compile time too.
        spec.rego[1] =
            "package vouch.compliance.custom.bad\nimport rego.v1\ndeny contains msg if x > 1\n".into();
        let e = CompiledProfile::compile("p", &spec).unwrap_err();
        assert!(e.len() == 1 && e[0].starts_with("rego[1]: does not compile"), "{e:?}");
    }

    #[test]
    fn user_modules_stay_in_their_package_and_define_deny() {
        let mut spec = ComplianceProfileSpec::default();
        spec.rego.push(
            "package vouch.compliance.annotations\nimport rego.v1\ndeny contains \"x\" if false\n".into(),
        );
        spec.rego.push("package vouch.compliance.custom.x\nimport rego.v1\nviolations := {\"a\"}\n".into());
        spec.rego
            .push("package vouch.compliance.custom\nimport rego.v1\ndeny contains \"x\" if false\n".into());
        let e = CompiledProfile::compile("p", &spec).unwrap_err();
        assert_eq!(
            e,
            [
                "rego[0]: package vouch.compliance.annotations must be vouch.compliance.custom.<name>",
                "rego[1]: package vouch.compliance.custom.x does not define `deny`",
                "rego[2]: package vouch.compliance.custom must be vouch.compliance.custom.<name>",
            ]
        );
    }

    #[test]
    fn every_spec_problem_is_reported_at_once() {
        let spec = ComplianceProfileSpec {
            annotations: vec![
                AnnotationRule { key: " ".into(), ..Default::default() },
                AnnotationRule {
                    key: "a".into(),
                    values: vec!["x".into()],
                    pattern: Some("(".into()),
                    ..Default::default()
                },
            ],
            attestations: vec![AttestationRule {
                predicate_type: String::new(),
                builder_id_pattern: Some("[".into()),
                condition: Some("package c\nallow if {".into()),
            }],
            sbom: Some(SbomRule { required: false, min_spec_version: Some("v1.5".into()) }),
            model: Some(ModelRule { allowed_licenses: vec![String::new()], ..Default::default() }),
            rego: vec!["package vouch.compliance.custom.x\ndeny contains".into()],
        };
        let e = CompiledProfile::compile("p", &spec).unwrap_err();
        let fields = [
            "annotations[0]: key is empty",
            "annotations[1]: values and pattern are exclusive",
            "annotations[1].pattern: not a valid regular expression",
            "attestations[0]: predicateType is empty",
            "attestations[0].builderIdPattern: not a valid regular expression",
            "sbom.minSpecVersion: \"v1.5\" is not a version",
            "model.allowedLicenses: an entry is empty",
            "attestations[0].condition: rego condition p/attestations[0].condition does not compile",
            "rego[0]: does not compile",
        ];
        assert_eq!(e.len(), fields.len(), "{e:#?}");
        for (problem, field) in e.iter().zip(fields) {
            assert!(problem.starts_with(field), "{problem:?} should start with {field:?}");
        }
    }

    #[test]
    fn attestation_conditions_need_one_attestation_that_meets_them() {
        let mut spec = regulated();
        spec.attestations[0].condition = Some(
            r#"package c
import rego.v1
default allow := false
allow if input.predicate.buildDefinition.externalParameters.workflow.ref == "refs/heads/main"
deny contains msg if {
    not allow
    msg := sprintf("built from %v", [object.get(input.predicate, ["buildDefinition", "externalParameters", "workflow", "ref"], "nowhere")])
}
"#
            .into(),
        );
        let p = compile(&spec);
        let mut doc = image();
        assert_eq!(
            p.evaluate(&doc).unwrap(),
            ["no verified https://slsa.dev/provenance/v1 attestation meets the condition of attestations[0].condition: \
              built from nowhere"]
        );
        set(
            &mut doc,
            "/artifact/attestations/0/predicate",
            json!({
                "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
                "buildDefinition": {"externalParameters": {"workflow": {"ref": "refs/heads/main"}}}
            }),
        );
        assert!(p.evaluate(&doc).unwrap().is_empty());
        // Without any attestation of the type only the built-in check speaks.
        set(&mut doc, "/artifact/attestations", json!([]));
        assert_eq!(
            p.evaluate(&doc).unwrap(),
            ["no verified attestation of type https://slsa.dev/provenance/v1"]
        );
    }

    #[test]
    fn needs_follow_the_spec() {
        let mut spec = regulated();
        spec.attestations.push(AttestationRule {
            predicate_type: "https://cyclonedx.org/bom".into(),
            ..Default::default()
        });
        spec.attestations.push(AttestationRule { predicate_type: SLSA.into(), ..Default::default() });
        let n = compile(&spec).needs();
        assert_eq!(n.attestation_predicate_types, ["https://cyclonedx.org/bom", SLSA]);
        assert!(n.sbom && !n.model);
        spec.sbom = Some(SbomRule { required: false, min_spec_version: None });
        assert!(!compile(&spec).needs().sbom);
    }

    #[test]
    fn a_slow_user_module_is_stopped_by_the_time_budget() {
        let mut spec = ComplianceProfileSpec::default();
        spec.rego.push(
            "package vouch.compliance.custom.slow\nimport rego.v1\n\
             deny contains \"never\" if {\n some i in numbers.range(1, input.n)\n some j in numbers.range(1, input.n)\n \
             some k in numbers.range(1, input.n)\n i + j + k < 0\n}\n"
                .into(),
        );
        let p = compile(&spec);
        assert!(p.evaluate(&json!({"n": 3})).unwrap().is_empty());
        let started = Instant::now();
        let e = p.evaluate(&json!({"n": 3000})).unwrap_err();
        assert!(started.elapsed() < EVAL_BUDGET * 3, "stopped in {:?}", started.elapsed());
        assert!(matches!(&e, ComplianceError::Eval { module, .. } if module == "rego[0]"), "{e}");
    }

    #[test]
    fn oversized_input_is_refused() {
        let p = compile(&regulated());
        let big = json!({"object": {"data": "x".repeat(MAX_INPUT_BYTES)}});
        let e = p.evaluate(&big).unwrap_err();
        assert!(matches!(e, ComplianceError::InputTooLarge { .. }), "{e}");
        assert_eq!(e.to_string(), "the input document is larger than 8388608 bytes");
        assert!(fits(&json!({"a": "x".repeat(100)}), 110) && !fits(&json!({"a": "x".repeat(100)}), 100));
    }

    #[test]
    fn malformed_input_is_not_an_error_but_not_compliant() {
        let p = compile(&regulated());
        for doc in [
            json!({}),
            json!({"artifact": "x"}),
            json!({"artifact": {"manifest": 7, "attestations": {"a": 1}}}),
        ] {
            let v = p.evaluate(&doc).unwrap();
            assert!(v.len() >= 4, "{doc}: {v:?}");
        }
    }

    #[test]
    fn many_violations_are_capped() {
        let spec = ComplianceProfileSpec {
            annotations: (0..40)
                .map(|i| AnnotationRule { key: format!("k{i:02}"), ..Default::default() })
                .collect(),
            ..Default::default()
        };
        let v = compile(&spec).evaluate(&json!({})).unwrap();
        assert_eq!(v.len(), MAX_VIOLATIONS + 1);
        assert_eq!(v.last().unwrap(), "... and 8 more violations");
    }

    #[test]
    fn print_in_a_user_module_is_harmless() {
        let mut spec = ComplianceProfileSpec::default();
        spec.rego.push(
            "package vouch.compliance.custom.p\nimport rego.v1\ndeny contains \"printed\" if print(\"debug\", input)\n"
                .into(),
        );
        let p = compile(&spec);
        assert_eq!(p.evaluate(&json!({"a": 1})).unwrap(), ["printed"]);
        assert_eq!(p.evaluate(&json!({"a": 2})).unwrap(), ["printed"]);
    }

    #[test]
    fn long_messages_are_cut() {
        let mut spec = ComplianceProfileSpec::default();
        spec.rego.push(
            "package vouch.compliance.custom.long\nimport rego.v1\ndeny contains concat(\"\", [\"é\" | some _ in numbers.range(1, 5000)]) if true\n".into(),
        );
        let v = compile(&spec).evaluate(&json!({})).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].chars().count(), MAX_MESSAGE_CHARS + 3);
        assert!(v[0].ends_with("é..."), "cut on a character boundary");
    }

    #[test]
    fn clones_evaluate_independently() {
        let p = compile(&regulated());
        let q = p.clone();
        let mut bad = image();
        set(&mut bad, "/artifact/sbom", Value::Null);
        assert_eq!(q.evaluate(&bad).unwrap().len(), 1);
        assert!(p.evaluate(&image()).unwrap().is_empty());
    }
}
