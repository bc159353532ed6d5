//! The admission-side claims of docs/threat-model.md: the webhook router driven with `oneshot()` (no
//! socket), the real engine, a real registry (Debian's docker-registry) on loopback, and AdmissionReviews
//! as kube-apiserver sends them. What a namespace user controls — the object's labels, annotations,
//! status and owner references, the namespace's labels, init and ephemeral containers, UPDATEs, the
//! object's size and shape — is tried against an enforce policy; the verified digest is pinned by /mutate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use futures::future::BoxFuture;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vouch_attest::cache::CacheConfig;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::{Credentials, RegistryConfig};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, VerifierConfig, VerifyOptions};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::{Engine, EngineConfig, NoMatchAction, PolicySet};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::cluster::{ClusterContext, KubeError, NoCluster};
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::admission::PinScope;
use vouch_webhooks::server::metrics::Metrics;
use vouch_webhooks::server::{router, AppState};

/// Namespace labels as the cluster has them (the namespace `prod` here).
struct NamespaceLabels(BTreeMap<String, String>);

impl ClusterContext for NamespaceLabels {
    fn namespace_labels<'a>(
        &'a self,
        _ns: &'a str,
    ) -> BoxFuture<'a, Result<Option<BTreeMap<String, String>>, KubeError>> {
        let labels = self.0.clone();
        Box::pin(async move { Ok(Some(labels)) })
    }
    fn pull_credentials<'a>(
        &'a self,
        ns: &'a str,
        spec: &'a Value,
    ) -> BoxFuture<'a, Result<Credentials, KubeError>> {
        NoCluster.pull_credentials(ns, spec)
    }
}

struct World {
    registry: DevRegistry,
    host: String,
    key: SigningKey,
    /// `demo/app:1.0`, signed with `key`.
    signed: ArtifactRef,
    /// `demo/unsigned:1.0`.
    unsigned: ArtifactRef,
}

async fn world() -> World {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let signed = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    let unsigned =
        push_demo_image(&client, &host, "demo/unsigned", "1.0", b"nobody signed me\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &signed, &key, BTreeMap::new()).await.unwrap();
    World { registry, host, key, signed, unsigned }
}

impl World {
    /// A fresh engine (cold caches) enforcing "signed by `key`" on `<host>/demo/**`, denying what no policy
    /// covers, behind the webhook router with these namespace labels.
    fn state(&self, namespace_labels: &[(&str, &str)]) -> AppState {
        let verifier = ArtifactVerifier::new(VerifierConfig {
            registry: RegistryConfig {
                insecure_registries: vec![self.host.clone()],
                timeout: Duration::from_secs(5),
                ..RegistryConfig::default()
            },
            trust_root: TrustRoot::public_good().unwrap(),
            cache: CacheConfig::default(),
            options: VerifyOptions::default(),
        })
        .unwrap();
        let set = PolicySet::from_yaml_str(&key_policy("prod-signed", "cosign-prod", &self.host, &self.key));
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let config = EngineConfig {
            no_match: NoMatchAction::Deny,
            budget: Duration::from_secs(8),
            ..EngineConfig::default()
        };
        let mut labels: BTreeMap<String, String> =
            namespace_labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.insert("kubernetes.io/metadata.name".into(), "prod".into());
        AppState {
            evaluator: Arc::new(Engine::new(config, set, verifier)),
            cluster: Arc::new(NamespaceLabels(labels)),
            status: None,
            metrics: Metrics::new(),
            budget: Duration::from_secs(8),
            dry_run: false,
            pin_scope: PinScope::All,
            events: None,
            max_body_bytes: 1024 * 1024,
            serving: Arc::new(AtomicBool::new(true)),
        }
    }

    /// `<host>/demo/<repo>:1.0`.
    fn tag(&self, repo: &str) -> String {
        format!("{}/demo/{repo}:1.0", self.host)
    }
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"}, "spec": spec})
}

fn containers(images: &[&str]) -> Value {
    let list: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({ "containers": list })
}

/// An AdmissionReview as kube-apiserver sends it.
fn review(
    kind: (&str, &str, &str),
    operation: &str,
    sub_resource: Option<&str>,
    object: &Value,
    old: Option<&Value>,
) -> Vec<u8> {
    let (group, k, resource) = kind;
    let mut request = json!({
        "uid": "7f3c0c5e-threat-model",
        "kind": {"group": group, "version": "v1", "kind": k},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "requestKind": {"group": group, "version": "v1", "kind": k},
        "requestResource": {"group": group, "version": "v1", "resource": resource},
        "name": "web",
        "namespace": "prod",
        "operation": operation,
        "userInfo": {"username": "mallory", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": old,
        "dryRun": false
    });
    if let Some(s) = sub_resource {
        request["subResource"] = json!(s);
        request["requestSubResource"] = json!(s);
    }
    serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}),
    )
    .unwrap()
}

const POD: (&str, &str, &str) = ("", "Pod", "pods");
const DEPLOYMENT: (&str, &str, &str) = ("apps", "Deployment", "deployments");

async fn post(state: &AppState, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request =
        Request::post(path).header("content-type", "application/json").body(Body::from(body)).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (status, body)
}

/// `/validate`: (allowed, denial message).
async fn validate(state: &AppState, body: Vec<u8>) -> (bool, String) {
    let (status, got) = post(state, "/validate", body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let allowed = got["response"]["allowed"].as_bool().unwrap();
    (allowed, got["response"]["status"]["message"].as_str().unwrap_or_default().to_owned())
}

/// `/mutate`: the decoded JSON patch (`Null` when none).
async fn mutate(state: &AppState, body: Vec<u8>) -> Value {
    let (status, got) = post(state, "/mutate", body).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["response"]["allowed"], true, "{got}");
    match got["response"]["patch"].as_str() {
        Some(p) => {
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(p).unwrap()).unwrap()
        }
        None => Value::Null,
    }
}

/// Proves: nothing a user can write on the object or its namespace pretends verification happened or opts
/// out: `vouch.dev/*` annotations and labels (a forged `vouch.dev/verified` summary, `vouch.dev/ignore`,
/// `vouch.dev/skip`), a `vouch.dev/Verified` status condition, owner references to a ReplicaSet vouch
/// admitted, the namespace label `vouch.dev/ignore` (only the API server's namespaceSelector skips
/// namespaces): the unsigned image is denied with the same message as on a plain Pod, and /mutate pins
/// nothing but removes the forged `vouch.dev/verified` summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretend_verification_and_opt_out_marks_change_nothing() {
    let w = world().await;
    let plain = pod(containers(&[&w.tag("unsigned")]));
    let state = w.state(&[]);
    let (allowed, plain_message) = validate(&state, review(POD, "CREATE", None, &plain, None)).await;
    assert!(!allowed);
    let digest = w.unsigned.digest().unwrap();
    assert!(
        plain_message.starts_with(&format!(
            "Pod prod/web: container c0: image {}@{digest} : policy prod-signed: signature:",
            w.tag("unsigned")
        )),
        "{plain_message}"
    );

    // A ReplicaSet with the signed image, admitted: the owner a pod will claim.
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d4f", "namespace": "prod", "uid": "0d9e1c4a-owner"},
        "spec": {"template": {"spec": containers(&[&w.tag("app")])}}});
    let (allowed, m) =
        validate(&state, review(("apps", "ReplicaSet", "replicasets"), "CREATE", None, &rs, None)).await;
    assert!(allowed, "{m}");

    let forged_summary = json!({"verified": [{"image": format!("{}@{digest}", w.tag("unsigned")),
        "policies": ["prod-signed"], "signers": [format!("key {}", w.key.public_key().fingerprint())]}]})
    .to_string();
    let mut decorated = plain.clone();
    decorated["metadata"] = json!({
        "name": "web", "namespace": "prod",
        "labels": {"vouch.dev/ignore": "true", "vouch.dev/skip": "true", "vouch.dev/verified": "true"},
        "annotations": {
            "vouch.dev/verified": forged_summary,
            "vouch.dev/audit-0": "pass",
            "vouch.dev/ignore": "true",
            "vouch.dev/skip": "true"
        },
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
            "uid": "0d9e1c4a-owner", "controller": true, "blockOwnerDeletion": true}]
    });
    decorated["status"] = json!({"conditions": [{"type": "vouch.dev/Verified", "status": "True",
        "reason": "Verified", "message": "verified by vouch"}]});
    // The namespace carries the chart's opt-out label too: a request that reaches vouch is checked.
    let opted_out = w.state(&[("vouch.dev/ignore", "true"), ("vouch.dev/skip", "true")]);
    for state in [&state, &opted_out] {
        let (allowed, message) = validate(state, review(POD, "CREATE", None, &decorated, None)).await;
        assert!(!allowed);
        assert_eq!(message, plain_message);
        // /mutate pins nothing, and takes the forged summary off (the annotation is vouch's alone).
        assert_eq!(
            mutate(state, review(POD, "CREATE", None, &decorated, None)).await,
            json!([{"op": "remove", "path": "/metadata/annotations/vouch.dev~1verified"}])
        );
    }
    // The same marks on a Deployment and its pod template.
    let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": decorated["metadata"].clone(),
        "spec": {"template": {"metadata": decorated["metadata"].clone(), "spec": containers(&[&w.tag("unsigned")])}}});
    deployment["metadata"].as_object_mut().unwrap().remove("ownerReferences");
    let (allowed, message) =
        validate(&opted_out, review(DEPLOYMENT, "CREATE", None, &deployment, None)).await;
    assert!(!allowed, "{message}");
    assert!(
        message.contains(&format!("image {}@{digest} : policy prod-signed: signature:", w.tag("unsigned")))
    );
}

/// Proves: /mutate pins exactly the digest it verified (the patch is checked op by op), so a tag moved to
/// other content afterwards changes nothing for the pinned object; judged by tag again, the moved tag's
/// new content is what is checked (and here denied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verified_digest_is_pinned_so_a_moved_tag_changes_nothing() {
    let w = world().await;
    let state = w.state(&[]);
    let object = pod(containers(&[&w.tag("app")]));
    let patch = mutate(&state, review(POD, "CREATE", None, &object, None)).await;
    let verified = w.signed.digest().unwrap();
    let pinned_image = format!("{}@{verified}", w.tag("app"));
    let ops = patch.as_array().unwrap();
    assert_eq!(ops.len(), 2, "{patch}");
    assert_eq!(ops[0], json!({"op": "replace", "path": "/spec/containers/0/image", "value": pinned_image}));
    assert_eq!(ops[1]["op"], "add");
    assert_eq!(ops[1]["path"], "/metadata/annotations");
    let summary: Value =
        serde_json::from_str(ops[1]["value"]["vouch.dev/verified"].as_str().unwrap()).unwrap();
    assert_eq!(summary["verified"][0]["image"], pinned_image);

    // The attacker moves the tag to unsigned content.
    let client = w.registry.client().unwrap();
    let moved =
        push_demo_image(&client, &w.host, "demo/app", "1.0", b"swapped after verification\n").await.unwrap();
    assert_ne!(moved.digest(), w.signed.digest());

    // The pinned object (what the API server stores and the kubelet pulls) still names the verified digest.
    let pinned = pod(containers(&[&pinned_image]));
    let (allowed, message) = validate(&state, review(POD, "CREATE", None, &pinned, None)).await;
    assert!(allowed, "{message}");
    assert_eq!(
        mutate(&state, review(POD, "CREATE", None, &pinned, None)).await,
        Value::Null,
        "already pinned"
    );
    // By tag, on a cold engine, the tag's new content is judged: denied, naming the new digest.
    let cold = w.state(&[]);
    let (allowed, message) = validate(&cold, review(POD, "CREATE", None, &object, None)).await;
    assert!(!allowed);
    assert!(message.contains(&format!("image {}@{} :", w.tag("app"), moved.digest().unwrap())), "{message}");
    assert_eq!(mutate(&cold, review(POD, "CREATE", None, &object, None)).await, Value::Null);
}

/// Proves: init containers, ephemeral containers (the `pods/ephemeralcontainers` subresource) and image
/// volumes are checked like containers, and an UPDATE that changes an image field is verified again
/// (a Pod's container, a Deployment's template); an UPDATE that leaves images as they were is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_ephemeral_volume_images_and_updates_cannot_slip_past() {
    let w = world().await;
    let state = w.state(&[]);
    let (signed, unsigned) = (w.tag("app"), w.tag("unsigned"));
    let unsigned_named = format!("image {}@{} :", unsigned, w.unsigned.digest().unwrap());

    let mut spec = containers(&[&signed]);
    spec["initContainers"] = json!([{"name": "setup", "image": unsigned}]);
    let (allowed, message) = validate(&state, review(POD, "CREATE", None, &pod(spec), None)).await;
    assert!(!allowed);
    assert!(message.contains(&format!("initContainer setup: {unsigned_named}")), "{message}");

    let mut spec = containers(&[&signed]);
    spec["volumes"] =
        json!([{"name": "data", "image": {"reference": unsigned, "pullPolicy": "IfNotPresent"}}]);
    let (allowed, message) = validate(&state, review(POD, "CREATE", None, &pod(spec), None)).await;
    assert!(!allowed);
    assert!(message.contains(&format!("image volume data: {unsigned_named}")), "{message}");

    let running = pod(containers(&[&signed]));
    let with_debugger = |image: &str| {
        let mut p = running.clone();
        p["spec"]["ephemeralContainers"] =
            json!([{"name": "debugger", "image": image, "targetContainerName": "c0", "stdin": true}]);
        p
    };
    let body = review(POD, "UPDATE", Some("ephemeralcontainers"), &with_debugger(&unsigned), Some(&running));
    let (allowed, message) = validate(&state, body).await;
    assert!(!allowed);
    assert!(message.contains(&format!("ephemeralContainer debugger: {unsigned_named}")), "{message}");
    let body = review(POD, "UPDATE", Some("ephemeralcontainers"), &with_debugger(&signed), Some(&running));
    assert!(validate(&state, body).await.0);

    // UPDATE of a Pod's image (the one mutable image field) and of a Deployment's template.
    let changed = pod(containers(&[&unsigned]));
    let (allowed, message) = validate(&state, review(POD, "UPDATE", None, &changed, Some(&running))).await;
    assert!(!allowed);
    assert!(message.contains(&format!("container c0: {unsigned_named}")), "{message}");
    let deployment = |image: &str, replicas: u32| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"replicas": replicas, "template": {"spec": containers(&[image])}}})
    };
    let body = review(DEPLOYMENT, "UPDATE", None, &deployment(&unsigned, 1), Some(&deployment(&signed, 1)));
    let (allowed, message) = validate(&state, body).await;
    assert!(!allowed);
    assert!(message.contains(&unsigned_named), "{message}");
    let body = review(DEPLOYMENT, "UPDATE", None, &deployment(&signed, 3), Some(&deployment(&signed, 1)));
    assert!(validate(&state, body).await.0, "scaling with the verified image");
}

/// Proves: hostile objects are bounded and denied with a clear error (never a panic, never an allow):
/// 300 containers, an image that is not a string, an image of 5,000 characters; a body nested deeper than
/// the JSON reader allows where vouch reads it is a 400 (the API server then applies failurePolicy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_objects_are_denied_with_a_clear_error() {
    let w = world().await;
    let state = w.state(&[]);
    let signed = w.tag("app");

    let many: Vec<&str> = vec![signed.as_str(); 300];
    let (allowed, message) =
        validate(&state, review(POD, "CREATE", None, &pod(containers(&many)), None)).await;
    assert!(!allowed);
    assert_eq!(
        message,
        "Pod prod/web: cannot read the object: /spec/containers: 300 entries, more than the 256 read"
    );

    let (allowed, message) = validate(
        &state,
        review(POD, "CREATE", None, &pod(json!({"containers": [{"name": "c0", "image": 42}]})), None),
    )
    .await;
    assert!(!allowed);
    assert_eq!(
        message,
        "Pod prod/web: cannot read the object: /spec/containers/0/image: expected a string, found a number"
    );

    let long = format!("{}/demo/{}:1.0", w.host, "a".repeat(5000));
    let (allowed, message) =
        validate(&state, review(POD, "CREATE", None, &pod(containers(&[&long])), None)).await;
    assert!(!allowed);
    assert!(message.ends_with("/spec/containers/0/image: image longer than 4096 characters"), "{message}");

    // Nesting past the reader's limit in a part vouch reads (the pod spec's containers) is a 400.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let body = String::from_utf8(review(POD, "CREATE", None, &pod(containers(&[&signed])), None))
        .unwrap()
        .replace("\"containers\":", &format!("\"containers\":{deep},\"containers\":"));
    let (status, got) = post(&state, "/validate", body.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    assert!(got.as_str().unwrap().contains("recursion limit exceeded"), "{got}");
    // In a part no reader of the decision reads (skipped, its syntax checked, nothing built) it decides
    // nothing: the Pod is judged on its images. Whatever reads the whole object (Rego conditions,
    // compliance profiles) finds it unreadable and fails: `policies_engine.rs`
    // `rego_conditions_see_the_whole_object_read_from_the_review_text`.
    let body = String::from_utf8(review(POD, "CREATE", None, &pod(containers(&[&signed])), None))
        .unwrap()
        .replace("\"containers\":", &format!("\"x\":{deep},\"containers\":"));
    let (status, got) = post(&state, "/validate", body.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["response"]["allowed"], true, "{got}");
}
