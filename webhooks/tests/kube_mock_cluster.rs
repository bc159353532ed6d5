//! The Kubernetes API calls of `vouch_webhooks::cluster`, answered by kube's tower-test mock: each test
//! states the request shapes (method, path, content type, body) the code must send and what it must make
//! of the answers. No API server runs here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kube_mock_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::channel::mpsc;
use kube::Client;
use kube_mock_support::{mock_client, mock_server, not_found, paths, status_body, Answer, Reply, Seen};
use serde_json::{json, Value};
use vouch_attest::registry::RegistryAuth;
use vouch_policies::crd::{Mode, PolicyCounts};
use vouch_policies::{ArtifactKind, ArtifactLocation, Finding, FindingResult};
use vouch_webhooks::cluster::{
    ClusterContext, ContextCacheConfig, KubeContext, KubeError, ObjectRef, RetryConfig, StatusConfig,
    StatusEvent, StatusTarget, StatusWriter,
};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn pull_secret(name: &str, type_: &str, key: &str, config: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "team"},
        "type": type_,
        "data": {key: b64(&config.to_string())},
    })
}

fn basic(user: &str) -> Option<RegistryAuth> {
    Some(RegistryAuth::Basic { username: user.into(), password: "pw".into() })
}

fn entry(user: &str) -> Value {
    json!({"auth": b64(&format!("{user}:pw"))})
}

#[tokio::test]
async fn mock_pull_credentials_merge_pod_then_service_account_and_skip_missing() {
    let (client, seen) = mock_client(|s| match (s.method.as_str(), s.path()) {
        ("GET", "/api/v1/namespaces/team/serviceaccounts/builder") => Some((
            200,
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "builder", "namespace": "team"},
                "imagePullSecrets": [{"name": "legacy"}, {"name": "pod-secret"}],
            }),
        )),
        ("GET", "/api/v1/namespaces/team/secrets/pod-secret") => Some((
            200,
            pull_secret(
                "pod-secret",
                "kubernetes.io/dockerconfigjson",
                ".dockerconfigjson",
                json!({"auths": {"reg-a.example": entry("pod"), "shared.example": entry("pod")}}),
            ),
        )),
        ("GET", "/api/v1/namespaces/team/secrets/legacy") => Some((
            200,
            pull_secret(
                "legacy",
                "kubernetes.io/dockercfg",
                ".dockercfg",
                json!({"reg-b.example": entry("sa"), "shared.example": entry("sa")}),
            ),
        )),
        ("GET", "/api/v1/namespaces/team/secrets/missing") => not_found(),
        _ => Some((500, status_body(500, "unexpected"))),
    });
    let ctx = KubeContext::new(client, &ContextCacheConfig::default());
    let spec = json!({
        "serviceAccountName": "builder",
        "imagePullSecrets": [{"name": "pod-secret"}, {"name": "missing"}],
        "containers": [{"name": "app", "image": "reg-a.example/app:1"}],
    });
    let creds = ctx.pull_credentials("team", &spec).await.unwrap();
    assert_eq!(creds.for_registry("reg-a.example"), basic("pod"));
    assert_eq!(creds.for_registry("reg-b.example"), basic("sa"), "legacy .dockercfg secret of the account");
    assert_eq!(creds.for_registry("shared.example"), basic("pod"), "the pod's own secret wins");
    assert_eq!(
        paths(&seen),
        [
            "GET /api/v1/namespaces/team/serviceaccounts/builder",
            "GET /api/v1/namespaces/team/secrets/pod-secret",
            "GET /api/v1/namespaces/team/secrets/missing",
            "GET /api/v1/namespaces/team/secrets/legacy",
        ]
    );
    // Within the cache TTL nothing is read again, the missing secret included.
    let again = ctx.pull_credentials("team", &spec).await.unwrap();
    assert_eq!(again, creds);
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn mock_pull_credentials_default_service_account_and_non_pull_secrets() {
    let (client, seen) = mock_client(|s| match s.path() {
        "/api/v1/namespaces/team/serviceaccounts/default" => not_found(),
        "/api/v1/namespaces/team/secrets/opaque" => Some((
            200,
            pull_secret(
                "opaque",
                "Opaque",
                ".dockerconfigjson",
                json!({"auths": {"reg.example": entry("x")}}),
            ),
        )),
        _ => Some((500, status_body(500, "unexpected"))),
    });
    let ctx = KubeContext::new(client, &ContextCacheConfig::default());
    let creds =
        ctx.pull_credentials("team", &json!({"imagePullSecrets": [{"name": "opaque"}]})).await.unwrap();
    assert!(creds.is_empty(), "an Opaque secret is not a pull secret");
    assert_eq!(
        paths(&seen),
        ["GET /api/v1/namespaces/team/serviceaccounts/default", "GET /api/v1/namespaces/team/secrets/opaque"]
    );
}

#[tokio::test]
async fn mock_secret_read_forbidden_is_an_error_naming_the_secret() {
    let (client, _) = mock_client(|s| match s.path() {
        "/api/v1/namespaces/team/serviceaccounts/default" => Some((
            200,
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"},
            }),
        )),
        _ => Some((403, status_body(403, "Forbidden"))),
    });
    let ctx = KubeContext::new(client, &ContextCacheConfig::default());
    let e = ctx.pull_credentials("team", &json!({"imagePullSecrets": [{"name": "s"}]})).await.unwrap_err();
    assert!(matches!(&e, KubeError::Read { kind: "Secret", name, .. } if name == "s"), "{e:?}");
    assert!(!e.is_transient());
    assert_eq!(e.to_string(), "cannot read Secret team/s");
}

#[tokio::test]
async fn mock_namespace_labels_read_once_and_missing_namespace_is_an_error() {
    let (client, seen) = mock_client(|s| match (s.method.as_str(), s.path()) {
        ("GET", "/api/v1/namespaces/prod") => Some((
            200,
            json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "prod", "labels": {"kubernetes.io/metadata.name": "prod", "tier": "gold"}},
            }),
        )),
        _ => not_found(),
    });
    let ctx = KubeContext::new(client, &ContextCacheConfig::default());
    let labels = ctx.namespace_labels("prod").await.unwrap().expect("a cluster knows namespace labels");
    assert_eq!(labels.get("tier").map(String::as_str), Some("gold"));
    assert_eq!(ctx.namespace_labels("prod").await.unwrap(), Some(labels));
    let e = ctx.namespace_labels("gone").await.unwrap_err();
    assert!(matches!(e, KubeError::NotFound { kind: "Namespace", .. }), "{e:?}");
    assert_eq!(paths(&seen), ["GET /api/v1/namespaces/prod", "GET /api/v1/namespaces/gone"]);
}

// ---- status writer ----

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn finding(container: &str, result: FindingResult) -> Finding {
    Finding {
        policy: "prod-signed".into(),
        policy_namespace: None,
        mode: Mode::Enforce,
        requirement: "signature".into(),
        artifact: ArtifactLocation {
            kind: ArtifactKind::Container,
            name: container.into(),
            pointer: format!("/spec/containers/{container}/image"),
        },
        reference: format!("reg.example/{container}:1@{DIGEST}"),
        digest: Some(DIGEST.parse().unwrap()),
        result,
        reason: if result == FindingResult::Pass {
            "signed by key cosign-prod".into()
        } else {
            "no signature verifies against key cosign-prod".into()
        },
        signer: (result == FindingResult::Pass).then(|| "key sha256:1234".to_owned()),
        rekor_log_index: (result == FindingResult::Pass).then_some(42),
        sbom_digest: None,
    }
}

/// The Pod the status tests review and (unless a test says otherwise) the API server stores: containers
/// `app` and `init`, uid `uid-<name>`.
fn stored_pod(name: &str, app_image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "a", "uid": format!("uid-{name}"), "resourceVersion": "7"},
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "app", "image": app_image}],
            "initContainers": [{"name": "init", "image": format!("reg.example/init:1@{DIGEST}")}],
        },
    })
}

fn reviewed_app_image() -> String {
    format!("reg.example/app:1@{DIGEST}")
}

fn pod_event(ns: &str, name: &str, findings: Vec<Finding>) -> StatusEvent {
    let mut reviewed = stored_pod(name, &reviewed_app_image());
    reviewed["spec"]["nodeName"] = json!(null);
    StatusEvent {
        object: ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some(ns.into()),
            name: name.into(),
            uid: Some(format!("uid-{name}")),
            fingerprint: vouch_webhooks::cluster::fingerprint::of_object("v1", "Pod", &reviewed),
        },
        allowed: findings.iter().all(|f| f.result == FindingResult::Pass),
        findings,
        dry_run: false,
    }
}

fn quick_config() -> StatusConfig {
    StatusConfig {
        flush_interval: Duration::from_secs(3600),
        flush_max_events: 1000,
        pod_conditions: false,
        retry: RetryConfig { attempts: 3, initial_backoff: Duration::from_millis(5) },
        ..StatusConfig::default()
    }
}

#[tokio::test]
async fn mock_report_batching_one_server_side_apply_per_namespace() {
    let (client, seen) = mock_client(|s| match s.method.as_str() {
        "GET" => not_found(),
        _ => Some((200, s.body.clone())),
    });
    let (writer, worker) = StatusWriter::new(quick_config());
    let metrics = writer.metrics().clone();
    for i in 0..6 {
        let result = if i == 0 { FindingResult::Fail } else { FindingResult::Pass };
        assert!(writer.submit(pod_event(
            "a",
            &format!("p{i}"),
            vec![finding("app", result), finding("side", FindingResult::Pass)]
        )));
    }
    for i in 0..4 {
        assert!(writer.submit(pod_event("b", &format!("q{i}"), vec![finding("app", FindingResult::Pass)])));
    }
    // The same pod again: its results replace the earlier ones instead of adding to them.
    assert!(writer.submit(pod_event("b", "q0", vec![finding("app", FindingResult::Fail)])));
    let mut dry = pod_event("c", "dry", vec![finding("app", FindingResult::Pass)]);
    dry.dry_run = true;
    assert!(!writer.submit(dry), "dry-run requests are never written back");
    drop(writer); // the worker flushes what is pending and ends
    worker.run(client).await;

    let seen = seen.lock().unwrap().clone();
    let applies: Vec<&Seen> = seen.iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(applies.len(), 2, "{:?}", paths_of(&seen));
    let mut reads: Vec<&str> = seen.iter().filter(|s| s.method == "GET").map(Seen::path).collect();
    reads.sort();
    assert_eq!(
        reads,
        [
            "/apis/openreports.io/v1alpha1/namespaces/a/reports/vouch",
            "/apis/openreports.io/v1alpha1/namespaces/b/reports/vouch"
        ],
        "each report is read once before it is applied"
    );
    assert_eq!(seen.len(), 4, "nothing but two reads and two applies");
    for s in &applies {
        assert_eq!(s.content_type, "application/apply-patch+yaml");
        assert!(s.uri.contains("fieldManager=vouch"), "{}", s.uri);
        assert!(s.uri.contains("force=true"), "{}", s.uri);
    }
    let a = applies
        .iter()
        .find(|s| s.path() == "/apis/openreports.io/v1alpha1/namespaces/a/reports/vouch")
        .unwrap();
    assert_eq!(a.body["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(a.body["kind"], "Report");
    assert_eq!(a.body["metadata"]["namespace"], "a");
    assert!(a.body["metadata"].get("resourceVersion").is_none(), "a new report is not conditional");
    assert_eq!(a.body["results"].as_array().unwrap().len(), 12);
    assert_eq!(a.body["summary"], json!({"pass": 11, "fail": 1, "warn": 0, "error": 0, "skip": 0}));
    let failed = a.body["results"].as_array().unwrap().iter().find(|r| r["result"] == "fail").unwrap();
    assert_eq!(failed["policy"], "prod-signed");
    assert_eq!(failed["rule"], "signature");
    assert_eq!(failed["severity"], "high");
    assert_eq!(failed["scored"], true);
    assert_eq!(failed["source"], "vouch");
    assert_eq!(failed["message"], "no signature verifies against key cosign-prod");
    assert_eq!(
        failed["resources"],
        json!([{"apiVersion": "v1", "kind": "Pod", "namespace": "a", "name": "p0", "uid": "uid-p0"}])
    );
    let passed = a.body["results"].as_array().unwrap().iter().find(|r| r["result"] == "pass").unwrap();
    assert_eq!(passed["properties"]["digest"], DIGEST);
    assert_eq!(passed["properties"]["signer"], "key sha256:1234");
    assert_eq!(passed["properties"]["rekorLogIndex"], "42");
    let b = applies
        .iter()
        .find(|s| s.path() == "/apis/openreports.io/v1alpha1/namespaces/b/reports/vouch")
        .unwrap();
    assert_eq!(b.body["results"].as_array().unwrap().len(), 4, "q0 replaced, not added");
    assert_eq!(b.body["summary"]["fail"], 1);
    assert_eq!(metrics.writes_of("report", "ok"), 2);
}

fn paths_of(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(|s| format!("{} {}", s.method, s.uri)).collect()
}

#[tokio::test]
async fn mock_report_flushes_after_max_events_and_stays_bounded() {
    let (client, seen) = mock_client(|s| match s.method.as_str() {
        "GET" => not_found(),
        _ => Some((200, s.body.clone())),
    });
    let config = StatusConfig { flush_max_events: 5, max_report_entries: 3, ..quick_config() };
    let (writer, worker) = StatusWriter::new(config);
    let run = tokio::spawn(worker.run(client));
    for i in 0..5 {
        writer.submit(pod_event("a", &format!("p{i}"), vec![finding("app", FindingResult::Pass)]));
    }
    // Five events reach the threshold: one apply without waiting for the (hour-long) interval.
    let deadline = Instant::now() + Duration::from_secs(5);
    let applies = || seen.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect::<Vec<_>>();
    while applies().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let applies = applies();
    assert_eq!(applies.len(), 1);
    let names: Vec<&str> = applies[0].body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resources"][0]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p2", "p3", "p4"], "capped at 3, oldest evicted");
    drop(writer);
    run.await.unwrap();
}

#[tokio::test]
async fn mock_report_merges_with_the_stored_report_and_retries_on_conflict() {
    // Another replica (or this one before a restart) wrote a result for pod "other" and an older one for p0.
    let stored_result = |name: &str, result: &str, ts: i64| {
        json!({
            "source": "vouch", "policy": "prod-signed", "rule": "signature", "result": result,
            "severity": "high", "scored": true, "timestamp": {"seconds": ts, "nanos": 0},
            "resources": [{"apiVersion": "v1", "kind": "Pod", "namespace": "a", "name": name, "uid": format!("uid-{name}")}],
            "properties": {"artifact": "container app"},
        })
    };
    let stored = vec![stored_result("other", "pass", 1), stored_result("p0", "pass", 2)];
    let applies = Arc::new(Mutex::new(0));
    let count = applies.clone();
    let (client, seen) = mock_client(move |s| match s.method.as_str() {
        "GET" => {
            let version = if *count.lock().unwrap() == 0 { "7" } else { "8" };
            Some((
                200,
                json!({
                    "apiVersion": "openreports.io/v1alpha1", "kind": "Report",
                    "metadata": {"name": "vouch", "namespace": "a", "resourceVersion": version},
                    "results": stored.clone(),
                }),
            ))
        }
        _ => {
            let mut n = count.lock().unwrap();
            *n += 1;
            if *n == 1 {
                Some((409, status_body(409, "Conflict")))
            } else {
                Some((200, s.body.clone()))
            }
        }
    });
    let (writer, worker) = StatusWriter::new(quick_config());
    let metrics = writer.metrics().clone();
    writer.submit(pod_event("a", "p0", vec![finding("app", FindingResult::Fail)]));
    drop(writer);
    worker.run(client).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        paths(&Arc::new(Mutex::new(seen.clone()))),
        [
            "GET /apis/openreports.io/v1alpha1/namespaces/a/reports/vouch",
            "PATCH /apis/openreports.io/v1alpha1/namespaces/a/reports/vouch",
            "GET /apis/openreports.io/v1alpha1/namespaces/a/reports/vouch",
            "PATCH /apis/openreports.io/v1alpha1/namespaces/a/reports/vouch",
        ]
    );
    assert_eq!(seen[1].body["metadata"]["resourceVersion"], "7");
    assert_eq!(seen[3].body["metadata"]["resourceVersion"], "8", "re-read after the conflict");
    let results = seen[3].body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0]["resources"][0]["name"], "other", "another writer's result is kept");
    assert_eq!(results[1]["resources"][0]["name"], "p0");
    assert_eq!(results[1]["result"], "fail", "the new result replaced the stored one");
    assert_eq!(seen[3].body["summary"]["pass"], 1);
    assert_eq!(seen[3].body["summary"]["fail"], 1);
    assert_eq!(metrics.writes_of("report", "ok"), 1);
}

#[tokio::test]
async fn mock_report_without_permission_is_dropped_not_retried() {
    let (client, seen) = mock_client(|_| Some((403, status_body(403, "Forbidden"))));
    let config = StatusConfig { flush_interval: Duration::from_millis(10), ..quick_config() };
    let (writer, worker) = StatusWriter::new(config);
    let metrics = writer.metrics().clone();
    let run = tokio::spawn(worker.run(client));
    writer.submit(pod_event("a", "p0", vec![finding("app", FindingResult::Pass)]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(writer);
    run.await.unwrap();
    assert_eq!(paths(&seen), ["GET /apis/openreports.io/v1alpha1/namespaces/a/reports/vouch"]);
    assert_eq!(metrics.writes_of("report", "error"), 1);
}

#[tokio::test]
async fn mock_hanging_api_server_times_out_instead_of_stalling_the_worker() {
    let (client, seen) = mock_client(|_| None);
    let config = StatusConfig { write_timeout: Duration::from_millis(50), ..quick_config() };
    let (writer, worker) = StatusWriter::new(config);
    let metrics = writer.metrics().clone();
    writer.submit(pod_event("a", "p0", vec![finding("app", FindingResult::Pass)]));
    drop(writer);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), worker.run(client)).await.expect("the worker must not hang");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(metrics.writes_of("report", "retry"), 1, "a timeout is worth another try");
}

#[tokio::test]
async fn mock_pod_condition_retries_until_the_pod_exists() {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let (client, seen) = mock_client(move |s| {
        if s.path() != "/api/v1/namespaces/a/pods/p0/status" {
            return Some((500, status_body(500, "unexpected")));
        }
        let mut n = counter.lock().unwrap();
        *n += 1;
        // CREATE: the pod is not stored yet when admission runs.
        match (*n, s.method.as_str()) {
            (1, _) => not_found(),
            (_, "GET") => Some((200, stored_pod("p0", &reviewed_app_image()))),
            _ => Some((200, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p0"}}))),
        }
    });
    let config = StatusConfig { reports: false, pod_conditions: true, ..quick_config() };
    let (writer, worker) = StatusWriter::new(config);
    let metrics = writer.metrics().clone();
    // Admitted although a requirement failed (a warn-mode policy).
    let mut event =
        pod_event("a", "p0", vec![finding("app", FindingResult::Pass), finding("init", FindingResult::Fail)]);
    event.allowed = true;
    writer.submit(event);
    drop(writer);
    worker.run(client).await;
    let seen = seen.lock().unwrap().clone();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "GET", "PATCH"], "read (not there yet), read, write: {:?}", paths_of(&seen));
    assert_eq!(seen[2].content_type, "application/strategic-merge-patch+json");
    let body = &seen[2].body;
    assert_eq!(body["metadata"]["uid"], "uid-p0", "guards against a namesake pod");
    assert_eq!(body["metadata"]["resourceVersion"], "7", "guards against a pod changed since it was read");
    let condition = &body["status"]["conditions"][0];
    assert_eq!(condition["type"], "vouch.dev/Verified");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "VerificationFailed");
    let message = condition["message"].as_str().unwrap();
    assert!(message.starts_with("admitted; 1 of 2 requirements not met"), "{message}");
    assert!(message.contains("container init"), "{message}");
    assert!(condition["lastTransitionTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(metrics.writes_of("pod", "ok"), 1);
}

#[tokio::test]
async fn mock_denied_pod_gets_no_condition_but_a_report_entry() {
    let (client, seen) = mock_client(|s| match s.method.as_str() {
        "GET" => not_found(),
        _ => Some((200, s.body.clone())),
    });
    let config = StatusConfig { pod_conditions: true, ..quick_config() };
    let (writer, worker) = StatusWriter::new(config);
    writer.submit(pod_event("a", "denied", vec![finding("app", FindingResult::Fail)]));
    drop(writer);
    worker.run(client).await;
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|s| s.path().contains("/pods/")), "{:?}", paths_of(&seen));
    let apply = seen.iter().find(|s| s.method == "PATCH").unwrap();
    assert_eq!(apply.body["results"][0]["result"], "fail");
}

#[tokio::test]
async fn mock_pod_condition_gives_up_after_the_configured_attempts() {
    let (client, seen) = mock_client(|_| not_found());
    let config = StatusConfig { reports: false, pod_conditions: true, ..quick_config() };
    let (writer, worker) = StatusWriter::new(config);
    let metrics = writer.metrics().clone();
    writer.submit(pod_event("a", "never", vec![finding("app", FindingResult::Pass)]));
    drop(writer);
    worker.run(client).await;
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(metrics.writes_of("pod", "gave_up"), 1);
    assert_eq!(metrics.writes_of("pod", "ok"), 0);
}

/// Status writes for the custom kind `Widget` (example.com/v1, plural widgets) only.
fn widget_config() -> StatusConfig {
    let target = StatusTarget {
        group: "example.com".into(),
        version: "v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    StatusConfig { reports: false, targets: vec![target], ..quick_config() }
}

/// An admitted Widget `a/w1` (uid `uid-w1`) whose reviewed spec was `spec`, with a passed model finding.
fn widget_event(spec: Value) -> StatusEvent {
    StatusEvent {
        object: ObjectRef {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            namespace: Some("a".into()),
            name: "w1".into(),
            uid: Some("uid-w1".into()),
            fingerprint: vouch_webhooks::cluster::fingerprint::of_object(
                "example.com/v1",
                "Widget",
                &json!({ "spec": spec }),
            ),
        },
        allowed: true,
        findings: vec![finding("model", FindingResult::Pass)],
        dry_run: false,
    }
}

#[tokio::test]
async fn mock_custom_resource_status_keeps_other_conditions_and_lists_attestations() {
    let (client, seen) = mock_client(|s| match (s.method.as_str(), s.path()) {
        ("GET", "/apis/example.com/v1/namespaces/a/widgets/w1/status") => Some((
            200,
            json!({
                "apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w1", "namespace": "a", "uid": "uid-w1", "resourceVersion": "42"},
                "spec": {"model": "reg.example/model:1", "replicas": 1},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Up", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                    {"type": "SupplyChainVerified", "status": "True", "reason": "Verified", "message": "old", "lastTransitionTime": "2025-01-02T00:00:00Z"}
                ]},
            }),
        )),
        // The Widget CRD: its status schema keeps unknown fields, so status.attestations is kept.
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com") => Some((
            200,
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {
                    "group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        },
                    }}}],
                },
            }),
        )),
        ("PATCH", "/apis/example.com/v1/namespaces/a/widgets/w1/status") => Some((
            200,
            json!({
                "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
            }),
        )),
        _ => Some((500, status_body(500, "unexpected"))),
    });
    let (writer, worker) = StatusWriter::new(widget_config());
    let metrics = writer.metrics().clone();
    writer.submit(widget_event(json!({"replicas": 1, "model": "reg.example/model:1"})));
    drop(writer);
    worker.run(client).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(paths_of(&seen).len(), 3, "{:?}", paths_of(&seen));
    assert_eq!(seen[1].path(), "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com");
    let patch = &seen[2];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.content_type, "application/merge-patch+json");
    assert_eq!(patch.body["metadata"]["resourceVersion"], "42", "optimistic concurrency");
    let conditions = patch.body["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0]["type"], "Ready", "other conditions are kept");
    assert_eq!(conditions[1]["type"], "SupplyChainVerified");
    assert_eq!(conditions[1]["status"], "True");
    assert_eq!(
        conditions[1]["lastTransitionTime"], "2025-01-02T00:00:00Z",
        "unchanged status keeps its time"
    );
    let attestations = patch.body["status"]["attestations"].as_array().unwrap();
    assert_eq!(attestations.len(), 1);
    assert_eq!(attestations[0]["digest"], DIGEST);
    assert_eq!(attestations[0]["rekorLogIndex"], 42);
    assert_eq!(attestations[0]["policy"], "prod-signed");
    assert!(patch.body["status"].get("phase").is_none(), "the merge patch leaves other status fields alone");
    assert_eq!(metrics.writes_of("custom", "ok"), 1);
}

#[tokio::test]
async fn mock_forged_review_of_a_stored_pod_with_other_images_writes_no_condition() {
    // A review (from anything that reaches the webhook) names the stored Pod p1 and its uid, but with a
    // signed image the Pod does not run; the stored Pod runs another image. Nothing is written to it.
    let (client, seen) = mock_client(|s| match (s.method.as_str(), s.path()) {
        ("GET", "/api/v1/namespaces/a/pods/p1/status") => {
            Some((200, stored_pod("p1", "reg.example/unsigned:latest")))
        }
        ("GET", "/api/v1/namespaces/a/pods/p2/status") => {
            // Same images, another uid: a namesake created after the review.
            let mut pod = stored_pod("p2", &reviewed_app_image());
            pod["metadata"]["uid"] = json!("uid-someone-else");
            Some((200, pod))
        }
        _ => Some((500, status_body(500, "unexpected"))),
    });
    let config = StatusConfig { reports: false, pod_conditions: true, ..quick_config() };
    let (writer, worker) = StatusWriter::new(config);
    let metrics = writer.metrics().clone();
    writer.submit(pod_event("a", "p1", vec![finding("app", FindingResult::Pass)]));
    writer.submit(pod_event("a", "p2", vec![finding("app", FindingResult::Pass)]));
    drop(writer);
    worker.run(client).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.method == "GET"), "no write: {:?}", paths_of(&seen));
    assert_eq!(seen.len(), 2, "{:?}", paths_of(&seen));
    assert_eq!(metrics.writes_of("pod", "stale"), 2);
    assert_eq!(metrics.writes_of("pod", "ok"), 0);
}

#[tokio::test]
async fn mock_custom_resource_whose_stored_spec_differs_gets_no_status() {
    // The stored Widget names another model than the reviewed one (changed since, or a forged review):
    // its status is not written.
    let (client, seen) = mock_client(|s| match (s.method.as_str(), s.path()) {
        ("GET", "/apis/example.com/v1/namespaces/a/widgets/w1/status") => Some((
            200,
            json!({
                "apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w1", "namespace": "a", "uid": "uid-w1", "resourceVersion": "43"},
                "spec": {"model": "reg.example/other-model:1", "replicas": 1},
            }),
        )),
        _ => Some((500, status_body(500, "unexpected"))),
    });
    let (writer, worker) = StatusWriter::new(widget_config());
    let metrics = writer.metrics().clone();
    writer.submit(widget_event(json!({"model": "reg.example/model:1", "replicas": 1})));
    drop(writer);
    worker.run(client).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(paths_of(&seen).len(), 1, "read, no write: {:?}", paths_of(&seen));
    assert_eq!(seen[0].method, "GET");
    assert_eq!((metrics.writes_of("custom", "stale"), metrics.writes_of("custom", "ok")), (1, 0));
}

#[tokio::test]
async fn mock_full_queue_drops_without_blocking() {
    let config = StatusConfig { queue_capacity: 2, ..quick_config() };
    // The worker is never run: nothing drains the queue.
    let (writer, _worker) = StatusWriter::new(config);
    let started = Instant::now();
    let queued: Vec<bool> = (0..5)
        .map(|i| writer.submit(pod_event("a", &format!("p{i}"), vec![finding("app", FindingResult::Pass)])))
        .collect();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(queued, [true, true, false, false, false]);
    assert_eq!(writer.metrics().dropped.get(), 3);
    let mut registry = prometheus_client::registry::Registry::default();
    writer.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("vouch_status_dropped_total 3"), "{text}");
}

#[tokio::test]
async fn mock_disabled_writer_sends_nothing() {
    let writer = StatusWriter::disabled();
    assert!(!writer.is_enabled());
    assert!(!writer.submit(pod_event("a", "p", vec![finding("app", FindingResult::Pass)])));
    assert_eq!(writer.metrics().dropped.get(), 0);
}

// ---- policy watch ----

fn test_engine() -> vouch_policies::Engine {
    use vouch_attest::verify::{ArtifactVerifier, VerifierConfig, VerifyOptions};
    let verifier = ArtifactVerifier::new(VerifierConfig {
        registry: vouch_attest::registry::RegistryConfig::default(),
        trust_root: vouch_attest::trust_root::TrustRoot::public_good().unwrap(),
        cache: vouch_attest::cache::CacheConfig::default(),
        options: VerifyOptions::default(),
    })
    .unwrap();
    vouch_policies::Engine::new(
        vouch_policies::EngineConfig::default(),
        vouch_policies::PolicySet::default(),
        verifier,
    )
}

fn list(kind: &str, items: Vec<Value>) -> Answer {
    Some((
        200,
        json!({
            "apiVersion": "vouch.dev/v1alpha1", "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": "100"}, "items": items,
        }),
    ))
}

/// Wait (at most 10 s) until `done`: a test waits for evidence, not for time to pass.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    wait_for(what, || done().then_some(())).await;
}

/// Wait (at most 10 s) for `found` to find something.
async fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = found() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The API server's side of the vouch.dev kinds, as far as the policy watch sees it: a LIST answers what
/// is stored, a WATCH stays open and streams every later change, and a merge PATCH of `/status` is applied
/// to the stored object (status only, a new resourceVersion, the same generation) and sent to every open
/// watch of its kind as MODIFIED, as a real API server does. A patch naming a resourceVersion other than
/// the stored one gets 409.
#[derive(Default)]
struct FakeVouchApi {
    /// By plural, then (namespace, name).
    objects: BTreeMap<String, BTreeMap<(Option<String>, String), Value>>,
    /// Open watches by plural.
    watches: BTreeMap<String, Vec<mpsc::UnboundedSender<Value>>>,
    version: u64,
    /// Events sent to an open watch.
    delivered: usize,
    /// A write by someone else to the object the next status PATCH names, just before that PATCH arrives.
    write_in_between: Option<ObjectChange>,
}

/// A change to a stored object.
type ObjectChange = Box<dyn FnOnce(&mut Value) + Send>;

const VOUCH_API: &str = "/apis/vouch.dev/v1alpha1/";
const VOUCH_PLURALS: [&str; 4] =
    ["clustersupplychainpolicies", "supplychainpolicies", "trustroots", "complianceprofiles"];

impl FakeVouchApi {
    /// Store `object` (its plural from its kind) with a fresh resourceVersion.
    fn insert(&mut self, object: Value) {
        let plural =
            format!("{}s", object["kind"].as_str().unwrap().to_lowercase()).replace("policys", "policies");
        assert!(VOUCH_PLURALS.contains(&plural.as_str()), "{plural}");
        let key = Self::key(&object);
        let object = self.bump(object);
        self.objects.entry(plural).or_default().insert(key, object);
    }

    fn key(object: &Value) -> (Option<String>, String) {
        let meta = &object["metadata"];
        (meta["namespace"].as_str().map(str::to_owned), meta["name"].as_str().unwrap().to_owned())
    }

    fn bump(&mut self, mut object: Value) -> Value {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        object
    }

    /// The stored object.
    fn get(&self, plural: &str, namespace: Option<&str>, name: &str) -> Value {
        self.objects[plural][&(namespace.map(str::to_owned), name.to_owned())].clone()
    }

    /// Change a stored object as a client's write would, and tell the watches.
    fn modify(&mut self, plural: &str, namespace: Option<&str>, name: &str, change: impl FnOnce(&mut Value)) {
        let key = (namespace.map(str::to_owned), name.to_owned());
        let mut object = self.objects[plural][&key].clone();
        change(&mut object);
        let object = self.bump(object);
        self.objects.get_mut(plural).unwrap().insert(key, object.clone());
        self.send(plural, json!({"type": "MODIFIED", "object": object}));
    }

    fn send(&mut self, plural: &str, event: Value) {
        let watches = self.watches.entry(plural.to_owned()).or_default();
        watches.retain(|w| w.unbounded_send(event.clone()).is_ok());
        self.delivered += watches.len();
    }

    /// The answer to `s` if it is a vouch.dev request.
    fn answer(&mut self, s: &Seen) -> Option<Reply> {
        let rest = s.path().strip_prefix(VOUCH_API)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (namespace, parts) = match parts.as_slice() {
            ["namespaces", ns, tail @ ..] => (Some(*ns), tail.to_vec()),
            _ => (None, parts),
        };
        let plural = parts[0].to_owned();
        let kind = match plural.as_str() {
            "clustersupplychainpolicies" => "ClusterSupplyChainPolicy",
            "supplychainpolicies" => "SupplyChainPolicy",
            "trustroots" => "TrustRoot",
            "complianceprofiles" => "ComplianceProfile",
            _ => return Some(Reply::Json(404, status_body(404, "NotFound"))),
        };
        Some(match (s.method.as_str(), &parts[1..]) {
            ("GET", []) if s.uri.contains("watch=true") => {
                let (tx, rx) = mpsc::unbounded();
                self.watches.entry(plural).or_default().push(tx);
                Reply::Watch(rx)
            }
            ("GET", []) => {
                let items: Vec<Value> = self
                    .objects
                    .get(&plural)
                    .map(|m| {
                        m.iter().filter(|((ns, _), _)| namespace.is_none() || ns.as_deref() == namespace)
                    })
                    .into_iter()
                    .flatten()
                    .map(|(_, o)| o.clone())
                    .collect();
                Reply::Json(
                    200,
                    json!({
                        "apiVersion": "vouch.dev/v1alpha1", "kind": format!("{kind}List"),
                        "metadata": {"resourceVersion": self.version.to_string()}, "items": items,
                    }),
                )
            }
            ("PATCH", [name, "status"]) => {
                assert_eq!(s.content_type, "application/merge-patch+json", "{}", s.uri);
                if let Some(change) = self.write_in_between.take() {
                    self.modify(&plural, namespace, name, change);
                }
                let key = (namespace.map(str::to_owned), (*name).to_owned());
                let Some(stored) = self.objects.get(&plural).and_then(|m| m.get(&key)) else {
                    return Some(Reply::Json(404, status_body(404, "NotFound")));
                };
                let stored_version = &stored["metadata"]["resourceVersion"];
                if let Some(version) = s.body.pointer("/metadata/resourceVersion") {
                    if version != stored_version {
                        return Some(Reply::Json(409, status_body(409, "Conflict")));
                    }
                }
                let mut status = stored.get("status").cloned().unwrap_or(Value::Null);
                merge_patch(&mut status, &s.body["status"]);
                self.modify(&plural, namespace, name, |o| o["status"] = status);
                Reply::Json(200, self.get(&plural, namespace, name))
            }
            _ => Reply::Json(405, status_body(405, "MethodNotAllowed")),
        })
    }
}

/// RFC 7386 JSON merge patch, as the API server applies `application/merge-patch+json`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().unwrap();
    for (key, value) in fields {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[tokio::test]
async fn mock_policy_watch_compiles_cluster_policies_and_writes_status() {
    let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
    let good = json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "ClusterSupplyChainPolicy",
        "metadata": {"name": "prod-signed", "uid": "u1", "generation": 3, "resourceVersion": "10"},
        "spec": {
            "images": ["reg.example/**"],
            "authorities": [{"name": "cosign-prod", "key": {"secretRef": {"name": "cosign-key", "namespace": "vouch-system"}}}],
            "requirements": {"signature": true},
        },
    });
    let bad = json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "ClusterSupplyChainPolicy",
        "metadata": {"name": "broken", "uid": "u2", "generation": 1, "resourceVersion": "11"},
        "spec": {"images": [], "authorities": [], "requirements": {"signature": true}},
    });
    // Its status is already what the watch would write: no write for it.
    let current = json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "SupplyChainPolicy",
        "metadata": {"name": "team-signed", "namespace": "team", "uid": "u3", "generation": 2, "resourceVersion": "12"},
        "spec": {
            "images": ["reg.example/team/**"],
            "authorities": [{"name": "team-key", "key": {"pem": pem}}],
            "requirements": {"signature": true},
        },
        "status": {"observedGeneration": 2, "conditions": [{
            "type": "Ready", "status": "True", "reason": "Compiled", "message": "policy is in force",
            "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 2,
        }]},
    });
    let bad_root = json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": "empty-root", "uid": "u4", "generation": 1, "resourceVersion": "13"},
        "spec": {},
    });
    let api = Arc::new(Mutex::new(FakeVouchApi::default()));
    for object in [good, bad, current, bad_root] {
        api.lock().unwrap().insert(object);
    }
    let (client, seen) = fake_cluster(&api, pem.clone());
    let engine = test_engine();
    let config = vouch_webhooks::cluster::WatchConfig {
        debounce: Duration::from_millis(20),
        resync: Duration::from_secs(3600),
        ..Default::default()
    };
    let watch = vouch_webhooks::cluster::PolicyWatch::new(client, engine.clone()).with_config(config).spawn();

    let patches = || seen.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect::<Vec<_>>();
    let delivered = || api.lock().unwrap().delivered;
    wait_until("three status writes, each back as a MODIFIED event", || {
        patches().len() >= 3 && delivered() >= 3
    })
    .await;
    // Quiet for 15 debounce periods, while the watch has the MODIFIED events its own status writes caused:
    // they change status and resourceVersion, not the generation, so nothing is compiled or written again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let patches = patches();
    let all = paths(&seen);
    assert_eq!(patches.len(), 3, "{all:?}");
    let secret_reads = all.iter().filter(|p| p.ends_with("/secrets/cosign-key")).count();
    assert_eq!(secret_reads, 1, "compiled once: {all:?}");

    let in_force = engine.policies();
    let mut names: Vec<&str> = in_force.policies().iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["prod-signed", "team-signed"],
        "the key from the secret compiled; the broken one is out"
    );
    assert!(all.contains(&"GET /api/v1/namespaces/vouch-system/secrets/cosign-key".to_owned()));

    let patch_of = |path: &str| {
        patches.iter().find(|p| p.path() == path).unwrap_or_else(|| panic!("no PATCH {path}: {all:?}"))
    };
    let good = patch_of("/apis/vouch.dev/v1alpha1/clustersupplychainpolicies/prod-signed/status");
    assert_eq!(good.content_type, "application/merge-patch+json");
    assert_eq!(good.body["status"]["observedGeneration"], 3);
    assert_eq!(good.body["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(good.body["status"]["conditions"][0]["status"], "True");
    let broken = patch_of("/apis/vouch.dev/v1alpha1/clustersupplychainpolicies/broken/status");
    let condition = &broken.body["status"]["conditions"][0];
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Invalid");
    let message = condition["message"].as_str().unwrap();
    assert!(message.contains("images: at least one glob is required"), "{message}");
    assert!(
        message.contains("authorities: at least one authority is required"),
        "every problem at once: {message}"
    );
    let root = patch_of("/apis/vouch.dev/v1alpha1/trustroots/empty-root/status");
    assert_eq!(root.body["status"]["conditions"][0]["status"], "False");
    assert!(root.body["status"].get("fingerprint").is_none());
    assert!(
        !all.iter().any(|p| p.contains("supplychainpolicies/team-signed")),
        "an up-to-date status is not rewritten: {all:?}"
    );
    watch.abort();
}

/// A cluster policy `prod-signed` (generation 1) whose key comes from the Secret vouch-system/cosign-key.
fn keyed_cluster_policy() -> Value {
    json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "ClusterSupplyChainPolicy",
        "metadata": {"name": "prod-signed", "uid": "u1", "generation": 1},
        "spec": {
            "images": ["reg.example/**"],
            "authorities": [{"name": "cosign-prod", "key": {"secretRef": {"name": "cosign-key", "namespace": "vouch-system"}}}],
            "requirements": {"signature": true},
        },
    })
}

/// A mock API server holding `api`'s vouch.dev objects and the Secret vouch-system/cosign-key with `pem`.
fn fake_cluster(api: &Arc<Mutex<FakeVouchApi>>, pem: String) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let fake = api.clone();
    mock_server(move |s| {
        if let Some(reply) = fake.lock().unwrap().answer(s) {
            return reply;
        }
        match (s.method.as_str(), s.path()) {
            ("GET", "/api/v1/namespaces/vouch-system/secrets/cosign-key") => Reply::Json(
                200,
                json!({
                    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cosign-key"},
                    "data": {"cosign.pub": b64(&pem)},
                }),
            ),
            _ => Reply::Json(500, status_body(500, "unexpected")),
        }
    })
}

#[tokio::test]
async fn mock_policy_watch_own_status_write_comes_back_modified_and_causes_no_other_write() {
    let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
    let api = Arc::new(Mutex::new(FakeVouchApi::default()));
    api.lock().unwrap().insert(keyed_cluster_policy());
    let (client, seen) = fake_cluster(&api, pem);
    // Admissions keep coming, so the policy's counts change all the time: a recompile would have something
    // new to write.
    let (writer, worker) =
        StatusWriter::new(StatusConfig { reports: false, pod_conditions: false, ..quick_config() });
    tokio::spawn(worker.run(client.clone()));
    let counters = writer.policy_counters();
    let traffic = tokio::spawn(async move {
        for i in 0.. {
            writer.submit(pod_event("a", &format!("p{i}"), vec![finding("app", FindingResult::Pass)]));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let config = vouch_webhooks::cluster::WatchConfig {
        debounce: Duration::from_millis(20),
        resync: Duration::from_secs(3600),
        ..Default::default()
    };
    let watch = vouch_webhooks::cluster::PolicyWatch::new(client, test_engine())
        .with_config(config)
        .with_counters(counters, "vouch-a")
        .spawn();
    let patches = || seen.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect::<Vec<_>>();
    let compiles = || paths(&seen).iter().filter(|p| p.ends_with("/secrets/cosign-key")).count();
    let delivered = || api.lock().unwrap().delivered;
    wait_until("the status write, back as a MODIFIED event", || patches().len() == 1 && delivered() == 1)
        .await;
    // 25 debounce periods with the MODIFIED event in the watch and the counts changing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        (patches().len(), compiles()),
        (1, 1),
        "the watch's own status write (new status and resourceVersion, same generation) made it compile and \
         write again: {:?}",
        paths(&seen)
    );
    // A spec change (generation 2) is compiled and written once: the watch was listening all along.
    api.lock().unwrap().modify("clustersupplychainpolicies", None, "prod-signed", |p| {
        p["metadata"]["generation"] = json!(2);
        p["spec"]["images"] = json!(["reg.example/**", "mirror.example/**"]);
    });
    wait_until("the status of generation 2", || {
        patches().iter().any(|p| p.body["status"]["observedGeneration"] == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((patches().len(), compiles()), (2, 2), "{:?}", paths(&seen));
    traffic.abort();
    watch.abort();
}

/// One vouch replica on `api`: its own client, admissions (`passed` and `failed` findings of prod-signed,
/// already counted when this returns) and policy watch writing counts as `name`.
async fn replica(
    api: &Arc<Mutex<FakeVouchApi>>,
    pem: &str,
    name: &str,
    passed: u64,
    failed: u64,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<Seen>>>) {
    let (client, seen) = fake_cluster(api, pem.to_owned());
    let (writer, worker) =
        StatusWriter::new(StatusConfig { reports: false, pod_conditions: false, ..quick_config() });
    tokio::spawn(worker.run(client.clone()));
    let counters = writer.policy_counters();
    for (n, result) in [(passed, FindingResult::Pass), (failed, FindingResult::Fail)] {
        for i in 0..n {
            writer.submit(pod_event("a", &format!("{name}-{result}-{i}"), vec![finding("app", result)]));
        }
    }
    let want = PolicyCounts { passed, failed, errors: 0 };
    wait_until("the admissions counted", || counters.get(None, "prod-signed") == want).await;
    let config = vouch_webhooks::cluster::WatchConfig {
        debounce: Duration::from_millis(20),
        resync: Duration::from_secs(3600),
        ..Default::default()
    };
    let watch = vouch_webhooks::cluster::PolicyWatch::new(client, test_engine())
        .with_config(config)
        .with_counters(counters, name)
        .spawn();
    (watch, seen)
}

fn status_patches(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    seen.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect()
}

/// Every `{passed, failed, errors}` in `value`, wherever it is.
fn tallies(value: &Value) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            if let (Some(p), Some(f), Some(e)) = (map.get("passed"), map.get("failed"), map.get("errors")) {
                out.push((p.as_u64().unwrap(), f.as_u64().unwrap(), e.as_u64().unwrap()));
            }
            map.values().for_each(|v| out.extend(tallies(v)));
        }
        Value::Array(items) => items.iter().for_each(|v| out.extend(tallies(v))),
        _ => {}
    }
    out
}

#[tokio::test]
async fn mock_policy_counts_of_two_replicas_do_not_overwrite_each_other() {
    let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
    let api = Arc::new(Mutex::new(FakeVouchApi::default()));
    api.lock().unwrap().insert(keyed_cluster_policy());
    // Two replicas behind the same Service counted different admissions; the second writes after the first.
    let (watch_a, seen_a) = replica(&api, &pem, "vouch-a", 3, 0).await;
    wait_until("vouch-a's status write", || status_patches(&seen_a).len() == 1).await;
    let (watch_b, seen_b) = replica(&api, &pem, "vouch-b", 5, 2).await;
    wait_until("vouch-b's status write", || status_patches(&seen_b).len() == 1).await;

    let stored = api.lock().unwrap().get("clustersupplychainpolicies", None, "prod-signed");
    let status = &stored["status"];
    let found = tallies(status);
    assert!(
        found.contains(&(3, 0, 0)) && found.contains(&(5, 2, 0)),
        "both replicas' counts must be in the stored status, found {found:?}: {status}"
    );
    let entries = status["replicaCounts"].as_object().unwrap();
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["vouch-a", "vouch-b"], "per replica, by pod name");
    for (name, (passed, failed)) in [("vouch-a", (3, 0)), ("vouch-b", (5, 2))] {
        let entry = &entries[name];
        assert_eq!(
            (entry["passed"].as_u64(), entry["failed"].as_u64()),
            (Some(passed), Some(failed)),
            "{name}"
        );
        for time in ["since", "updated"] {
            let text = entry[time].as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{name}.{time}: {text}");
        }
    }
    assert!(status.get("counts").is_none(), "no figure that reads as a cluster total: {status}");
    // vouch-b's merge patch names only its own entry (a merge patch leaves the map's other keys alone).
    let patch = &status_patches(&seen_b)[0];
    assert_eq!(patch.content_type, "application/merge-patch+json");
    let written = patch.body["status"]["replicaCounts"].as_object().unwrap();
    assert_eq!(written.keys().collect::<Vec<_>>(), ["vouch-b"], "{}", patch.body);
    assert!(
        patch.body.get("metadata").is_none(),
        "nothing removed, so no resourceVersion guard: {}",
        patch.body
    );
    assert_eq!(status["conditions"][0]["status"], "True");
    watch_a.abort();
    watch_b.abort();
}

#[tokio::test]
async fn mock_policy_counts_of_a_replica_gone_are_removed_but_not_over_a_newer_write() {
    let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
    let now = chrono::Utc::now();
    let at = move |minutes_ago: i64| {
        (now - chrono::Duration::minutes(minutes_ago)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let entry = move |since: i64, updated: i64, passed: u64| json!({"since": at(since), "updated": at(updated), "passed": passed, "failed": 0, "errors": 0});
    let mut policy = keyed_cluster_policy();
    // vouch-gone last wrote three hours ago (longer than the expiry: here 2 heartbeats of 5 minutes and a
    // resync of an hour), vouch-live a minute ago.
    policy["status"] =
        json!({"replicaCounts": {"vouch-gone": entry(240, 180, 7), "vouch-live": entry(30, 1, 9)}});
    let api = Arc::new(Mutex::new(FakeVouchApi::default()));
    api.lock().unwrap().insert(policy);
    // vouch-live writes its entry between vouch-a's read (its watch cache) and vouch-a's first write.
    api.lock().unwrap().write_in_between = Some(Box::new(move |p: &mut Value| {
        p["status"]["replicaCounts"]["vouch-live"] = entry(30, 0, 10);
    }));
    let (watch, seen) = replica(&api, &pem, "vouch-a", 1, 0).await;
    wait_until("vouch-a's write after the conflict", || status_patches(&seen).len() == 2).await;
    let patches = status_patches(&seen);
    let removing = &patches[0].body;
    assert_eq!(removing["status"]["replicaCounts"]["vouch-gone"], Value::Null, "{removing}");
    assert!(removing["status"]["replicaCounts"].get("vouch-live").is_none(), "a live entry is not touched");
    let version = removing["metadata"]["resourceVersion"].as_str().unwrap();
    assert_eq!(version, "1", "the removal is guarded by the resourceVersion it was judged by");
    // 409: the copy was out of date. Its own entry is written without removing anything.
    let own_only = &patches[1].body;
    let written = own_only["status"]["replicaCounts"].as_object().unwrap();
    assert_eq!(written.keys().collect::<Vec<_>>(), ["vouch-a"], "{own_only}");
    assert!(own_only.get("metadata").is_none(), "{own_only}");
    let stored = api.lock().unwrap().get("clustersupplychainpolicies", None, "prod-signed");
    let entries = stored["status"]["replicaCounts"].as_object().unwrap();
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["vouch-a", "vouch-gone", "vouch-live"]);
    assert_eq!(entries["vouch-live"]["passed"], 10, "the other replica's newer write stands");

    // The next write (here for a spec change) judges from an up-to-date copy and removes vouch-gone.
    api.lock().unwrap().modify("clustersupplychainpolicies", None, "prod-signed", |p| {
        p["metadata"]["generation"] = json!(2);
    });
    wait_until("the write for generation 2", || status_patches(&seen).len() == 3).await;
    let stored = api.lock().unwrap().get("clustersupplychainpolicies", None, "prod-signed");
    let entries = stored["status"]["replicaCounts"].as_object().unwrap();
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["vouch-a", "vouch-live"], "{}", stored["status"]);
    assert_eq!(entries["vouch-a"]["passed"], 1);
    assert_eq!(stored["status"]["observedGeneration"], 2);
    watch.abort();
}

#[tokio::test]
async fn mock_policy_watch_keeps_a_secret_through_an_api_error_on_resync() {
    let pem = vouch_attest::SigningKey::generate().public_key().to_pem();
    let policy = json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "ClusterSupplyChainPolicy",
        "metadata": {"name": "prod-signed", "uid": "u1", "generation": 1, "resourceVersion": "10"},
        "spec": {
            "images": ["reg.example/**"],
            "authorities": [{"name": "cosign-prod", "key": {"secretRef": {"name": "cosign-key", "namespace": "vouch-system"}}}],
            "requirements": {"signature": true},
        },
    });
    let secret_reads = Arc::new(Mutex::new(0));
    let reads = secret_reads.clone();
    let (client, _seen) = mock_client(move |s| {
        if s.uri.contains("watch=true") {
            return None;
        }
        match (s.method.as_str(), s.path()) {
            ("GET", "/apis/vouch.dev/v1alpha1/clustersupplychainpolicies") => {
                list("ClusterSupplyChainPolicy", vec![policy.clone()])
            }
            ("GET", "/apis/vouch.dev/v1alpha1/supplychainpolicies") => list("SupplyChainPolicy", vec![]),
            ("GET", "/apis/vouch.dev/v1alpha1/trustroots") => list("TrustRoot", vec![]),
            ("GET", "/apis/vouch.dev/v1alpha1/complianceprofiles") => list("ComplianceProfile", vec![]),
            ("GET", "/api/v1/namespaces/vouch-system/secrets/cosign-key") => {
                let mut n = reads.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    Some((
                        200,
                        json!({
                            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cosign-key"},
                            "data": {"cosign.pub": b64(&pem)},
                        }),
                    ))
                } else {
                    Some((503, status_body(503, "ServiceUnavailable")))
                }
            }
            ("PATCH", _) => Some((
                200,
                json!({
                    "apiVersion": "vouch.dev/v1alpha1", "kind": "ClusterSupplyChainPolicy",
                    "metadata": {"name": "prod-signed"}, "spec": {"images": [], "authorities": []},
                }),
            )),
            _ => Some((500, status_body(500, "unexpected"))),
        }
    });
    let engine = test_engine();
    let config = vouch_webhooks::cluster::WatchConfig {
        debounce: Duration::from_millis(10),
        resync: Duration::from_secs(1),
        ..Default::default()
    };
    let watch = vouch_webhooks::cluster::PolicyWatch::new(client, engine.clone()).with_config(config).spawn();
    // Every compile reads the secret first, and every read but the first gets a 503: a set put in force
    // after the first one that held the policy was compiled after a failed read.
    let first = wait_for("the first compile", || {
        let set = engine.policies();
        (!set.policies().is_empty()).then_some(set)
    })
    .await;
    let recompiled = wait_for("a recompile after the 503", || {
        let set = engine.policies();
        (!Arc::ptr_eq(&set, &first)).then_some(set)
    })
    .await;
    assert!(*secret_reads.lock().unwrap() >= 2, "the resync read the secret again");
    let names: Vec<&str> = recompiled.policies().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prod-signed"]);
    let policy = &recompiled.policies()[0];
    // Without its key the policy would still be in force, as broken (failing everything it matches).
    assert_eq!(policy.broken, None, "a failed re-read keeps the key: the policy stays in force intact");
    assert_eq!(policy.authorities.len(), 1);
    assert!(recompiled.problems().is_empty(), "{:?}", recompiled.problems());
    watch.abort();
}
