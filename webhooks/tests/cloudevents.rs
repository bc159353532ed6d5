//! `vouch serve --events-sink`: decision events reach a real CloudEvents receiver (the CloudEvents Python
//! SDK's HTTP binding, tests/cloudevents/receiver.py) over loopback, from the real server over TLS judging
//! images in the real loopback registry; a sink that never answers delays no admission and every event it
//! swallowed is counted as dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod python_receiver;
mod server_support;

use std::net::SocketAddr;
use std::time::Duration;

use python_receiver::Receiver;
use serde_json::{json, Value};
use server_support::{http_get, pod_create, SignedAndUnsigned, TlsClient};
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::run::Server;

async fn serve(s: &SignedAndUnsigned, sink: &str, timeout: Duration) -> (Server, TlsClient, SocketAddr) {
    let server = Server::prepare(ServeConfig {
        insecure_registries: vec![s.host.clone()],
        insecure_ignore_tlog: true,
        shutdown_grace: Duration::from_secs(2),
        events_sink: Some(sink.parse().unwrap()),
        events_timeout: timeout,
        ..ServeConfig::loopback(s.files.tls(), Some(s.files.policies()))
    })
    .await
    .unwrap();
    let tls = TlsClient::new(s.files.ca.cert_der(), server.https_addr().unwrap());
    let health = server.health_addr().unwrap();
    (server, tls, health)
}

async fn decide(tls: &TlsClient, body: &[u8]) -> Value {
    let (r, _) = tls.post("/validate", body).await.unwrap();
    assert_eq!(r.status, 200);
    serde_json::from_slice::<Value>(&r.body).unwrap()["response"].clone()
}

/// The value of a counter line (`name{labels} value`) in /metrics, 0 when absent.
fn counter(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denial_reaches_a_cloudevents_receiver_in_binary_mode_and_a_plain_allow_does_not() {
    let Some(receiver) = Receiver::cloudevents() else { return };
    let s = SignedAndUnsigned::start("vouch-events-ca").await;
    let (server, tls, health) =
        serve(&s, &format!("http://127.0.0.1:{}/events", receiver.port), Duration::from_secs(2)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let allowed = decide(&tls, &pod_create(&s.host, "u-signed", "signed", &s.signed, false)).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    // A dry-run request has no side effects: no event either.
    let dry = decide(&tls, &pod_create(&s.host, "u-dry", "dry", &s.unsigned, true)).await;
    assert_eq!(dry["allowed"], false);
    let denied = decide(&tls, &pod_create(&s.host, "u-unsigned", "rogue", &s.unsigned, false)).await;
    assert_eq!(denied["allowed"], false);

    let event = receiver.next();
    assert!(event.get("error").is_none(), "the SDK refused the event: {event}");
    assert_eq!(event["mode"], "binary");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "dev.vouch.admission.denied");
    assert_eq!(event["subject"], "/api/v1/namespaces/prod/pods/rogue");
    assert!(event["source"].as_str().unwrap().starts_with("/vouch/"), "{event}");
    assert_eq!(event["datacontenttype"], "application/json");
    let data = &event["data"];
    assert_eq!(data["uid"], "u-unsigned");
    assert_eq!(data["operation"], "CREATE");
    assert_eq!(data["kind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
    assert_eq!(data["allowed"], false);
    assert_eq!(data["message"], denied["status"]["message"], "the data carries the denial as answered");
    let finding = &data["findings"][0];
    assert_eq!(finding["policy"], "prod-signed");
    assert_eq!(finding["requirement"], "signature");
    assert_eq!(finding["result"], "fail");
    assert!(finding["reference"].as_str().unwrap().contains("demo/unsigned:1.0@sha256:"), "{finding}");
    assert!(finding["reason"].as_str().unwrap().contains("cosign-prod"), "{finding}");
    assert_eq!(finding["reasonCode"], "SignatureMissing", "{finding}");
    assert!(finding["remediation"].as_str().unwrap().contains("Sign the image digest"), "{finding}");
    receiver.nothing_more();

    let (_, metrics) = http_get(health, "/metrics").await.unwrap();
    assert_eq!(counter(&metrics, "vouch_events_sent_total"), 1, "{metrics}");
    let _ = stop.send(());
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_that_never_answers_delays_no_admission_and_its_events_are_counted_dropped() {
    let s = SignedAndUnsigned::start("vouch-events-ca").await;
    // Accepts connections, reads, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let (server, tls, health) =
        serve(&s, &format!("http://{silent_addr}/"), Duration::from_millis(300)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    for i in 0..6 {
        let denied =
            decide(&tls, &pod_create(&s.host, &format!("u{i}"), &format!("rogue-{i}"), &s.unsigned, false))
                .await;
        assert_eq!(denied["allowed"], false, "answered while the sink hangs: {denied}");
    }
    // Every event times out at the sink and is counted (bounded wait for the sender to get there).
    let mut dropped = 0;
    for _ in 0..100 {
        let (_, metrics) = http_get(health, "/metrics").await.unwrap();
        dropped = counter(&metrics, "vouch_events_dropped_total{reason=\"sink_timeout\"}");
        if dropped == 6 {
            assert_eq!(counter(&metrics, "vouch_events_sent_total"), 0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dropped, 6, "each event the silent sink swallowed is counted");
    let _ = stop.send(());
    running.await.unwrap();
    held.abort();
    drop(s.registry);
}
