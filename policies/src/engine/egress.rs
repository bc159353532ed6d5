//! Declared egress against signed allowlists. Each declaration names the allowlist that must cover it (an
//! artifact of the object, verified like an image by the policies covering its repository); NetworkPolicy
//! declarations use their namespace's allowlist (annotation `vouch.dev/egress-allowlist` on the namespace,
//! else the `egress.allowlist` of a policy that applies). An allowlist is used only when the policies that
//! cover it verified it; every endpoint it does not cover is named in the finding (requirement `egress`),
//! charged to those policies.

use std::sync::Arc;
use std::time::Duration;

use vouch_attest::egress::{fetch_any_allowlist, AnyAllowlist, EgressError};
use vouch_attest::{ArtifactRef, Digest};

use super::decide::{Charged, PolicyFindings};
use super::{applies_to_object, cannot_verify, AdmissionInput, Engine, ObjectLabels};
use crate::crd::Mode;
use crate::decision::{ArtifactKind, ArtifactLocation, Finding, FindingResult};
use crate::extract::{EgressDeclaration, ExtractedArtifact};
use crate::policy_set::{CompiledPolicy, PolicySet};

/// Namespace annotation naming the allowlist NetworkPolicies there must stay within.
pub const NAMESPACE_ALLOWLIST_ANNOTATION: &str = "vouch.dev/egress-allowlist";
/// Requirement label of egress findings.
const EGRESS: &str = "egress";
/// Most fetched allowlists kept (by digest: content-addressed, never stale).
pub(super) const ALLOWLIST_CACHE_ENTRIES: u64 = 1_000;

/// Fetched allowlists (either format) by digest.
pub(super) type AllowlistCache = moka::future::Cache<Digest, Arc<AnyAllowlist>>;

/// The allowlist NetworkPolicy declarations are checked against, as a synthetic artifact (never pinned:
/// it is not named in the object). None when no declaration needs it; then, if policies with an `egress`
/// section govern the object but no allowlist is known, each is charged with a failure.
pub(super) fn namespace_allowlist<'a>(
    declarations: &[EgressDeclaration],
    input: &AdmissionInput,
    set: &'a PolicySet,
    object_labels: ObjectLabels<'_>,
    charged: &mut Vec<Charged<'a>>,
) -> Option<ExtractedArtifact> {
    if declarations.iter().all(|d| d.allowlist.is_some()) {
        return None;
    }
    let ns = input.namespace.clone().unwrap_or_default();
    let governing: Vec<&CompiledPolicy> =
        set.policies().iter().filter(|p| p.egress && applies_to_object(p, input, object_labels)).collect();
    let (reference, name) = match input.namespace_annotations.get(NAMESPACE_ALLOWLIST_ANNOTATION) {
        Some(r) => (r.clone(), format!("namespace {ns}")),
        None => match governing.iter().find_map(|p| p.egress_allowlist.as_ref().map(|r| (p, r))) {
            Some((p, r)) => (r.to_string(), format!("policy {} default", p.name)),
            None => {
                for p in governing {
                    let location = ArtifactLocation {
                        kind: ArtifactKind::EgressAllowlist,
                        name: format!("namespace {ns}"),
                        pointer: String::new(),
                    };
                    let reason = format!(
                        "no egress allowlist for namespace {ns} (annotate the namespace \
                         {NAMESPACE_ALLOWLIST_ANNOTATION} or set the policy's egress.allowlist)"
                    );
                    charged.push(Charged {
                        policy: Some(p),
                        finding: finding(Some(p), location, String::new(), None, FindingResult::Fail, reason),
                    });
                }
                return None;
            }
        },
    };
    Some(ExtractedArtifact {
        location: ArtifactLocation { kind: ArtifactKind::EgressAllowlist, name, pointer: String::new() },
        image: reference,
        prefix: String::new(),
        suffix: String::new(),
        artifact_type: None,
    })
}

fn finding(
    policy: Option<&CompiledPolicy>,
    artifact: ArtifactLocation,
    reference: String,
    digest: Option<Digest>,
    result: FindingResult,
    reason: String,
) -> Finding {
    Finding {
        policy: policy.map(|p| p.name.clone()).unwrap_or_default(),
        policy_namespace: policy.and_then(|p| p.namespace.clone()),
        mode: policy.map_or(Mode::Enforce, |p| p.mode),
        requirement: EGRESS.to_owned(),
        artifact,
        reference,
        digest,
        result,
        reason,
        signer: None,
        rekor_log_index: None,
        sbom_digest: None,
    }
}

/// The allowlist artifact of a declaration (its own, or the namespace's).
fn allowlist_of(d: &EgressDeclaration, namespace: Option<usize>) -> Option<usize> {
    d.allowlist.or(namespace)
}

/// How the policies covering an allowlist judged it: the pinned reference when it verified.
enum Trust<'a> {
    /// No policy covers the allowlist's repository: nothing vouches for it.
    Uncovered,
    /// PolicyFindings (by every enforcing policy covering it); the charged policies and the pinned reference.
    PolicyFindings(Vec<&'a CompiledPolicy>, ArtifactRef),
    /// Not verified; the charged policies.
    Unverified(Vec<&'a CompiledPolicy>),
}

fn trust<'a>(index: usize, results: &[PolicyFindings<'a>]) -> Trust<'a> {
    let covering: Vec<&PolicyFindings<'a>> = results.iter().filter(|r| r.index == index).collect();
    if covering.is_empty() {
        return Trust::Uncovered;
    }
    // Audit-mode policies vouch only when no other policy covers the allowlist.
    let enforcing: Vec<&PolicyFindings<'a>> =
        covering.iter().copied().filter(|r| r.policy.mode != Mode::Audit).collect();
    let judges = if enforcing.is_empty() { covering } else { enforcing };
    let policies: Vec<&'a CompiledPolicy> = judges.iter().map(|r| r.policy).collect();
    let all_pass = judges
        .iter()
        .all(|r| !r.findings.is_empty() && r.findings.iter().all(|f| f.result == FindingResult::Pass));
    let pinned = judges
        .iter()
        .flat_map(|r| r.findings.iter())
        .find_map(|f| f.reference.parse::<ArtifactRef>().ok().filter(|r| r.digest().is_some()));
    match (all_pass, pinned) {
        (true, Some(p)) => Trust::PolicyFindings(policies, p),
        _ => Trust::Unverified(policies),
    }
}

/// Check every declaration against its allowlist.
#[allow(clippy::too_many_arguments)]
pub(super) async fn check<'a>(
    engine: &Engine,
    declarations: &[EgressDeclaration],
    namespace: Option<usize>,
    artifacts: &[ExtractedArtifact],
    results: &[PolicyFindings<'a>],
    input: &AdmissionInput,
) -> Vec<Charged<'a>> {
    let mut out = Vec::new();
    for d in declarations {
        let Some(index) = allowlist_of(d, namespace) else { continue };
        let Some(artifact) = artifacts.get(index) else { continue };
        let location = artifact.location.clone();
        let endpoints = d.endpoints.join(", ");
        match trust(index, results) {
            Trust::Uncovered => {
                let reason = format!(
                    "egress declared at {} cannot be checked: no policy covers the allowlist {}, so its \
                     signature is not verified",
                    d.location, artifact.image
                );
                out.push(Charged {
                    policy: None,
                    finding: finding(
                        None,
                        location,
                        artifact.image.clone(),
                        None,
                        FindingResult::Fail,
                        reason,
                    ),
                });
            }
            Trust::Unverified(policies) => {
                let reason = format!(
                    "egress declared at {} ({endpoints}) cannot be checked: the allowlist {} did not verify",
                    d.location, artifact.image
                );
                for p in policies {
                    let f = finding(
                        Some(p),
                        location.clone(),
                        artifact.image.clone(),
                        None,
                        FindingResult::Fail,
                        reason.clone(),
                    );
                    out.push(Charged { policy: Some(p), finding: f });
                }
            }
            Trust::PolicyFindings(policies, pinned) => {
                let (result, reason) = match engine.allowlist(&pinned, policies.first().copied(), input).await
                {
                    Err(Unusable { transient: true, reason }) => {
                        (FindingResult::Error, cannot_verify(&reason))
                    }
                    Err(Unusable { reason, .. }) => {
                        (FindingResult::Fail, format!("allowlist {pinned} cannot be used: {reason}"))
                    }
                    Ok(list) => {
                        let uncovered = list.uncovered(&d.endpoints);
                        if uncovered.is_empty() {
                            let n = d.endpoints.len();
                            (
                                FindingResult::Pass,
                                format!(
                                    "{n} endpoints declared at {} are in egress allowlist {}",
                                    d.location,
                                    list.name()
                                ),
                            )
                        } else {
                            let named: Vec<String> =
                                uncovered.iter().map(|u| format!("{} ({})", u.endpoint, u.reason)).collect();
                            (
                                FindingResult::Fail,
                                format!(
                                    "egress declared at {} is not covered by the allowlist: {}",
                                    d.location,
                                    named.join(", ")
                                ),
                            )
                        }
                    }
                };
                for p in policies {
                    let f = finding(
                        Some(p),
                        location.clone(),
                        pinned.to_string(),
                        pinned.digest().cloned(),
                        result,
                        reason.clone(),
                    );
                    out.push(Charged { policy: Some(p), finding: f });
                }
            }
        }
    }
    out
}

/// Error findings for declarations whose check did not finish within the budget.
pub(super) fn timed_out<'a>(
    declarations: &[EgressDeclaration],
    namespace: Option<usize>,
    artifacts: &[ExtractedArtifact],
    results: &[PolicyFindings<'a>],
    budget: Duration,
) -> Vec<Charged<'a>> {
    let mut out = Vec::new();
    for d in declarations {
        let Some(index) = allowlist_of(d, namespace) else { continue };
        let Some(artifact) = artifacts.get(index) else { continue };
        let reason = format!(
            "cannot verify: the egress check of {} did not finish within the budget of {budget:?}",
            d.location
        );
        let policies: Vec<&CompiledPolicy> =
            results.iter().filter(|r| r.index == index).map(|r| r.policy).collect();
        let policies: Vec<Option<&CompiledPolicy>> =
            if policies.is_empty() { vec![None] } else { policies.into_iter().map(Some).collect() };
        for p in policies {
            let f = finding(
                p,
                artifact.location.clone(),
                artifact.image.clone(),
                None,
                FindingResult::Error,
                reason.clone(),
            );
            out.push(Charged { policy: p, finding: f });
        }
    }
    out
}

impl Engine {
    /// The allowlist at `pinned`, fetched once per digest (with the credentials of the workload and the
    /// policy that verified it).
    async fn allowlist(
        &self,
        pinned: &ArtifactRef,
        policy: Option<&CompiledPolicy>,
        input: &AdmissionInput,
    ) -> Result<Arc<AnyAllowlist>, Unusable> {
        let unusable = |e: &EgressError| Unusable {
            transient: matches!(e, EgressError::Registry(r) if r.is_transient()),
            reason: e.to_string(),
        };
        let digest = pinned
            .digest()
            .cloned()
            .ok_or_else(|| unusable(&EgressError::NotPinned { reference: pinned.to_string() }))?;
        let mut credentials = input.pull_credentials.clone();
        if let Some(c) = policy.and_then(|p| p.credentials.as_ref()) {
            credentials.merge(c.clone());
        }
        let registry = self
            .shared
            .verifier
            .registry()
            .with_credentials(&credentials)
            .map_err(|e| unusable(&EgressError::Registry(e)))?;
        self.shared
            .allowlists
            .try_get_with(digest, async { fetch_any_allowlist(&registry, pinned).await.map(Arc::new) })
            .await
            .map_err(|e| unusable(&e))
    }
}

/// Why an allowlist could not be fetched or read.
struct Unusable {
    /// Registry trouble (judged by the failure policy) rather than a bad allowlist.
    transient: bool,
    reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, mode: Mode) -> CompiledPolicy {
        let set = PolicySet::from_yaml_str(&format!(
            "apiVersion: vouch.dev/v1alpha1\nkind: ClusterSupplyChainPolicy\nmetadata: {{name: {name}}}\n\
             spec: {{images: [\"r.io/**\"], mode: {mode:?}, authorities: [{{name: k, keyless: {{identities: \
             [{{subject: a, issuer: b}}]}}}}], requirements: {{signature: true}}}}\n"
        ));
        set.policies().first().cloned().unwrap_or_else(|| panic!("{:?}", set.problems()))
    }

    fn result(policy: &CompiledPolicy, pass: bool) -> PolicyFindings<'_> {
        let f = Finding {
            policy: policy.name.clone(),
            policy_namespace: None,
            mode: policy.mode,
            requirement: "signature".into(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::EgressAllowlist,
                name: "a".into(),
                pointer: "/p".into(),
            },
            reference: format!("r.io/list:v1@sha256:{}", "a".repeat(64)),
            digest: None,
            result: if pass { FindingResult::Pass } else { FindingResult::Fail },
            reason: String::new(),
            signer: None,
            rekor_log_index: None,
            sbom_digest: None,
        };
        PolicyFindings { index: 0, policy, findings: vec![f] }
    }

    #[test]
    fn an_allowlist_is_trusted_only_when_the_enforcing_policies_covering_it_all_passed() {
        let (enforce, audit) = (policy("e", Mode::Enforce), policy("a", Mode::Audit));
        assert!(matches!(trust(0, &[]), Trust::Uncovered));
        assert!(matches!(trust(0, &[result(&enforce, true)]), Trust::PolicyFindings(p, _) if p.len() == 1));
        assert!(matches!(trust(0, &[result(&enforce, true), result(&enforce, false)]), Trust::Unverified(_)));
        // An audit policy's failure does not distrust what an enforcing policy verified...
        assert!(matches!(
            trust(0, &[result(&enforce, true), result(&audit, false)]),
            Trust::PolicyFindings(..)
        ));
        // ...but alone it is the judge.
        assert!(matches!(trust(0, &[result(&audit, false)]), Trust::Unverified(_)));
        // A policy with no findings vouches for nothing.
        let empty = PolicyFindings { index: 0, policy: &enforce, findings: Vec::new() };
        assert!(matches!(trust(0, &[empty]), Trust::Unverified(_)));
    }
}
