//! Registry faults through the real `vouch serve` binary over TLS: a real registry (Debian's
//! docker-registry) behind our fault proxy, real signed images. A reset, a silent and a throttling
//! registry are each denied (failurePolicy Fail) or admitted with a warning (Ignore) within the time
//! budget, with the cause in the message and counted in `vouch_registry_failures_total`; once the
//! registry recovers, the same server verifies the image (no failure was cached).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server_support;
// The proxy lives in the shared test harness (vouch-tests), which depends on this crate.
#[path = "../../tests/src/fault_proxy.rs"]
#[allow(dead_code)]
mod fault_proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fault_proxy::{Fault, FaultProxy};
use futures::FutureExt as _;
use serde_json::Value;
use server_support::{fixture, free_port, http_get, ServerFiles, TlsClient};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::{RegistryClient, RegistryConfig};
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;

/// `--timeout-budget`.
const BUDGET: Duration = Duration::from_secs(2);
/// The server's own backstop (0.5 s) plus scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(2000);

/// POST a pod review for `image` to /validate; returns the `response` object and the time taken.
async fn validate(tls: &TlsClient, host: &str, image: &str) -> (Value, Duration) {
    let review = String::from_utf8(fixture("pod-create.json", host))
        .unwrap()
        .replace(&format!("{host}/demo/app:1.0"), &format!("{host}/{image}"));
    assert!(review.contains(&format!("{host}/{image}")), "the fixture names {host}/demo/app:1.0");
    let started = Instant::now();
    let (r, _) = tls.post("/validate", review.as_bytes()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(took < BUDGET + SLACK, "{image}: took {took:?} with a budget of {BUDGET:?}: {got}");
    (got["response"].clone(), took)
}

fn message(response: &Value) -> &str {
    response["status"]["message"].as_str().unwrap_or_default()
}

fn counter(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().parse::<f64>().unwrap() as u64))
        .unwrap_or_else(|| panic!("no {line_start} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_decides_registry_faults_by_failure_policy_within_the_budget() {
    let registry = DevRegistry::start().await.unwrap();
    let proxy = FaultProxy::start(&registry.host()).await.unwrap();
    let host = proxy.host();
    let client =
        RegistryClient::new(RegistryConfig { insecure_registries: vec![host.clone()], ..Default::default() })
            .unwrap();
    let key = SigningKey::generate();
    for repo in ["demo/app", "demo/other", "open/app"] {
        let img = push_demo_image(&client, &host, repo, "1.0", repo.as_bytes()).await.unwrap();
        sign_image_with_key(&client, &img, &key, BTreeMap::new()).await.unwrap();
    }

    let files = ServerFiles::new("vouch-faults-ca");
    let (dir, ca, policies) = (&files.dir, &files.ca, files.policies());
    // demo/**: failurePolicy Fail (the default); open/**: the same with failurePolicy Ignore.
    let closed = key_policy("closed", "cosign-prod", &host, &key);
    std::fs::write(policies.join("closed.yaml"), &closed).unwrap();
    let open = closed
        .replace("name: closed", "name: open")
        .replace("/demo/**", "/open/**")
        .replace("  mode: Enforce\n", "  mode: Enforce\n  failurePolicy: Ignore\n");
    assert!(open.contains("failurePolicy: Ignore") && open.contains("/open/**"), "{open}");
    std::fs::write(policies.join("open.yaml"), open).unwrap();

    let (port, health) = (free_port(), free_port());
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args([
            "serve".to_owned(),
            "--tls-cert".into(),
            path(&dir.path().join("tls.crt")),
            "--tls-key".into(),
            path(&dir.path().join("tls.key")),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--health-listen".into(),
            format!("127.0.0.1:{health}"),
            "--policy-dir".into(),
            path(&policies),
            "--insecure-registry".into(),
            host.clone(),
            "--timeout-budget".into(),
            "2s".into(),
            "--no-match".into(),
            "deny".into(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health_addr: SocketAddr = format!("127.0.0.1:{health}").parse().unwrap();
    let mut ready = false;
    for _ in 0..200 {
        if matches!(http_get(health_addr, "/readyz").await, Ok((200, _))) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcome = async {
        assert!(ready, "vouch serve did not become ready");
        let tls = TlsClient::new(ca.cert_der(), format!("127.0.0.1:{port}").parse().unwrap());

        // Reset: denied under Fail, admitted with a warning under Ignore; both name the cause.
        proxy.set(Fault::Reset);
        let (r, _) = validate(&tls, &host, "demo/app:1.0").await;
        assert_eq!(r["allowed"], false, "{r}");
        assert!(message(&r).contains("policy closed: signature: "), "{r}");
        assert!(message(&r).contains("reset the connection"), "{r}");
        let (r, _) = validate(&tls, &host, "open/app:1.0").await;
        assert_eq!(r["allowed"], true, "{r}");
        let warning = r["warnings"][0].as_str().unwrap_or_default();
        assert!(warning.contains("reset the connection"), "{r}");
        assert!(warning.ends_with("(allowed: failurePolicy Ignore)"), "{r}");
        assert!(r.get("patch").is_none(), "an unverified image is not pinned: {r}");

        // Never answering: denied within the budget.
        proxy.set(Fault::Silent);
        let (r, took) = validate(&tls, &host, "demo/app:1.0").await;
        assert_eq!(r["allowed"], false, "{r}");
        assert!(took >= BUDGET - Duration::from_millis(500), "gave up before the budget: {took:?}");
        let m = message(&r);
        assert!(
            m.contains("timed out") || m.contains("within the budget") || m.contains("time budget"),
            "{r}"
        );

        // Throttled with a Retry-After beyond the budget: denied at once, named.
        proxy.set(Fault::Throttle { requests: 1000, retry_after: "30".into() });
        let (r, took) = validate(&tls, &host, "demo/other:1.0").await;
        assert_eq!(r["allowed"], false, "{r}");
        assert!(message(&r).contains("throttled"), "{r}");
        assert!(took < BUDGET, "a Retry-After beyond the budget is not waited out: {took:?}");

        let (_, metrics) = http_get(health_addr, "/metrics").await.unwrap();
        assert!(counter(&metrics, r#"vouch_registry_failures_total{kind="reset"} "#) >= 2, "{metrics}");
        assert!(counter(&metrics, r#"vouch_registry_failures_total{kind="throttled"} "#) >= 1, "{metrics}");
        assert!(
            counter(&metrics, r#"vouch_decisions_total{result="error",policy="closed",mode="enforce"} "#)
                >= 3,
            "{metrics}"
        );

        // Recovered: the same server verifies the images the faults stood in front of.
        proxy.set(Fault::PassThrough);
        for image in ["demo/app:1.0", "demo/other:1.0", "open/app:1.0"] {
            let (r, _) = validate(&tls, &host, image).await;
            assert_eq!(r["allowed"], true, "{image} after recovery: {r}");
            assert!(r["warnings"].as_array().is_none_or(|w| w.is_empty()), "{image}: {r}");
        }
    };
    // Catch the outcome so that the server is stopped either way.
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(status.code(), Some(0));
}
