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
    ("lib.rego", "vouch.compliance.lib", include_str!("../../rego/compliance/lib.rego")),
    (
        "annotations.rego",
        "vouch.compliance.annotations",
        include_str!("../../rego/compliance/annotations.rego"),
    ),
    (
        "attestations.rego",
        "vouch.compliance.attestations",
        include_str!("../../rego/compliance/attestations.rego"),
    ),
    ("sbom.rego", "vouch.compliance.sbom", include_str!("../../rego/compliance/sbom.rego")),
    ("model.rego", "vouch.compliance.model", include_str!("../../rego/compliance/model.rego")),
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
mod tests;
