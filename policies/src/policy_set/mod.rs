//! Loading and compiling policies: multi-document YAML/JSON (List kinds too) from files or from the
//! cluster, validated once into a [`PolicySet`]. A bad policy is reported with ALL its problems at once; the
//! good ones are in force regardless. A bad policy whose image globs and match fields compile stays in force
//! as *broken* (every artifact it matches fails with its problems), so a typo cannot open what it guarded;
//! one that cannot match anything is left out.

mod compile;
mod resources;
mod tuf_roots;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use kube::Resource;
use vouch_attest::registry::Credentials;
use vouch_attest::sigstore_verify::{Authority, Matcher};
use vouch_attest::trust_root::TrustRoot as SigstoreTrustRoot;

use vouch_attest::ArtifactRef;

use crate::compliance::CompiledProfile;
use crate::crd::{
    ClusterSupplyChainPolicy, ComplianceProfileSpec, FailurePolicy, FetcherRules, LabelSelector, Mode,
    PolicySpec, SignatureFormat, SupplyChainPolicy,
};
use crate::glob::Glob;
use crate::rego::RegoCondition;

use compile::*;
pub use resources::*;
pub use tuf_roots::{TufRoots, TufRootsConfig};

/// One authority, ready for the verifier.
#[derive(Debug, Clone)]
pub struct CompiledAuthority {
    /// The name in the policy.
    pub name: String,
    /// `key <name>` or `keyless <name>`, for messages.
    pub label: String,
    /// What the verifier checks.
    pub authority: Authority,
    /// For keys: a verified Rekor entry is required.
    pub require_tlog: bool,
    /// For keyless: the TrustRoot resource to use (`None` = the verifier's own).
    pub trust_root: Option<String>,
    /// cosign, or OpenSSF model signing (satisfies the signature requirement of models only).
    pub format: SignatureFormat,
}

/// One requirement, ready for evaluation.
#[derive(Debug, Clone)]
pub enum CompiledRequirement {
    /// A signature.
    Signature {
        /// The authorities that may satisfy it, by name (`None`: any of the policy's).
        authorities: Option<BTreeSet<String>>,
        /// How many distinct eligible authorities must each have a verified signature (at least 1).
        min_authorities: usize,
        /// Annotations the signed payload must carry.
        annotations: Vec<SignedAnnotation>,
    },
    /// An attestation, optionally with a compiled Rego condition.
    Attestation {
        /// The predicate type.
        predicate_type: String,
        /// The condition, compiled once.
        condition: Option<Box<RegoCondition>>,
        /// The authorities that may satisfy it, by name (`None`: any of the policy's).
        authorities: Option<BTreeSet<String>>,
    },
    /// A valid SBOM.
    Sbom,
}

impl CompiledRequirement {
    /// The requirement's name in findings and messages.
    pub fn label(&self) -> String {
        match self {
            Self::Signature { .. } => "signature".into(),
            Self::Attestation { predicate_type, .. } => format!("attestation {predicate_type}"),
            Self::Sbom => "sbom".into(),
        }
    }

    /// Whether `authority` may satisfy this requirement.
    pub fn admits(&self, authority: &CompiledAuthority) -> bool {
        match self {
            Self::Signature { authorities, .. } | Self::Attestation { authorities, .. } => {
                authorities.as_ref().is_none_or(|names| names.contains(&authority.name))
            }
            Self::Sbom => true,
        }
    }
}

/// An annotation a signature's signed payload must carry: its key, and the value exactly or a regular
/// expression the whole value must match (written `^…$`).
#[derive(Debug, Clone)]
pub struct SignedAnnotation {
    /// The key.
    pub key: String,
    /// The accepted value.
    pub value: Matcher,
}

impl SignedAnnotation {
    /// Whether the signed annotations `signed` carry this one (only string values can match).
    pub fn is_met_by(&self, signed: &BTreeMap<String, serde_json::Value>) -> bool {
        signed.get(&self.key).and_then(serde_json::Value::as_str).is_some_and(|v| self.value.matches(v))
    }
}

/// A policy ready for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// Name.
    pub name: String,
    /// Namespace (SupplyChainPolicy) — the policy applies only there.
    pub namespace: Option<String>,
    /// metadata.generation.
    pub generation: Option<i64>,
    /// Image globs.
    pub images: Vec<Glob>,
    /// Image globs the policy does not cover although `images` match (exclusion wins in this policy).
    pub exclude_images: Vec<Glob>,
    /// References by tag are denied (`digest` requirement).
    pub require_digest: bool,
    /// Namespace name globs (empty = any).
    pub namespaces: Vec<Glob>,
    /// Namespace label selector.
    pub namespace_selector: Option<LabelSelector>,
    /// Object label selector.
    pub object_selector: Option<LabelSelector>,
    /// Kinds (empty = any).
    pub kinds: Vec<String>,
    /// Authorities; any may satisfy a requirement.
    pub authorities: Vec<CompiledAuthority>,
    /// Requirements; all must be met.
    pub requirements: Vec<CompiledRequirement>,
    /// Mode.
    pub mode: Mode,
    /// Failure policy.
    pub failure_policy: FailurePolicy,
    /// Policy pull credentials.
    pub credentials: Option<Credentials>,
    /// A ComplianceProfile every covered artifact must satisfy.
    pub compliance_profile: Option<String>,
    /// Modes for fetcher problems (unset: the policy's mode).
    pub fetchers: FetcherRules,
    /// Whether the policy has an `egress` section (it is then charged with egress it cannot check).
    pub egress: bool,
    /// The default egress allowlist for NetworkPolicies of namespaces without their own.
    pub egress_allowlist: Option<ArtifactRef>,
    /// The policy's problems (joined) when it did not compile but still matches images: it then carries no
    /// authorities or requirements, and every artifact it matches fails with these problems.
    pub broken: Option<String>,
}

impl CompiledPolicy {
    /// The mode a fetcher problem is judged in (before dry-run): the per-problem override, else the mode.
    pub fn fetcher_mode(&self, verification_disabled: bool) -> Mode {
        let over = if verification_disabled {
            self.fetchers.verification_disabled
        } else {
            self.fetchers.unverifiable_source
        };
        over.unwrap_or(self.mode)
    }

    /// `ClusterSupplyChainPolicy <name>` or `SupplyChainPolicy <ns>/<name>`.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("SupplyChainPolicy {ns}/{}", self.name),
            None => format!("ClusterSupplyChainPolicy {}", self.name),
        }
    }
}

/// A compiled trust root.
#[derive(Debug, Clone)]
pub struct CompiledTrustRoot {
    /// Name.
    pub name: String,
    /// metadata.generation.
    pub generation: Option<i64>,
    /// The parsed root.
    pub root: SigstoreTrustRoot,
}

/// A compliance profile in force.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    /// Name.
    pub name: String,
    /// metadata.generation.
    pub generation: Option<i64>,
    /// The spec as written.
    pub spec: ComplianceProfileSpec,
    /// The profile compiled once, or its problems (joined): artifacts that must satisfy a profile that
    /// does not compile fail (never pass).
    pub compiled: Result<Arc<CompiledProfile>, String>,
}

/// Policies, trust roots and compliance profiles in force, plus the problems of every resource that did not
/// compile.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<CompiledPolicy>,
    trust_roots: BTreeMap<String, CompiledTrustRoot>,
    profiles: BTreeMap<String, LoadedProfile>,
    problems: Vec<PolicyProblem>,
}

impl PolicySet {
    /// No policies.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Load and compile every policy in `dir` (file mode: no secrets).
    pub fn load_dir(dir: &Path) -> Result<Self, LoadError> {
        Ok(Self::compile(PolicyResources::load_dir(dir)?, &Secrets::none()))
    }

    /// Compile parsed documents (file mode: no secrets).
    pub fn from_documents(docs: impl IntoIterator<Item = serde_yaml::Value>) -> Self {
        Self::compile(PolicyResources::from_documents(docs), &Secrets::none())
    }

    /// Compile multi-document YAML/JSON text (file mode: no secrets).
    pub fn from_yaml_str(text: &str) -> Self {
        Self::compile(PolicyResources::from_yaml_str(text, "input"), &Secrets::none())
    }

    /// Validate and compile `resources` with `secrets`; every problem of every resource is collected.
    pub fn compile(resources: PolicyResources, secrets: &Secrets) -> Self {
        let mut set = Self { problems: resources.problems.clone(), ..Self::default() };
        let mut bad_roots: BTreeMap<String, String> = BTreeMap::new();
        for t in &resources.trust_roots {
            let name = t.metadata.name.clone().unwrap_or_default();
            match compile_trust_root(t, secrets, resources.tuf_trusted_roots.get(&name)) {
                Ok(root) => {
                    let generation = t.metadata.generation;
                    set.trust_roots.insert(name.clone(), CompiledTrustRoot { name, generation, root });
                }
                Err(problems) => {
                    bad_roots.insert(name.clone(), problems.join("; "));
                    set.problems.push(PolicyProblem {
                        kind: "TrustRoot".into(),
                        namespace: None,
                        name,
                        generation: t.metadata.generation,
                        problems,
                    });
                }
            }
        }
        for p in &resources.profiles {
            let name = p.metadata.name.clone().unwrap_or_default();
            let generation = p.metadata.generation;
            let mut problems = Vec::new();
            if name.is_empty() {
                problems.push("metadata.name is missing".to_owned());
            } else if set.profiles.contains_key(&name) {
                problems.push("defined more than once".to_owned());
            }
            if problems.is_empty() {
                let compiled = CompiledProfile::compile(&name, &p.spec).map(Arc::new);
                if let Err(e) = &compiled {
                    problems.clone_from(e);
                }
                let compiled = compiled.map_err(|e| e.join("; "));
                set.profiles.insert(
                    name.clone(),
                    LoadedProfile { name: name.clone(), generation, spec: p.spec.clone(), compiled },
                );
            }
            if !problems.is_empty() {
                set.problems.push(PolicyProblem {
                    kind: "ComplianceProfile".into(),
                    namespace: None,
                    name,
                    generation,
                    problems,
                });
            }
        }
        let ctx = Context {
            secrets,
            trust_roots: &set.trust_roots,
            bad_roots: &bad_roots,
            base_dir: resources.base_dir.as_deref(),
        };
        let mut seen = BTreeSet::new();
        let cluster = resources.cluster_policies.iter().map(|p| (p as &dyn PolicyResource, None));
        let namespaced =
            resources.policies.iter().map(|p| (p as &dyn PolicyResource, Some(p.metadata.namespace.clone())));
        for (p, namespace) in cluster.chain(namespaced) {
            let kind = p.kind_name();
            let name = p.name();
            let namespace: Option<String> = namespace.map(Option::unwrap_or_default);
            let mut problems = Vec::new();
            if name.is_empty() {
                problems.push("metadata.name is missing".to_owned());
            }
            if namespace.as_deref() == Some("") {
                problems.push("metadata.namespace is missing".to_owned());
            }
            if !seen.insert((kind, namespace.clone(), name.clone())) {
                problems.push("defined more than once".to_owned());
            }
            // A policy without its namespace could never apply: leave it out rather than keep it broken.
            let can_apply = namespace.as_deref() != Some("");
            let compiled =
                compile_policy(p.spec(), &name, namespace.as_deref(), p.generation(), &ctx, &mut problems);
            if problems.is_empty() {
                set.policies.extend(compiled);
                continue;
            }
            if let Some(c) = compiled.filter(|_| can_apply) {
                // Fail closed: the images it names are denied (per its mode), not left to the no-match action.
                set.policies.push(CompiledPolicy {
                    authorities: Vec::new(),
                    requirements: Vec::new(),
                    credentials: None,
                    broken: Some(problems.join("; ")),
                    ..c
                });
            }
            set.problems.push(PolicyProblem {
                kind: kind.into(),
                namespace,
                name,
                generation: p.generation(),
                problems,
            });
        }
        set
    }

    /// The policies in force (broken ones included: see [`CompiledPolicy::broken`]).
    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }

    /// The trust roots in force, by name.
    pub fn trust_roots(&self) -> &BTreeMap<String, CompiledTrustRoot> {
        &self.trust_roots
    }

    /// The compliance profiles in force, by name.
    pub fn profiles(&self) -> &BTreeMap<String, LoadedProfile> {
        &self.profiles
    }

    /// Resources with problems (left out, or in force as broken), each with all its problems.
    pub fn problems(&self) -> &[PolicyProblem] {
        &self.problems
    }

    /// The problems of one resource (empty when it is in force or unknown): for the Ready condition.
    pub fn problems_of(&self, kind: &str, namespace: Option<&str>, name: &str) -> Vec<String> {
        self.problems
            .iter()
            .filter(|p| p.kind == kind && p.namespace.as_deref() == namespace && p.name == name)
            .flat_map(|p| p.problems.iter().cloned())
            .collect()
    }
}

trait PolicyResource {
    fn kind_name(&self) -> &'static str;
    fn name(&self) -> String;
    fn generation(&self) -> Option<i64>;
    fn spec(&self) -> &PolicySpec;
}

impl PolicyResource for ClusterSupplyChainPolicy {
    fn kind_name(&self) -> &'static str {
        "ClusterSupplyChainPolicy"
    }
    fn name(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }
    fn generation(&self) -> Option<i64> {
        self.meta().generation
    }
    fn spec(&self) -> &PolicySpec {
        &self.spec.policy
    }
}

impl PolicyResource for SupplyChainPolicy {
    fn kind_name(&self) -> &'static str {
        "SupplyChainPolicy"
    }
    fn name(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }
    fn generation(&self) -> Option<i64> {
        self.meta().generation
    }
    fn spec(&self) -> &PolicySpec {
        &self.spec.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, images: &str, condition: &str) -> String {
        let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
        let pem: String = pem.lines().map(|l| format!("          {l}\n")).collect();
        format!(
            r#"---
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {{name: {name}}}
spec:
  images: [{images}]
  mode: Warn
  authorities:
    - name: k
      key:
        pem: |
{pem}
  requirements:
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        condition: {condition:?}
"#
        )
    }

    const GOOD_REGO: &str = "package p\nallow := true\n";

    #[test]
    fn a_bad_policy_that_still_matches_is_kept_broken_and_reported() {
        let text = policy("typo", r#""ghcr.io/acme/**""#, "package p\nallow if {")
            + &policy("fine", r#""ghcr.io/other/**""#, GOOD_REGO);
        let set = PolicySet::from_yaml_str(&text);
        let broken = set.policies().iter().find(|p| p.name == "typo");
        let broken = broken.unwrap_or_else(|| panic!("not kept: {:?}", set.problems()));
        let why = broken.broken.as_deref().expect("marked broken");
        assert!(why.contains("requirements.attestations[0].condition: rego condition"), "{why}");
        assert!(broken.images[0].is_match("ghcr.io/acme/app"), "its globs still match");
        assert_eq!(broken.mode, Mode::Warn);
        // Nothing of a broken policy is usable for verification.
        assert!(broken.authorities.is_empty() && broken.requirements.is_empty());
        let problems = set.problems_of("ClusterSupplyChainPolicy", None, "typo");
        assert_eq!(problems.join("; "), why, "still reported as a problem");
        let fine = set.policies().iter().find(|p| p.name == "fine").unwrap();
        assert!(fine.broken.is_none());
        assert!(set.problems_of("ClusterSupplyChainPolicy", None, "fine").is_empty());
    }

    fn model_signing_policy(extra: &str) -> String {
        let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
        let pem: String = pem.lines().map(|l| format!("          {l}\n")).collect();
        format!(
            "---\napiVersion: vouch.dev/v1alpha1\nkind: ClusterSupplyChainPolicy\nmetadata: {{name: p}}\nspec:\n  \
             images: [\"ghcr.io/acme/**\"]\n  authorities:\n    - name: k\n      signatureFormat: modelSigning\n      \
             key:\n        pem: |\n{pem}{extra}"
        )
    }

    #[test]
    fn model_profile_fetcher_and_egress_fields_compile_and_a_policy_may_exist_only_for_them() {
        let set = PolicySet::from_yaml_str(&model_signing_policy(
            "  complianceProfile: regulated\n  fetchers: {unverifiableSource: Warn}\n  egress: {allowlist: ghcr.io/acme/egress:v1}\n",
        ));
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let p = &set.policies()[0];
        assert_eq!(p.compliance_profile.as_deref(), Some("regulated"));
        assert_eq!(p.authorities[0].format, SignatureFormat::ModelSigning);
        assert_eq!(p.fetcher_mode(false), Mode::Warn, "the override");
        assert_eq!(p.fetcher_mode(true), Mode::Enforce, "unset: the policy's mode");
        assert!(p.egress);
        assert_eq!(
            p.egress_allowlist.as_ref().map(ToString::to_string).as_deref(),
            Some("ghcr.io/acme/egress:v1")
        );
    }

    #[test]
    fn a_bad_egress_allowlist_reference_and_a_policy_with_nothing_to_do_are_reported() {
        let set = PolicySet::from_yaml_str(&model_signing_policy("  egress: {allowlist: \"Not A Ref\"}\n"));
        let problems = set.problems_of("ClusterSupplyChainPolicy", None, "p").join("; ");
        assert!(problems.contains("egress.allowlist: \"Not A Ref\" is not a valid reference"), "{problems}");
        let set = PolicySet::from_yaml_str(&model_signing_policy(""));
        let problems = set.problems_of("ClusterSupplyChainPolicy", None, "p").join("; ");
        assert!(problems.starts_with("requirements: nothing is required"), "{problems}");
    }

    #[test]
    fn compliance_profiles_load_from_the_same_stream_and_bad_ones_are_kept_failing() {
        let text = r#"---
apiVersion: vouch.dev/v1alpha1
kind: ComplianceProfile
metadata: {name: good}
spec:
  annotations: [{key: org.opencontainers.image.source}]
---
apiVersion: vouch.dev/v1alpha1
kind: ComplianceProfile
metadata: {name: bad}
spec:
  rego: ["package vouch.compliance.custom.x
import rego.v1
deny contains msg if {"]
"#;
        let set = PolicySet::from_yaml_str(text);
        assert!(set.profiles()["good"].compiled.is_ok());
        let bad = set.profiles()["bad"].compiled.as_ref().map(|_| ()).unwrap_err();
        assert!(!bad.is_empty());
        assert_eq!(set.problems_of("ComplianceProfile", None, "bad").join("; "), *bad);
        assert!(set.problems_of("ComplianceProfile", None, "good").is_empty());
    }

    #[test]
    fn a_bad_policy_whose_match_does_not_compile_is_left_out() {
        let bad_glob = policy("bad-glob", r#""ghcr.io/***""#, GOOD_REGO);
        let no_registry = policy("no-registry", r#""nginx""#, "package p\nallow if {");
        let bad_selector = policy("bad-selector", r#""ghcr.io/a/*""#, GOOD_REGO).replace(
            "  mode: Warn\n",
            "  mode: Warn\n  match: {namespaceSelector: {matchExpressions: [{key: env, operator: In}]}}\n",
        );
        let set = PolicySet::from_yaml_str(&(bad_glob + &no_registry + &bad_selector));
        assert!(set.policies().is_empty(), "{:?}", set.policies());
        assert_eq!(set.problems().len(), 3, "{:?}", set.problems());
        let selector = set.problems_of("ClusterSupplyChainPolicy", None, "bad-selector").join("; ");
        assert!(selector.contains("match.namespaceSelector"), "{selector}");
    }
}
