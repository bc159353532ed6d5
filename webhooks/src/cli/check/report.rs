//! What `vouch check` found: one [`ObjectReport`] per object read, and a [`Summary`]. The JSON output is
//! this structure serialised (schema `vouch.dev/check/v1`, documented in docs/gitops.md).

use serde::Serialize;
use vouch_policies::crd::Mode;
use vouch_policies::manifests::ManifestObject;
use vouch_policies::{Decision, Finding, FindingResult};

/// The JSON schema identifier of [`CheckReport`].
pub const SCHEMA: &str = "vouch.dev/check/v1";

/// The outcome for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Admitted without warnings.
    Allowed,
    /// Admitted, with warnings (warn-mode findings, fail-open errors, no-match warnings).
    Warned,
    /// Denied by an enforce-mode policy (or a broken policy, a bad reference, no-match deny).
    Denied,
    /// Not checked: the engine names no artifacts for this kind.
    Skipped,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Allowed => "allowed",
            Self::Warned => "warned",
            Self::Denied => "denied",
            Self::Skipped => "skipped",
        })
    }
}

/// One object and what the engine decided for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    /// The file it was read from (`-` for stdin).
    pub file: String,
    /// 1-based document index in the file.
    pub document: usize,
    /// JSON pointer of the object inside the document (`/items/3` for List items; empty otherwise).
    pub pointer: String,
    /// 1-based line where the document starts in the file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// The namespace it was checked in (its own, or `--namespace`).
    pub namespace: Option<String>,
    /// `metadata.name` (or `generateName`).
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Artifacts (images) the object names.
    pub artifacts: usize,
    /// The engine's decision, exactly as the webhook would get it.
    pub decision: Decision,
}

impl ObjectReport {
    /// The report for `object`, checked in `namespace`.
    pub fn new(
        object: &ManifestObject,
        namespace: Option<String>,
        artifacts: usize,
        skip_reason: Option<String>,
        decision: Decision,
    ) -> Self {
        let outcome = if skip_reason.is_some() {
            Outcome::Skipped
        } else if !decision.allowed {
            Outcome::Denied
        } else if !decision.warnings.is_empty() {
            Outcome::Warned
        } else {
            Outcome::Allowed
        };
        let api_version = if object.kind.group.is_empty() {
            object.kind.version.clone()
        } else {
            format!("{}/{}", object.kind.group, object.kind.version)
        };
        let name = if object.name.is_empty() {
            object
                .object
                .pointer("/metadata/generateName")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        } else {
            object.name.clone()
        };
        Self {
            file: object.origin.file.clone(),
            document: object.origin.document,
            pointer: object.origin.pointer.clone(),
            line: object.origin.line,
            api_version,
            kind: object.kind.kind.clone(),
            namespace,
            name,
            outcome,
            skip_reason,
            artifacts,
            decision,
        }
    }

    /// `Deployment shop/web` (as the engine names objects in messages).
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// `file#document` plus the List pointer.
    pub fn location(&self) -> String {
        format!("{}#{}{}", self.file, self.document, self.pointer)
    }

    /// Findings that did not pass (in any mode).
    pub fn failed_findings(&self) -> impl Iterator<Item = &Finding> {
        self.decision.findings.iter().filter(|f| f.result != FindingResult::Pass)
    }

    /// Whether this object makes the check fail: denied, or (with `fail_on_warn`) warned.
    pub fn fails(&self, fail_on_warn: bool) -> bool {
        match self.outcome {
            Outcome::Denied => true,
            Outcome::Warned => fail_on_warn,
            Outcome::Allowed | Outcome::Skipped => false,
        }
    }
}

/// Counts over all objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Objects read.
    pub objects: usize,
    /// Objects the engine skipped (kinds that name no artifacts).
    pub skipped: usize,
    /// Artifacts named, over all objects.
    pub artifacts: usize,
    /// Distinct artifact references.
    pub distinct_artifacts: usize,
    /// Objects allowed without warnings.
    pub allowed: usize,
    /// Objects denied.
    pub denied: usize,
    /// Objects allowed with warnings.
    pub warned: usize,
    /// Warnings, over all objects.
    pub warnings: usize,
    /// Would-be denials recorded in audit mode.
    pub audited: usize,
    /// Findings that could not be verified (registry trouble, budget, not in the bundle).
    pub errors: usize,
}

/// Everything `vouch check` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// Counts.
    pub summary: Summary,
    /// The exit code the check ends with (0 passed, 1 violations).
    pub exit_code: u8,
    /// Each object, in the order read.
    pub objects: Vec<ObjectReport>,
}

impl CheckReport {
    /// Summarise `objects`; `distinct_artifacts` comes from the caller (who saw the references).
    pub fn new(objects: Vec<ObjectReport>, distinct_artifacts: usize, fail_on_warn: bool) -> Self {
        let mut s = Summary { objects: objects.len(), distinct_artifacts, ..Summary::default() };
        for o in &objects {
            match o.outcome {
                Outcome::Allowed => s.allowed += 1,
                Outcome::Warned => s.warned += 1,
                Outcome::Denied => s.denied += 1,
                Outcome::Skipped => s.skipped += 1,
            }
            s.artifacts += o.artifacts;
            s.warnings += o.decision.warnings.len();
            s.audited += o.decision.audit.len();
            s.errors += o.decision.findings.iter().filter(|f| f.result == FindingResult::Error).count();
        }
        let fails = objects.iter().any(|o| o.fails(fail_on_warn));
        let exit_code = if fails { crate::cli::exit::EXIT_REJECTED } else { crate::cli::exit::EXIT_OK };
        Self { schema: SCHEMA, summary: s, exit_code, objects }
    }

    /// `12 objects, 30 artifacts, 2 denied, 1 warning` (skips and audits when there are any).
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = vec![
            plural(s.objects, "object", "objects"),
            plural(s.artifacts, "artifact", "artifacts"),
            format!("{} denied", s.denied),
            plural(s.warnings, "warning", "warnings"),
        ];
        if s.skipped > 0 {
            parts.push(format!("{} skipped", s.skipped));
        }
        if s.audited > 0 {
            parts.push(plural(s.audited, "audit finding", "audit findings"));
        }
        parts.join(", ")
    }
}

/// How a finding counts in outputs: `error` for enforce, `warning` for warn, `note` for audit.
pub fn level(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "error",
        Mode::Warn => "warning",
        Mode::Audit => "note",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vouch_policies::manifests::ManifestReader;
    use vouch_policies::{ArtifactKind, ArtifactLocation};

    /// Two objects read from YAML: a Deployment (document 1) and a ConfigMap (document 2).
    pub(crate) fn objects() -> Vec<ManifestObject> {
        let mut r = ManifestReader::new();
        r.add_text(
            "m.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n",
        )
        .unwrap();
        r.finish()
    }

    pub(crate) fn finding(policy: &str, mode: Mode, result: FindingResult) -> Finding {
        Finding {
            policy: policy.into(),
            policy_namespace: None,
            mode,
            requirement: "signature".into(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: "app".into(),
                pointer: "/spec/template/spec/containers/0/image".into(),
            },
            reference: "reg/app:1".into(),
            digest: None,
            result,
            reason: "no signature".into(),
            signer: None,
            rekor_log_index: None,
            sbom_digest: None,
        }
    }

    #[test]
    fn outcomes_summary_and_exit_code() {
        let objects = objects();
        let ns = Some("default".to_owned());
        let denied = Decision {
            allowed: false,
            message: Some("Deployment default/web: no".into()),
            findings: vec![finding("p", Mode::Enforce, FindingResult::Fail)],
            ..Decision::default()
        };
        let warned = Decision { warnings: vec!["w".into()], ..Decision::allow() };
        let reports = vec![
            ObjectReport::new(&objects[0], ns.clone(), 1, None, denied),
            ObjectReport::new(&objects[0], ns.clone(), 1, None, warned.clone()),
            ObjectReport::new(
                &objects[1],
                ns.clone(),
                0,
                Some("kind ConfigMap names no artifacts".into()),
                Decision::allow(),
            ),
        ];
        assert_eq!(
            reports.iter().map(|r| r.outcome).collect::<Vec<_>>(),
            [Outcome::Denied, Outcome::Warned, Outcome::Skipped]
        );
        assert_eq!(reports[0].location(), "m.yaml#1");
        assert_eq!(reports[0].label(), "Deployment default/web");
        let report = CheckReport::new(reports.clone(), 1, false);
        assert_eq!(report.exit_code, 1);
        assert_eq!(report.summary_line(), "3 objects, 2 artifacts, 1 denied, 1 warning, 1 skipped");
        // Only the warning: 0, or 1 with --fail-on-warn.
        let only_warned = vec![ObjectReport::new(&objects[0], ns, 1, None, warned)];
        assert_eq!(CheckReport::new(only_warned.clone(), 1, false).exit_code, 0);
        assert_eq!(CheckReport::new(only_warned, 1, true).exit_code, 1);
    }
}
