//! The `SupplyChainVerified` status of an admitted KarsSandbox (`vouch serve --status-target
//! kars.azure.com/v1alpha1/KarsSandbox=karssandboxes`), answered by kube's tower-test mock: the status schema
//! is read once from kars's CRD (tests/data/kars/karssandbox-crd.yaml, which has no `status.attestations`
//! and prunes unknown fields), so the write is a merge patch of the conditions only — kars's own conditions
//! kept, vouch's condition naming the digests verified and their signers — that validates against kars's
//! status schema. Where the schema keeps `attestations`, they are written; where the CRD cannot be read,
//! the condition alone is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kube_mock_support;

use std::path::Path;
use std::time::Duration;

use kube_mock_support::{mock_client, paths, status_body, Seen};
use serde_json::{json, Value};
use vouch_policies::crd::Mode;
use vouch_policies::{
    AdmissionInput, ArtifactKind, ArtifactLocation, Decision, Finding, FindingResult, GroupVersionKind,
    Operation,
};
use vouch_webhooks::cluster::{Kept, RetryConfig, StatusConfig, StatusTarget, StatusWriter};

const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/karssandboxes.kars.azure.com";
const RUNTIME_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const ALLOWLIST_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn data(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kars").join(name)).unwrap()
}

/// kars's KarsSandbox CRD, as JSON; `attestations` added to its status schema when asked.
fn crd(with_attestations: bool) -> Value {
    let mut crd: Value = serde_yaml::from_str(&data("karssandbox-crd.yaml")).unwrap();
    if with_attestations {
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            ["attestations"] = json!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    }
    crd
}

/// A KarsSandbox `name` (from the test data template) as the API server stores it: uid, generation,
/// resourceVersion, and a status with kars's own condition.
fn sandbox(name: &str) -> Value {
    let yaml = data("karssandbox-byo.yaml")
        .replace("ALLOWLIST_ARTIFACT_TYPE", "application/vnd.kars.egress-allowlist.v1+yaml")
        .replace("ALLOWLIST_REPOSITORY", "policy/egress-allowlist/research-agent")
        .replace("ALLOWLIST_DIGEST", ALLOWLIST_DIGEST)
        .replace("RUNTIME_IMAGE", &format!("myacr.azurecr.io/kars/runtime-byo:1.0@{RUNTIME_DIGEST}"))
        .replace("ENDPOINTS", "[{host: api.github.com, port: 443}]")
        .replace("REGISTRY", "myacr.azurecr.io")
        .replace("NAME", name);
    let mut object: Value = serde_yaml::from_str(&yaml).unwrap();
    object["metadata"]["uid"] = json!(format!("uid-{name}"));
    object["metadata"]["generation"] = json!(2);
    object["metadata"]["resourceVersion"] = json!("17");
    object
}

fn stored(name: &str) -> Value {
    let mut object = sandbox(name);
    object["status"] = json!({
        "phase": "Running",
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Active", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}],
    });
    object
}

fn target() -> StatusTarget {
    StatusTarget {
        group: "kars.azure.com".into(),
        version: "v1alpha1".into(),
        kind: "KarsSandbox".into(),
        plural: "karssandboxes".into(),
    }
}

fn config() -> StatusConfig {
    StatusConfig {
        reports: false,
        pod_conditions: false,
        targets: vec![target()],
        flush_interval: Duration::from_secs(3600),
        retry: RetryConfig { attempts: 2, initial_backoff: Duration::from_millis(5) },
        ..StatusConfig::default()
    }
}

fn pass(
    kind: ArtifactKind,
    name: &str,
    pointer: &str,
    reference: &str,
    digest: &str,
    signer: Option<&str>,
) -> Finding {
    Finding {
        policy: "kars".into(),
        policy_namespace: None,
        mode: Mode::Enforce,
        requirement: if signer.is_some() { "signature".into() } else { "egress".into() },
        artifact: ArtifactLocation { kind, name: name.into(), pointer: pointer.into() },
        reference: reference.into(),
        digest: Some(digest.parse().unwrap()),
        result: FindingResult::Pass,
        reason: "verified against key netsec".into(),
        signer: signer.map(str::to_owned),
        rekor_log_index: None,
        sbom_digest: None,
    }
}

/// The decision the engine makes of a good sandbox: the runtime image and the allowlist signed, the
/// endpoints in the allowlist.
fn decision() -> Decision {
    let allowlist = format!("myacr.azurecr.io/policy/egress-allowlist/research-agent@{ALLOWLIST_DIGEST}");
    Decision {
        findings: vec![
            pass(
                ArtifactKind::Field,
                "spec.runtime.byo.image",
                "/spec/runtime/byo/image",
                &format!("myacr.azurecr.io/kars/runtime-byo:1.0@{RUNTIME_DIGEST}"),
                RUNTIME_DIGEST,
                Some("key SHA256:runtime"),
            ),
            pass(
                ArtifactKind::EgressAllowlist,
                "spec.networkPolicy.allowlistRef",
                "/spec/networkPolicy/allowlistRef",
                &allowlist,
                ALLOWLIST_DIGEST,
                Some("netsec@example.com (https://token.actions.githubusercontent.com)"),
            ),
            pass(
                ArtifactKind::EgressAllowlist,
                "spec.networkPolicy.allowlistRef",
                "/spec/networkPolicy/allowlistRef",
                &allowlist,
                ALLOWLIST_DIGEST,
                None,
            ),
        ],
        ..Decision::allow()
    }
}

/// The admission of sandbox `name`, as the webhook hands it to the status writer.
fn admission(name: &str) -> AdmissionInput {
    let kind = GroupVersionKind {
        group: "kars.azure.com".into(),
        version: "v1alpha1".into(),
        kind: "KarsSandbox".into(),
    };
    AdmissionInput::new(Operation::Create, kind, Some("kars-research"), name)
        .with_uid(format!("review-{name}"))
        .with_object(sandbox(name))
}

fn status_path(name: &str) -> String {
    format!("/apis/kars.azure.com/v1alpha1/namespaces/kars-research/karssandboxes/{name}/status")
}

/// An API server with kars's CRD (`crd_answer` for its GET) and the sandboxes `a` and `b` stored.
fn api(crd_answer: (u16, Value)) -> impl Fn(&Seen) -> Option<(u16, Value)> + Send + Sync + 'static {
    move |s| match (s.method.as_str(), s.path()) {
        ("GET", CRD_PATH) => Some(crd_answer.clone()),
        ("GET", p) if p == status_path("a") => Some((200, stored("a"))),
        ("GET", p) if p == status_path("b") => Some((200, stored("b"))),
        ("PATCH", p) if p == status_path("a") || p == status_path("b") => Some((200, stored("a"))),
        _ => Some((500, status_body(500, "unexpected"))),
    }
}

/// Run the writer over the admissions of `a` and `b`; the requests seen.
async fn write_both(crd_answer: (u16, Value)) -> (Vec<Seen>, u64) {
    let (client, seen) = mock_client(api(crd_answer));
    let (writer, worker) = StatusWriter::new(config());
    let metrics = writer.metrics().clone();
    assert!(writer.submit_admission(&admission("a"), &decision()));
    assert!(writer.submit_admission(&admission("b"), &decision()));
    drop(writer);
    worker.run(client).await;
    let all = seen.lock().unwrap().clone();
    (all, metrics.writes_of("custom", "ok"))
}

fn patches(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.method == "PATCH").collect()
}

/// A JSON Schema of kars's status schema that refuses what the API server would prune.
fn strict(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let mut out: serde_json::Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !k.starts_with("x-kubernetes-") && k.as_str() != "format")
                .map(|(k, v)| (k.clone(), strict(v)))
                .collect();
            let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if out.contains_key("properties") && !preserve {
                out.insert("additionalProperties".into(), json!(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn mock_kars_sandbox_status_survives_its_structural_schema() {
    let (seen, ok) = write_both((200, crd(false))).await;
    assert_eq!(ok, 2, "{:?}", seen.iter().map(|s| format!("{} {}", s.method, s.path())).collect::<Vec<_>>());
    assert_eq!(seen.iter().filter(|s| s.path() == CRD_PATH).count(), 1, "the CRD is read once");
    let patches = patches(&seen);
    assert_eq!(patches.len(), 2);
    let patch = patches.iter().find(|p| p.path() == status_path("a")).unwrap();
    assert_eq!(patch.content_type, "application/merge-patch+json");
    assert_eq!(patch.body["metadata"]["resourceVersion"], "17", "guarded by the resourceVersion read");
    let status = &patch.body["status"];
    assert!(
        status.get("attestations").is_none(),
        "kars's schema has no attestations: not written ({status})"
    );
    let conditions = status["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0]["type"], "Ready", "kars's own condition is kept");
    let ours = &conditions[1];
    assert_eq!((ours["type"].as_str(), ours["status"].as_str()), (Some("SupplyChainVerified"), Some("True")));
    assert_eq!(ours["reason"], "Verified");
    assert_eq!(ours["observedGeneration"], 2);
    let message = ours["message"].as_str().unwrap();
    assert!(message.starts_with("3 of 3 requirements met: "), "{message}");
    assert!(
        message.contains(&format!(
            "field spec.runtime.byo.image myacr.azurecr.io/kars/runtime-byo:1.0@{RUNTIME_DIGEST} signed by key SHA256:runtime"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "egress allowlist spec.networkPolicy.allowlistRef myacr.azurecr.io/policy/egress-allowlist/research-agent@{ALLOWLIST_DIGEST} signed by netsec@example.com (https://token.actions.githubusercontent.com)"
        )),
        "{message}"
    );
    assert_eq!(message.matches("signed by").count(), 2, "each artifact once: {message}");
    // What was written is all kept by kars's structural status schema: nothing is pruned.
    let schema = &crd(false)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    let validator = jsonschema::validator_for(&strict(schema)).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(status).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        Kept::from_schema(&crd(false)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]),
        Kept { conditions: true, attestations: false }
    );
}

#[tokio::test]
async fn mock_kars_sandbox_gets_attestations_where_the_schema_keeps_them() {
    let (seen, ok) = write_both((200, crd(true))).await;
    assert_eq!(ok, 2);
    for patch in patches(&seen) {
        let attestations = patch.body["status"]["attestations"].as_array().unwrap();
        assert_eq!(attestations.len(), 3);
        assert_eq!(attestations[0]["digest"], RUNTIME_DIGEST);
        assert_eq!(attestations[0]["signer"], "key SHA256:runtime");
        assert_eq!(patch.body["status"]["conditions"][1]["type"], "SupplyChainVerified");
    }
}

#[tokio::test]
async fn mock_kars_sandbox_without_access_to_the_crd_gets_the_condition_only() {
    let (seen, ok) = write_both((403, status_body(403, "Forbidden"))).await;
    assert_eq!(ok, 2);
    assert_eq!(seen.iter().filter(|s| s.path() == CRD_PATH).count(), 1, "a refusal is remembered");
    for patch in patches(&seen) {
        assert!(patch.body["status"].get("attestations").is_none());
        assert_eq!(patch.body["status"]["conditions"][1]["type"], "SupplyChainVerified");
    }
    let (client, seen) = mock_client(api((200, crd(false))));
    let (writer, worker) = StatusWriter::new(config());
    // A sandbox denied is not stored: nothing is written to it (and its CRD is not read).
    let denied = Decision { allowed: false, ..decision() };
    assert!(writer.submit_admission(&admission("a"), &denied));
    drop(writer);
    worker.run(client).await;
    assert!(paths(&seen).is_empty(), "{:?}", paths(&seen));
}
