//! The engine's input: one admission request, as the webhook builds it from an AdmissionReview and
//! `vouch check` / `vouch bundle create` from files, and how its object is named in messages.

use std::collections::BTreeMap;

use vouch_attest::registry::Credentials;

use super::ObjectJson;
use crate::selector::Labels;
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
    pub object: Option<ObjectJson>,
    /// The object before the change (UPDATE).
    pub old_object: Option<ObjectJson>,
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

impl AdmissionInput {
    /// A request to `operation` on the object `name` of `kind` in `namespace` (`None`: cluster-scoped), as
    /// the API server sends it: the resource named after the kind, the namespace's labels known to be only
    /// `kubernetes.io/metadata.name` (which the API server sets), no namespace annotations, no objects, not
    /// a dry run, anonymous pulls, an empty uid. The `with_*` methods (or struct update) set the rest.
    #[must_use]
    pub fn new(operation: Operation, kind: GroupVersionKind, namespace: Option<&str>, name: &str) -> Self {
        let namespace = namespace.filter(|n| !n.is_empty()).map(str::to_owned);
        Self {
            uid: String::new(),
            operation,
            resource: resource_of(&kind.kind),
            kind,
            sub_resource: None,
            namespace_labels: namespace
                .as_ref()
                .map(|ns| BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), ns.clone())])),
            namespace,
            name: name.to_owned(),
            object: None,
            old_object: None,
            namespace_annotations: BTreeMap::new(),
            dry_run: false,
            pull_credentials: Credentials::anonymous(),
        }
    }

    /// With request uid `uid`.
    #[must_use]
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = uid.into();
        self
    }

    /// With the object (CREATE, UPDATE).
    #[must_use]
    pub fn with_object(mut self, object: serde_json::Value) -> Self {
        self.object = Some(ObjectJson::from_value(object));
        self
    }

    /// With the object before the change (UPDATE, DELETE).
    #[must_use]
    pub fn with_old_object(mut self, old_object: serde_json::Value) -> Self {
        self.old_object = Some(ObjectJson::from_value(old_object));
        self
    }

    /// With the namespace's labels: `None` when the caller cannot know them.
    #[must_use]
    pub fn with_namespace_labels(mut self, labels: Option<BTreeMap<String, String>>) -> Self {
        self.namespace_labels = labels;
        self
    }
}

/// `metadata.labels` of an object as policy object selectors match them, read where they are in the
/// object (a value that is not a string is no label).
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectLabels<'a>(Option<&'a serde_json::Map<String, serde_json::Value>>);

impl ObjectLabels<'_> {
    /// The labels copied out, e.g. to compare two reads of an object.
    pub fn to_map(self) -> BTreeMap<String, String> {
        self.0
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect()
    }
}

impl Labels for ObjectLabels<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.0?.get(key)?.as_str()
    }
}

/// `metadata.labels` of an object (none when there is no object or no label map).
pub fn labels_of(object: Option<&ObjectJson>) -> ObjectLabels<'_> {
    ObjectLabels(
        object
            .and_then(|o| crate::extract::value_at(o.read(), "/metadata/labels"))
            .and_then(serde_json::Value::as_object),
    )
}

/// `<kind> <ns>/<name>` (or `<kind> <name>` for cluster-scoped objects); the name falls back to the
/// object's `generateName`.
pub fn object_label(input: &AdmissionInput) -> String {
    let generated = input
        .object
        .as_ref()
        .and_then(|o| crate::extract::value_at(o.read(), "/metadata/generateName"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let name = if input.name.is_empty() { generated } else { input.name.as_str() };
    match input.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{} {ns}/{name}", input.kind.kind),
        None => format!("{} {name}", input.kind.kind),
    }
}

/// The label the API server puts on every namespace (policies often select namespaces by it).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The plural resource name the API server would use for a kind (lower case, regular plurals).
pub fn resource_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y').filter(|s| !s.ends_with(['a', 'e', 'o', 'u'])) {
        format!("{stem}ies")
    } else if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with('x') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LabelSelector, LabelSelectorOperator, LabelSelectorRequirement};

    #[test]
    fn object_labels_are_read_in_place_and_only_strings_are_labels() {
        let object = ObjectJson::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web", "tier": 3, "gone": null, "empty": ""}}
        }));
        let labels = labels_of(Some(&object));
        assert_eq!(labels.label("app"), Some("web"));
        assert_eq!(labels.label("empty"), Some(""));
        assert_eq!(labels.label("tier"), None);
        assert_eq!(labels.label("gone"), None);
        assert_eq!(labels.label("missing"), None);
        let copied =
            BTreeMap::from([("app".to_owned(), "web".to_owned()), ("empty".to_owned(), String::new())]);
        assert_eq!(labels.to_map(), copied);
        // Selectors see the same labels as in the copy: a number under `tier` does not exist.
        let exists = |key: &str| LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: key.into(),
                operator: LabelSelectorOperator::Exists,
                values: vec![],
            }],
            ..LabelSelector::default()
        };
        assert!(crate::selector::matches(&exists("app"), &labels));
        assert!(!crate::selector::matches(&exists("tier"), &labels));
        assert!(crate::selector::matches(&exists("app"), &copied));
        // No object, no label map, or labels that are not an object: no labels.
        for object in [
            None,
            Some(ObjectJson::from_value(serde_json::json!({"metadata": {}}))),
            Some(ObjectJson::from_value(serde_json::json!({"metadata": {"labels": ["app"]}}))),
        ] {
            let labels = labels_of(object.as_ref());
            assert_eq!(labels.label("app"), None);
            assert!(labels.to_map().is_empty());
        }
    }
}
