//! Reading Kubernetes manifests from files for `vouch check`: single files, directories (recursively,
//! `*.yaml`, `*.yml`, `*.json`), or `-` for stdin; multi-document YAML (the output of `helm template` and
//! `kustomize build`: `---` separators, comments, empty documents), JSON, and `List` kinds (`v1/List`,
//! `PodList`, ...) flattened into their items. Every object becomes an [`AdmissionInput`] for a CREATE, so
//! the engine decides on it exactly as it would on an admission request.
//!
//! Everything read is bounded (file size, total size, files, objects, directory depth, List nesting); an
//! unreadable document is an error naming the file and the document, never skipped silently.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

pub use crate::engine::input::{resource_of, NAMESPACE_NAME_LABEL};
use crate::engine::AdmissionInput;
use crate::{GroupVersionKind, Operation};

/// Largest manifest file (or stdin) read.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Most bytes read over all files.
pub const MAX_TOTAL_BYTES: u64 = 512 * 1024 * 1024;
/// Most files read from directories.
pub const MAX_FILES: usize = 20_000;
/// Most objects (after flattening Lists).
pub const MAX_OBJECTS: usize = 100_000;
/// Deepest directory nesting followed.
pub const MAX_DIR_DEPTH: usize = 32;
/// Deepest nesting of Lists inside Lists.
pub const MAX_LIST_DEPTH: usize = 4;
/// The name that stands for stdin.
pub const STDIN: &str = "-";

/// Why the manifests cannot be read. Messages name the file and, for contents, the document.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path as given or found.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("{path}: larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit.
        max: u64,
    },
    /// All files together are larger than [`MAX_TOTAL_BYTES`].
    #[error("manifests larger than {max} bytes in total")]
    TotalTooLarge {
        /// The limit.
        max: u64,
    },
    /// A file is not UTF-8.
    #[error("{path}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: String,
    },
    /// More files than [`MAX_FILES`].
    #[error("more than {max} manifest files")]
    TooManyFiles {
        /// The limit.
        max: usize,
    },
    /// Directories nested deeper than [`MAX_DIR_DEPTH`].
    #[error("{path}: directories nested deeper than {max}")]
    TooDeep {
        /// The directory.
        path: String,
        /// The limit.
        max: usize,
    },
    /// More objects than [`MAX_OBJECTS`].
    #[error("more than {max} objects")]
    TooManyObjects {
        /// The limit.
        max: usize,
    },
    /// `-` given more than once.
    #[error("stdin (-) can be read only once")]
    StdinTwice,
    /// A document is not a readable Kubernetes object.
    #[error("{file}: document {document}{at}: {reason}", at = at_pointer(pointer))]
    Document {
        /// The file (`-` for stdin).
        file: String,
        /// 1-based index of the document in the file.
        document: usize,
        /// JSON pointer of the item inside a List document (empty for the document itself).
        pointer: String,
        /// What is wrong.
        reason: String,
    },
}

fn at_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        String::new()
    } else {
        format!(" at {pointer}")
    }
}

/// Where an object was read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// The file as given or found under a directory (`-` for stdin).
    pub file: String,
    /// 1-based index of the YAML/JSON document in the file (empty documents count).
    pub document: usize,
    /// JSON pointer of the object inside its document: empty, or `/items/3` for a List item.
    pub pointer: String,
    /// 1-based line where the document's content starts, when it could be told.
    pub line: Option<usize>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}{}", self.file, self.document, self.pointer)
    }
}

/// One Kubernetes object read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    /// Where it was read.
    pub origin: Origin,
    /// Its group, version and kind.
    pub kind: GroupVersionKind,
    /// `metadata.namespace`, when set.
    pub namespace: Option<String>,
    /// `metadata.name` (empty when only `generateName` is set).
    pub name: String,
    /// The object.
    pub object: Value,
}

impl ManifestObject {
    /// The engine's input for creating this object: in `metadata.namespace`, else in `default_namespace`,
    /// with that namespace's `labels` (and no annotations).
    pub fn to_input(
        &self,
        uid: String,
        default_namespace: &str,
        labels: BTreeMap<String, String>,
    ) -> AdmissionInput {
        let facts = NamespaceFacts { labels: Some(labels), annotations: BTreeMap::new() };
        self.to_input_with(uid, default_namespace, &facts)
    }

    /// [`Self::to_input`] with the namespace's labels and annotations (`namespace`).
    pub fn to_input_with(
        &self,
        uid: String,
        default_namespace: &str,
        namespace: &NamespaceFacts,
    ) -> AdmissionInput {
        let namespace_name = self.namespace_or(default_namespace);
        AdmissionInput {
            namespace_annotations: namespace.annotations.clone(),
            ..AdmissionInput::new(Operation::Create, self.kind.clone(), namespace_name.as_deref(), &self.name)
        }
        .with_uid(uid)
        .with_object(self.object.clone())
        .with_namespace_labels(namespace.labels.clone())
    }

    /// The namespace the API server would create it in: its own, else `default_namespace`; `None` for
    /// cluster-scoped kinds.
    pub fn namespace_or(&self, default_namespace: &str) -> Option<String> {
        if is_cluster_scoped(&self.kind.group, &self.kind.kind) {
            None
        } else {
            Some(self.namespace.clone().unwrap_or_else(|| default_namespace.to_owned()))
        }
    }

    /// When this is a `v1/Namespace`: its name and labels, with the label the API server adds.
    pub fn namespace_labels(&self) -> Option<(String, BTreeMap<String, String>)> {
        self.namespace_facts().map(|(name, facts)| (name, facts.labels.unwrap_or_default()))
    }

    /// When this is a `v1/Namespace`: its name and metadata, with the label the API server adds.
    pub fn namespace_facts(&self) -> Option<(String, NamespaceFacts)> {
        if self.kind.group.is_empty() && self.kind.kind == "Namespace" && !self.name.is_empty() {
            let mut labels = string_map(self.object.pointer("/metadata/labels"));
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), self.name.clone());
            let annotations = string_map(self.object.pointer("/metadata/annotations"));
            Some((self.name.clone(), NamespaceFacts { labels: Some(labels), annotations }))
        } else {
            None
        }
    }
}

/// What admission knows of a namespace from the cluster; here from the manifests or flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFacts {
    /// `metadata.labels`; `None` when unknown (a namespace the manifests do not define and no flag names).
    pub labels: Option<BTreeMap<String, String>>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// Built-in (and vouch's own) kinds that live outside namespaces. Unknown kinds are taken as namespaced,
/// as most custom resources are.
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus")
            | ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("admissionregistration.k8s.io", _)
            | ("apiregistration.k8s.io", "APIService")
            | ("storage.k8s.io", "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment")
            | ("scheduling.k8s.io", "PriorityClass")
            | ("node.k8s.io", "RuntimeClass")
            | ("networking.k8s.io", "IngressClass")
            | ("certificates.k8s.io", "CertificateSigningRequest")
            | ("flowcontrol.apiserver.k8s.io", _)
            | ("vouch.dev", "ClusterSupplyChainPolicy" | "TrustRoot" | "ComplianceProfile")
    )
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect())
        .unwrap_or_default()
}

/// Reads manifests with running totals (bytes, files, objects) so every bound holds over the whole run.
#[derive(Debug, Default)]
pub struct ManifestReader {
    objects: Vec<ManifestObject>,
    bytes: u64,
    files: usize,
    stdin_read: bool,
}

impl ManifestReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read `paths` in order (`-` = `stdin`, directories recursively) and return every object.
    pub fn read_paths(paths: &[String], stdin: impl Read) -> Result<Vec<ManifestObject>, ManifestError> {
        let mut reader = Self::new();
        let mut stdin = Some(stdin);
        for p in paths {
            if p == STDIN {
                let input = stdin.take().ok_or(ManifestError::StdinTwice)?;
                reader.add_reader(STDIN, input)?;
            } else {
                reader.add_path(Path::new(p))?;
            }
        }
        Ok(reader.finish())
    }

    /// The objects read so far.
    pub fn finish(self) -> Vec<ManifestObject> {
        self.objects
    }

    /// Add a file (read whatever its name) or a directory (its `*.yaml`, `*.yml` and `*.json` files,
    /// recursively, sorted; hidden entries such as `.git` skipped; symlinked directories not followed).
    pub fn add_path(&mut self, path: &Path) -> Result<(), ManifestError> {
        let meta = std::fs::metadata(path).map_err(|source| read_err(path, source))?;
        if meta.is_dir() {
            for file in manifest_files(path)? {
                self.add_file(&file)?;
            }
            Ok(())
        } else {
            self.add_file(path)
        }
    }

    fn add_file(&mut self, path: &Path) -> Result<(), ManifestError> {
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(ManifestError::TooManyFiles { max: MAX_FILES });
        }
        let file = std::fs::File::open(path).map_err(|source| read_err(path, source))?;
        self.add_reader(&display(path), file)
    }

    /// Add the documents read from `input`, named `name` in origins and errors.
    pub fn add_reader(&mut self, name: &str, input: impl Read) -> Result<(), ManifestError> {
        if name == STDIN {
            if self.stdin_read {
                return Err(ManifestError::StdinTwice);
            }
            self.stdin_read = true;
        }
        let mut bytes = Vec::new();
        input
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ManifestError::Read { path: name.to_owned(), source })?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(ManifestError::TooLarge { path: name.to_owned(), max: MAX_FILE_BYTES });
        }
        self.bytes += bytes.len() as u64;
        if self.bytes > MAX_TOTAL_BYTES {
            return Err(ManifestError::TotalTooLarge { max: MAX_TOTAL_BYTES });
        }
        let text = String::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8 { path: name.to_owned() })?;
        self.add_text(name, &text)
    }

    /// Add the documents of `text` (multi-document YAML, or JSON values one after another).
    pub fn add_text(&mut self, name: &str, text: &str) -> Result<(), ManifestError> {
        let body = text.trim_start_matches('\u{feff}');
        let trimmed = body.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            // JSON: strict, and much faster than going through the YAML parser.
            let mut stream = serde_json::Deserializer::from_str(body).into_iter::<Value>();
            for document in 1.. {
                let rest = body.get(stream.byte_offset()..).unwrap_or_default();
                let start = body.len() - rest.trim_start().len();
                let Some(doc) = stream.next() else { break };
                let doc = doc.map_err(|e| doc_err(name, document, "", format!("not valid JSON: {e}")))?;
                let line = body.get(..start).map(|before| before.matches('\n').count() + 1);
                self.add_document(name, document, line, doc)?;
            }
            return Ok(());
        }
        let mut docs = Vec::new();
        for (i, doc) in serde_yaml::Deserializer::from_str(body).enumerate() {
            let document = i + 1;
            let doc = Value::deserialize(doc)
                .map_err(|e| doc_err(name, document, "", format!("not valid YAML: {e}")))?;
            docs.push(doc);
        }
        // Lines are a convenience for reports: used only when the scan agrees with the parser.
        let lines = yaml_document_lines(body);
        let lines_agree = lines.len() == docs.len();
        for (i, doc) in docs.into_iter().enumerate() {
            let line = lines.get(i).copied().filter(|_| lines_agree);
            self.add_document(name, i + 1, line, doc)?;
        }
        Ok(())
    }

    /// Add one object (or List) already parsed, as the object at JSON pointer `pointer` (empty: the whole
    /// document) of document `document` of `name`: an object listed from the API, or an item of a List read
    /// a piece at a time.
    pub fn add_value(
        &mut self,
        name: &str,
        document: usize,
        pointer: String,
        object: Value,
    ) -> Result<(), ManifestError> {
        let origin = Origin { file: name.to_owned(), document, pointer, line: None };
        match object {
            Value::Null if origin.pointer.is_empty() => Ok(()),
            object => self.add_object(&origin, object, 0),
        }
    }

    fn add_document(
        &mut self,
        file: &str,
        document: usize,
        line: Option<usize>,
        doc: Value,
    ) -> Result<(), ManifestError> {
        match doc {
            // Empty documents (`---` twice, comments only, helm's empty templates).
            Value::Null => Ok(()),
            doc => self.add_object(
                &Origin { file: file.to_owned(), document, pointer: String::new(), line },
                doc,
                0,
            ),
        }
    }

    fn add_object(&mut self, origin: &Origin, object: Value, list_depth: usize) -> Result<(), ManifestError> {
        let fail = |reason: String| doc_err(&origin.file, origin.document, &origin.pointer, reason);
        let Value::Object(map) = &object else {
            return Err(fail(format!("expected a Kubernetes object, found {}", type_name(&object))));
        };
        let text = |field: &str| match map.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            None | Some(Value::Null) => Err(format!("{field} is missing")),
            Some(Value::String(_)) => Err(format!("{field} is empty")),
            Some(other) => Err(format!("{field} must be a string, found {}", type_name(other))),
        };
        let api_version = text("apiVersion").map_err(&fail)?;
        let kind = text("kind").map_err(&fail)?;
        if kind.ends_with("List") && map.contains_key("items") {
            if list_depth >= MAX_LIST_DEPTH {
                return Err(fail(format!("Lists nested deeper than {MAX_LIST_DEPTH}")));
            }
            let Value::Object(mut map) = object else {
                return Ok(());
            };
            let items = match map.remove("items") {
                Some(Value::Array(items)) => items,
                Some(Value::Null) => Vec::new(),
                Some(other) => {
                    return Err(fail(format!("items must be a list, found {}", type_name(&other))))
                }
                None => Vec::new(),
            };
            for (i, item) in items.into_iter().enumerate() {
                let item_origin =
                    Origin { pointer: format!("{}/items/{i}", origin.pointer), ..origin.clone() };
                self.add_object(&item_origin, item, list_depth + 1)?;
            }
            return Ok(());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) if !g.is_empty() && !v.is_empty() && !v.contains('/') => {
                (g.to_owned(), v.to_owned())
            }
            None => (String::new(), api_version.clone()),
            Some(_) => {
                return Err(fail(format!("apiVersion {api_version:?} is not <group>/<version> or <version>")))
            }
        };
        let metadata = match map.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                return Err(fail(format!("metadata must be an object, found {}", type_name(other))))
            }
        };
        let meta_text = |field: &str| match metadata.and_then(|m| m.get(field)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("metadata.{field} must be a string, found {}", type_name(other))),
        };
        let name = meta_text("name").map_err(&fail)?;
        let generate_name = meta_text("generateName").map_err(&fail)?;
        let namespace = meta_text("namespace").map_err(&fail)?;
        if name.is_none() && generate_name.is_none() {
            return Err(fail("metadata.name is missing".into()));
        }
        if self.objects.len() >= MAX_OBJECTS {
            return Err(ManifestError::TooManyObjects { max: MAX_OBJECTS });
        }
        self.objects.push(ManifestObject {
            origin: origin.clone(),
            kind: GroupVersionKind { group, version, kind },
            namespace,
            name: name.unwrap_or_default(),
            object,
        });
        Ok(())
    }
}

/// The 1-based line where each document of a YAML stream starts (its first line that is not blank or a
/// comment; for an empty document, its separator's line), as the parser counts documents: text before the
/// first `---` is a document only if it has content, every `---` starts one, `...` ends one.
fn yaml_document_lines(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut open: Option<(usize, Option<usize>)> = None; // (separator line, first content line)
    let is_content = |t: &str| !t.is_empty() && !t.starts_with('#');
    for (n, line) in text.lines().enumerate() {
        let ln = n + 1;
        if let Some(rest) = line.strip_prefix("---").filter(|r| r.is_empty() || r.starts_with([' ', '\t'])) {
            if let Some((sep, first)) = open.take() {
                starts.push(first.unwrap_or(sep));
            }
            open = Some((ln, is_content(rest.trim()).then_some(ln)));
            continue;
        }
        if line.strip_prefix("...").is_some_and(|r| r.trim().is_empty()) {
            if let Some((sep, first)) = open.take() {
                starts.push(first.unwrap_or(sep));
            }
            continue;
        }
        if is_content(line.trim()) {
            match &mut open {
                Some((_, first @ None)) => *first = Some(ln),
                Some(_) => {}
                None => open = Some((ln, Some(ln))),
            }
        }
    }
    if let Some((sep, first)) = open {
        starts.push(first.unwrap_or(sep));
    }
    starts
}

fn doc_err(file: &str, document: usize, pointer: &str, reason: String) -> ManifestError {
    ManifestError::Document { file: file.to_owned(), document, pointer: pointer.to_owned(), reason }
}

fn read_err(path: &Path, source: std::io::Error) -> ManifestError {
    ManifestError::Read { path: display(path), source }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Every manifest path under `dir` that [`ManifestReader::add_path`] would read (sorted), for listings.
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
        if depth > MAX_DIR_DEPTH {
            return Err(ManifestError::TooDeep { path: display(dir), max: MAX_DIR_DEPTH });
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|source| read_err(dir, source))? {
            let entry = entry.map_err(|source| read_err(dir, source))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let file_type = entry.file_type().map_err(|source| read_err(&entry.path(), source))?;
            entries.push((entry.path(), file_type));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, file_type) in entries {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if file_type.is_dir() {
                walk(&path, depth + 1, out)?;
            } else if [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e)) && path.is_file() {
                out.push(path);
                if out.len() > MAX_FILES {
                    return Err(ManifestError::TooManyFiles { max: MAX_FILES });
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, 0, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<ManifestObject>, ManifestError> {
        let mut r = ManifestReader::new();
        r.add_text("m.yaml", text)?;
        Ok(r.finish())
    }

    /// What `helm template` prints: `# Source:` comments, empty templates, a leading `---`.
    const HELM: &str = r#"---
# Source: app/templates/empty.yaml
---
# Source: app/templates/sa.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
---
# Source: app/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    spec:
      containers:
        - name: app
          image: "registry.test/app:1.0"   # pinned later
---
"#;

    #[test]
    fn helm_template_output_is_read_with_document_indexes() {
        let objects = read(HELM).unwrap();
        assert_eq!(objects.len(), 2, "{objects:?}");
        assert_eq!(objects[0].kind.kind, "ServiceAccount");
        let deploy = &objects[1];
        assert_eq!(
            deploy.kind,
            GroupVersionKind { group: "apps".into(), version: "v1".into(), kind: "Deployment".into() }
        );
        assert_eq!(deploy.namespace.as_deref(), Some("shop"));
        assert_eq!(deploy.name, "web");
        // Empty documents count: the deployment is the third document of the stream.
        assert_eq!(deploy.origin.to_string(), format!("m.yaml#{}", deploy.origin.document));
        assert_eq!((objects[0].origin.document, deploy.origin.document), (2, 3));
        assert_eq!(
            deploy.object.pointer("/spec/template/spec/containers/0/image").unwrap(),
            "registry.test/app:1.0"
        );
    }

    #[test]
    fn document_lines_follow_the_parser() {
        let objects = read(HELM).unwrap();
        let lines: Vec<_> = objects.iter().map(|o| o.origin.line).collect();
        assert_eq!(lines, [Some(5), Some(11)]);
        for text in [
            HELM,
            "a: 1\n",
            "---\na: 1\n---\n",
            "# c\n---\na: 1\n...\n---\nb: 2\n",
            "--- {a: 1}\n---\n\n---\nb: 1\n",
        ] {
            let parsed = serde_yaml::Deserializer::from_str(text).count();
            assert_eq!(yaml_document_lines(text).len(), parsed, "{text:?}");
        }
        assert_eq!(yaml_document_lines("--- {a: 1}\n---\n\n---\nb: 1\n"), [1, 2, 5]);
        let json = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}\n\n  {\"apiVersion\":\"v1\",\"kind\":\"Pod\",\n\"metadata\":{\"name\":\"b\"}}";
        let lines: Vec<_> = read(json).unwrap().iter().map(|o| o.origin.line).collect();
        assert_eq!(lines, [Some(1), Some(3)]);
    }

    #[test]
    fn lists_are_flattened_with_pointers() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "PodList", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}]}
        ]}"#;
        let objects = read(text).unwrap();
        let names: Vec<_> = objects.iter().map(|o| (o.name.as_str(), o.origin.pointer.as_str())).collect();
        assert_eq!(names, [("a", "/items/0"), ("b", "/items/1/items/0")]);
        assert_eq!(objects[1].origin.to_string(), "m.yaml#1/items/1/items/0");
    }

    #[test]
    fn json_values_one_after_another_are_documents() {
        let text = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\":\"batch/v1\",\"kind\":\"CronJob\",\"metadata\":{\"name\":\"c\"}}";
        let objects = read(text).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].kind.group, "batch");
        assert_eq!(objects[1].origin.document, 2);
    }

    #[test]
    fn a_bad_document_names_file_and_document() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: [oops\n";
        let e = read(text).unwrap_err().to_string();
        assert!(e.starts_with("m.yaml: document 2: not valid YAML: "), "{e}");

        let e = read("apiVersion: v1\nmetadata: {name: a}\n").unwrap_err().to_string();
        assert_eq!(e, "m.yaml: document 1: kind is missing");
        let e = read("- a\n- b\n").unwrap_err().to_string();
        assert_eq!(e, "m.yaml: document 1: expected a Kubernetes object, found a list");
        let e = read("apiVersion: v1\nkind: Pod\nmetadata: {}\n").unwrap_err().to_string();
        assert_eq!(e, "m.yaml: document 1: metadata.name is missing");
        let e = read("apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n").unwrap_err().to_string();
        assert_eq!(e, "m.yaml: document 1 at /items/0: apiVersion is missing");
        let e = read("{\"apiVersion\": \"v1\", ").unwrap_err().to_string();
        assert!(e.starts_with("m.yaml: document 1: not valid JSON: "), "{e}");
        let e = read("apiVersion: a/b/c\nkind: Pod\nmetadata: {name: a}\n").unwrap_err().to_string();
        assert!(e.contains("is not <group>/<version>"), "{e}");
    }

    #[test]
    fn generate_name_is_enough_and_namespace_is_optional() {
        let objects = read("apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: migrate-}\n").unwrap();
        assert_eq!(objects[0].name, "");
        let input = objects[0].to_input("u".into(), "default", BTreeMap::new());
        assert_eq!(input.namespace.as_deref(), Some("default"));
        assert_eq!(input.resource, "jobs");
        assert_eq!(input.operation, Operation::Create);
        assert!(input.old_object.is_none() && input.object.is_some());
    }

    #[test]
    fn cluster_scoped_kinds_get_no_namespace() {
        let objects = read("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n").unwrap();
        let namespaces: Vec<_> =
            objects.iter().map(|o| o.to_input("u".into(), "dflt", BTreeMap::new()).namespace).collect();
        assert_eq!(namespaces, [None, None, Some("dflt".to_owned())]);
    }

    #[test]
    fn resources_are_the_api_servers_plurals() {
        for (kind, plural) in [
            ("Pod", "pods"),
            ("Deployment", "deployments"),
            ("NetworkPolicy", "networkpolicies"),
            ("Ingress", "ingresses"),
            ("Gateway", "gateways"),
            ("CronJob", "cronjobs"),
        ] {
            assert_eq!(resource_of(kind), plural);
        }
    }

    #[test]
    fn namespaces_in_the_manifests_carry_their_labels() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {env: prod}, annotations: {a: b}}\n";
        let objects = read(text).unwrap();
        let (name, NamespaceFacts { labels, annotations }) = objects[0].namespace_facts().unwrap();
        assert_eq!(name, "shop");
        assert_eq!(annotations.get("a").map(String::as_str), Some("b"));
        assert_eq!(Some(objects[0].namespace_labels().unwrap().1), labels);
        let facts = NamespaceFacts { labels: labels.clone(), annotations: annotations.clone() };
        let input = objects[0].to_input_with("u".into(), "default", &facts);
        assert_eq!((input.namespace_labels, input.namespace_annotations), (labels.clone(), annotations));
        let labels = labels.unwrap();
        assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(labels.get(NAMESPACE_NAME_LABEL).map(String::as_str), Some("shop"));
    }

    #[test]
    fn directories_are_read_recursively_sorted_and_hidden_entries_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |n: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {n}}}\n");
        std::fs::create_dir_all(dir.path().join("b/deep")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), pod("a")).unwrap();
        std::fs::write(dir.path().join("b/deep/c.yml"), pod("c")).unwrap();
        std::fs::write(
            dir.path().join("b/b.json"),
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b/README.md"), "not a manifest").unwrap();
        std::fs::write(dir.path().join(".git/x.yaml"), "not: [valid").unwrap();
        let objects =
            ManifestReader::read_paths(&[dir.path().to_string_lossy().into_owned()], std::io::empty())
                .unwrap();
        let names: Vec<_> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(objects[2].origin.file.ends_with("b/deep/c.yml"), "{:?}", objects[2].origin);
    }

    #[test]
    fn stdin_is_read_once() {
        let paths = vec!["-".to_owned()];
        let objects =
            ManifestReader::read_paths(&paths, "apiVersion: v1\nkind: Pod\nmetadata: {name: s}\n".as_bytes())
                .unwrap();
        assert_eq!(objects[0].origin.file, "-");
        let twice = vec!["-".to_owned(), "-".to_owned()];
        assert!(matches!(
            ManifestReader::read_paths(&twice, std::io::empty()),
            Err(ManifestError::StdinTwice)
        ));
    }

    #[test]
    fn sizes_are_bounded() {
        let big = std::io::repeat(b'#').take(MAX_FILE_BYTES + 10);
        let mut r = ManifestReader::new();
        assert!(matches!(r.add_reader("big.yaml", big), Err(ManifestError::TooLarge { .. })));
        let e =
            ManifestReader::read_paths(&["/nonexistent/x.yaml".to_owned()], std::io::empty()).unwrap_err();
        assert!(e.to_string().starts_with("cannot read /nonexistent/x.yaml: "), "{e}");
        let nested = (0..=MAX_LIST_DEPTH).fold(
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
            |inner, _| serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [inner]}),
        );
        let e = read(&nested.to_string()).unwrap_err().to_string();
        assert!(e.contains("Lists nested deeper than"), "{e}");
        let e = read("\u{0}\u{1}").unwrap_err().to_string();
        assert!(e.starts_with("m.yaml: document 1: "), "{e}");
    }
}
