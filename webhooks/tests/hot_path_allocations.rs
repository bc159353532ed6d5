//! Heap allocations of one warm review, counted (dhat as this test binary's allocator): the webhook's own
//! handler in process (`router(state).oneshot`, no TLS, no socket), for a Pod CREATE whose signed image is
//! in the verdict cache. A bound on the count keeps the hot path from growing allocations back unseen;
//! `VOUCH_ALLOC_PROFILE=<file>` also writes dhat's per-call-site profile (view it with dhat's viewer).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "server_support/mod.rs"]
mod server_support;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt as _;
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::router;
use vouch_webhooks::server::run::Server;

use server_support::SignedAndUnsigned;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Reviews counted (after one that warms the cache).
const REVIEWS: u64 = 200;
/// Most heap allocations one warm review may make, the test's own request and reading of the answer
/// included: 290 now (debug build); 309 before object selectors read the labels in place, 313 (release and
/// debug) before the annotation and list pointers were written lazily, 371 before the verification's cold
/// paths moved to futures of their own.
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
    let signed = SignedAndUnsigned::start("vouch-alloc-ca").await;
    let host = &signed.host;
    let server = Server::prepare(ServeConfig {
        no_match: vouch_policies::NoMatchAction::Deny,
        insecure_registries: vec![host.clone()],
        insecure_ignore_tlog: true,
        ..ServeConfig::loopback(signed.files.tls(), Some(signed.files.policies()))
    })
    .await
    .unwrap();
    let app = router(server.state().clone());

    let pretty = server_support::fixture("pod-create-replicaset.json", host);
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
