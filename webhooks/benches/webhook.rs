//! Admission throughput and latency over real TLS on loopback, against a real registry.
//!
//! `cargo bench -p vouch-webhooks --bench webhook` prints:
//! - hot path: admission reviews per second and p50/p99 latency of `/validate` for a pod whose signed image
//!   is in the verdict cache, next to a bare axum + rustls server on the same TLS stack that reads each
//!   review, parses it and answers "allowed" for its uid (what any webhook must do). Both get the same
//!   ~9 KB Pod CREATE review ([`common::pod_review`]). Measured in rounds, the order alternating (bare
//!   first, then vouch first...): each round's figures, the medians, the ratio of the median throughputs
//!   (aim: >= 0.8, p99 <= 1.5x the bare p99) and the lowest and highest ratio of a single round;
//! - cold path: 100 concurrent reviews of pods sharing 5 unverified images; the registry's access log (let
//!   settle before counting) must show at most 5 times the requests one cold verification makes
//!   (single-flight). Exit 1 otherwise.
//!
//! `VOUCH_BENCH_SECONDS` sets the time per measurement (default 3; 0.3 when run by `cargo test`),
//! `VOUCH_BENCH_ROUNDS` the rounds (default 5; 2 when run by `cargo test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

#[path = "../tests/server_support/mod.rs"]
mod server_support;

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_allowed, bare_server, compare, pod_review, registry_requests, rounds, server_files};
use server_support::TlsClient;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::run::Server;

/// The allocator of the vouch binary (webhooks/src/main.rs), so the server in this process runs as it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kept-alive connections sending reviews at once (kube-apiserver keeps a pool of this order per webhook).
const CONCURRENCY: usize = 32;

fn seconds() -> Duration {
    let default = if std::env::args().any(|a| a == "--bench") { 3.0 } else { 0.3 };
    let s = std::env::var("VOUCH_BENCH_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(default);
    Duration::from_secs_f64(s.max(0.1))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let registry = DevRegistry::start().await.expect("docker-registry (bash scripts/setup.sh installs it)");
    let host = registry.host();
    let client = registry.client().unwrap();
    let key = SigningKey::generate();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();

    let ca = DevCa::new("vouch-bench-ca").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, policies) = server_files(dir.path(), &ca, &host, &key);
    let server = Server::prepare(ServeConfig {
        no_match: vouch_policies::NoMatchAction::Deny,
        insecure_registries: vec![host.clone()],
        insecure_ignore_tlog: true,
        shutdown_grace: Duration::from_secs(2),
        ..ServeConfig::loopback(cert, Some(policies))
    })
    .await
    .unwrap();
    let vouch = TlsClient::new(ca.cert_der(), server.https_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let (bare_addr, bare_stop) = bare_server(&ca, dir.path()).await;
    let bare = TlsClient::new(ca.cert_der(), bare_addr);

    // Hot path: warm the cache (and check both servers answer for the review's uid), then alternate.
    let review = pod_review(&host);
    let pod = Arc::new(review.clone().into_bytes());
    assert_allowed(&vouch, &pod).await;
    assert_allowed(&bare, &pod).await;
    println!(
        "hot path: {CONCURRENCY} kept-alive TLS connections, closed loop, {:?} per measurement, {} rounds \
         (order alternating), the same {}-byte Pod CREATE review to both",
        seconds(),
        rounds(),
        pod.len()
    );
    println!("  bare:  axum + rustls, reads and parses the review, answers allowed for its uid");
    println!("  vouch: /validate, verdict cache hit");
    let hot = compare(&bare, &vouch, &pod, CONCURRENCY, seconds(), rounds()).await;
    hot.print();
    println!("  aim: vouch/bare >= 0.8 (median throughputs), vouch p99 <= 1.5x bare p99");

    // Cold path: what one cold verification costs the registry, then 100 concurrent reviews over 5 images.
    let mut images = Vec::new();
    for i in 0..6 {
        let r = push_demo_image(
            &client,
            &host,
            &format!("demo/cold{i}"),
            "1.0",
            format!("cold {i}\n").as_bytes(),
        )
        .await
        .unwrap();
        sign_image_with_key(&client, &r, &key, BTreeMap::new()).await.unwrap();
        images.push(format!("demo/cold{i}:1.0"));
    }
    let pod_for = |image: &str| review.replace("demo/app:1.0", image).into_bytes();
    let before = registry_requests(&registry).await;
    let (r, _) = vouch.post("/validate", &pod_for(&images[5])).await.unwrap();
    assert_eq!(r.status, 200);
    let one = registry_requests(&registry).await - before;
    let before = registry_requests(&registry).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (vouch, body) = (vouch.clone(), pod_for(&images[i % 5]));
        tasks.push(tokio::spawn(async move {
            let (r, _) = vouch.post("/validate", &body).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            v["response"]["allowed"] == true
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    let cold = registry_requests(&registry).await - before;
    println!("cold path: one cold review: {one} registry requests; 100 concurrent reviews over 5 images: {cold} (limit {}); {allowed}/100 allowed", 5 * one);

    let _ = bare_stop.send(());
    let _ = stop.send(());
    running.await.unwrap();
    if cold > 5 * one || allowed != 100 || one == 0 {
        eprintln!("FAIL: single-flight across concurrent reviews not observed");
        std::process::exit(1);
    }
}
