//! End to end over real TLS on loopback, against a real registry (Debian's docker-registry) and the real
//! engine: a pod whose image is signed with the policy's key is allowed and, by /mutate, pinned to the
//! digest that was verified; an unsigned image is denied with the engine's exact message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server_support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use server_support::{fixture, http_get, ServerFiles, TlsClient};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::run::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_pod_is_allowed_and_pinned_unsigned_is_denied() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    let unsigned =
        push_demo_image(&client, &host, "demo/unsigned", "1.0", b"nobody signed me\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();
    let registry_log = || registry.count_requests("GET", "/v2/") + registry.count_requests("HEAD", "/v2/");
    let log_before_server = registry_log();

    let files = ServerFiles::new("vouch-e2e-ca");
    let policies = files.policies();
    std::fs::write(policies.join("prod-signed.yaml"), key_policy("prod-signed", "cosign-prod", &host, &key))
        .unwrap();
    let server = Server::prepare(ServeConfig {
        no_match: vouch_policies::NoMatchAction::Deny,
        insecure_registries: vec![host.clone()],
        insecure_ignore_tlog: true,
        shutdown_grace: Duration::from_secs(5),
        ..ServeConfig::loopback(files.tls(), Some(policies))
    })
    .await
    .unwrap();
    let tls = TlsClient::new(files.ca.cert_der(), server.https_addr().unwrap());
    let health = server.health_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // Signed: allowed, and /mutate pins the tag to the verified digest.
    let signed_pod = fixture("pod-create.json", &host);
    let (r, _) = tls.post("/validate", &signed_pod).await.unwrap();
    assert_eq!(r.status, 200);
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["allowed"], true, "{got}");
    let (r, _) = tls.post("/mutate", &signed_pod).await.unwrap();
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["patchType"], "JSONPatch", "{got}");
    let patch: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(got["response"]["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let digest = app.digest().unwrap().to_string();
    assert_eq!(patch[0]["op"], "replace");
    assert_eq!(patch[0]["path"], "/spec/containers/0/image");
    assert_eq!(patch[0]["value"], format!("{host}/demo/app:1.0@{digest}"));
    assert_eq!(patch[1]["path"], "/metadata/annotations/vouch.dev~1verified", "{patch}");
    let summary: Value = serde_json::from_str(patch[1]["value"].as_str().unwrap()).unwrap();
    assert_eq!(summary["verified"][0]["policies"][0], "prod-signed");

    // The pinned object, as validation would then see it, is allowed too (same digest).
    let pinned = String::from_utf8(signed_pod.clone())
        .unwrap()
        .replace(&format!("{host}/demo/app:1.0\""), &format!("{host}/demo/app:1.0@{digest}\""));
    let (r, _) = tls.post("/validate", pinned.as_bytes()).await.unwrap();
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["allowed"], true, "{got}");

    // Unsigned: denied with the exact message.
    let unsigned_pod = String::from_utf8(signed_pod).unwrap().replace("/demo/app:1.0", "/demo/unsigned:1.0");
    let (r, _) = tls.post("/validate", unsigned_pod.as_bytes()).await.unwrap();
    assert_eq!(r.status, 200);
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["allowed"], false, "{got}");
    assert_eq!(got["response"]["status"]["code"], 403);
    let message = got["response"]["status"]["message"].as_str().unwrap();
    let digest = unsigned.digest().unwrap();
    let hex = digest.to_string().replace("sha256:", "");
    let expected = format!(
        "Pod prod/web: container app: image {host}/demo/unsigned:1.0@{digest} : policy prod-signed: signature: \
         no signature verifies against key cosign-prod (nothing found (looked in sha256-{hex}.sig, Sigstore \
         bundle referrers))"
    );
    assert_eq!(message, expected);
    // For programs: the cause's stable code and the field, as Kubernetes' Status convention has them.
    let cause = &got["response"]["status"]["details"]["causes"][0];
    assert_eq!(cause["reason"], "SignatureMissing", "{got}");
    assert_eq!(cause["field"], "spec.containers[0].image");
    assert!(expected.ends_with(cause["message"].as_str().unwrap()), "{cause}");

    let (_, metrics) = http_get(health, "/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"vouch_decisions_total{result="fail",policy="prod-signed",mode="enforce"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("vouch_verdict_cache_hits_total"), "{metrics}");
    assert!(metrics.contains("# TYPE vouch_verdict_cache_entries gauge"), "{metrics}");
    // The default capacity (10,000) is far from full: nothing evicted.
    assert!(metrics.contains("vouch_verdict_cache_evictions_total 0\n"), "{metrics}");
    // vouch's HTTP request counter matches the registry's own access log (calls count API operations,
    // each of which may take several HTTP requests: the token probe, HEAD then GET).
    let counted = metric(&metrics, "vouch_registry_http_requests_total");
    let calls = metric(&metrics, "vouch_registry_calls_total");
    assert!(counted >= calls && calls > 0, "{metrics}");
    let mut logged = 0;
    for _ in 0..40 {
        logged = registry_log() - log_before_server;
        if logged as u64 == counted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(logged as u64, counted, "the registry logged {logged} requests, vouch counted {counted}");
    let _ = stop.send(());
    running.await.unwrap();
}

/// The value of the first series named exactly `name` in OpenMetrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}
