//! Reading policy resources: multi-document YAML/JSON (List kinds too) from files, directories or the
//! cluster, bounded, each problem kept with the resource it belongs to; and the Secrets they may name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::crd::{
    ClusterSupplyChainPolicy, ComplianceProfile, PolicySpec, SecretKeyRef, SupplyChainPolicy, TrustRoot,
    API_VERSION,
};

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

    pub(crate) fn get(&self, namespace: &str, name: &str, key: &str) -> Result<&[u8], String> {
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
    /// The trusted roots of TrustRoots with `spec.tuf`, by TrustRoot name, as a TUF client obtained them
    /// (or why it could not), filled by [`crate::TufRoots::resolve`] before compiling. A TUF TrustRoot with
    /// no entry here is reported as not resolved.
    pub tuf_trusted_roots: BTreeMap<String, Result<Vec<u8>, String>>,
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

    /// The policy-language features the policies use (see [`PolicySpec::policy_features`]).
    pub fn policy_features(&self) -> BTreeSet<&'static str> {
        let cluster = self.cluster_policies.iter().map(|p| &p.spec.policy);
        let namespaced = self.policies.iter().map(|p| &p.spec.policy);
        cluster.chain(namespaced).flat_map(PolicySpec::policy_features).collect()
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
                if let Some(n) = &a.notation {
                    for store in std::iter::once(&n.trust_store).chain(&n.tsa_trust_store) {
                        if let Some(r) = &store.secret_ref {
                            add(r, own);
                        }
                    }
                    if let Some(r) = n.crls.as_ref().and_then(|c| c.secret_ref.as_ref()) {
                        add(r, own);
                    }
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
            let tuf_root =
                t.spec.tuf.as_ref().and_then(|tuf| tuf.root.as_ref()).and_then(|r| r.secret_ref.as_ref());
            for r in t.spec.secret_ref.iter().chain(tuf_root) {
                if let Some(ns) = &r.namespace {
                    out.insert((ns.clone(), r.name.clone()));
                }
            }
        }
        out
    }
}

pub(super) fn parse<T: DeserializeOwned>(doc: serde_yaml::Value) -> Result<T, String> {
    serde_yaml::from_value(doc).map_err(|e| format!("does not match the schema: {e}"))
}

pub(super) fn document_problem(label: &str, problem: String) -> PolicyProblem {
    PolicyProblem {
        kind: "document".into(),
        namespace: None,
        name: label.to_owned(),
        generation: None,
        problems: vec![problem],
    }
}

pub(super) fn read_capped(path: &Path) -> Result<String, String> {
    let len = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?.len();
    if len > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))
}
