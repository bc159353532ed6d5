//! The decision engine: for each artifact an admitted object names (images, models, what fetchers pull,
//! custom-resource fields, egress allowlists), each matching policy, each requirement, ask the
//! [`ArtifactVerifier`] (which caches) whether any of the policy's authorities satisfies it, run Rego
//! conditions on verified attestations and compliance profiles on verified facts, check declared egress
//! against verified allowlists, judge fetchers that cannot be verified, and turn the results into a
//! [`Decision`] by mode (enforce / warn / audit, all audit under dry-run) and failure policy (for registry
//! trouble).

mod compliance;
mod egress;
mod fetchers;
mod pins;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use vouch_attest::registry::Credentials;
use vouch_attest::sigstore_verify::Authority;
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, Facts, Requirement, Signer, VerifyOptions};
use vouch_attest::{ArtifactRef, Digest};

use crate::crd::{FailurePolicy, Mode, SignatureFormat};
use crate::decision::{ArtifactKind, ArtifactLocation, Decision, Finding, FindingResult};
use crate::extract::{extract_with, CompiledExtraction, ExtractError, ExtractedArtifact, ExtractionConfig};
use crate::policy_set::{CompiledAuthority, CompiledPolicy, CompiledRequirement, PolicySet};
use crate::{GroupVersionKind, Operation};

/// One admission request, as the engine needs it (built by the webhook from an AdmissionReview, or by
/// `vouch check` from files).
#[derive(Debug, Clone)]
pub struct AdmissionInput {
    /// Request uid.
    pub uid: String,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Operation,
    /// Kind of the object.
    pub kind: GroupVersionKind,
    /// Resource (`pods`, `deployments`, ...).
    pub resource: String,
    /// Subresource (`ephemeralcontainers`, `status`, ...).
    pub sub_resource: Option<String>,
    /// Namespace of the object.
    pub namespace: Option<String>,
    /// Name of the object (may be empty on CREATE with generateName).
    pub name: String,
    /// The object (CREATE, UPDATE).
    pub object: Option<serde_json::Value>,
    /// The object before the change (UPDATE).
    pub old_object: Option<serde_json::Value>,
    /// Labels of the object's namespace (looked up by the caller); `None` when the caller cannot know
    /// them (`vouch serve` without cluster access, `vouch check` without `--namespace-labels`). A policy
    /// whose `namespaceSelector` therefore cannot be evaluated is applied, and what it finds wrong is judged
    /// by its failure policy (deny by default): an unknown selector never means "no policy applies".
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// Annotations of the object's namespace (looked up by the caller): `vouch.dev/egress-allowlist` names
    /// the allowlist NetworkPolicies there are checked against.
    pub namespace_annotations: BTreeMap<String, String>,
    /// The request is a dry run (nothing persisted).
    pub dry_run: bool,
    /// The pod's and its service account's imagePullSecrets; merged with the policy's credentials.
    pub pull_credentials: Credentials,
}

/// The requirement label of a finding about a policy that cannot be compiled.
const CONFIGURATION: &str = "configuration";

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
    /// `config.extraction` compiled once; an invalid configuration fails every evaluation closed.
    extraction: Result<CompiledExtraction, Vec<String>>,
    /// Set once policies are loaded (at construction, or by the first [`Engine::replace_policies`]).
    ready: AtomicBool,
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
                ready: AtomicBool::new(ready),
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
    }

    /// Put `root` in force as the trust root of authorities that name none (`--trusted-root`), atomically
    /// (evaluations under way finish with the old one). Verdicts are cached under the trust root's
    /// fingerprint, so none computed under the old root is served under the new one.
    pub fn replace_trust_root(&self, root: TrustRoot) {
        let base = self.shared.verifier.with_trust_root(root);
        self.shared.loaded.rcu(|cur| Arc::new(Loaded::new(Arc::clone(&cur.set), &base)));
    }

    /// The policies in force.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.shared.loaded.load().set.clone()
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
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
            egress::namespace_allowlist(&extracted.egress, input, &loaded.set, &object_labels, &mut charged)
                .map(|a| {
                    artifacts.push(a);
                    artifacts.len() - 1
                });
        let artifacts = artifacts;
        charged.extend(fetchers::judge(&extracted.fetcher_problems, &loaded.set, input, &object_labels));
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
                .filter(|p| policy_applies(p, &name, input, &object_labels))
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
                    results.push(Verified { index, policy, findings: vec![finding] });
                    continue;
                }
                let reference = reference.clone();
                let loaded = &loaded;
                let budget = self.shared.config.budget;
                jobs.push(async move {
                    let job = self.check_policy(loaded, policy, artifact, &reference, input);
                    let findings = match tokio::time::timeout_at(deadline, job).await {
                        Ok(findings) => findings,
                        Err(_) => {
                            let reason = format!(
                                "cannot verify: verification did not finish within the budget of {budget:?}"
                            );
                            policy
                                .requirements
                                .iter()
                                .map(|req| req.label())
                                .chain(profile_labels(policy, input))
                                .map(|label| {
                                    base_finding(
                                        policy,
                                        artifact,
                                        &reference.to_string(),
                                        None,
                                        label,
                                        FindingResult::Error,
                                        reason.clone(),
                                    )
                                })
                                .collect()
                        }
                    };
                    Verified { index, policy, findings }
                });
            }
        }
        results.extend(futures::future::join_all(jobs).await);
        if !extracted.egress.is_empty() {
            let check =
                egress::check(self, &extracted.egress, namespace_allowlist, &artifacts, &results, input);
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

    /// The answer for an object that cannot be read: deny (allow with a warning under dry-run).
    fn unreadable(&self, object: &str, e: &ExtractError) -> Decision {
        let line = format!("{object}: cannot read the object: {e}");
        if self.shared.config.dry_run {
            Decision {
                allowed: true,
                warnings: vec![format!("dry-run, would deny: {line}")],
                ..Decision::allow()
            }
        } else {
            Decision { allowed: false, message: Some(line), ..Decision::default() }
        }
    }

    /// Turn findings into the decision, by mode, dry-run and failure policy.
    fn decide(
        &self,
        object: &str,
        artifacts: &[ExtractedArtifact],
        results: Vec<Verified<'_>>,
        unmatched: Vec<(&ExtractedArtifact, Unmatched)>,
        charged: Vec<Charged<'_>>,
    ) -> Decision {
        let dry_run = self.shared.config.dry_run;
        let mut d = Decision::allow();
        let mut denials = Vec::new();
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
            let mode = if dry_run { Mode::Audit } else { Mode::Enforce };
            match no_match {
                NoMatchAction::Allow => {}
                NoMatchAction::Warn => d.warnings.push(format!("{object}: {line}")),
                NoMatchAction::Deny if dry_run => d.audit.push(Finding {
                    policy: String::new(),
                    policy_namespace: None,
                    mode,
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
                NoMatchAction::Deny => denials.push(line),
            }
        }
        for Verified { index, policy, findings } in results {
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
                    let line = format!(
                        "{}: image {} : policy {}: {}: {}",
                        f.artifact, f.reference, policy.name, f.requirement, f.reason
                    );
                    let ignored =
                        f.result == FindingResult::Error && policy.failure_policy == FailurePolicy::Ignore;
                    match mode {
                        Mode::Audit => d.audit.push(f.clone()),
                        _ if ignored => {
                            d.warnings.push(format!("{object}: {line} (allowed: failurePolicy Ignore)"))
                        }
                        Mode::Warn => d.warnings.push(format!("{object}: {line}")),
                        Mode::Enforce => denials.push(line),
                    }
                }
                d.findings.push(f);
            }
        }
        for Charged { policy, mut finding } in charged {
            if dry_run {
                finding.mode = Mode::Audit;
            }
            if finding.result != FindingResult::Pass {
                let by = policy.map_or_else(|| "no policy".to_owned(), |p| format!("policy {}", p.name));
                let line = format!("{}: {by}: {}: {}", finding.artifact, finding.requirement, finding.reason);
                let ignored = finding.result == FindingResult::Error
                    && policy.is_some_and(|p| p.failure_policy == FailurePolicy::Ignore);
                match finding.mode {
                    Mode::Audit => d.audit.push(finding.clone()),
                    _ if ignored => {
                        d.warnings.push(format!("{object}: {line} (allowed: failurePolicy Ignore)"))
                    }
                    Mode::Warn => d.warnings.push(format!("{object}: {line}")),
                    Mode::Enforce => denials.push(line),
                }
            }
            d.findings.push(finding);
        }
        d.pins = pins.into_pins();
        if !denials.is_empty() {
            d.allowed = false;
            d.message = Some(format!("{object}: {}", denials.join("; ")));
            d.pins.clear();
        }
        d
    }
    /// Every requirement of `policy` for one artifact.
    async fn check_policy(
        &self,
        loaded: &Loaded,
        policy: &CompiledPolicy,
        artifact: &ExtractedArtifact,
        reference: &ArtifactRef,
        input: &AdmissionInput,
    ) -> Vec<Finding> {
        let mut credentials = input.pull_credentials.clone();
        if let Some(c) = &policy.credentials {
            credentials.merge(c.clone());
        }
        // Every check the policy makes here, so that none can pass unseen when the artifact cannot be read.
        let all = |result, reason: String, shown: &str, digest: Option<Digest>| -> Vec<Finding> {
            policy
                .requirements
                .iter()
                .map(|req| req.label())
                .chain(profile_labels(policy, input))
                .map(|label| {
                    base_finding(policy, artifact, shown, digest.clone(), label, result, reason.clone())
                })
                .collect()
        };
        let resolved = match loaded.base.with_credentials(&credentials) {
            Ok(v) => v.resolve(reference).await,
            Err(e) => Err(e),
        };
        let pinned = match resolved {
            Ok(p) => p,
            Err(e) if e.is_transient() => {
                return all(FindingResult::Error, cannot_verify(&e), &artifact.image, None)
            }
            Err(e) => {
                return all(
                    FindingResult::Fail,
                    format!("cannot resolve the image: {e}"),
                    &artifact.image,
                    None,
                )
            }
        };
        let shown = pinned.to_string();
        let digest = pinned.digest().cloned();
        let checks = policy
            .requirements
            .iter()
            .map(|req| self.check_requirement(loaded, policy, req, artifact, &pinned, &credentials, input));
        let mut findings: Vec<Finding> = futures::future::join_all(checks).await;
        let profiles = compliance::profiles_for(policy, input);
        if !profiles.is_empty() {
            let verifier = match loaded.base.with_credentials(&credentials) {
                Ok(v) => v,
                Err(e) => return all(FindingResult::Fail, e.to_string(), &shown, digest),
            };
            for name in profiles {
                let o = self.check_profile(loaded, policy, &name, artifact, &pinned, &verifier, input).await;
                let label = format!("compliance {name}");
                findings.push(base_finding(policy, artifact, &shown, None, label, o.result, o.reason));
            }
        }
        for f in &mut findings {
            f.reference.clone_from(&shown);
            f.digest.clone_from(&digest);
        }
        findings
    }

    /// One requirement: any authority may satisfy it.
    #[allow(clippy::too_many_arguments)]
    async fn check_requirement(
        &self,
        loaded: &Loaded,
        policy: &CompiledPolicy,
        req: &CompiledRequirement,
        artifact: &ExtractedArtifact,
        pinned: &ArtifactRef,
        credentials: &Credentials,
        input: &AdmissionInput,
    ) -> Finding {
        let requirement = match req {
            CompiledRequirement::Signature => Requirement::Signature,
            CompiledRequirement::Attestation { predicate_type, .. } => {
                Requirement::Attestation { predicate_type: predicate_type.clone() }
            }
            CompiledRequirement::Sbom => Requirement::Sbom,
        };
        let mut failures = Vec::new();
        let mut errors = Vec::new();
        for auth in &policy.authorities {
            let verifier =
                match loaded.verifiers.get(&verifier_key(auth)).map(|v| v.with_credentials(credentials)) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        failures.push(format!("{}: {e}", auth.label));
                        continue;
                    }
                    None => {
                        failures.push(format!("{}: no verifier for this authority", auth.label));
                        continue;
                    }
                };
            let requirement = match (auth.format, req) {
                (SignatureFormat::Cosign, _) => requirement.clone(),
                // A model-signing authority signs a model's files: it stands for the signature of models.
                (SignatureFormat::ModelSigning, CompiledRequirement::Signature) => {
                    match verifier.model(pinned).await {
                        Ok(Some(_)) => Requirement::ModelSignature,
                        Ok(None) => {
                            failures.push(format!(
                                "{}: signs models only, and this is not a model (ModelPack or ModelKit)",
                                auth.label
                            ));
                            continue;
                        }
                        Err(e) if e.is_transient() => {
                            errors.push(cannot_verify(&e));
                            continue;
                        }
                        Err(e) => {
                            failures.push(format!("{}: cannot read the model: {e}", auth.label));
                            continue;
                        }
                    }
                }
                (SignatureFormat::ModelSigning, _) => {
                    failures.push(format!(
                        "{}: a modelSigning authority satisfies only the signature requirement of models",
                        auth.label
                    ));
                    continue;
                }
            };
            let verdict = match verifier.verify(pinned, &auth.authority, &requirement).await {
                Ok(v) => v,
                Err(e) if e.is_transient() => {
                    errors.push(cannot_verify(&e));
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{}: {e}", auth.label));
                    continue;
                }
            };
            let facts = match verdict.outcome {
                Ok(facts) => facts,
                Err(rejection) => {
                    failures.push(rejected(req, auth, &rejection.reason));
                    continue;
                }
            };
            match self.judge(req, auth, &facts, pinned, input, &verifier).await {
                Ok(mut pass) => {
                    pass.policy.clone_from(&policy.name);
                    pass.policy_namespace.clone_from(&policy.namespace);
                    pass.mode = if self.shared.config.dry_run { Mode::Audit } else { policy.mode };
                    pass.artifact = artifact.location.clone();
                    return pass;
                }
                Err(why) => failures.push(why),
            }
        }
        let (result, reason) = if errors.is_empty() {
            (FindingResult::Fail, failures.join(", "))
        } else {
            (FindingResult::Error, errors.join(", "))
        };
        base_finding(
            policy,
            artifact,
            &pinned.to_string(),
            pinned.digest().cloned(),
            req.label(),
            result,
            reason,
        )
    }

    /// A verified requirement: a pass, unless a Rego condition rejects every attestation.
    async fn judge(
        &self,
        req: &CompiledRequirement,
        auth: &CompiledAuthority,
        facts: &Facts,
        pinned: &ArtifactRef,
        input: &AdmissionInput,
        verifier: &ArtifactVerifier,
    ) -> Result<Finding, String> {
        let mut pass = Finding {
            policy: String::new(),
            policy_namespace: None,
            mode: Mode::Enforce,
            requirement: req.label(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: String::new(),
                pointer: String::new(),
            },
            reference: pinned.to_string(),
            digest: pinned.digest().cloned(),
            result: FindingResult::Pass,
            reason: format!("verified against {}", auth.label),
            signer: None,
            rekor_log_index: None,
            sbom_digest: facts.sbom.as_ref().map(|s| s.digest.clone()),
        };
        let first_signature = facts.signatures.first();
        pass.signer = first_signature.map(|s| signer_text(&s.signer));
        pass.rekor_log_index = first_signature.and_then(|s| s.rekor_log_index);
        if let Some(m) = &facts.model_signature {
            pass.signer = Some(signer_text(&m.signer));
            pass.rekor_log_index = m.rekor_log_index;
            pass.reason = format!("model signature over {} files verified against {}", m.files, auth.label);
        }
        let CompiledRequirement::Attestation { condition: Some(condition), .. } = req else {
            if let Some(a) = facts.attestations.first() {
                pass.signer.get_or_insert_with(|| signer_text(&a.signer));
                pass.rekor_log_index = pass.rekor_log_index.or(a.rekor_log_index);
            }
            return Ok(pass);
        };
        let mut reasons = Vec::new();
        // Conditions may look at the model's metadata (null for other artifacts).
        let model = verifier.model(pinned).await.ok().flatten();
        for a in &facts.attestations {
            let rego_input = condition_input(
                &a.predicate_type,
                &a.predicate,
                pinned,
                model.as_deref(),
                input.object.as_ref(),
            );
            let permit = match self.shared.rego_permits.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => {
                    return Err(format!("{}: condition not evaluated (engine shutting down)", auth.label))
                }
            };
            let c = condition.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                c.evaluate(&rego_input)
            })
            .await;
            match outcome {
                Ok(Ok(o)) if o.allow => {
                    pass.signer = Some(signer_text(&a.signer));
                    pass.rekor_log_index = a.rekor_log_index;
                    pass.reason = format!("verified against {}; condition met", auth.label);
                    return Ok(pass);
                }
                Ok(Ok(o)) if o.reasons.is_empty() => reasons.push("condition not met".to_owned()),
                Ok(Ok(o)) => reasons.push(format!("condition not met: {}", o.reasons.join(", "))),
                Ok(Err(e)) => reasons.push(e.to_string()),
                Err(e) => reasons.push(format!("condition evaluation failed: {e}")),
            }
        }
        reasons.dedup();
        Err(format!("{}: {}", auth.label, reasons.join(", ")))
    }
}

enum Unmatched {
    BadReference(String),
    NoPolicy,
}

/// The findings of one policy for one artifact (by index into the evaluation's artifacts).
struct Verified<'a> {
    index: usize,
    policy: &'a CompiledPolicy,
    findings: Vec<Finding>,
}

/// A finding not about verifying one artifact (a fetcher problem, an egress check), with the policy it is
/// charged to (`None`: no policy covers it, which denies unless dry-run) and its mode already set.
struct Charged<'a> {
    policy: Option<&'a CompiledPolicy>,
    finding: Finding,
}

/// The input document of a policy's Rego condition, for one verified attestation of `pinned`: its
/// predicate type and predicate (as signed, untrusted in shape), the artifact (with the model's facts,
/// null for other artifacts) and the admitted object.
pub fn condition_input(
    predicate_type: &str,
    predicate: &serde_json::Value,
    pinned: &ArtifactRef,
    model: Option<&vouch_attest::model::ModelFacts>,
    object: Option<&serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "predicateType": predicate_type,
        "predicate": predicate,
        "artifact": {
            "reference": pinned.to_string(),
            "digest": pinned.digest().map(ToString::to_string),
            "model": model,
        },
        "object": object,
    })
}

/// The reason of a finding that could not be verified (an Error, so the failure policy decides): the
/// cause says what happened (unreachable, timed out, throttled, reset, server error, ...).
pub(super) fn cannot_verify(cause: &dyn std::fmt::Display) -> String {
    format!("cannot verify: {cause}")
}

/// Whether a matching policy covers an artifact (so `--no-match` does not apply): it asks something of
/// its own (requirements, its own compliance profile) or is broken (which fails the artifact).
fn covers(policy: &CompiledPolicy) -> bool {
    policy.broken.is_some() || !policy.requirements.is_empty() || policy.compliance_profile.is_some()
}

/// `compliance <profile>` labels of the profiles that apply to an artifact under `policy`.
fn profile_labels(policy: &CompiledPolicy, input: &AdmissionInput) -> Vec<String> {
    compliance::profiles_for(policy, input).into_iter().map(|p| format!("compliance {p}")).collect()
}

/// The failure text for a rejected requirement.
fn rejected(req: &CompiledRequirement, auth: &CompiledAuthority, reason: &str) -> String {
    match req {
        CompiledRequirement::Signature => format!("no signature verifies against {} ({reason})", auth.label),
        CompiledRequirement::Attestation { predicate_type, .. } => {
            format!("no {predicate_type} attestation verifies against {} ({reason})", auth.label)
        }
        CompiledRequirement::Sbom => format!("no valid SBOM for {} ({reason})", auth.label),
    }
}

fn signer_text(s: &Signer) -> String {
    match s {
        Signer::Key { fingerprint } => format!("key {fingerprint}"),
        Signer::Certificate { subject, issuer } => format!("{subject} ({issuer})"),
    }
}

fn base_finding(
    policy: &CompiledPolicy,
    artifact: &ExtractedArtifact,
    reference: &str,
    digest: Option<Digest>,
    requirement: String,
    result: FindingResult,
    reason: String,
) -> Finding {
    Finding {
        policy: policy.name.clone(),
        policy_namespace: policy.namespace.clone(),
        mode: policy.mode,
        requirement,
        artifact: artifact.location.clone(),
        reference: reference.to_owned(),
        digest,
        result,
        reason,
        signer: None,
        rekor_log_index: None,
        sbom_digest: None,
    }
}

/// Whether `policy` covers the image `name` (`registry/repository`) in this request.
pub fn policy_applies(
    policy: &CompiledPolicy,
    name: &str,
    input: &AdmissionInput,
    object_labels: &BTreeMap<String, String>,
) -> bool {
    policy.images.iter().any(|g| g.is_match(name)) && applies_to_object(policy, input, object_labels)
}

/// Whether `policy` applies to the object of this request, whatever the artifact (its namespace, kind and
/// selectors match).
pub fn applies_to_object(
    policy: &CompiledPolicy,
    input: &AdmissionInput,
    object_labels: &BTreeMap<String, String>,
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
        if !crate::selector::matches(sel, object_labels) {
            return false;
        }
    }
    true
}

/// Whether `policy` was applied only because its `namespaceSelector` could not be evaluated (the
/// namespace's labels are unknown to the caller).
fn selector_unknown(policy: &CompiledPolicy, input: &AdmissionInput) -> bool {
    policy.namespace_selector.is_some()
        && input.namespace_labels.is_none()
        && input.namespace.as_deref().is_some_and(|n| !n.is_empty())
}

/// A policy applied although its `namespaceSelector` could not be evaluated: what it finds wrong may not
/// concern this namespace at all, so it is not a plain failure but an Error, which the policy's failure
/// policy judges (Fail, the default: deny; Ignore: allow with a warning). Configuration errors stay failures.
fn mark_unknown_selector(finding: &mut Finding, input: &AdmissionInput) {
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

/// `metadata.labels` of an object (non-string values ignored).
fn labels_of(object: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(serde_json::Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect())
        .unwrap_or_default()
}

/// `<kind> <ns>/<name>` (or `<kind> <name>` for cluster-scoped objects); the name falls back to the
/// object's `generateName`.
pub fn object_label(input: &AdmissionInput) -> String {
    let generated = input
        .object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/generateName"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let name = if input.name.is_empty() { generated } else { input.name.as_str() };
    match input.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{} {ns}/{name}", input.kind.kind),
        None => format!("{} {name}", input.kind.kind),
    }
}

#[allow(dead_code)]
fn assert_thread_safe() {
    fn is<T: Send + Sync + Clone>() {}
    is::<Engine>();
    is::<PolicySet>();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
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
        AdmissionInput {
            uid: "u".into(),
            operation: Operation::Create,
            kind: GroupVersionKind { group: String::new(), version: "v1".into(), kind: "Pod".into() },
            resource: "pods".into(),
            sub_resource: None,
            namespace: Some("default".into()),
            name: "web".into(),
            object: Some(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{"name": "app", "image": image}]}})),
            old_object: None,
            namespace_labels: Some(BTreeMap::new()),
            namespace_annotations: BTreeMap::new(),
            dry_run: false,
            pull_credentials: Credentials::anonymous(),
        }
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
        let mut input = pod("unused");
        input.object = Some(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [], "initContainers": [{"name": "model-init",
                "image": "example.invalid/tools/oras:1",
                "command": ["oras", "pull", "https://huggingface.co/acme/m"]}]}}));
        input
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
