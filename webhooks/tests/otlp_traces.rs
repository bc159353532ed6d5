//! `vouch serve --otlp-endpoint`: the real binary, judging images in the real loopback registry over TLS,
//! exports its traces over OTLP/HTTP to a receiver that decodes them with OpenTelemetry's own protobuf
//! bindings (tests/otlp/receiver.py). Proves the span tree admission → evaluate → verify →
//! registry_request, that the admission span continues the caller's `traceparent` (trace id, parent span
//! id, tracestate), the decision and reason attributes of an allowed and a denied pod, and that a malformed
//! `traceparent` starts a new trace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod otlp_support;
mod server_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use otlp_support::Receiver;
use serde_json::{json, Value};
use server_support::{fixture, http_get, ServerFiles, TlsClient};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;

/// The caller's trace of the allowed pod (W3C Trace Context's own example ids).
const ALLOWED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ALLOWED_PARENT: &str = "00f067aa0ba902b7";
/// The caller's trace of the denied pod.
const DENIED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const DENIED_PARENT: &str = "b7ad6b7169203331";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Pod CREATE review named `name` (uid `uid`) with one container running `image`.
fn pod(host: &str, uid: &str, name: &str, image: &str) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture("pod-create.json", host)).unwrap();
    review["request"]["uid"] = json!(uid);
    review["request"]["name"] = json!(name);
    review["request"]["object"]["metadata"]["name"] = json!(name);
    review["request"]["object"]["spec"]["containers"][0]["image"] = json!(image);
    serde_json::to_vec(&review).unwrap()
}

/// The `vouch serve` process, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spans of one trace, looked up by name and parent.
struct Trace<'a>(Vec<&'a Value>);

impl<'a> Trace<'a> {
    fn of(spans: &'a [Value], trace_id: &str) -> Self {
        Self(spans.iter().filter(|s| s["trace_id"] == trace_id).collect())
    }

    /// The one span named `name` whose parent is `parent`.
    fn child(&self, parent: &Value, name: &str) -> &'a Value {
        let found: Vec<_> =
            self.0.iter().filter(|s| s["name"] == name && s["parent_span_id"] == parent["span_id"]).collect();
        assert!(!found.is_empty(), "no {name} span under {parent}: {:#?}", self.0);
        found[0]
    }

    fn children(&self, parent: &Value, name: &str) -> Vec<&'a Value> {
        self.0
            .iter()
            .filter(|s| s["name"] == name && s["parent_span_id"] == parent["span_id"])
            .copied()
            .collect()
    }
}

fn admission_of<'a>(spans: &'a [Value], uid: &str) -> Option<&'a Value> {
    spans.iter().find(|s| s["name"] == "admission" && s["attributes"]["uid"] == uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_exports_the_admission_span_tree_under_the_callers_traceparent() {
    let Some(receiver) = Receiver::start() else { return };
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    push_demo_image(&client, &host, "demo/unsigned", "1.0", b"nobody signed me\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();
    let files = ServerFiles::new("vouch-otlp-ca");
    std::fs::write(
        files.policies().join("prod-signed.yaml"),
        key_policy("prod-signed", "cosign-prod", &host, &key),
    )
    .unwrap();

    let (port, health) = (free_port(), free_port());
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
    let log = std::fs::File::create(files.dir.path().join("serve.log")).unwrap();
    let tls = files.tls();
    let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
    command
        .args(["serve", "--tls-cert", &path(tls.cert), "--tls-key", &path(tls.key)])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--health-listen", &format!("127.0.0.1:{health}")])
        .args([
            "--policy-dir",
            &path(files.policies()),
            "--insecure-registry",
            &host,
            "--insecure-ignore-tlog",
        ])
        .args(["--otlp-endpoint", &format!("http://127.0.0.1:{}", receiver.port)])
        // Export every 100 ms rather than every 5 s: the test waits for the spans, not for the timer.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_SERVICE_NAME", "vouch-otlp-test")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_")
            && !matches!(name.as_str(), "OTEL_BSP_SCHEDULE_DELAY" | "OTEL_SERVICE_NAME")
        {
            command.env_remove(name);
        }
    }
    let _serve = Serve(command.spawn().unwrap());
    let health_addr: SocketAddr = format!("127.0.0.1:{health}").parse().unwrap();
    let mut ready = false;
    for _ in 0..300 {
        if matches!(http_get(health_addr, "/readyz").await, Ok((200, _))) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let serve_log = || std::fs::read_to_string(files.dir.path().join("serve.log")).unwrap_or_default();
    assert!(ready, "vouch serve did not become ready:\n{}", serve_log());
    let tls = TlsClient::new(files.ca.cert_der(), format!("127.0.0.1:{port}").parse().unwrap());
    let decide = |uid: &'static str, name: &'static str, image: String, traceparent: String| {
        let tls = tls.clone();
        let body = pod(&host, uid, name, &image);
        async move {
            let headers = [("traceparent", traceparent.as_str()), ("tracestate", "apiserver=1")];
            let (r, _) = tls.post_with_headers("/validate", &headers, &body).await.unwrap();
            assert_eq!(r.status, 200);
            serde_json::from_slice::<Value>(&r.body).unwrap()["response"].clone()
        }
    };

    let allowed = decide(
        "u-signed",
        "signed",
        format!("{host}/demo/app:1.0"),
        format!("00-{ALLOWED_TRACE}-{ALLOWED_PARENT}-01"),
    );
    assert_eq!(allowed.await["allowed"], true);
    let denied = decide(
        "u-unsigned",
        "rogue",
        format!("{host}/demo/unsigned:1.0"),
        format!("00-{DENIED_TRACE}-{DENIED_PARENT}-01"),
    );
    assert_eq!(denied.await["allowed"], false);
    let malformed =
        decide("u-malformed", "again", format!("{host}/demo/app:1.0"), "00-not-a-trace-01".to_owned());
    assert_eq!(malformed.await["allowed"], true, "a malformed traceparent is no error");

    // The admission span ends last in its trace: once all three are in, so is everything under them.
    let spans = receiver
        .spans_until(|spans| {
            ["u-signed", "u-unsigned", "u-malformed"].iter().all(|uid| admission_of(spans, uid).is_some())
        })
        .unwrap_or_else(|got| {
            panic!("not all admission spans arrived: {got:#?}\nserve log:\n{}", serve_log())
        });

    for s in &spans {
        assert_eq!(s["resource"]["service.name"], "vouch-otlp-test", "{s}");
        let name = s["name"].as_str().unwrap();
        assert!(
            ["admission", "evaluate", "resolve", "verify", "registry_request", "registry_auth"]
                .contains(&name),
            "only vouch's own spans are exported: {s}"
        );
    }

    // The allowed pod: admission (child of the caller's span) → evaluate → verify → registry requests.
    let trace = Trace::of(&spans, ALLOWED_TRACE);
    let admission = admission_of(&spans, "u-signed").unwrap();
    assert_eq!(admission["trace_id"], ALLOWED_TRACE, "{admission}");
    assert_eq!(admission["parent_span_id"], ALLOWED_PARENT, "{admission}");
    assert_eq!(admission["trace_state"], "apiserver=1", "{admission}");
    let a = &admission["attributes"];
    assert_eq!(a["decision"], "allowed", "{admission}");
    assert_eq!(
        (&a["kind"], &a["namespace"], &a["object_name"]),
        (&json!("Pod"), &json!("prod"), &json!("signed"))
    );
    assert_eq!(a["endpoint"], "validate");
    assert!(a.get("reason").is_none(), "a plain allow has no reason: {admission}");
    let evaluate = trace.child(admission, "evaluate");
    // The tag is resolved once, then the digest verified.
    let resolve = trace.child(evaluate, "resolve");
    assert_eq!(resolve["attributes"]["reference"], format!("{host}/demo/app:1.0"), "{resolve}");
    let head = trace.child(resolve, "registry_request");
    assert_eq!(head["attributes"]["url.path"], "/v2/demo/app/manifests/1.0", "{head}");
    let verify = trace.child(evaluate, "verify");
    let v = &verify["attributes"];
    assert!(
        v["reference"].as_str().unwrap().starts_with(&format!("{host}/demo/app:1.0@sha256:")),
        "{verify}"
    );
    assert_eq!(v["digest"], resolve["attributes"]["digest"], "{verify}");
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"), "{verify}");
    assert_eq!(v["authority.kind"], "key", "{verify}");
    assert_eq!(v["requirement"], "signature", "{verify}");
    assert_eq!(v["result"], "verified", "{verify}");
    let requests = trace.children(verify, "registry_request");
    assert!(!requests.is_empty(), "the cold verification asked the registry: {verify}");
    for r in &requests {
        let ra = &r["attributes"];
        assert_eq!(r["kind"], "SPAN_KIND_CLIENT", "{r}");
        assert!(["GET", "HEAD"].contains(&ra["http.request.method"].as_str().unwrap()), "{r}");
        let url_path = ra["url.path"].as_str().unwrap();
        assert!(url_path.starts_with("/v2/demo/app/") && !url_path.contains('?'), "{r}");
        assert_eq!(ra["server.address"], "127.0.0.1", "{r}");
        assert_eq!(
            Some(ra["server.port"].clone()),
            host.rsplit(':').next().map(|p| json!(p.parse::<i64>().unwrap()))
        );
        assert!(ra["http.response.status_code"].as_i64().is_some(), "{r}");
    }
    assert!(
        requests.iter().any(|r| r["attributes"]["http.response.status_code"] == 200),
        "the signature and manifest were read: {requests:#?}"
    );

    // The denied pod: its own caller's trace, the decision and the reason code.
    let admission = admission_of(&spans, "u-unsigned").unwrap();
    assert_eq!(
        (&admission["trace_id"], &admission["parent_span_id"]),
        (&json!(DENIED_TRACE), &json!(DENIED_PARENT))
    );
    assert_eq!(admission["attributes"]["decision"], "denied", "{admission}");
    assert_eq!(admission["attributes"]["reason"], "SignatureMissing", "{admission}");
    let trace = Trace::of(&spans, DENIED_TRACE);
    let verify = trace.child(trace.child(admission, "evaluate"), "verify");
    assert_eq!(verify["attributes"]["result"], "rejected", "{verify}");

    // The malformed traceparent: a new root span of a new trace.
    let admission = admission_of(&spans, "u-malformed").unwrap();
    assert_eq!(admission["parent_span_id"], "", "{admission}");
    let trace_id = admission["trace_id"].as_str().unwrap();
    assert!(trace_id.len() == 32 && trace_id != "0".repeat(32), "{admission}");
    assert!(![ALLOWED_TRACE, DENIED_TRACE].contains(&trace_id), "{admission}");
    assert_eq!(admission["attributes"]["decision"], "allowed");
}
