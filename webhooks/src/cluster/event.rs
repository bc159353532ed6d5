//! An admission result as the status writer takes it: the object it is about and its findings. Shared by
//! the writer ([`super::status`]), the reports ([`super::reports`]) and object status writes
//! ([`super::object_status`]).

use vouch_policies::{AdmissionInput, Decision, Finding};

/// The object an admission result is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name (the generated one in the validating webhook).
    pub name: String,
    /// metadata.uid when the object had one (validating webhook); guards against writing to a namesake.
    pub uid: Option<String>,
    /// What the stored object must still show for a result to be written to its status (see
    /// [`super::fingerprint`]); `None`: nothing is written to it.
    pub fingerprint: Option<String>,
}

impl ObjectRef {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
}

/// One admission result to write back.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    /// The object.
    pub object: ObjectRef,
    /// Whether it was admitted.
    pub allowed: bool,
    /// Every (artifact, policy, requirement) result.
    pub findings: Vec<Finding>,
    /// Dry-run requests are never written back.
    pub dry_run: bool,
}

impl StatusEvent {
    /// The event for an evaluated admission request.
    pub fn from_admission(input: &AdmissionInput, decision: &Decision) -> Self {
        let uid = input
            .object
            .as_ref()
            .and_then(|o| o.read().pointer("/metadata/uid"))
            .and_then(serde_json::Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let kind = &input.kind;
        let api_version = if kind.group.is_empty() {
            kind.version.clone()
        } else {
            format!("{}/{}", kind.group, kind.version)
        };
        Self {
            object: ObjectRef {
                api_version,
                kind: kind.kind.clone(),
                namespace: input.namespace.clone().filter(|n| !n.is_empty()),
                name: input.name.clone(),
                uid,
                // Set by `StatusWriter::submit_admission`, only for objects whose status is written.
                fingerprint: None,
            },
            allowed: decision.allowed,
            findings: decision.findings.clone(),
            dry_run: input.dry_run,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use vouch_policies::{GroupVersionKind, Operation};

    /// A request for a `Thing` in `group`, in namespace `ns`.
    pub(crate) fn input(group: &str, object: serde_json::Value, dry_run: bool) -> AdmissionInput {
        let kind = GroupVersionKind { group: group.into(), version: "v1".into(), kind: "Thing".into() };
        AdmissionInput { dry_run, ..AdmissionInput::new(Operation::Create, kind, Some("ns"), "t") }
            .with_uid("req")
            .with_object(object)
    }

    #[test]
    fn event_from_admission_takes_uid_and_api_version() {
        let decision = Decision::allow();
        let e = StatusEvent::from_admission(&input("", json!({"metadata": {"uid": "u"}}), false), &decision);
        assert_eq!(e.object.api_version, "v1");
        assert_eq!(e.object.group(), "");
        assert_eq!(e.object.uid.as_deref(), Some("u"));
        let e = StatusEvent::from_admission(&input("apps", json!({"metadata": {}}), true), &decision);
        assert_eq!(e.object.api_version, "apps/v1");
        assert_eq!(e.object.group(), "apps");
        assert_eq!(e.object.uid, None);
        assert!(e.dry_run);
    }
}
