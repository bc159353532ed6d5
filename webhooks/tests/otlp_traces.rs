//! `vouch serve --otlp-endpoint`: the real binary, judging images in the real loopback registry over TLS,
//! exports its traces over OTLP/HTTP to a receiver that decodes them with OpenTelemetry's own protobuf
//! bindings (tests/otlp/receiver.py). Proves the span tree admission → evaluate → verify →
//! registry_request, that the admission span continues the caller's `traceparent` (trace id, parent span
//! id, tracestate), the decision and reason attributes of an allowed and a denied pod, and that a malformed
//! `traceparent` starts a new trace. A collector that accepts connections and never answers delays no
//! admission: the SDK's bounded queue drops the spans instead. An HTTPS collector with a private CA that asks
//! for client certificates gets the spans only when `OTEL_EXPORTER_OTLP_*CERTIFICATE`/`*CLIENT_KEY` name them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod python_receiver;
mod server_support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use python_receiver::Receiver;
use serde_json::{json, Value};
use server_support::{free_port, http_get, pod_create, KillOnDrop, SignedAndUnsigned, TlsClient};

/// The caller's trace of the allowed pod (W3C Trace Context's own example ids).
const ALLOWED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ALLOWED_PARENT: &str = "00f067aa0ba902b7";
/// The caller's trace of the denied pod.
const DENIED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const DENIED_PARENT: &str = "b7ad6b7169203331";

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

impl SignedAndUnsigned {
    fn serve_log(&self) -> String {
        std::fs::read_to_string(self.files.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Start the `vouch serve` binary exporting to `collector` with these `OTEL_*` variables (no others:
    /// the test's own environment does not leak in); returns it once ready, and a client for it.
    async fn serve(&self, collector: &str, otel: &[(&str, &str)]) -> (KillOnDrop, TlsClient) {
        let (port, health) = (free_port(), free_port());
        let path = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
        let log = std::fs::File::create(self.files.dir.path().join("serve.log")).unwrap();
        let tls = self.files.tls();
        let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
        command
            .args(["serve", "--tls-cert", &path(tls.cert), "--tls-key", &path(tls.key)])
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--health-listen",
                &format!("127.0.0.1:{health}"),
            ])
            .args(["--policy-dir", &path(self.files.policies()), "--insecure-registry", &self.host])
            .args(["--insecure-ignore-tlog", "--otlp-endpoint", collector])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("OTEL_")) {
            command.env_remove(name);
        }
        command.envs(otel.iter().copied());
        let serve = KillOnDrop(command.spawn().unwrap());
        let health_addr: SocketAddr = format!("127.0.0.1:{health}").parse().unwrap();
        let mut ready = false;
        for _ in 0..300 {
            if matches!(http_get(health_addr, "/readyz").await, Ok((200, _))) {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ready, "vouch serve did not become ready:\n{}", self.serve_log());
        (serve, TlsClient::new(self.files.ca.cert_der(), format!("127.0.0.1:{port}").parse().unwrap()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_exports_the_admission_span_tree_under_the_callers_traceparent() {
    let Some(receiver) = Receiver::otlp() else { return };
    let setup = SignedAndUnsigned::start("vouch-otlp-ca").await;
    let host = &setup.host;
    let collector = format!("http://127.0.0.1:{}", receiver.port);
    // Export every 100 ms rather than every 5 s: the test waits for the spans, not for the timer.
    let otel = [("OTEL_BSP_SCHEDULE_DELAY", "100"), ("OTEL_SERVICE_NAME", "vouch-otlp-test")];
    let (_serve, tls) = setup.serve(&collector, &otel).await;
    let serve_log = || setup.serve_log();
    let decide = |uid: &'static str, name: &'static str, image: String, traceparent: String| {
        let tls = tls.clone();
        let body = pod_create(host, uid, name, &image, false);
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
        .until(|spans| {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_that_never_answers_delays_no_admission_and_spans_are_dropped() {
    let setup = SignedAndUnsigned::start("vouch-otlp-ca").await;
    // Accepts connections, reads, never answers: every export stalls until its (long) timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", silent.local_addr().unwrap());
    let (reached, mut exports) = tokio::sync::mpsc::unbounded_channel();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            let _ = reached.send(());
            open.push(conn);
        }
    });
    let otel = [
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "600000"),
    ];
    let (_serve, tls) = setup.serve(&collector, &otel).await;
    let body = pod_create(&setup.host, "u-signed", "signed", &setup.signed, false);
    // Every admission is one trace of a few spans: 40 reviews overflow the queue of 8 many times over.
    for i in 0..40 {
        // A bound on a hang (an admission waiting for the collector), not a speed requirement.
        let answer = tokio::time::timeout(std::time::Duration::from_secs(20), tls.post("/validate", &body))
            .await
            .unwrap_or_else(|_| panic!("review {i} was not answered:\n{}", setup.serve_log()));
        let (r, _) = answer.unwrap();
        assert_eq!(r.status, 200);
        let response = serde_json::from_slice::<Value>(&r.body).unwrap()["response"].clone();
        assert_eq!(response["allowed"], true, "review {i}: {response}");
    }
    tokio::time::timeout(std::time::Duration::from_secs(20), exports.recv())
        .await
        .expect("vouch tried to export to the collector")
        .unwrap();
    // The SDK says so when it drops a span for a full queue (once; the total at shutdown).
    let log = setup.serve_log();
    assert!(log.contains("dropped a Span due to queue full"), "the full queue dropped spans:\n{log}");
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spans_reach_a_collector_with_a_private_ca_and_client_certificates_from_the_otel_tls_variables() {
    use vouch_webhooks::server::dev_pki::DevCa;
    // The collector's own CA (vouch knows nothing of it unless told) and the CA it wants clients' from.
    let (collector_ca, client_ca) =
        (DevCa::new("otlp collector ca").unwrap(), DevCa::new("otlp client ca").unwrap());
    let server = collector_ca.issue_server(&[], &["127.0.0.1".parse().unwrap()]).unwrap();
    let client = client_ca.issue_client("vouch").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (server_cert, server_key) =
        (write("server.pem", &server.cert_pem), write("server-key.pem", &server.key_pem));
    let (client_cert, client_key) =
        (write("client.pem", &client.cert_pem), write("client-key.pem", &client.key_pem));
    let (collector_ca_pem, client_ca_pem) =
        (write("collector-ca.pem", &collector_ca.cert_pem()), write("client-ca.pem", &client_ca.cert_pem()));
    let Some(receiver) = Receiver::otlp_with(&[
        ("RECEIVER_TLS_CERT", &server_cert),
        ("RECEIVER_TLS_KEY", &server_key),
        ("RECEIVER_CLIENT_CA", &client_ca_pem),
    ]) else {
        return;
    };
    let setup = SignedAndUnsigned::start("vouch-otlp-ca").await;
    let collector = format!("https://127.0.0.1:{}", receiver.port);
    let body = pod_create(&setup.host, "u-signed", "signed", &setup.signed, false);
    let admit = |tls: TlsClient| {
        let body = body.clone();
        async move {
            let (r, _) = tls.post("/validate", &body).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap()["response"]["allowed"], true);
        }
    };
    let client_files = [
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", client_cert.as_str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", client_key.as_str()),
    ];

    // Without the collector's CA its certificate is not trusted: nothing arrives.
    {
        let (_serve, tls) = setup.serve(&collector, &client_files).await;
        admit(tls).await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        receiver.nothing_more();
    }
    // With it (and the client certificate the collector asks for), the admission's spans do.
    let with_ca =
        [&client_files[..], &[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", collector_ca_pem.as_str())]].concat();
    let (_serve, tls) = setup.serve(&collector, &with_ca).await;
    admit(tls).await;
    let spans = receiver
        .until(|spans| spans.iter().any(|s| s["name"] == "admission"))
        .unwrap_or_else(|got| panic!("no admission span over TLS: {got:?}\n{}", setup.serve_log()));
    assert!(spans.iter().all(|s| s["resource"]["service.name"] == "vouch"), "{spans:?}");
}
