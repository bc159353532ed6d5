//! Heap allocations of one warm review, counted (dhat as this test binary's allocator): the webhook's own
//! handler in process (`router(state).oneshot`, no TLS, no socket), for a Pod CREATE whose signed image is
//! in the verdict cache. A bound on the count keeps the hot path from growing allocations back unseen;
//! `VOUCH_ALLOC_PROFILE=<file>` writes dhat's per-call-site profile instead (view it with dhat's viewer).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "server_support/mod.rs"]
mod server_support;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt as _;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::router;
use vouch_webhooks::server::run::Server;

use server_support::ServerFiles;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Reviews counted (after one that warms the cache).
const REVIEWS: u64 = 200;
/// Most heap allocations one warm review may make, the test's own request and reading of the answer
/// included: 313 when this was written (release and debug alike); 371 before the verification's cold
/// paths moved to futures of their own and JSON pointers were looked up and written only when needed.
const MAX_ALLOCATIONS: u64 = 360;

async fn review(app: &axum::Router, body: &[u8]) -> serde_json::Value {
    let request = Request::post("/validate")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_warm_review_allocates_within_its_bound() {
    let registry = DevRegistry::start().await.expect("docker-registry (bash scripts/setup.sh installs it)");
    let host = registry.host();
    let client = registry.client().unwrap();
    let key = SigningKey::generate();
    let app_ref = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    sign_image_with_key(&client, &app_ref, &key, BTreeMap::new()).await.unwrap();

    let files = ServerFiles::new("vouch-alloc-ca");
    let policies = files.policies();
    std::fs::write(policies.join("prod-signed.yaml"), key_policy("prod-signed", "cosign-prod", &host, &key))
        .unwrap();
    let server = Server::prepare(ServeConfig {
        no_match: vouch_policies::NoMatchAction::Deny,
        insecure_registries: vec![host.clone()],
        insecure_ignore_tlog: true,
        ..ServeConfig::loopback(files.tls(), Some(policies))
    })
    .await
    .unwrap();
    let app = router(server.state().clone());

    let pretty = server_support::fixture("pod-create-replicaset.json", &host);
    let body = serde_json::from_slice::<serde_json::Value>(&pretty).unwrap().to_string().into_bytes();
    let first = review(&app, &body).await;
    assert_eq!(first["response"]["allowed"], true, "{first}");

    let profile = std::env::var_os("VOUCH_ALLOC_PROFILE");
    let profiler = match &profile {
        Some(file) => dhat::Profiler::builder().file_name(file).build(),
        None => dhat::Profiler::builder().testing().build(),
    };
    let before = dhat::HeapStats::get();
    for _ in 0..REVIEWS {
        let answer = review(&app, &body).await;
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
    }
    let after = dhat::HeapStats::get();
    drop(profiler);
    let per_review = (after.total_blocks - before.total_blocks) / REVIEWS;
    let bytes = (after.total_bytes - before.total_bytes) / REVIEWS;
    println!("a warm review: {per_review} allocations, {bytes} bytes (handler in process, request and answer included)");
    assert!(
        per_review <= MAX_ALLOCATIONS,
        "a warm review made {per_review} heap allocations, more than {MAX_ALLOCATIONS}: what was added to the hot path?"
    );
}
