//! Decision: the findings of every policy for every artifact, the artifacts no policy covers and the
//! findings charged to policies (fetchers, egress) become one [`Decision`], by mode (enforce / warn / audit,
//! all audit under dry-run), failure policy (errors under `Ignore` are admitted with a warning) and the
//! no-match action; what passed is pinned.

use super::{pins, Engine, NoMatchAction};
use crate::crd::{FailurePolicy, Mode};
use crate::decision::{Cause, Decision, Finding, FindingResult};
use crate::extract::{ExtractError, ExtractedArtifact};
use crate::policy_set::CompiledPolicy;
use crate::reason::{field_path, ReasonCode};

/// Why an artifact is judged without a policy.
pub(super) enum Unmatched {
    /// Its reference does not parse (denied whatever the no-match action).
    BadReference(String),
    /// No policy covers it (the no-match action decides).
    NoPolicy,
}

/// The findings of one policy for one artifact (by index into the evaluation's artifacts): passes,
/// failures and errors alike.
pub(super) struct PolicyFindings<'a> {
    pub(super) index: usize,
    pub(super) policy: &'a CompiledPolicy,
    pub(super) findings: Vec<Finding>,
}

/// A finding not about verifying one artifact (a fetcher problem, an egress check), with the policy it is
/// charged to (`None`: no policy covers it, which denies unless dry-run) and its mode already set.
pub(super) struct Charged<'a> {
    pub(super) policy: Option<&'a CompiledPolicy>,
    pub(super) finding: Finding,
}

/// A decision being built; its denials so far are its `causes` (each with its denial line).
struct Building<'o> {
    object: &'o str,
    decision: Decision,
}

impl Building<'_> {
    /// Route a finding that did not pass, by the mode it was judged in: audit records it, warn warns, enforce
    /// denies — except an error its policy's `failurePolicy: Ignore` admits, with a warning.
    fn route(&mut self, finding: &Finding, line: String, policy: Option<&CompiledPolicy>) {
        let ignored = finding.result == FindingResult::Error
            && policy.is_some_and(|p| p.failure_policy == FailurePolicy::Ignore);
        let object = self.object;
        match finding.mode {
            Mode::Audit => self.decision.audit.push(finding.clone()),
            _ if ignored => {
                self.decision.warnings.push(format!("{object}: {line} (allowed: failurePolicy Ignore)"))
            }
            Mode::Warn => self.decision.warnings.push(format!("{object}: {line}")),
            Mode::Enforce => self.decision.causes.push(Cause::of(finding, line)),
        }
    }
}

impl Engine {
    /// The answer for an object that cannot be read: deny (allow with a warning under dry-run).
    pub(super) fn unreadable(&self, object: &str, e: &ExtractError) -> Decision {
        let line = format!("{object}: cannot read the object: {e}");
        if self.shared.config.dry_run {
            Decision {
                allowed: true,
                warnings: vec![format!("dry-run, would deny: {line}")],
                ..Decision::allow()
            }
        } else {
            let cause =
                Cause { reason: ReasonCode::ReferenceInvalid, message: line.clone(), field: String::new() };
            Decision { allowed: false, message: Some(line), causes: vec![cause], ..Decision::default() }
        }
    }

    /// Turn findings into the decision, by mode, dry-run and failure policy.
    pub(super) fn decide(
        &self,
        object: &str,
        artifacts: &[ExtractedArtifact],
        results: Vec<PolicyFindings<'_>>,
        unmatched: Vec<(&ExtractedArtifact, Unmatched)>,
        charged: Vec<Charged<'_>>,
    ) -> Decision {
        let dry_run = self.shared.config.dry_run;
        let mut b = Building { object, decision: Decision::allow() };
        let mut pins = pins::Pins::default();
        for (artifact, reason) in unmatched {
            let (requirement, why, no_match) = match reason {
                Unmatched::BadReference(why) => {
                    ("reference", format!("not a valid reference: {why}"), NoMatchAction::Deny)
                }
                Unmatched::NoPolicy => {
                    ("policy", "no policy covers this image".to_owned(), self.shared.config.no_match)
                }
            };
            let line = format!("{}: image {} : {requirement}: {why}", artifact.location, artifact.image);
            match no_match {
                NoMatchAction::Allow => {}
                NoMatchAction::Warn => b.decision.warnings.push(format!("{object}: {line}")),
                NoMatchAction::Deny if dry_run => b.decision.audit.push(Finding {
                    policy: String::new(),
                    policy_namespace: None,
                    mode: Mode::Audit,
                    requirement: requirement.to_owned(),
                    artifact: artifact.location.clone(),
                    reference: artifact.image.clone(),
                    digest: None,
                    result: FindingResult::Fail,
                    reason: why,
                    signer: None,
                    rekor_log_index: None,
                    sbom_digest: None,
                }),
                NoMatchAction::Deny => {
                    let reason = if requirement == "policy" {
                        ReasonCode::NoPolicy
                    } else {
                        ReasonCode::ReferenceInvalid
                    };
                    let field = field_path(&artifact.location.pointer);
                    b.decision.causes.push(Cause { reason, message: line, field });
                }
            }
        }
        for PolicyFindings { index, policy, findings } in results {
            let Some(artifact) = artifacts.get(index) else { continue };
            let mode = if dry_run { Mode::Audit } else { policy.mode };
            for mut f in findings {
                // Findings report the mode they were judged in (Audit under dry-run).
                f.mode = mode;
                let passed = f.result == FindingResult::Pass;
                // In every mode, dry-run too: what passed is pinned to the digest that was verified, so
                // the evidence (reports name that digest) is what runs, and turning enforcement on changes
                // only the denials. What did not pass is left as written.
                pins.record(artifact, passed, f.digest.as_ref());
                if !passed {
                    b.route(&f, f.to_string(), Some(policy));
                }
                b.decision.findings.push(f);
            }
        }
        for Charged { policy, mut finding } in charged {
            if dry_run {
                finding.mode = Mode::Audit;
            }
            if finding.result != FindingResult::Pass {
                let by = policy.map_or_else(|| "no policy".to_owned(), |p| format!("policy {}", p.name));
                let line = format!("{}: {by}: {}: {}", finding.artifact, finding.requirement, finding.reason);
                b.route(&finding, line, policy);
            }
            b.decision.findings.push(finding);
        }
        let mut decision = b.decision;
        decision.pins = pins.into_pins();
        if !decision.causes.is_empty() {
            let lines: Vec<&str> = decision.causes.iter().map(|c| c.message.as_str()).collect();
            decision.allowed = false;
            decision.message = Some(format!("{object}: {}", lines.join("; ")));
            decision.pins.clear();
        }
        decision
    }
}
