//! Handler tests: the webhook router driven with `oneshot()` (no socket), with AdmissionReview bodies
//! exactly as kube-apiserver sends them (tests/data/admission/*.json). A scripted evaluator stands in for
//! the engine where the test is about the HTTP/JSON mapping; the real engine where it is about decisions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use futures::future::BoxFuture;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vouch_policies::{
    AdmissionInput, ArtifactKind, ArtifactLocation, Cause, Decision, Finding, FindingResult, Pin,
};
use vouch_webhooks::cluster::{ClusterContext, KubeError, NoCluster};
use vouch_webhooks::server::admission::PinScope;
use vouch_webhooks::server::metrics::Metrics;
use vouch_webhooks::server::{health_router, router, AppState, Evaluator, StatusSink};

const HOST: &str = "registry.test:5000";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/admission/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.replace("REGISTRY_HOST", HOST).into_bytes()
}

/// What the scripted evaluator saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    operation: String,
    kind: String,
    sub_resource: Option<String>,
    namespace: Option<String>,
    dry_run: bool,
    has_object: bool,
    has_old_object: bool,
    labels: Option<BTreeMap<String, String>>,
}

type Decide = Box<dyn Fn(&AdmissionInput) -> Decision + Send + Sync>;

struct Scripted {
    decide: Decide,
    delay: Duration,
    seen: Mutex<Vec<Seen>>,
}

impl Scripted {
    fn new(decide: impl Fn(&AdmissionInput) -> Decision + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self { decide: Box::new(decide), delay: Duration::ZERO, seen: Mutex::new(Vec::new()) })
    }
}

impl Evaluator for Scripted {
    fn is_ready(&self) -> bool {
        true
    }
    fn evaluate<'a>(&'a self, input: &'a AdmissionInput) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(Seen {
                operation: format!("{:?}", input.operation),
                kind: input.kind.kind.clone(),
                sub_resource: input.sub_resource.clone(),
                namespace: input.namespace.clone(),
                dry_run: input.dry_run,
                has_object: input.object.is_some(),
                has_old_object: input.old_object.is_some(),
                labels: input.namespace_labels.clone(),
            });
            tokio::time::sleep(self.delay).await;
            (self.decide)(input)
        })
    }
}

#[derive(Default)]
struct RecordingStatus(Mutex<Vec<String>>);

impl StatusSink for RecordingStatus {
    fn submit(&self, input: &AdmissionInput, decision: &Decision) {
        self.0.lock().unwrap().push(format!("{} allowed={}", input.uid, decision.allowed));
    }
}

/// Labels for namespace `prod`; fails for `broken`.
struct Labels;

impl ClusterContext for Labels {
    fn namespace_labels<'a>(
        &'a self,
        ns: &'a str,
    ) -> BoxFuture<'a, Result<Option<BTreeMap<String, String>>, KubeError>> {
        Box::pin(async move {
            if ns == "broken" {
                Err(KubeError::NotFound { kind: "Namespace", name: ns.to_owned() })
            } else {
                Ok(Some(BTreeMap::from([("env".to_owned(), ns.to_owned())])))
            }
        })
    }
    fn pull_credentials<'a>(
        &'a self,
        ns: &'a str,
        spec: &'a Value,
    ) -> BoxFuture<'a, Result<vouch_attest::registry::Credentials, KubeError>> {
        NoCluster.pull_credentials(ns, spec)
    }
}

fn state(evaluator: Arc<dyn Evaluator>) -> AppState {
    AppState {
        evaluator,
        cluster: Arc::new(Labels),
        status: None,
        metrics: Metrics::new(),
        budget: Duration::from_secs(8),
        dry_run: false,
        pin_scope: PinScope::All,
        events: None,
        max_body_bytes: 64 * 1024,
        serving: Arc::new(AtomicBool::new(true)),
    }
}

async fn post(state: &AppState, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request =
        Request::post(path).header("content-type", "application/json").body(Body::from(body)).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn review(state: &AppState, path: &str, fixture_name: &str) -> Value {
    let (status, body) = post(state, path, fixture(fixture_name)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn finding(pointer: &str, name: &str, result: FindingResult) -> Finding {
    Finding {
        policy: "prod-signed".into(),
        policy_namespace: None,
        mode: Default::default(),
        requirement: "signature".into(),
        artifact: ArtifactLocation {
            kind: ArtifactKind::Container,
            name: name.into(),
            pointer: pointer.into(),
        },
        reference: format!("{HOST}/demo/app:1.0@sha256:{}", "a".repeat(64)),
        digest: None,
        result,
        reason: "no signature verifies against key cosign-prod".into(),
        signer: None,
        rekor_log_index: None,
        sbom_digest: None,
    }
}

const FIXTURES: [&str; 9] = [
    "pod-create.json",
    "deployment-create.json",
    "deployment-update.json",
    "pod-delete.json",
    "pod-create-dryrun.json",
    "pod-ephemeralcontainers.json",
    "pod-status-update.json",
    "cronjob-create.json",
    "pod-image-volume.json",
];

/// Every fixture is read, echoes its uid, and reaches the engine with the fields the API server sent.
#[tokio::test]
async fn every_fixture_reaches_the_engine_as_sent() {
    let scripted = Scripted::new(|_| Decision::allow());
    let s = state(scripted.clone());
    for name in FIXTURES {
        let sent: Value = serde_json::from_slice(&fixture(name)).unwrap();
        let got = review(&s, "/validate", name).await;
        assert_eq!(got["apiVersion"], "admission.k8s.io/v1", "{name}");
        assert_eq!(got["kind"], "AdmissionReview", "{name}");
        assert_eq!(got["response"]["uid"], sent["request"]["uid"], "{name}");
        assert_eq!(got["response"]["allowed"], true, "{name}");
    }
    let seen = scripted.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), FIXTURES.len());
    let by = |i: usize| &seen[i];
    assert_eq!((by(0).operation.as_str(), by(0).kind.as_str()), ("Create", "Pod"));
    assert_eq!(
        by(0).labels.as_ref().and_then(|l| l.get("env")).map(String::as_str),
        Some("prod"),
        "namespace labels looked up"
    );
    assert_eq!(by(1).kind, "Deployment");
    assert!(by(2).has_old_object && by(2).has_object, "UPDATE carries both objects");
    assert!(!by(3).has_object && by(3).has_old_object, "DELETE has only the old object");
    assert!(by(3).labels.is_none(), "no cluster look-ups for DELETE");
    assert!(by(4).dry_run);
    assert_eq!(by(5).sub_resource.as_deref(), Some("ephemeralcontainers"));
    assert_eq!(by(6).sub_resource.as_deref(), Some("status"));
    assert!(by(6).labels.is_none(), "no cluster look-ups for status updates");
    assert_eq!(by(7).kind, "CronJob");
    assert_eq!(by(8).namespace.as_deref(), Some("prod"));
}

/// A denial is HTTP 200 with allowed=false, code 403 and the engine's message; warnings and audit
/// annotations are passed on; findings are counted by result, policy and mode.
#[tokio::test]
async fn denial_warnings_and_audit_annotations() {
    let message = format!("container app: image {HOST}/demo/app:1.0 : policy prod-signed: no signature verifies against key cosign-prod");
    let m = message.clone();
    let s = state(Scripted::new(move |_| Decision {
        allowed: false,
        message: Some(m.clone()),
        warnings: vec!["policy staging-signed (warn): unsigned".into()],
        audit: vec![finding("/spec/containers/0/image", "app", FindingResult::Fail)],
        findings: vec![finding("/spec/containers/0/image", "app", FindingResult::Fail)],
        pins: Vec::new(),
        causes: vec![Cause::of(
            &finding("/spec/initContainers/1/image", "fetch", FindingResult::Fail),
            m.clone(),
        )],
    }));
    let got = review(&s, "/validate", "pod-create.json").await;
    let r = &got["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    assert_eq!(r["status"]["reason"], "Forbidden", "clients test for Forbidden");
    assert_eq!(r["status"]["message"], message);
    // Kubernetes' Status convention: per enforced failure, its code, line and field.
    assert_eq!(
        r["status"]["details"]["causes"],
        json!([{"reason": "SignatureInvalid", "message": message, "field": "spec.initContainers[1].image"}])
    );
    assert_eq!(r["warnings"], json!(["policy staging-signed (warn): unsigned"]));
    let audit = r["auditAnnotations"]["audit-0"].as_str().unwrap();
    assert!(audit.starts_with("container app: image registry.test:5000/demo/app:1.0@sha256:"), "{audit}");
    let metrics = s.metrics.encode();
    assert!(
        metrics.contains(r#"vouch_decisions_total{result="fail",policy="prod-signed",mode="enforce"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"vouch_admission_responses_total{endpoint="validate",outcome="denied"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"vouch_admission_requests_total{endpoint="validate",operation="CREATE"} 1"#),
        "{metrics}"
    );
}

fn apply_patch(mut doc: Value, ops: &Value) -> Value {
    // A minimal RFC 6902 applier for add/replace with RFC 6901 unescaping, enough to check our patches.
    for op in ops.as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = doc.pointer_mut(parent).unwrap_or_else(|| panic!("no parent for {path}"));
        match (op["op"].as_str().unwrap(), target) {
            ("replace", Value::Array(a)) => a[last.parse::<usize>().unwrap()] = op["value"].clone(),
            ("replace", Value::Object(o)) => {
                assert!(o.contains_key(&last), "replace of absent {path}");
                o.insert(last, op["value"].clone());
            }
            ("add", Value::Object(o)) => {
                o.insert(last, op["value"].clone());
            }
            (other, _) => panic!("unexpected op {other} at {path}"),
        }
    }
    doc
}

fn patch_of(got: &Value) -> Value {
    let b64 = got["response"]["patch"].as_str().expect("a patch");
    serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

/// /mutate pins verified images in a Deployment template and annotates the Deployment; the patched
/// object keeps the same digest, so validation of it reaches the same verdict.
#[tokio::test]
async fn mutate_pins_the_template_and_annotates() {
    let digest = format!("sha256:{}", "b".repeat(64));
    let d = digest.clone();
    let s = state(Scripted::new(move |_| Decision {
        allowed: true,
        findings: vec![finding("/spec/template/spec/containers/0/image", "app", FindingResult::Pass)],
        pins: vec![Pin {
            pointer: "/spec/template/spec/containers/0/image".into(),
            from: format!("{HOST}/demo/app:1.0"),
            to: format!("{HOST}/demo/app:1.0@{d}"),
        }],
        ..Decision::default()
    }));
    let got = review(&s, "/mutate", "deployment-create.json").await;
    assert_eq!(got["response"]["allowed"], true);
    assert_eq!(got["response"]["patchType"], "JSONPatch");
    let ops = patch_of(&got);
    let sent: Value = serde_json::from_slice(&fixture("deployment-create.json")).unwrap();
    let patched = apply_patch(sent["request"]["object"].clone(), &ops);
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{HOST}/demo/app:1.0@{digest}")
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["initContainers"][0]["image"],
        format!("{HOST}/demo/init:1.0"),
        "unverified image untouched"
    );
    assert_eq!(
        patched["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1",
        "existing annotations kept"
    );
    let summary: Value =
        serde_json::from_str(patched["metadata"]["annotations"]["vouch.dev/verified"].as_str().unwrap())
            .unwrap();
    assert_eq!(summary["verified"][0]["image"], format!("{HOST}/demo/app:1.0@{digest}"));
}

/// A Pod without annotations gets the annotations map created; nothing to pin means no patch at all.
#[tokio::test]
async fn mutate_creates_annotations_or_sends_no_patch() {
    let pin = Pin {
        pointer: "/spec/containers/0/image".into(),
        from: format!("{HOST}/demo/job:1.0"),
        to: format!("{HOST}/demo/job:1.0@sha256:{}", "c".repeat(64)),
    };
    let s = state(Scripted::new(move |input| {
        if input.kind.kind == "Pod" {
            Decision::allow()
        } else {
            Decision {
                allowed: true,
                pins: vec![Pin {
                    pointer: "/spec/jobTemplate/spec/template/spec/containers/0/image".into(),
                    ..pin.clone()
                }],
                ..Decision::default()
            }
        }
    }));
    let got = review(&s, "/mutate", "cronjob-create.json").await;
    let ops = patch_of(&got);
    assert_eq!(ops[1]["path"], "/metadata/annotations", "CronJob fixture has no annotations: map created");
    let got = review(&s, "/mutate", "pod-create.json").await;
    assert!(got["response"].get("patch").is_none());
    assert!(got["response"].get("patchType").is_none());
}

/// `--pin-scope pods`: a Deployment is answered "allowed, no patch" without reaching the engine (GitOps tools
/// then see the controller as written), a Pod is still pinned, and /validate still evaluates the Deployment.
#[tokio::test]
async fn pod_only_pin_scope_leaves_controllers_as_written() {
    let evaluated = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&evaluated);
    let s = AppState {
        pin_scope: PinScope::Pods,
        ..state(Scripted::new(move |input| {
            seen.lock().unwrap().push(input.kind.kind.clone());
            let pointer = if input.kind.kind == "Pod" {
                "/spec/containers/0/image"
            } else {
                "/spec/template/spec/containers/0/image"
            };
            Decision {
                allowed: true,
                pins: vec![Pin {
                    pointer: pointer.into(),
                    from: format!("{HOST}/demo/app:1.0"),
                    to: format!("{HOST}/demo/app:1.0@sha256:{}", "d".repeat(64)),
                }],
                ..Decision::default()
            }
        }))
    };
    let got = review(&s, "/mutate", "deployment-create.json").await;
    assert_eq!(got["response"]["allowed"], true);
    assert!(got["response"].get("patch").is_none(), "a Deployment is not patched: {got}");
    assert!(evaluated.lock().unwrap().is_empty(), "out of scope: not evaluated");

    let got = review(&s, "/validate", "deployment-create.json").await;
    assert_eq!(got["response"]["allowed"], true);
    assert_eq!(*evaluated.lock().unwrap(), ["Deployment"], "/validate still decides about controllers");

    // A vouch.dev/verified value a Deployment brings is still undone.
    let mut forged: Value = serde_json::from_slice(&fixture("deployment-create.json")).unwrap();
    forged["request"]["object"]["metadata"]["annotations"]["vouch.dev/verified"] = json!("{\"verified\":[]}");
    let (status, body) = post(&s, "/mutate", serde_json::to_vec(&forged).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let got: Value = serde_json::from_slice(&body).unwrap();
    let ops = patch_of(&got);
    assert_eq!(ops.as_array().unwrap().len(), 1, "{ops}");
    assert_eq!(ops[0]["op"], "remove");

    let got = review(&s, "/mutate", "pod-create.json").await;
    let ops = patch_of(&got);
    assert!(
        ops.as_array().unwrap().iter().any(|op| op["path"] == "/spec/containers/0/image"),
        "a Pod is pinned: {ops}"
    );
}

/// Malformed bodies get 400 with a message that says what is wrong; oversized bodies 413.
#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let s = state(Scripted::new(|_| Decision::allow()));
    let v1beta1 = String::from_utf8(fixture("pod-create.json"))
        .unwrap()
        .replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
    for (body, want) in [
        (b"not json".to_vec(), "request body is not JSON"),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}".to_vec(),
            "AdmissionReview has no request",
        ),
        (v1beta1.into_bytes(), "unsupported apiVersion \"admission.k8s.io/v1beta1\""),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Status\",\"request\":{}}".to_vec(),
            "unsupported kind \"Status\"",
        ),
    ] {
        let (status, text) = post(&s, "/validate", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(want), "{text}");
    }
    let mut big = fixture("pod-create.json");
    let pad = format!(",\"padding\":\"{}\"}}", "x".repeat(70 * 1024));
    big.truncate(big.iter().rposition(|&b| b == b'}').unwrap());
    big.extend_from_slice(pad.as_bytes());
    let (status, text) = post(&s, "/validate", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8(text).unwrap().contains("larger than 65536 bytes"));
    let metrics = s.metrics.encode();
    assert!(
        metrics.contains(r#"vouch_admission_responses_total{endpoint="validate",outcome="invalid"} 5"#),
        "{metrics}"
    );
}

/// The server answers within the budget even when the engine does not: deny (fail closed), or under
/// dry-run allow with a warning.
#[tokio::test]
async fn budget_backstop_fails_closed() {
    let slow = Arc::new(Scripted {
        decide: Box::new(|_| Decision::allow()),
        delay: Duration::from_secs(30),
        seen: Mutex::new(Vec::new()),
    });
    let mut s = state(slow.clone());
    s.budget = Duration::from_millis(100);
    let started = std::time::Instant::now();
    let got = review(&s, "/validate", "pod-create.json").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(got["response"]["allowed"], false);
    assert!(got["response"]["status"]["message"].as_str().unwrap().contains("time budget"));
    s.dry_run = true;
    let got = review(&s, "/validate", "pod-create.json").await;
    assert_eq!(got["response"]["allowed"], true);
    assert!(got["response"]["warnings"][0].as_str().unwrap().starts_with("dry-run: would deny"));
}

/// Namespace labels that cannot be read deny (policies with selectors could not be matched).
#[tokio::test]
async fn unreadable_namespace_labels_fail_closed() {
    let scripted = Scripted::new(|_| Decision::allow());
    let s = state(scripted.clone());
    let body = String::from_utf8(fixture("pod-create.json")).unwrap().replace("\"prod\"", "\"broken\"");
    let (status, body) = post(&s, "/validate", body.into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    let got: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got["response"]["allowed"], false);
    assert!(got["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot read the labels of namespace broken"));
    assert!(scripted.seen.lock().unwrap().is_empty(), "the engine is not asked without its inputs");
}

/// Results go to the status writer, except for dry-run requests (no side effects) and from /mutate.
#[tokio::test]
async fn dry_run_requests_have_no_side_effects() {
    let status = Arc::new(RecordingStatus::default());
    let mut s = state(Scripted::new(|_| Decision::allow()));
    s.status = Some(status.clone());
    review(&s, "/validate", "pod-create.json").await;
    review(&s, "/validate", "pod-create-dryrun.json").await;
    review(&s, "/mutate", "pod-create.json").await;
    let got = status.0.lock().unwrap().clone();
    assert_eq!(got, ["0df28fbd-5f5f-11e8-bc74-36e6bb280816 allowed=true"]);
}

/// /readyz follows the engine and the TLS listener; /metrics is OpenMetrics text.
#[tokio::test]
async fn health_endpoints() {
    struct NotReady;
    impl Evaluator for NotReady {
        fn is_ready(&self) -> bool {
            false
        }
        fn evaluate<'a>(&'a self, _: &'a AdmissionInput) -> BoxFuture<'a, Decision> {
            Box::pin(async { Decision::allow() })
        }
    }
    let get = |s: AppState, path: &'static str| async move {
        let r = health_router(s).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = r.status();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (status, ct, String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    };
    let ready = state(Scripted::new(|_| Decision::allow()));
    assert_eq!(get(ready.clone(), "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(ready.clone(), "/readyz").await.0, StatusCode::OK);
    let (status, ct, text) = get(ready.clone(), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.unwrap().starts_with("application/openmetrics-text"));
    assert!(text.ends_with("# EOF\n"));

    let not_ready = state(Arc::new(NotReady));
    let (status, _, text) = get(not_ready.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("policies or trust roots not loaded"));
    let no_tls = AppState { serving: Arc::new(AtomicBool::new(false)), ..ready };
    let (status, _, text) = get(no_tls, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("TLS listener not serving"));
    assert_eq!(get(not_ready, "/healthz").await.0, StatusCode::OK, "liveness does not depend on readiness");
}
