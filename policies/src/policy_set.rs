//! Loading and compiling policies: multi-document YAML/JSON (List kinds too) from files or from the
//! cluster, validated once into a [`PolicySet`]. A bad policy is reported with ALL its problems at once; the
//! good ones are in force regardless. A bad policy whose image globs and match fields compile stays in force
//! as *broken* (every artifact it matches fails with its problems), so a typo cannot open what it guarded;
//! one that cannot match anything is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::Resource;
use serde::de::DeserializeOwned;
use vouch_attest::registry::Credentials;
use vouch_attest::sigstore_verify::{Authority, CertificateIdentity, Matcher};
use vouch_attest::trust_root::TrustRoot as SigstoreTrustRoot;
use vouch_attest::PublicKey;

use vouch_attest::ArtifactRef;

use crate::compliance::CompiledProfile;
use crate::crd::{
    AuthoritySpec, ClusterSupplyChainPolicy, ComplianceProfile, ComplianceProfileSpec, FailurePolicy,
    FetcherRules, IdentitySpec, LabelSelector, Mode, PolicySpec, SecretKeyRef, SignatureFormat,
    SupplyChainPolicy, TrustRoot, API_VERSION,
};
use crate::glob::Glob;
use crate::rego::RegoCondition;
use crate::selector;

/// Largest policy file read.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most files read from a policy directory.
pub const MAX_FILES: usize = 1024;
/// Most documents accepted in one load.
pub const MAX_DOCUMENTS: usize = 4096;

/// The policy directory cannot be read at all (individual bad files are [`PolicyProblem`]s).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the directory failed.
    #[error("cannot read policy directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// More files than [`MAX_FILES`].
    #[error("policy directory {path} has more than {max} files")]
    TooManyFiles {
        /// The directory.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
}

/// Everything wrong with one resource (or one unreadable document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// `ClusterSupplyChainPolicy`, `SupplyChainPolicy`, `TrustRoot`, `ComplianceProfile`, or `document`.
    pub kind: String,
    /// Namespace of a SupplyChainPolicy.
    pub namespace: Option<String>,
    /// Resource name (or `<file>#<n>` for a document).
    pub name: String,
    /// metadata.generation, for status.
    pub generation: Option<i64>,
    /// Every problem found.
    pub problems: Vec<String>,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}: {}", self.kind, self.name, self.problems.join("; ")),
            None => write!(f, "{} {}: {}", self.kind, self.name, self.problems.join("; ")),
        }
    }
}

/// Secret data the policies refer to, fetched by the caller (the cluster integration) beforehand:
/// (namespace, name) -> key -> bytes.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    data: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

impl Secrets {
    /// No secrets (file mode).
    pub fn none() -> Self {
        Self::default()
    }

    /// Add a secret's data.
    pub fn insert(&mut self, namespace: &str, name: &str, data: BTreeMap<String, Vec<u8>>) {
        self.data.insert((namespace.to_owned(), name.to_owned()), data);
    }

    fn get(&self, namespace: &str, name: &str, key: &str) -> Result<&[u8], String> {
        let secret = self
            .data
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| format!("secret {namespace}/{name} is not available"))?;
        secret
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| format!("secret {namespace}/{name} has no key {key:?}"))
    }
}

/// The raw resources, as read from files or listed from the cluster.
#[derive(Debug, Clone, Default)]
pub struct PolicyResources {
    /// Cluster-scoped policies.
    pub cluster_policies: Vec<ClusterSupplyChainPolicy>,
    /// Namespaced policies.
    pub policies: Vec<SupplyChainPolicy>,
    /// Trust roots.
    pub trust_roots: Vec<TrustRoot>,
    /// Compliance profiles.
    pub profiles: Vec<ComplianceProfile>,
    /// Documents that could not be read (kept for reporting).
    pub problems: Vec<PolicyProblem>,
    /// Directory that relative `credentials.path` values are resolved against (file mode).
    pub base_dir: Option<PathBuf>,
}

impl PolicyResources {
    /// Read multi-document YAML or JSON text; `origin` names it in problems.
    pub fn from_yaml_str(text: &str, origin: &str) -> Self {
        let mut out = Self::default();
        out.add_yaml_str(text, origin);
        out
    }

    /// Add the documents of `text`.
    pub fn add_yaml_str(&mut self, text: &str, origin: &str) {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let label = format!("{origin}#{}", i + 1);
            match <serde_yaml::Value as serde::Deserialize>::deserialize(doc) {
                Ok(serde_yaml::Value::Null) => {}
                Ok(v) => self.add_document(v, &label),
                Err(e) => {
                    self.problems.push(document_problem(&label, format!("not valid YAML: {e}")));
                    // The YAML stream cannot be resynchronised after a syntax error.
                    break;
                }
            }
        }
    }

    /// Add already-parsed documents (a `List` kind is expanded).
    pub fn from_documents(docs: impl IntoIterator<Item = serde_yaml::Value>) -> Self {
        let mut out = Self::default();
        for (i, doc) in docs.into_iter().enumerate() {
            out.add_document(doc, &format!("document #{}", i + 1));
        }
        out
    }

    /// Add one document.
    pub fn add_document(&mut self, doc: serde_yaml::Value, label: &str) {
        if self.len() + self.problems.len() >= MAX_DOCUMENTS {
            if self.problems.last().map(|p| p.name.as_str()) != Some("(limit)") {
                self.problems
                    .push(document_problem("(limit)", format!("more than {MAX_DOCUMENTS} documents")));
            }
            return;
        }
        let field = |name: &str| doc.get(name).and_then(serde_yaml::Value::as_str).map(str::to_owned);
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if kind.as_deref().is_some_and(|k| k.ends_with("List")) {
            match doc.get("items") {
                Some(serde_yaml::Value::Sequence(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        self.add_document(item.clone(), &format!("{label} item {i}"));
                    }
                }
                _ => self.problems.push(document_problem(label, "a List without items".into())),
            }
            return;
        }
        if api_version.as_deref() != Some(API_VERSION) {
            let problem = format!("apiVersion {:?} is not {API_VERSION}", api_version.unwrap_or_default());
            self.problems.push(document_problem(label, problem));
            return;
        }
        let result = match kind.as_deref() {
            Some("ClusterSupplyChainPolicy") => parse(doc).map(|p| self.cluster_policies.push(p)),
            Some("SupplyChainPolicy") => parse(doc).map(|p| self.policies.push(p)),
            Some("TrustRoot") => parse(doc).map(|p| self.trust_roots.push(p)),
            Some("ComplianceProfile") => parse(doc).map(|p| self.profiles.push(p)),
            other => Err(format!("unknown kind {:?}", other.unwrap_or_default())),
        };
        if let Err(e) = result {
            self.problems.push(document_problem(label, e));
        }
    }

    /// Read every `.yaml`, `.yml` and `.json` file directly in `dir` (sorted; hidden entries such as a
    /// mounted volume's `..data` are skipped, the symlinks to them followed).
    pub fn load_dir(dir: &Path) -> Result<Self, LoadError> {
        let dir_err = |source| LoadError::Dir { path: dir.to_owned(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let path = entry.map_err(dir_err)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let wanted = [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
            if !name.starts_with('.') && wanted && path.is_file() {
                files.push(path);
            }
            if files.len() > MAX_FILES {
                return Err(LoadError::TooManyFiles { path: dir.to_owned(), max: MAX_FILES });
            }
        }
        files.sort();
        let mut out = Self { base_dir: Some(dir.to_owned()), ..Self::default() };
        for file in files {
            let origin = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            match read_capped(&file) {
                Ok(text) => out.add_yaml_str(&text, &origin),
                Err(e) => out.problems.push(document_problem(&origin, e)),
            }
        }
        Ok(out)
    }

    /// Number of resources read.
    pub fn len(&self) -> usize {
        self.cluster_policies.len() + self.policies.len() + self.trust_roots.len() + self.profiles.len()
    }

    /// Whether no resource was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The secrets the resources refer to, as (namespace, name) (namespaces defaulted as in compilation;
    /// references that compilation will reject are left out).
    pub fn secret_refs(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut add = |r: &SecretKeyRef, own: Option<&str>| {
            if let Some(ns) = r.namespace.as_deref().or(own) {
                out.insert((ns.to_owned(), r.name.clone()));
            }
        };
        let mut from_spec = |spec: &PolicySpec, own: Option<&str>| {
            for a in &spec.authorities {
                if let Some(r) = a.key.as_ref().and_then(|k| k.secret_ref.as_ref()) {
                    add(r, own);
                }
            }
            if let Some(r) = spec.credentials.as_ref().and_then(|c| c.secret_ref.as_ref()) {
                add(r, own);
            }
        };
        for p in &self.cluster_policies {
            from_spec(&p.spec.policy, None);
        }
        for p in &self.policies {
            from_spec(&p.spec.policy, p.metadata.namespace.as_deref());
        }
        for t in &self.trust_roots {
            if let Some(r) = &t.spec.secret_ref {
                if let Some(ns) = &r.namespace {
                    out.insert((ns.clone(), r.name.clone()));
                }
            }
        }
        out
    }
}

fn parse<T: DeserializeOwned>(doc: serde_yaml::Value) -> Result<T, String> {
    serde_yaml::from_value(doc).map_err(|e| format!("does not match the schema: {e}"))
}

fn document_problem(label: &str, problem: String) -> PolicyProblem {
    PolicyProblem {
        kind: "document".into(),
        namespace: None,
        name: label.to_owned(),
        generation: None,
        problems: vec![problem],
    }
}

fn read_capped(path: &Path) -> Result<String, String> {
    let len = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?.len();
    if len > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))
}

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
    Signature,
    /// An attestation, optionally with a compiled Rego condition.
    Attestation {
        /// The predicate type.
        predicate_type: String,
        /// The condition, compiled once.
        condition: Option<Box<RegoCondition>>,
    },
    /// A valid SBOM.
    Sbom,
}

impl CompiledRequirement {
    /// The requirement's name in findings and messages.
    pub fn label(&self) -> String {
        match self {
            Self::Signature => "signature".into(),
            Self::Attestation { predicate_type, .. } => format!("attestation {predicate_type}"),
            Self::Sbom => "sbom".into(),
        }
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
            match compile_trust_root(t, secrets) {
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

struct Context<'a> {
    secrets: &'a Secrets,
    trust_roots: &'a BTreeMap<String, CompiledTrustRoot>,
    bad_roots: &'a BTreeMap<String, String>,
    base_dir: Option<&'a Path>,
}

/// The secret's bytes, enforcing that a namespaced policy reads only its own namespace.
fn secret<'a>(
    ctx: &Context<'a>,
    r: &SecretKeyRef,
    policy_ns: Option<&str>,
    default_key: &str,
    field: &str,
) -> Result<&'a [u8], String> {
    let ns = match (policy_ns, r.namespace.as_deref()) {
        (Some(own), None) => own,
        (Some(own), Some(ns)) if ns == own => own,
        (Some(own), Some(ns)) => {
            return Err(format!("{field}: namespace {ns:?} is not the policy's namespace {own:?}"))
        }
        (None, Some(ns)) => ns,
        (None, None) => return Err(format!("{field}: namespace is required for a cluster-scoped policy")),
    };
    let key = r.key.as_deref().unwrap_or(default_key);
    ctx.secrets.get(ns, &r.name, key).map_err(|e| format!("{field}: {e}"))
}

fn compile_policy(
    spec: &PolicySpec,
    name: &str,
    namespace: Option<&str>,
    generation: Option<i64>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<CompiledPolicy> {
    let before = problems.len();
    let mut images = Vec::new();
    if spec.images.is_empty() {
        problems.push("images: at least one glob is required".into());
    }
    for (i, g) in spec.images.iter().enumerate() {
        match Glob::new(g) {
            Ok(glob) if !glob.names_registry() => problems.push(format!(
                "images[{i}]: {g:?} does not name a registry; globs match normalised references such as docker.io/library/nginx"
            )),
            Ok(glob) => images.push(glob),
            Err(e) => problems.push(format!("images[{i}]: {e}")),
        }
    }
    let m = &spec.match_;
    let mut namespaces = Vec::new();
    for (i, g) in m.namespaces.iter().enumerate() {
        match Glob::new(g) {
            Ok(glob) => namespaces.push(glob),
            Err(e) => problems.push(format!("match.namespaces[{i}]: {e}")),
        }
    }
    for (field, sel) in [("namespaceSelector", &m.namespace_selector), ("objectSelector", &m.object_selector)]
    {
        if let Some(s) = sel {
            problems.extend(selector::validate(s).into_iter().map(|p| format!("match.{field}: {p}")));
        }
    }
    // Whether what the policy matches is known (then a policy with other problems is kept as broken).
    let matchable = problems.len() == before && !images.is_empty();
    let mut authorities = Vec::new();
    if spec.authorities.is_empty() {
        problems.push("authorities: at least one authority is required".into());
    }
    let mut names = BTreeSet::new();
    for (i, a) in spec.authorities.iter().enumerate() {
        if !names.insert(a.name.as_str()) {
            problems.push(format!("authorities[{i}]: name {:?} is used twice", a.name));
        }
        if let Some(c) = compile_authority(a, &format!("authorities[{i}]"), namespace, ctx, problems) {
            authorities.push(c);
        }
    }
    let r = &spec.requirements;
    let mut requirements = Vec::new();
    if r.signature {
        requirements.push(CompiledRequirement::Signature);
    }
    for (i, att) in r.attestations.iter().enumerate() {
        if att.predicate_type.is_empty() {
            problems.push(format!("requirements.attestations[{i}]: predicateType is empty"));
        }
        let condition = match &att.condition {
            None => None,
            Some(module) => {
                let module_name = format!("{name}/attestations[{i}].rego");
                match RegoCondition::compile(&module_name, module) {
                    Ok(c) => Some(Box::new(c)),
                    Err(e) => {
                        problems.push(format!("requirements.attestations[{i}].condition: {e}"));
                        None
                    }
                }
            }
        };
        requirements
            .push(CompiledRequirement::Attestation { predicate_type: att.predicate_type.clone(), condition });
    }
    if r.sbom.as_ref().is_some_and(|s| s.required) {
        requirements.push(CompiledRequirement::Sbom);
    }
    // A policy may exist only to assign a compliance profile, judge fetchers, or name an egress allowlist.
    let other_duties = spec.compliance_profile.is_some() || spec.fetchers.is_some() || spec.egress.is_some();
    if requirements.is_empty() && !other_duties {
        problems.push(
            "requirements: nothing is required (set signature, attestations or sbom, or complianceProfile, \
             fetchers or egress)"
                .into(),
        );
    }
    let credentials = spec.credentials.as_ref().and_then(|c| {
        let bytes: Result<Vec<u8>, String> = match (&c.secret_ref, &c.path) {
            (Some(r), None) => {
                secret(ctx, r, namespace, ".dockerconfigjson", "credentials.secretRef").map(<[u8]>::to_vec)
            }
            (None, Some(p)) => {
                let path = ctx.base_dir.map_or_else(|| PathBuf::from(p), |d| d.join(p));
                read_capped(&path).map(String::into_bytes).map_err(|e| format!("credentials.path {p:?}: {e}"))
            }
            _ => Err("credentials: exactly one of secretRef or path is required".into()),
        };
        match bytes
            .and_then(|b| Credentials::from_docker_config_json(&b).map_err(|e| format!("credentials: {e}")))
        {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    });
    if let Some(p) = &spec.compliance_profile {
        if p.is_empty() {
            problems.push("complianceProfile: the name is empty".into());
        }
    }
    let egress_allowlist = spec.egress.as_ref().and_then(|e| e.allowlist.as_ref()).and_then(|r| {
        match r.parse::<ArtifactRef>() {
            Ok(r) => Some(r),
            Err(e) => {
                problems.push(format!("egress.allowlist: {r:?} is not a valid reference: {}", e.reason));
                None
            }
        }
    });
    matchable.then(|| CompiledPolicy {
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        generation,
        images,
        namespaces,
        namespace_selector: m.namespace_selector.clone(),
        object_selector: m.object_selector.clone(),
        kinds: m.kinds.clone(),
        authorities,
        requirements,
        mode: spec.mode,
        failure_policy: spec.failure_policy,
        credentials,
        compliance_profile: spec.compliance_profile.clone(),
        fetchers: spec.fetchers.clone().unwrap_or_default(),
        egress: spec.egress.is_some(),
        egress_allowlist,
        broken: None,
    })
}

fn compile_authority(
    a: &AuthoritySpec,
    field: &str,
    namespace: Option<&str>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<CompiledAuthority> {
    if a.name.is_empty() {
        problems.push(format!("{field}.name is empty"));
    }
    match (&a.key, &a.keyless) {
        (Some(k), None) => {
            let pem: Result<String, String> = match (&k.pem, &k.secret_ref) {
                (Some(p), None) => Ok(p.clone()),
                (None, Some(r)) => secret(ctx, r, namespace, "cosign.pub", &format!("{field}.key.secretRef"))
                    .and_then(|b| {
                        String::from_utf8(b.to_vec()).map_err(|_| format!("{field}.key: not UTF-8 PEM"))
                    }),
                _ => Err(format!("{field}.key: exactly one of pem or secretRef is required")),
            };
            let key = pem.and_then(|p| {
                PublicKey::from_pem(&p).map_err(|e| format!("{field}.key: not a usable public key: {e}"))
            });
            match key {
                Ok(key) => Some(CompiledAuthority {
                    name: a.name.clone(),
                    label: format!("key {}", a.name),
                    authority: Authority::Key(key),
                    require_tlog: k.require_tlog,
                    trust_root: None,
                    format: a.signature_format,
                }),
                Err(e) => {
                    problems.push(e);
                    None
                }
            }
        }
        (None, Some(kl)) => {
            let before = problems.len();
            if kl.identities.is_empty() {
                problems.push(format!("{field}.keyless.identities: at least one identity is required"));
            }
            let identities: Vec<CertificateIdentity> = kl
                .identities
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    compile_identity(id, &format!("{field}.keyless.identities[{i}]"), problems)
                })
                .collect();
            if let Some(tr) = &kl.trust_root_ref {
                if let Some(why) = ctx.bad_roots.get(tr) {
                    problems
                        .push(format!("{field}.keyless.trustRootRef: trust root {tr:?} is invalid: {why}"));
                } else if !ctx.trust_roots.contains_key(tr) {
                    problems.push(format!("{field}.keyless.trustRootRef: unknown trust root {tr:?}"));
                }
            }
            (problems.len() == before).then(|| CompiledAuthority {
                name: a.name.clone(),
                label: format!("keyless {}", a.name),
                authority: Authority::Keyless { identities },
                require_tlog: true,
                trust_root: kl.trust_root_ref.clone(),
                format: a.signature_format,
            })
        }
        _ => {
            problems.push(format!("{field}: exactly one of key or keyless is required"));
            None
        }
    }
}

fn compile_identity(
    id: &IdentitySpec,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<CertificateIdentity> {
    let mut one = |exact: &Option<String>, regex: &Option<String>, what: &str| -> Option<Matcher> {
        match (exact, regex) {
            (Some(s), None) if !s.is_empty() => Some(Matcher::Exact(s.clone())),
            (None, Some(r)) => match Matcher::regex(r) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(format!("{field}.{what}RegExp: {e}"));
                    None
                }
            },
            _ => {
                problems.push(format!("{field}: exactly one of {what} or {what}RegExp is required"));
                None
            }
        }
    };
    let subject = one(&id.subject, &id.subject_reg_exp, "subject");
    let issuer = one(&id.issuer, &id.issuer_reg_exp, "issuer");
    Some(CertificateIdentity { subject: subject?, issuer: issuer? })
}

fn compile_trust_root(t: &TrustRoot, secrets: &Secrets) -> Result<SigstoreTrustRoot, Vec<String>> {
    let mut problems = Vec::new();
    if t.metadata.name.as_deref().unwrap_or_default().is_empty() {
        problems.push("metadata.name is missing".to_owned());
    }
    let bytes: Option<Vec<u8>> = match (&t.spec.trusted_root_json, &t.spec.secret_ref) {
        (Some(j), None) => Some(j.clone().into_bytes()),
        (None, Some(r)) => match &r.namespace {
            None => {
                problems.push("secretRef: namespace is required".into());
                None
            }
            Some(ns) => match secrets.get(ns, &r.name, r.key.as_deref().unwrap_or("trusted_root.json")) {
                Ok(b) => Some(b.to_vec()),
                Err(e) => {
                    problems.push(format!("secretRef: {e}"));
                    None
                }
            },
        },
        _ => {
            problems.push("exactly one of trustedRootJSON or secretRef is required".into());
            None
        }
    };
    let root = bytes.and_then(|b| match SigstoreTrustRoot::from_json(&b) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push(format!("not a usable trusted root: {e}"));
            None
        }
    });
    match root {
        Some(r) if problems.is_empty() => Ok(r),
        _ => Err(problems),
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
