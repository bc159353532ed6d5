//! Writing one admitted object's own status: a `vouch.dev/Verified` condition on Pods, a
//! `SupplyChainVerified` condition (naming each verified digest and its signer) on custom resources of
//! configured kinds, plus `status.attestations` where the kind's structural schema keeps that field (read
//! once from its CustomResourceDefinition: a schema without it, such as kars's, would prune it). Only to
//! the object reviewed (same uid and fingerprint), guarded by its resourceVersion, and retried with
//! backoff, since at CREATE the object is not stored yet when admission runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind as KubeGvk, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use vouch_policies::{Finding, FindingResult};

use super::error::KubeError;
use super::event::ObjectRef;
use super::fingerprint;
use super::reports::truncate;

/// Condition type set on Pods.
pub const POD_CONDITION: &str = "vouch.dev/Verified";
/// Condition type set on configured custom resources.
pub const TARGET_CONDITION: &str = "SupplyChainVerified";
/// Most entries in a custom resource's `status.attestations`.
const MAX_ATTESTATIONS: usize = 100;
/// Longest condition message.
const MAX_CONDITION_MESSAGE: usize = 1024;

/// A custom resource kind whose status receives the verification result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusTarget {
    /// API group.
    pub group: String,
    /// Version used to write.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural) name.
    pub plural: String,
}

/// How often and how much is retried for an object that may not exist yet.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub initial_backoff: Duration,
}

/// What to write to one object's status.
#[derive(Debug, Clone)]
pub(super) struct ObjectUpdate {
    pub(super) object: ObjectRef,
    pub(super) allowed: bool,
    pub(super) findings: Vec<Finding>,
    pub(super) target: Option<StatusTarget>,
}

/// What became of an object status write that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// The status was written.
    Ok,
    /// The stored object is not the reviewed one (another uid, other images or spec): nothing written.
    Stale,
}

/// Which of vouch's status fields a target kind's schema keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// `status.conditions`.
    pub conditions: bool,
    /// `status.attestations`.
    pub attestations: bool,
}

impl Kept {
    /// What is assumed when the schema cannot be read: the condition only (never a field that would be
    /// pruned, or refused under strict field validation).
    const CONDITIONS_ONLY: Self = Self { conditions: true, attestations: false };

    /// What the structural schema `openAPIV3Schema` (as JSON) keeps: a field is kept when the status
    /// schema lists it or preserves unknown fields (a schema without `status` keeps it only when the
    /// root preserves unknown fields).
    pub fn from_schema(open_api_v3_schema: &serde_json::Value) -> Self {
        let preserves = |v: &serde_json::Value| {
            v.get("x-kubernetes-preserve-unknown-fields").and_then(serde_json::Value::as_bool) == Some(true)
        };
        match open_api_v3_schema.pointer("/properties/status") {
            None => {
                let all = preserves(open_api_v3_schema);
                Self { conditions: all, attestations: all }
            }
            Some(status) => {
                let keeps = |field: &str| {
                    preserves(status) || status.pointer(&format!("/properties/{field}")).is_some()
                };
                Self { conditions: keeps("conditions"), attestations: keeps("attestations") }
            }
        }
    }
}

/// The status schemas of the targets, read from their CustomResourceDefinitions once (by CRD name; writes
/// running at once wait for the one read).
#[derive(Debug, Clone, Default)]
pub struct StatusSchemas {
    kept: Arc<Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<Kept>>>>>,
}

impl StatusSchemas {
    /// What `target`'s schema keeps at its version. Read once; a CRD that cannot be read (no RBAC to get
    /// it, not found, no such version) is remembered as [`Kept::CONDITIONS_ONLY`]; a transient failure is
    /// not remembered (asked again next time, the condition alone written meanwhile).
    pub async fn kept(&self, client: &Client, target: &StatusTarget) -> Kept {
        let name = format!("{}.{}", target.plural, target.group);
        let cell = match self.kept.lock() {
            Ok(mut m) => Arc::clone(m.entry(name.clone()).or_default()),
            Err(_) => return Kept::CONDITIONS_ONLY,
        };
        let read = cell.get_or_try_init(|| read_schema(client, target, &name)).await;
        match read {
            Ok(kept) => *kept,
            Err(kept) => kept,
        }
    }
}

/// What the CRD `name` keeps of `target`'s status: `Ok` to remember, `Err` (the condition only) for now.
async fn read_schema(client: &Client, target: &StatusTarget, name: &str) -> Result<Kept, Kept> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let kept = match api.get(name).await {
        Ok(crd) => {
            let version = crd.spec.versions.iter().find(|v| v.name == target.version);
            let schema = version
                .and_then(|v| v.schema.as_ref())
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok());
            match schema {
                Some(schema) => Kept::from_schema(&schema),
                None => {
                    tracing::warn!(crd = %name, version = %target.version,
                        "no schema for this version: writing the SupplyChainVerified condition only");
                    Kept::CONDITIONS_ONLY
                }
            }
        }
        Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403 | 404) => {
            tracing::warn!(crd = %name, code = s.code, reason = %s.reason,
                "cannot read the CustomResourceDefinition: writing the SupplyChainVerified condition only \
                 (grant get on customresourcedefinitions/{name} to write status.attestations where the \
                 schema keeps it)");
            Kept::CONDITIONS_ONLY
        }
        Err(e) => {
            tracing::debug!(crd = %name, error = %e, "cannot read the CustomResourceDefinition now");
            return Err(Kept::CONDITIONS_ONLY);
        }
    };
    if !kept.conditions {
        tracing::warn!(crd = %name,
            "the status schema has no conditions field: the API server prunes the SupplyChainVerified condition");
    }
    Ok(kept)
}

/// Write one object's status, retrying while it may not exist yet or the server is busy.
pub(super) async fn write_object_status(
    client: &Client,
    update: &ObjectUpdate,
    retry: &RetryConfig,
    timeout: Duration,
    schemas: &StatusSchemas,
) -> Result<Written, KubeError> {
    let mut backoff = retry.initial_backoff;
    let mut attempt = 1;
    let what = || format!("status of {} {}", update.object.kind, update.object.name);
    loop {
        let write = async {
            match &update.target {
                None => patch_pod_condition(client, update).await,
                Some(target) => patch_custom_status(client, target, update, schemas).await,
            }
        };
        let result = tokio::time::timeout(timeout, write)
            .await
            .unwrap_or_else(|_| Err(KubeError::Timeout { what: what() }));
        match result {
            Err(e) if e.is_transient() && attempt < retry.attempts.max(1) => {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// `(status, reason, message)` of the condition for an object's findings.
pub(super) fn condition_parts(update: &ObjectUpdate) -> (&'static str, &'static str, String) {
    let failed: Vec<&Finding> = update.findings.iter().filter(|f| f.result != FindingResult::Pass).collect();
    let total = update.findings.len();
    match failed.first() {
        // Custom resources: what was verified, digest and signer, so the condition alone is evidence.
        None if update.target.is_some() => {
            let verified = verified_artifacts(&update.findings);
            let message = if verified.is_empty() {
                format!("{total} of {total} requirements met")
            } else {
                format!("{total} of {total} requirements met: {}", verified.join("; "))
            };
            ("True", "Verified", truncate(&message, MAX_CONDITION_MESSAGE))
        }
        None => ("True", "Verified", format!("{total} of {total} requirements met")),
        Some(first) => {
            let reason = if failed.iter().all(|f| f.result == FindingResult::Error) {
                "VerificationError"
            } else {
                "VerificationFailed"
            };
            // Warn and audit modes (and fail-open) admit objects that did not verify: say so.
            let admitted = if update.allowed { "admitted; " } else { "" };
            let message = format!(
                "{admitted}{} of {total} requirements not met; first: {}: image {}: policy {}: {}: {}",
                failed.len(),
                first.artifact,
                first.reference,
                first.policy,
                first.requirement,
                first.reason
            );
            ("False", reason, truncate(&message, MAX_CONDITION_MESSAGE))
        }
    }
}

/// `<artifact> <reference with digest> signed by <signer>`, once per (artifact, digest, signer), for the
/// findings that name a signer.
fn verified_artifacts(findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in findings.iter().filter(|f| f.result == FindingResult::Pass) {
        let Some(signer) = &f.signer else { continue };
        let reference = match &f.digest {
            Some(d) if !f.reference.contains(&d.to_string()) => format!("{}@{d}", f.reference),
            _ => f.reference.clone(),
        };
        let line = format!("{} {reference} signed by {signer}", f.artifact);
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Strategic merge patch of pods/status: conditions merge by `type`, so other conditions stay. Written
/// only to the Pod reviewed (same uid and images), guarded by its resourceVersion.
async fn patch_pod_condition(client: &Client, update: &ObjectUpdate) -> Result<Written, KubeError> {
    let object = &update.object;
    let ns = object.namespace.as_deref().unwrap_or("default");
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let current = match api.get_status(&object.name).await {
        Ok(current) => current,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(KubeError::NotFound { kind: "Pod", name: object.name.clone() });
        }
        Err(source) => {
            return Err(KubeError::Read {
                kind: "Pod",
                namespace: ns.to_owned(),
                name: object.name.clone(),
                source: Box::new(source),
            })
        }
    };
    let stored = serde_json::to_value(&current).unwrap_or_default();
    if !is_the_reviewed_object(object, current.metadata.uid.as_deref(), &stored) {
        return Ok(Written::Stale);
    }
    let (status, reason, message) = condition_parts(update);
    let mut patch = json!({
        "status": {"conditions": [{
            "type": POD_CONDITION,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now_rfc3339(),
        }]}
    });
    if let Some(map) = patch.as_object_mut() {
        // metadata.uid is immutable: a namesake pod with another uid rejects the patch; the resourceVersion
        // makes a Pod changed since it was read a conflict (retried: read and compared again).
        let mut metadata = json!({"resourceVersion": current.metadata.resource_version});
        if let Some(uid) = &object.uid {
            metadata["uid"] = json!(uid);
        }
        map.insert("metadata".into(), metadata);
    }
    api.patch_status(&object.name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| Written::Ok)
        .map_err(|source| KubeError::Write {
            what: format!("status of Pod {ns}/{}", object.name),
            source: Box::new(source),
        })
}

/// Whether the stored object (its uid and JSON) is the one a result is about: the same uid when both have
/// one, and the same fingerprint (which the reviewed object must have had).
fn is_the_reviewed_object(object: &ObjectRef, stored_uid: Option<&str>, stored: &serde_json::Value) -> bool {
    if let (Some(want), Some(have)) = (object.uid.as_deref(), stored_uid) {
        if want != have {
            return false;
        }
    }
    let Some(want) = &object.fingerprint else { return false };
    fingerprint::of_object(&object.api_version, &object.kind, stored).as_ref() == Some(want)
}

/// Read-modify-write of a custom resource's status (merge patch guarded by resourceVersion), replacing
/// only our condition and `attestations`.
async fn patch_custom_status(
    client: &Client,
    target: &StatusTarget,
    update: &ObjectUpdate,
    schemas: &StatusSchemas,
) -> Result<Written, KubeError> {
    let object = &update.object;
    let gvk = KubeGvk::gvk(&target.group, &target.version, &target.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &target.plural);
    let api: Api<DynamicObject> = match &object.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let what =
        || format!("status of {} {}/{}", target.kind, object.namespace.as_deref().unwrap_or(""), object.name);
    let current = match api.get_status(&object.name).await {
        Ok(current) => current,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(KubeError::NotFound { kind: "custom resource", name: object.name.clone() });
        }
        Err(source) => return Err(KubeError::Write { what: what(), source: Box::new(source) }),
    };
    // `data` holds everything but apiVersion, kind and metadata: the spec is where the fingerprint looks.
    if !is_the_reviewed_object(object, current.metadata.uid.as_deref(), &current.data) {
        return Ok(Written::Stale);
    }
    let (status, reason, message) = condition_parts(update);
    let now = now_rfc3339();
    let old_conditions = current.data.pointer("/status/conditions").and_then(|c| c.as_array()).cloned();
    let mut conditions: Vec<serde_json::Value> = Vec::new();
    let mut transition = now.clone();
    for c in old_conditions.unwrap_or_default() {
        if c.get("type").and_then(|t| t.as_str()) == Some(TARGET_CONDITION) {
            // Keep the transition time while the status does not change.
            if c.get("status").and_then(|s| s.as_str()) == Some(status) {
                if let Some(t) = c.get("lastTransitionTime").and_then(|t| t.as_str()) {
                    transition = t.to_owned();
                }
            }
        } else {
            conditions.push(c);
        }
    }
    let mut condition = json!({
        "type": TARGET_CONDITION, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": transition,
    });
    if let Some(generation) = current.metadata.generation {
        condition["observedGeneration"] = json!(generation);
    }
    conditions.push(condition);
    let mut new_status = json!({"conditions": conditions});
    // Only where the schema keeps it: a structural schema without it prunes it (and strict field
    // validation would refuse the whole write).
    if schemas.kept(client, target).await.attestations {
        let attestations: Vec<serde_json::Value> =
            update.findings.iter().take(MAX_ATTESTATIONS).map(attestation_entry).collect();
        new_status["attestations"] = json!(attestations);
    }
    let patch = json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "status": new_status,
    });
    api.patch_status(&object.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| Written::Ok)
        .map_err(|source| KubeError::Write { what: what(), source: Box::new(source) })
}

fn attestation_entry(f: &Finding) -> serde_json::Value {
    let mut entry = json!({
        "policy": f.policy,
        "requirement": f.requirement,
        "artifact": f.artifact.to_string(),
        "reference": f.reference,
        "result": f.result.to_string(),
    });
    if let Some(map) = entry.as_object_mut() {
        if let Some(ns) = &f.policy_namespace {
            map.insert("policyNamespace".into(), ns.clone().into());
        }
        if let Some(d) = &f.digest {
            map.insert("digest".into(), d.to_string().into());
        }
        if let Some(s) = &f.signer {
            map.insert("signer".into(), s.clone().into());
        }
        if let Some(i) = f.rekor_log_index {
            map.insert("rekorLogIndex".into(), i.into());
        }
        if let Some(d) = &f.sbom_digest {
            map.insert("sbomDigest".into(), d.to_string().into());
        }
    }
    entry
}
