//! Init-container fetchers that cannot be verified (unknown or non-OCI source) or that switched their own
//! verification off: charged to the policies covering the fetcher's image (for a `storageUri` without a
//! fetcher image: the policies that apply to the object), each judged in its `fetchers` mode for that kind
//! of problem (default: its mode). No such policy: denied unless dry-run (fail closed).

use vouch_attest::ArtifactRef;

use super::decide::Charged;
use super::{applies_to_object, policy_applies, AdmissionInput, ObjectLabels};
use crate::crd::Mode;
use crate::decision::{Finding, FindingResult};
use crate::extract::{FetcherProblem, FetcherProblemKind};
use crate::policy_set::{CompiledPolicy, PolicySet};

/// Requirement label of fetcher findings.
pub(super) const FETCHER: &str = "fetcher";

/// One finding per (problem, charged policy) for fetchers; one per problem for sources the object names
/// itself (charged to the strictest policy governing it); one policy-less finding per uncovered problem.
pub(super) fn judge<'a>(
    problems: &[FetcherProblem],
    set: &'a PolicySet,
    input: &AdmissionInput,
    object_labels: ObjectLabels<'_>,
) -> Vec<Charged<'a>> {
    let mut out = Vec::new();
    for problem in problems {
        let disabled = matches!(problem.kind, FetcherProblemKind::VerificationDisabled { .. });
        let repository = problem.fetcher_image.parse::<ArtifactRef>().ok().map(|r| r.repository_name());
        let charged: Vec<&CompiledPolicy> = set
            .policies()
            .iter()
            .filter(|p| match (&repository, problem.fetcher_image.is_empty()) {
                (Some(repo), _) => policy_applies(p, repo, input, object_labels),
                // No fetcher image (a storageUri): whoever governs the object.
                (None, true) => applies_to_object(p, input, object_labels),
                // An unreadable fetcher image is itself denied as a bad reference; charge nobody twice.
                (None, false) => false,
            })
            .collect();
        if charged.is_empty() && repository.is_none() && !problem.fetcher_image.is_empty() {
            continue;
        }
        let reference = match &problem.kind {
            FetcherProblemKind::NotOci { source } => source.clone(),
            _ => problem.fetcher_image.clone(),
        };
        let finding = |policy: Option<&CompiledPolicy>, mode: Mode| Finding {
            policy: policy.map(|p| p.name.clone()).unwrap_or_default(),
            policy_namespace: policy.and_then(|p| p.namespace.clone()),
            mode,
            requirement: FETCHER.to_owned(),
            artifact: problem.location.clone(),
            reference: reference.clone(),
            digest: None,
            result: FindingResult::Fail,
            reason: reason(problem),
            signer: None,
            rekor_log_index: None,
            sbom_digest: None,
        };
        if charged.is_empty() {
            out.push(Charged { policy: None, finding: finding(None, Mode::Enforce) });
            continue;
        }
        if problem.fetcher_image.is_empty() {
            // A source the object itself names (a storageUri, a field): one finding for the object, charged
            // to the strictest of the policies that govern it, not one per policy.
            let strictest = charged.iter().copied().min_by_key(|p| leniency(p.fetcher_mode(disabled)));
            if let Some(p) = strictest {
                out.push(Charged { policy: Some(p), finding: finding(Some(p), p.fetcher_mode(disabled)) });
            }
            continue;
        }
        for p in charged {
            out.push(Charged { policy: Some(p), finding: finding(Some(p), p.fetcher_mode(disabled)) });
        }
    }
    out
}

/// How leniently a mode judges: Enforce (0) before Warn before Audit; `min_by_key` keeps the first of
/// equals, so the first policy in the set's order wins a tie.
fn leniency(mode: Mode) -> u8 {
    match mode {
        Mode::Enforce => 0,
        Mode::Warn => 1,
        Mode::Audit => 2,
    }
}

/// The extractor's sentence, completed with why it matters (unless it says so already).
fn reason(problem: &FetcherProblem) -> String {
    let why = match &problem.kind {
        FetcherProblemKind::UnknownSource => "what it fetches cannot be verified at admission",
        FetcherProblemKind::NotOci { .. } => "only OCI artifacts can be verified",
        FetcherProblemKind::VerificationDisabled { .. } => return problem.message.clone(),
    };
    if problem.message.contains("cannot be verified") {
        problem.message.clone()
    } else {
        format!("{}; {why}", problem.message)
    }
}
