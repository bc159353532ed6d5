//! The decision engine: for each artifact an admitted object names (images, models, what fetchers pull,
//! custom-resource fields, egress allowlists), each matching policy, each requirement, ask the
//! [`ArtifactVerifier`] (which caches) whether any of the policy's authorities satisfies it, run Rego
//! conditions on verified attestations and compliance profiles on verified facts, check declared egress
//! against verified allowlists, judge fetchers that cannot be verified, and turn the results into a
//! [`Decision`] by mode (enforce / warn / audit, all audit under dry-run) and failure policy (for registry
//! trouble).
//!
//! By stage: [`input`] (the request), [`matching`] (which policies apply), `checks` (each requirement),
//! `decide` (findings into a decision); `compliance`, `egress`, `fetchers` and `pins` are the parts of
//! checking and deciding that concern one kind of thing.

mod checks;
mod compliance;
mod decide;
mod egress;
mod fetchers;
pub mod input;
pub mod matching;
mod object;
mod pins;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use vouch_attest::sigstore_verify::Authority;
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, VerifyOptions};
use vouch_attest::ArtifactRef;

use crate::decision::{Decision, FindingResult};
use crate::extract::{extract_with, CompiledExtraction, ExtractError, ExtractedArtifact, ExtractionConfig};
use crate::policy_set::{CompiledAuthority, CompiledPolicy, PolicySet};

pub use checks::condition_input;
use checks::{base_finding, digest_finding, every_check};
use decide::{PolicyFindings, Unmatched};
pub use input::{labels_of, object_label, AdmissionInput, ObjectLabels};
pub use matching::{applies_to_object, policy_applies};
use matching::{covers, mark_unknown_selector, profile_labels, selector_unknown, CONFIGURATION};
pub use object::{ObjectJson, UnreadableObject};

/// What to do when no policy covers an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoMatchAction {
    /// Admit silently.
    #[default]
    Allow,
    /// Admit with a warning.
    Warn,
    /// Deny.
    Deny,
}

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Every policy acts as audit: nothing is denied, every would-be denial is recorded.
    pub dry_run: bool,
    /// Artifacts no policy covers.
    pub no_match: NoMatchAction,
    /// Time allowed for one evaluation (below the webhook's timeoutSeconds).
    pub budget: Duration,
    /// Rego evaluations running at once (CPU-bound work on blocking threads).
    pub max_concurrent_rego: usize,
    /// Where references are found beyond the built-in places (custom kinds, extra fetcher profiles).
    pub extraction: ExtractionConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            dry_run: false,
            no_match: NoMatchAction::Allow,
            budget: Duration::from_secs(8),
            max_concurrent_rego: 4,
            extraction: ExtractionConfig::default(),
        }
    }
}

/// Verifiers by (TrustRoot name, tlog required for keys), built when policies are put in force.
type VerifierKey = (Option<String>, bool);

struct Loaded {
    set: Arc<PolicySet>,
    /// The verifier under the trust root in force (`--trusted-root`, possibly reloaded).
    base: ArtifactVerifier,
    verifiers: BTreeMap<VerifierKey, ArtifactVerifier>,
}

impl Loaded {
    fn new(set: Arc<PolicySet>, base: &ArtifactVerifier) -> Self {
        let mut verifiers = BTreeMap::new();
        let in_force = set.policies().iter().filter(|p| p.broken.is_none());
        for a in in_force.flat_map(|p| p.authorities.iter()) {
            let key = verifier_key(a);
            if verifiers.contains_key(&key) {
                continue;
            }
            let mut v = base.clone();
            if let Some(root) = a.trust_root.as_ref().and_then(|n| set.trust_roots().get(n)) {
                v = v.with_trust_root(root.root.clone());
            }
            if v.options().require_tlog_for_keys != key.1 {
                let options = VerifyOptions { require_tlog_for_keys: key.1, ..v.options().clone() };
                match v.with_options(options) {
                    Ok(changed) => v = changed,
                    // Left out: the authority's requirements then fail closed ("no verifier").
                    Err(_) => continue,
                }
            }
            verifiers.insert(key, v);
        }
        Self { set, base: base.clone(), verifiers }
    }
}

fn verifier_key(a: &CompiledAuthority) -> VerifierKey {
    match a.authority {
        Authority::Key(_) => (None, a.require_tlog),
        // Keyless: the tlog option does not apply; keep the base setting so the base verifier is reused.
        Authority::Keyless { .. } => (a.trust_root.clone(), true),
        // Notation: neither a Sigstore trust root nor the tlog option applies; the base verifier serves.
        Authority::Notation(_) => (None, true),
    }
}

struct Shared {
    config: EngineConfig,
    loaded: ArcSwap<Loaded>,
    verifier: ArtifactVerifier,
    rego_permits: Arc<tokio::sync::Semaphore>,
    /// Manifest and config annotations of pinned artifacts, for compliance profiles.
    manifests: compliance::ManifestCache,
    /// Fetched egress allowlists.
    allowlists: egress::AllowlistCache,
    /// Manifest artifactTypes by digest (for references that declare one).
    artifact_types: moka::future::Cache<vouch_attest::Digest, Option<String>>,
    /// `config.extraction` compiled once; an invalid configuration fails every evaluation closed.
    extraction: Result<CompiledExtraction, Vec<String>>,
    /// Set once policies are loaded (at construction, or by the first [`Engine::replace_policies`]).
    ready: AtomicBool,
    /// Counts the changes of what is in force (see [`Engine::in_force_changes`]).
    changes: tokio::sync::watch::Sender<u64>,
}

/// The decision engine: clone freely (clones share policies, verifier and cache).
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .field("policies", &self.shared.loaded.load().set.policies().len())
            .finish()
    }
}

impl Engine {
    /// An engine with `policies` in force, verifying through `verifier`; ready at once.
    pub fn new(config: EngineConfig, policies: PolicySet, verifier: ArtifactVerifier) -> Self {
        Self::build(config, policies, verifier, true)
    }

    /// An engine with no policies that is not ready until the first [`Engine::replace_policies`] (the
    /// cluster integration, before its first list of the policy resources completes).
    pub fn new_pending(config: EngineConfig, verifier: ArtifactVerifier) -> Self {
        Self::build(config, PolicySet::empty(), verifier, false)
    }

    fn build(config: EngineConfig, policies: PolicySet, verifier: ArtifactVerifier, ready: bool) -> Self {
        let permits = config.max_concurrent_rego.max(1);
        // Keyless authorities reuse the base verifier: normalise its key setting into the map key.
        let loaded = Loaded::new(Arc::new(policies), &verifier);
        let extraction = config.extraction.compile();
        Self {
            shared: Arc::new(Shared {
                config,
                loaded: ArcSwap::from_pointee(loaded),
                verifier,
                rego_permits: Arc::new(tokio::sync::Semaphore::new(permits)),
                extraction,
                manifests: moka::future::Cache::new(compliance::MANIFEST_CACHE_ENTRIES),
                allowlists: moka::future::Cache::new(egress::ALLOWLIST_CACHE_ENTRIES),
                artifact_types: moka::future::Cache::new(compliance::MANIFEST_CACHE_ENTRIES),
                ready: AtomicBool::new(ready),
                changes: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// Put `policies` in force atomically (evaluations under way finish with the old set); the engine is
    /// ready from then on.
    pub fn replace_policies(&self, policies: PolicySet) {
        let set = Arc::new(policies);
        // rcu: a trust root replaced at the same moment is kept.
        self.shared.loaded.rcu(|cur| Arc::new(Loaded::new(Arc::clone(&set), &cur.base)));
        // Release: whoever sees `ready` also sees the set stored above.
        self.shared.ready.store(true, Ordering::Release);
        self.shared.changes.send_modify(|n| *n += 1);
    }

    /// [`Engine::replace_policies`] with a set compiled again from the same resources and secrets (a
    /// periodic resync): put in force, but not counted as a change by [`Engine::in_force_changes`].
    pub fn refresh_policies(&self, policies: PolicySet) {
        let set = Arc::new(policies);
        self.shared.loaded.rcu(|cur| Arc::new(Loaded::new(Arc::clone(&set), &cur.base)));
        self.shared.ready.store(true, Ordering::Release);
    }

    /// Changes of the policies or trust root in force: the value counts them ([`Engine::replace_policies`],
    /// [`Engine::replace_trust_root`]); a receiver sees when it moved (e.g. to re-scan what runs).
    pub fn in_force_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Put `root` in force as the trust root of authorities that name none (`--trusted-root`), atomically
    /// (evaluations under way finish with the old one). Verdicts are cached under the trust root's
    /// fingerprint, so none computed under the old root is served under the new one.
    pub fn replace_trust_root(&self, root: TrustRoot) {
        let base = self.shared.verifier.with_trust_root(root);
        self.shared.loaded.rcu(|cur| Arc::new(Loaded::new(Arc::clone(&cur.set), &base)));
        self.shared.changes.send_modify(|n| *n += 1);
    }

    /// The policies in force.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.shared.loaded.load().set.clone()
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The extraction configuration compiled once at construction; `None` when it is invalid (every
    /// evaluation then fails closed).
    pub fn extraction(&self) -> Option<&CompiledExtraction> {
        self.shared.extraction.as_ref().ok()
    }

    /// The verifier (for cache and registry statistics).
    pub fn verifier(&self) -> &ArtifactVerifier {
        &self.shared.verifier
    }

    /// Whether policies and trust roots are loaded: from construction with [`Engine::new`], after the first
    /// [`Engine::replace_policies`] with [`Engine::new_pending`].
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// Decide on `input`. Never panics and never fails: verification trouble becomes findings that the
    /// policies' failure policies turn into allow or deny; the whole evaluation is bounded by the budget.
    pub async fn evaluate(&self, input: &AdmissionInput) -> Decision {
        self.evaluate_as_written(input, &BTreeMap::new()).await
    }

    /// [`Engine::evaluate`] of an object whose references were rewritten before it came here, as a scan pins
    /// what runs: `written` maps a reference's JSON pointer to the reference its author wrote, on which
    /// `requireDigest` is judged (a tag pinned by the scan is still a tag in the manifest, and admission
    /// would deny it). Everything else is verified as the object names it.
    pub async fn evaluate_as_written(
        &self,
        input: &AdmissionInput,
        written: &BTreeMap<String, String>,
    ) -> Decision {
        let object = object_label(input);
        let extracted = match &self.shared.extraction {
            Ok(config) => extract_with(input, config),
            Err(problems) => Err(ExtractError::Config { problems: problems.clone() }),
        };
        let extracted = match extracted {
            Ok(e) if e.skip.is_some() => return Decision::allow(),
            Ok(e) => e,
            Err(e) => return self.unreadable(&object, &e),
        };
        let loaded = self.shared.loaded.load_full();
        let deadline = tokio::time::Instant::now() + self.shared.config.budget;
        let object_labels = labels_of(input.object.as_ref());
        let mut artifacts = extracted.artifacts;
        let mut charged = Vec::new();
        // NetworkPolicy declarations are checked against the namespace's allowlist: verify it like any
        // artifact (a synthetic one: it is not named in the object, so never pinned).
        let namespace_allowlist =
            egress::namespace_allowlist(&extracted.egress, input, &loaded.set, object_labels, &mut charged)
                .map(|a| {
                    artifacts.push(a);
                    artifacts.len() - 1
                });
        let artifacts = artifacts;
        charged.extend(fetchers::judge(&extracted.fetcher_problems, &loaded.set, input, object_labels));
        let mut jobs = Vec::new();
        let mut results = Vec::new();
        let mut unmatched = Vec::new();
        for (index, artifact) in artifacts.iter().enumerate() {
            let reference = match artifact.image.parse::<ArtifactRef>() {
                Ok(r) => r,
                Err(e) => {
                    unmatched.push((artifact, Unmatched::BadReference(e.reason)));
                    continue;
                }
            };
            let name = reference.repository_name();
            let matching: Vec<&CompiledPolicy> = loaded
                .set
                .policies()
                .iter()
                .filter(|p| policy_applies(p, &name, input, object_labels))
                // A policy that only sets fetcher modes or an egress default checks nothing here: it
                // must not count as covering the artifact (the no-match action applies instead).
                .filter(|p| covers(p) || !profile_labels(p, input).is_empty())
                .collect();
            // A profile the workload names itself (vouch.dev/compliance-profile) is checked, but it does not
            // make a policy with nothing else to ask cover the artifact: else a workload could trade
            // `--no-match deny` for the laxest profile there is.
            if !matching.iter().any(|p| covers(p)) {
                unmatched.push((artifact, Unmatched::NoPolicy));
            }
            for policy in matching {
                if let Some(problems) = &policy.broken {
                    // A configuration error, not registry trouble: a Fail (never Error), so failurePolicy
                    // Ignore cannot turn it into an allow; nothing is fetched.
                    let reason = format!("policy {} is invalid: {problems}", policy.name);
                    let finding = base_finding(
                        policy,
                        artifact,
                        &artifact.image,
                        None,
                        CONFIGURATION.to_owned(),
                        FindingResult::Fail,
                        reason,
                    );
                    results.push(PolicyFindings { index, policy, findings: vec![finding] });
                    continue;
                }
                let reference = reference.clone();
                let loaded = &loaded;
                let budget = self.shared.config.budget;
                jobs.push(async move {
                    let job = self.check_policy(loaded, policy, artifact, &reference, input);
                    let mut findings = match tokio::time::timeout_at(deadline, job).await {
                        Ok(findings) => findings,
                        Err(_) => {
                            let reason = format!(
                                "cannot verify: verification did not finish within the budget of {budget:?}"
                            );
                            let shown = reference.to_string();
                            every_check(policy, artifact, input, &shown, None, FindingResult::Error, &reason)
                        }
                    };
                    // Judged on the reference as written, outside the budget: no registry trouble or
                    // failure policy can admit a tag a policy forbids.
                    if policy.require_digest {
                        let as_written = written
                            .get(&artifact.location.pointer)
                            .and_then(|w| w.parse::<ArtifactRef>().ok())
                            .unwrap_or_else(|| reference.clone());
                        findings.insert(0, digest_finding(policy, artifact, &as_written));
                    }
                    PolicyFindings { index, policy, findings }
                });
            }
        }
        results.extend(futures::future::join_all(jobs).await);
        if !extracted.egress.is_empty() {
            // On the heap: only objects declaring egress need it, and every evaluation would carry it.
            let check = Box::pin(egress::check(
                self,
                &extracted.egress,
                namespace_allowlist,
                &artifacts,
                &results,
                input,
            ));
            match tokio::time::timeout_at(deadline, check).await {
                Ok(found) => charged.extend(found),
                Err(_) => charged.extend(egress::timed_out(
                    &extracted.egress,
                    namespace_allowlist,
                    &artifacts,
                    &results,
                    self.shared.config.budget,
                )),
            }
        }
        for v in &mut results {
            if selector_unknown(v.policy, input) {
                v.findings.iter_mut().for_each(|f| mark_unknown_selector(f, input));
            }
        }
        for c in &mut charged {
            if c.policy.is_some_and(|p| selector_unknown(p, input)) {
                mark_unknown_selector(&mut c.finding, input);
            }
        }
        self.decide(&object, &artifacts, results, unmatched, charged)
    }
}

/// What the checks of one policy for one resolved artifact share.
#[derive(Clone, Copy)]
struct ArtifactCheck<'a> {
    loaded: &'a Loaded,
    policy: &'a CompiledPolicy,
    artifact: &'a ExtractedArtifact,
    /// The reference resolved to its digest.
    pinned: &'a ArtifactRef,
    input: &'a AdmissionInput,
}

/// The reason of a finding that could not be verified (an Error, so the failure policy decides): the
/// cause says what happened (unreachable, timed out, throttled, reset, server error, ...).
fn cannot_verify(cause: &dyn std::fmt::Display) -> String {
    format!("cannot verify: {cause}")
}

#[allow(dead_code)]
fn assert_thread_safe() {
    fn is<T: Send + Sync + Clone>() {}
    is::<Engine>();
    is::<PolicySet>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Mode;
    use crate::{GroupVersionKind, Operation};
    use vouch_attest::cache::CacheConfig;
    use vouch_attest::registry::RegistryConfig;
    use vouch_attest::trust_root::TrustRoot;
    use vouch_attest::verify::VerifierConfig;

    /// A verifier that is never asked anything here (broken policies fetch nothing).
    fn verifier() -> ArtifactVerifier {
        ArtifactVerifier::new(VerifierConfig {
            registry: RegistryConfig {
                timeout: Duration::from_millis(200),
                retries: 0,
                ..RegistryConfig::default()
            },
            trust_root: TrustRoot::public_good().unwrap(),
            cache: CacheConfig::default(),
            options: VerifyOptions::default(),
        })
        .unwrap()
    }

    #[test]
    fn an_engine_built_with_policies_is_ready_at_once() {
        let engine = Engine::new(EngineConfig::default(), PolicySet::empty(), verifier());
        assert!(engine.is_ready());
    }

    #[test]
    fn a_pending_engine_is_ready_after_the_first_policy_set() {
        let engine = Engine::new_pending(EngineConfig::default(), verifier());
        assert!(!engine.is_ready());
        assert!(engine.policies().policies().is_empty());
        let clone = engine.clone();
        clone.replace_policies(PolicySet::empty());
        assert!(engine.is_ready(), "clones share readiness");
    }

    #[test]
    fn changes_in_force_are_counted_but_a_resync_of_the_same_set_is_not() {
        let engine = Engine::new_pending(EngineConfig::default(), verifier());
        let mut changes = engine.in_force_changes();
        engine.replace_policies(PolicySet::empty());
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), 1);
        engine.refresh_policies(PolicySet::empty());
        assert!(!changes.has_changed().unwrap(), "a resync is no change");
        engine.replace_trust_root(TrustRoot::public_good().unwrap());
        assert_eq!(*changes.borrow_and_update(), 2);
    }

    /// A policy whose Rego condition does not compile, with failurePolicy Ignore.
    fn broken_policy(mode: &str) -> PolicySet {
        let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
        let pem: String = pem.lines().map(|l| format!("          {l}\n")).collect();
        let set = PolicySet::from_yaml_str(&format!(
            r#"
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {{name: typo}}
spec:
  images: ["ghcr.io/acme/**"]
  mode: {mode}
  failurePolicy: Ignore
  authorities:
    - name: k
      key:
        pem: |
{pem}
  requirements:
    attestations: [{{predicateType: "https://slsa.dev/provenance/v1", condition: "package p\nallow if {{"}}]
"#
        ));
        assert!(set.policies()[0].broken.is_some(), "{:?}", set.problems());
        set
    }

    fn pod(image: &str) -> AdmissionInput {
        let pod = GroupVersionKind { group: String::new(), version: "v1".into(), kind: "Pod".into() };
        AdmissionInput::new(Operation::Create, pod, Some("default"), "web").with_uid("u").with_object(
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{"name": "app", "image": image}]}}),
        )
    }

    #[tokio::test]
    async fn a_broken_policy_denies_despite_failure_policy_ignore() {
        let engine = Engine::new(EngineConfig::default(), broken_policy("Enforce"), verifier());
        let d = engine.evaluate(&pod("ghcr.io/acme/app:1")).await;
        assert!(!d.allowed);
        let message = d.message.unwrap();
        assert!(
            message.starts_with(
                "Pod default/web: container app: image ghcr.io/acme/app:1 : policy typo: configuration: policy typo is invalid: requirements.attestations[0].condition: "
            ),
            "{message}"
        );
        assert!(d.pins.is_empty() && d.warnings.is_empty());
        assert_eq!(d.findings[0].result, FindingResult::Fail);
        // Images it does not name are untouched by it.
        assert!(engine.evaluate(&pod("ghcr.io/other/app:1")).await.allowed);
    }

    #[tokio::test]
    async fn a_broken_policy_under_dry_run_is_audited() {
        let config = EngineConfig { dry_run: true, ..EngineConfig::default() };
        let engine = Engine::new(config, broken_policy("Enforce"), verifier());
        let d = engine.evaluate(&pod("ghcr.io/acme/app:1")).await;
        assert!(d.allowed);
        assert_eq!(d.audit.len(), 1);
        assert_eq!(d.audit[0].mode, Mode::Audit);
        assert!(d.audit[0].reason.starts_with("policy typo is invalid: "), "{:?}", d.audit[0]);
    }

    fn fetcher_pod() -> AdmissionInput {
        pod("unused").with_object(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [], "initContainers": [{"name": "model-init",
                "image": "example.invalid/tools/oras:1",
                "command": ["oras", "pull", "https://huggingface.co/acme/m"]}]}}))
    }

    #[tokio::test]
    async fn an_unverifiable_fetcher_no_policy_covers_is_denied_and_audited_under_dry_run() {
        let engine = Engine::new(EngineConfig::default(), PolicySet::empty(), verifier());
        let d = engine.evaluate(&fetcher_pod()).await;
        assert!(!d.allowed, "fail closed although the no-match action is Allow");
        let m = d.message.unwrap();
        assert!(m.starts_with("Pod default/web: initContainer model-init: no policy: fetcher: "), "{m}");
        assert!(m.contains("https://huggingface.co/acme/m"), "{m}");

        let config = EngineConfig { dry_run: true, ..EngineConfig::default() };
        let d = Engine::new(config, PolicySet::empty(), verifier()).evaluate(&fetcher_pod()).await;
        assert!(d.allowed);
        assert_eq!(d.audit.len(), 1, "{:?}", d.audit);
        assert_eq!((d.audit[0].requirement.as_str(), d.audit[0].mode), ("fetcher", Mode::Audit));
    }

    #[tokio::test]
    async fn an_invalid_extraction_configuration_fails_closed() {
        let extraction = ExtractionConfig::from_yaml_str(
            "extractors: [{apiVersion: x.io/v1, kind: K, paths: [\"$..bad[\"]}]",
        )
        .unwrap();
        let config = EngineConfig { extraction, ..EngineConfig::default() };
        let d =
            Engine::new(config, PolicySet::empty(), verifier()).evaluate(&pod("ghcr.io/acme/app:1")).await;
        assert!(!d.allowed);
        let m = d.message.unwrap();
        assert!(
            m.starts_with("Pod default/web: cannot read the object: invalid extraction configuration: "),
            "{m}"
        );
    }

    #[tokio::test]
    async fn a_broken_warn_policy_warns() {
        let engine = Engine::new(EngineConfig::default(), broken_policy("Warn"), verifier());
        let d = engine.evaluate(&pod("ghcr.io/acme/app:1")).await;
        assert!(d.allowed);
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("policy typo is invalid: "), "{:?}", d.warnings);
        assert!(!d.warnings[0].contains("failurePolicy Ignore"), "{:?}", d.warnings);
        assert!(d.pins.is_empty());
    }
}
