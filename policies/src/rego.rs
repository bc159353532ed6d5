//! Rego conditions over attestation predicates, evaluated with regorus. A module is parsed and prepared
//! once when the policy is compiled; each evaluation works on a clone of the prepared engine.
//!
//! The module must define `allow` (a boolean); it may define `deny` (a set or array of messages) or
//! `reasons` (a string or array of strings), which become the denial reason.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;

/// Wall-clock limit of one evaluation (CPU spent on one predicate is bounded).
const EVAL_LIMIT: Duration = Duration::from_secs(2);
/// Largest module accepted.
const MAX_MODULE_BYTES: usize = 256 * 1024;
/// Messages kept from `deny` / `reasons`.
const MAX_REASONS: usize = 8;

/// A Rego module that failed to compile or to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    /// Parse or preparation failed.
    #[error("rego condition {name} does not compile: {reason}")]
    Compile {
        /// The module's name.
        name: String,
        /// The parser's message.
        reason: String,
    },
    /// Evaluation failed (a runtime error, the time limit, `allow` not a boolean).
    #[error("rego condition {name} failed: {reason}")]
    Eval {
        /// The module's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// The answer of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoOutcome {
    /// `allow` was true.
    pub allow: bool,
    /// Messages from `deny` / `reasons` (possibly empty).
    pub reasons: Vec<String>,
}

/// A compiled condition: clone freely, evaluate concurrently.
#[derive(Clone)]
pub struct RegoCondition {
    name: String,
    engine: regorus::Engine,
    package: String,
    has_deny: bool,
    has_reasons: bool,
}

impl std::fmt::Debug for RegoCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoCondition").field("name", &self.name).field("package", &self.package).finish()
    }
}

impl PartialEq for RegoCondition {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.package == other.package
    }
}

impl RegoCondition {
    /// Parse `module` (Rego v1 syntax), check that it defines `allow`, and prepare it for evaluation.
    pub fn compile(name: &str, module: &str) -> Result<Self, RegoError> {
        let fail = |reason: String| RegoError::Compile { name: name.to_owned(), reason };
        if module.len() > MAX_MODULE_BYTES {
            return Err(fail(format!("larger than {MAX_MODULE_BYTES} bytes")));
        }
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: EVAL_LIMIT,
            check_interval: NonZeroU32::MIN,
        });
        let package =
            engine.add_policy(name.to_owned(), module.to_owned()).map_err(|e| fail(e.to_string()))?;
        let simple = package.split('.').skip(1).all(|c| {
            let mut chars = c.chars();
            chars.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        });
        if !simple || package == "data" {
            return Err(fail(format!("package {package:?} must be a dotted path of identifiers")));
        }
        let declares = |engine: &regorus::Engine, rule: &str| {
            engine.has_declared_rule_rooted_at(name, rule).map_err(|e| fail(e.to_string()))
        };
        if !declares(&engine, "allow")? {
            return Err(fail("the module does not define `allow`".to_owned()));
        }
        let has_deny = declares(&engine, "deny")?;
        let has_reasons = declares(&engine, "reasons")?;
        let mut condition = Self { name: name.to_owned(), engine, package, has_deny, has_reasons };
        // Prepare once (semantic checks happen on first evaluation); clones start prepared.
        condition.engine.set_input(regorus::Value::new_object());
        condition
            .engine
            .eval_rule(format!("{}.allow", condition.package))
            .map_err(|e| fail(e.to_string()))?;
        Ok(condition)
    }

    /// The module's name (used in messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Evaluate with `input`. CPU-bound: call from a blocking thread.
    pub fn evaluate(&self, input: &serde_json::Value) -> Result<RegoOutcome, RegoError> {
        let fail = |reason: String| RegoError::Eval { name: self.name.clone(), reason };
        let mut engine = self.engine.clone();
        engine.set_input(regorus::Value::from(input.clone()));
        let mut rule = |r: &str| -> Result<serde_json::Value, RegoError> {
            let v = engine.eval_rule(format!("{}.{r}", self.package)).map_err(|e| fail(e.to_string()))?;
            if v == regorus::Value::Undefined {
                return Ok(serde_json::Value::Null);
            }
            serde_json::to_value(&v).map_err(|e| fail(e.to_string()))
        };
        let allow = match rule("allow")? {
            serde_json::Value::Bool(b) => b,
            serde_json::Value::Null => false,
            other => return Err(fail(format!("`allow` is {other}, not a boolean"))),
        };
        let mut reasons = Vec::new();
        for name in
            [self.has_deny.then_some("deny"), self.has_reasons.then_some("reasons")].into_iter().flatten()
        {
            collect_messages(&rule(name)?, &mut reasons);
        }
        reasons.truncate(MAX_REASONS);
        Ok(RegoOutcome { allow, reasons })
    }
}

fn collect_messages(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_messages(i, out)),
        serde_json::Value::Null | serde_json::Value::Bool(_) => {}
        other => out.push(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUILDER: &str = r#"
package vouch.builder
import rego.v1

default allow := false
allow if input.predicate.builder.id == "https://github.com/actions/runner"
deny contains msg if {
    not allow
    msg := sprintf("builder %v is not trusted", [input.predicate.builder.id])
}
"#;

    #[test]
    fn allow_and_deny_messages() {
        let c = RegoCondition::compile("builder.rego", BUILDER).unwrap();
        let ok = c
            .evaluate(&json!({"predicate": {"builder": {"id": "https://github.com/actions/runner"}}}))
            .unwrap();
        assert_eq!(ok, RegoOutcome { allow: true, reasons: vec![] });
        let no = c.evaluate(&json!({"predicate": {"builder": {"id": "evil"}}})).unwrap();
        assert!(!no.allow);
        assert_eq!(no.reasons, vec!["builder evil is not trusted".to_owned()]);
    }

    #[test]
    fn undefined_allow_is_false() {
        let c = RegoCondition::compile("u.rego", "package u\nallow if input.x == 1\n").unwrap();
        assert!(!c.evaluate(&json!({})).unwrap().allow);
        assert!(c.evaluate(&json!({"x": 1})).unwrap().allow);
    }

    #[test]
    fn clones_evaluate_independently() {
        let c = RegoCondition::compile("u.rego", "package u\nallow if input.x == 1\n").unwrap();
        let d = c.clone();
        assert!(c.evaluate(&json!({"x": 1})).unwrap().allow);
        assert!(!d.evaluate(&json!({"x": 2})).unwrap().allow);
        assert!(c.evaluate(&json!({"x": 1})).unwrap().allow);
    }

    #[test]
    fn compile_errors_are_reported() {
        let e = RegoCondition::compile("bad.rego", "package p\nallow if {").unwrap_err();
        assert!(matches!(&e, RegoError::Compile { name, .. } if name == "bad.rego"), "{e}");
        let e = RegoCondition::compile("noallow.rego", "package p\nok := true\n").unwrap_err();
        assert!(e.to_string().contains("does not define `allow`"), "{e}");
    }

    #[test]
    fn non_boolean_allow_is_an_error() {
        let c = RegoCondition::compile("s.rego", "package s\nallow := \"yes\"\n").unwrap();
        let e = c.evaluate(&json!({})).unwrap_err();
        assert!(e.to_string().contains("not a boolean"), "{e}");
    }

    #[test]
    fn reasons_rule_is_used() {
        let c = RegoCondition::compile("r.rego", "package r\nallow := false\nreasons := [\"a\", \"b\"]\n")
            .unwrap();
        assert_eq!(c.evaluate(&json!({})).unwrap().reasons, vec!["a", "b"]);
    }
}
