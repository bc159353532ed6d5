//! What a scan found for one workload: a [`WorkloadRecord`] with an [`ArtifactRecord`] per image it
//! names and a [`ResultRecord`] per (policy, requirement), and the workload's [`ScanOutcome`].

use serde::{Deserialize, Serialize};
use vouch_attest::Digest;
use vouch_policies::crd::{FailurePolicy, Mode};
use vouch_policies::{Decision, Finding, FindingResult, PolicySet, ReasonCode};

/// How a workload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScanOutcome {
    /// Every requirement of every policy that covers it is met.
    Compliant,
    /// Met, with something to look at: an error a `failurePolicy: Ignore` policy lets pass, an image no
    /// policy covers under `--no-match warn`, a tag that names another digest than the one running.
    Warned,
    /// A requirement is not met (in any mode: a scan judges compliance, not what admission would do), or
    /// the object would be denied (a reference that does not parse, `--no-match deny`).
    NonCompliant,
    /// Something could not be verified (a registry unreachable, a budget exceeded) and nothing failed.
    Unverified,
    /// Nothing to verify: the kind names no artifacts.
    Skipped,
}

impl ScanOutcome {
    /// Compliant, warned or skipped: nothing fails.
    pub fn passes(self) -> bool {
        matches!(self, Self::Compliant | Self::Warned | Self::Skipped)
    }
}

impl std::fmt::Display for ScanOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Compliant => "compliant",
            Self::Warned => "warned",
            Self::NonCompliant => "non-compliant",
            Self::Unverified => "unverified",
            Self::Skipped => "skipped",
        })
    }
}

/// Where the digest that was verified came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DigestSource {
    /// The container's status (`imageID`): what runs.
    Running,
    /// The spec, resolved at scan time: the object runs nothing yet (not a Pod, not started, or a runtime
    /// that reports no digest).
    Spec,
}

/// One result: a (policy, requirement) for an artifact, or a scan note such as a moved tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultRecord {
    /// Policy name (empty for results no policy owns: a moved tag, a reference that does not parse).
    pub policy: String,
    /// The policy's namespace (SupplyChainPolicy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_namespace: Option<String>,
    /// `signature`, `attestation <predicateType>`, `sbom`, `fetcher`, `egress`, `tag`…
    pub requirement: String,
    /// `pass`, `fail`, `error` (could not be verified) or `warn`.
    pub result: String,
    /// Why (for passes: which authority satisfied it).
    pub reason: String,
    /// The stable reason code (docs/reasons.md); absent in reports written before codes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// What usually fixes it (results that did not pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// The policy's mode (what admission does with a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Who signed (passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

impl ResultRecord {
    /// A scan's own note about what runs (a moved tag): requirement `running digest`, result `warn`.
    pub fn note(reason: String) -> Self {
        Self {
            policy: String::new(),
            policy_namespace: None,
            requirement: "running digest".into(),
            result: "warn".into(),
            reason,
            reason_code: Some(ReasonCode::TagMoved.to_string()),
            remediation: Some(ReasonCode::TagMoved.remediation().to_owned()),
            mode: None,
            signer: None,
        }
    }

    /// The record of an engine finding.
    pub fn of(f: &Finding) -> Self {
        let code = f.code();
        Self {
            policy: f.policy.clone(),
            policy_namespace: f.policy_namespace.clone(),
            requirement: f.requirement.clone(),
            result: f.result.to_string(),
            reason: f.reason.clone(),
            reason_code: Some(code.to_string()),
            remediation: (f.result != FindingResult::Pass).then(|| code.remediation().to_owned()),
            mode: Some(f.mode),
            signer: f.signer.clone(),
        }
    }
}

/// One image (or other artifact) a workload names, and what was verified for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRecord {
    /// The container (or volume, or field) name.
    pub container: String,
    /// The kind of field it is named in.
    pub field: String,
    /// JSON pointer of the field in the object.
    pub pointer: String,
    /// The reference as the spec writes it.
    pub reference: String,
    /// The digest the container runs (from its status), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_digest: Option<Digest>,
    /// Whether the verified digest is what runs or what the spec names now.
    pub digest_source: DigestSource,
    /// The digest that was verified (the running one, the index that lists it, or the spec resolved now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_digest: Option<Digest>,
    /// The results, pass or not.
    pub results: Vec<ResultRecord>,
}

/// One workload (object) and how it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRecord {
    /// Its namespace (`None`: cluster-scoped).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// Where it was read: `file#document/pointer`, or `cluster`.
    #[serde(default)]
    pub source: String,
    /// How it stands.
    pub outcome: ScanOutcome,
    /// Why it is not compliant (or warned), one line each; empty when compliant.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The images it names.
    #[serde(default)]
    pub artifacts: Vec<ArtifactRecord>,
}

impl WorkloadRecord {
    /// What identifies it from one scan to the next: namespace, kind and name.
    pub fn key(&self) -> (Option<String>, String, String) {
        (self.namespace.clone(), self.kind.clone(), self.name.clone())
    }

    /// `Pod shop/web-1`.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// The workload's outcome and reasons, from the engine's decision and the scan's own notes (`notes`: a
/// moved tag and the like, each a warning). A finding that did not pass makes the workload non-compliant
/// whatever its policy's mode, except an error under `failurePolicy: Ignore`, which warns; errors alone
/// (nothing failed) leave it unverified; a denial no finding explains (a bad reference, `--no-match deny`,
/// an object that cannot be read) makes it non-compliant.
pub fn classify(decision: &Decision, policies: &PolicySet, notes: &[String]) -> (ScanOutcome, Vec<String>) {
    let ignored = |f: &Finding| {
        f.result == FindingResult::Error
            && policies.policies().iter().any(|p| {
                p.name == f.policy
                    && p.namespace == f.policy_namespace
                    && p.failure_policy == FailurePolicy::Ignore
            })
    };
    let mut reasons = Vec::new();
    let (mut failed, mut errors, mut warned) = (false, false, !notes.is_empty());
    for f in decision.findings.iter().chain(&decision.audit).filter(|f| f.result != FindingResult::Pass) {
        let line = f.to_string();
        if reasons.contains(&line) {
            continue; // a no-match denial under dry-run is in `audit` only; findings are in `findings`
        }
        match f.result {
            FindingResult::Fail => failed = true,
            FindingResult::Error if ignored(f) => warned = true,
            _ => errors = true,
        }
        reasons.push(line);
    }
    if !decision.allowed && !failed && !errors {
        failed = true;
        reasons.push(decision.message.clone().unwrap_or_else(|| "denied".into()));
    }
    if !failed && !errors && !decision.warnings.is_empty() {
        warned = true;
        reasons.extend(decision.warnings.iter().cloned());
    }
    reasons.extend(notes.iter().cloned());
    let outcome = if failed {
        ScanOutcome::NonCompliant
    } else if errors {
        ScanOutcome::Unverified
    } else if warned {
        ScanOutcome::Warned
    } else {
        ScanOutcome::Compliant
    };
    (outcome, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_policies::{ArtifactKind, ArtifactLocation, Decision};

    fn finding(policy: &str, result: FindingResult) -> Finding {
        Finding {
            policy: policy.into(),
            policy_namespace: None,
            mode: Mode::Audit,
            requirement: "signature".into(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: "app".into(),
                pointer: "/x".into(),
            },
            reference: "reg/app:1".into(),
            digest: None,
            result,
            reason: format!("{result} reason"),
            signer: None,
            rekor_log_index: None,
            sbom_digest: None,
        }
    }

    fn policies(failure_policy: &str) -> PolicySet {
        PolicySet::from_yaml_str(&format!(
            "apiVersion: vouch.dev/v1alpha1\nkind: ClusterSupplyChainPolicy\nmetadata: {{name: p}}\nspec:\n  \
             images: ['**']\n  failurePolicy: {failure_policy}\n  authorities: [{{name: k, key: {{pem: x}}}}]\n"
        ))
    }

    #[test]
    fn a_failed_finding_in_any_mode_is_non_compliant() {
        let decision = Decision { findings: vec![finding("p", FindingResult::Fail)], ..Decision::allow() };
        let (outcome, reasons) = classify(&decision, &policies("Fail"), &[]);
        assert_eq!(outcome, ScanOutcome::NonCompliant);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("fail reason"), "{reasons:?}");
    }

    #[test]
    fn errors_alone_are_unverified_unless_their_policy_ignores_them() {
        let decision = Decision { findings: vec![finding("p", FindingResult::Error)], ..Decision::allow() };
        assert_eq!(classify(&decision, &policies("Fail"), &[]).0, ScanOutcome::Unverified);
        assert_eq!(classify(&decision, &policies("Ignore"), &[]).0, ScanOutcome::Warned);
        let both = Decision {
            findings: vec![finding("p", FindingResult::Error), finding("p", FindingResult::Fail)],
            ..Decision::allow()
        };
        assert_eq!(classify(&both, &policies("Fail"), &[]).0, ScanOutcome::NonCompliant);
    }

    #[test]
    fn a_denial_no_finding_explains_is_non_compliant_and_notes_warn() {
        let denied =
            Decision { allowed: false, message: Some("bad reference".into()), ..Decision::default() };
        assert_eq!(
            classify(&denied, &policies("Fail"), &[]),
            (ScanOutcome::NonCompliant, vec!["bad reference".to_owned()])
        );
        let pass = Decision { findings: vec![finding("p", FindingResult::Pass)], ..Decision::allow() };
        assert_eq!(classify(&pass, &policies("Fail"), &[]), (ScanOutcome::Compliant, vec![]));
        let (outcome, reasons) = classify(&pass, &policies("Fail"), &["tag moved".into()]);
        assert_eq!((outcome, reasons), (ScanOutcome::Warned, vec!["tag moved".to_owned()]));
    }
}
