//! Matching: which policies apply to an object and to each artifact it names (images, namespace, kinds,
//! selectors), which of them cover an artifact for `--no-match`, and what an unevaluable namespace selector
//! does to a policy's findings.

use super::compliance;
use super::{AdmissionInput, ObjectLabels};
use crate::decision::{Finding, FindingResult};
use crate::policy_set::CompiledPolicy;

/// The requirement label of a finding about a policy that cannot be compiled.
pub(super) const CONFIGURATION: &str = "configuration";

/// Whether a matching policy covers an artifact (so `--no-match` does not apply): it asks something of
/// its own (requirements, a digest, its own compliance profile) or is broken (which fails the artifact).
pub(super) fn covers(policy: &CompiledPolicy) -> bool {
    policy.broken.is_some()
        || !policy.requirements.is_empty()
        || policy.require_digest
        || policy.compliance_profile.is_some()
}

/// `compliance <profile>` labels of the profiles that apply to an artifact under `policy`.
pub(super) fn profile_labels(policy: &CompiledPolicy, input: &AdmissionInput) -> Vec<String> {
    compliance::profiles_for(policy, input).into_iter().map(|p| format!("compliance {p}")).collect()
}

/// Whether `policy` covers the image `name` (`registry/repository`) in this request: one of its `images`
/// globs matches and none of its `excludeImages` does (exclusion wins, within this policy only).
pub fn policy_applies(
    policy: &CompiledPolicy,
    name: &str,
    input: &AdmissionInput,
    object_labels: ObjectLabels<'_>,
) -> bool {
    names_image(policy, name) && applies_to_object(policy, input, object_labels)
}

/// Whether `policy`'s image globs take in `name`: some `images` glob matches and no `excludeImages` glob.
fn names_image(policy: &CompiledPolicy, name: &str) -> bool {
    policy.images.iter().any(|g| g.is_match(name)) && !policy.exclude_images.iter().any(|g| g.is_match(name))
}

/// Whether `policy` applies to the object of this request, whatever the artifact (its namespace, kind and
/// selectors match).
pub fn applies_to_object(
    policy: &CompiledPolicy,
    input: &AdmissionInput,
    object_labels: ObjectLabels<'_>,
) -> bool {
    let ns = input.namespace.as_deref().filter(|n| !n.is_empty());
    if policy.namespace.is_some() && policy.namespace.as_deref() != ns {
        return false;
    }
    if !policy.kinds.is_empty() && !policy.kinds.iter().any(|k| k == &input.kind.kind) {
        return false;
    }
    if !policy.namespaces.is_empty() && !ns.is_some_and(|n| policy.namespaces.iter().any(|g| g.is_match(n))) {
        return false;
    }
    if let Some(sel) = &policy.namespace_selector {
        if ns.is_none() {
            return false;
        }
        // Labels that cannot be known count as a match (fail closed); `mark_unknown_selector` then makes
        // what the policy finds wrong an Error, for its failure policy to judge.
        if input.namespace_labels.as_ref().is_some_and(|labels| !crate::selector::matches(sel, labels)) {
            return false;
        }
    }
    if let Some(sel) = &policy.object_selector {
        if !crate::selector::matches(sel, &object_labels) {
            return false;
        }
    }
    true
}

/// Whether `policy` was applied only because its `namespaceSelector` could not be evaluated (the
/// namespace's labels are unknown to the caller).
pub(super) fn selector_unknown(policy: &CompiledPolicy, input: &AdmissionInput) -> bool {
    policy.namespace_selector.is_some()
        && input.namespace_labels.is_none()
        && input.namespace.as_deref().is_some_and(|n| !n.is_empty())
}

/// A policy applied although its `namespaceSelector` could not be evaluated: what it finds wrong may not
/// concern this namespace at all, so it is not a plain failure but an Error, which the policy's failure
/// policy judges (Fail, the default: deny; Ignore: allow with a warning). Configuration errors stay failures.
pub(super) fn mark_unknown_selector(finding: &mut Finding, input: &AdmissionInput) {
    if finding.result != FindingResult::Fail || finding.requirement == CONFIGURATION {
        return;
    }
    let ns = input.namespace.as_deref().unwrap_or_default();
    finding.result = FindingResult::Error;
    finding.reason = format!(
        "{} (the policy's namespaceSelector cannot be evaluated: the labels of namespace {ns} are unknown; \
         give vouch serve cluster access (--kube) or vouch check --namespace-labels)",
        finding.reason
    );
}
