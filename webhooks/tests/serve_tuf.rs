//! `vouch serve --tuf-mirror`: at start the trusted root comes from the TUF repository (python-tuf, on
//! loopback), else the last good one cached, else (public good) the embedded one, else serve stops before
//! binding; each refresh puts a new root in force in the engine, a refused one changes nothing; both are
//! counted in `vouch_tuf_refresh_total{result}` and the metadata's expiry is exported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use prometheus_client::registry::Registry;
use vouch_attest::trust_root::{TrustRoot, PUBLIC_GOOD_JSON};
use vouch_attest::tuf::TufTrustSource;
use vouch_attest::verify::{ArtifactVerifier, VerifierConfig};
use vouch_attest::Digest;
use vouch_policies::{Engine, EngineConfig, PolicySet};
use vouch_webhooks::server::config::{ServeConfig, TufSettings};
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::run::Server;
use vouch_webhooks::server::tls::CertPaths;
use vouch_webhooks::server::tuf_refresh::TufRefresh;

#[path = "../../attest/tests/tuf_support/mod.rs"]
mod tuf_support;
use tuf_support::{python_tuf, Mirror};

fn engine(root: TrustRoot) -> Engine {
    let verifier = ArtifactVerifier::new(VerifierConfig {
        registry: Default::default(),
        trust_root: root,
        cache: Default::default(),
        options: Default::default(),
    })
    .unwrap();
    Engine::new(EngineConfig::default(), PolicySet::empty(), verifier)
}

fn metrics(refresh: &std::sync::Arc<TufRefresh>) -> String {
    let mut registry = Registry::default();
    refresh.register(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

fn second_root() -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD_JSON.as_bytes()).unwrap();
    doc["ctlogs"].as_array_mut().unwrap().pop();
    serde_json::to_vec_pretty(&doc).unwrap()
}

#[tokio::test]
async fn refreshes_put_new_roots_in_force_and_refusals_change_nothing() {
    if !python_tuf() {
        return;
    }
    let mut repo = Mirror::start(PUBLIC_GOOD_JSON.as_bytes()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let refresh = TufRefresh::new(TufTrustSource::new(repo.config(cache.path())).unwrap(), false);

    let root = refresh.initial().await.unwrap();
    assert_eq!(root.fingerprint(), &Digest::sha256_of(PUBLIC_GOOD_JSON.as_bytes()));
    let engine = engine(root);
    let changes = engine.in_force_changes();
    let before = *changes.borrow();

    // Nothing new: nothing replaced.
    assert!(!refresh.refresh_into(&engine).await.unwrap());
    assert_eq!(*changes.borrow(), before);

    // A new trusted_root.json: put in force.
    repo.publish(&second_root());
    assert!(refresh.refresh_into(&engine).await.unwrap());
    assert_eq!(*changes.borrow(), before + 1);

    // A newer one behind an expired timestamp: refused, nothing replaced.
    repo.publish(PUBLIC_GOOD_JSON.as_bytes());
    repo.run("expire-timestamp", None);
    let e = refresh.refresh_into(&engine).await.unwrap_err();
    assert_eq!(e.label(), "expired", "{e}");
    assert_eq!(*changes.borrow(), before + 1);

    let text = metrics(&refresh);
    assert!(text.contains("vouch_tuf_refresh_total{result=\"ok\"} 3"), "{text}");
    assert!(text.contains("vouch_tuf_refresh_total{result=\"expired\"} 1"), "{text}");
    let expiry: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vouch_tuf_metadata_expiry_timestamp_seconds "))
        .expect("expiry exported")
        .parse()
        .unwrap();
    // The timestamp of the last good refresh (7 days from its signing) is what expires first.
    let left = expiry - chrono::Utc::now().timestamp();
    assert!((6 * 86400..=7 * 86400).contains(&left), "{left}");

    // A restart with the mirror gone starts from the last good root cached (the second one).
    repo.stop();
    let restarted = TufRefresh::new(TufTrustSource::new(repo.config(cache.path())).unwrap(), false);
    let root = restarted.initial().await.unwrap();
    assert_eq!(root.fingerprint(), &Digest::sha256_of(&second_root()));
    assert!(metrics(&restarted).contains("vouch_tuf_refresh_total{result=\"unreachable\"} 1"));

    // Nothing cached: a private mirror has no root to start with; public good falls back to the embedded one.
    let empty = tempfile::tempdir().unwrap();
    let config = repo.config(empty.path());
    assert!(TufRefresh::new(TufTrustSource::new(config.clone()).unwrap(), false).initial().await.is_err());
    let fallback = TufRefresh::new(TufTrustSource::new(config).unwrap(), true);
    let root = fallback.initial().await.unwrap();
    assert_eq!(root.fingerprint(), TrustRoot::public_good().unwrap().fingerprint());
    assert!(!metrics(&fallback).contains("vouch_tuf_metadata_expiry"), "no TUF metadata vouches for it");
}

#[test]
fn serve_stops_before_binding_when_no_trusted_root_can_be_had() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("root.json");
    std::fs::write(&anchor, vouch_attest::tuf::PUBLIC_GOOD_TUF_ROOT).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let pair = DevCa::new("vouch-tuf-ca").unwrap().issue_server(&["localhost"], &[]).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (listen, health) = (free(), free());
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["serve", "--listen", &listen, "--health-listen", &health, "--kube=false"])
            .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()])
            .args(["--policy-dir", policies.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let mirror = format!("http://127.0.0.1:{port}");
    let insecure = format!("127.0.0.1:{port}");
    let cache = dir.path().join("cache");
    let (code, stderr) = run(&[
        "--tuf-mirror",
        &mirror,
        "--tuf-root",
        anchor.to_str().unwrap(),
        "--tuf-cache",
        cache.to_str().unwrap(),
        "--insecure-registry",
        &insecure,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("trusted root from TUF") && stderr.contains("no last good trusted root"),
        "{stderr}"
    );

    // Configuration errors, all at once: a private mirror without its root, a refresh out of range.
    let (code, stderr) = run(&["--tuf-mirror", &mirror, "--tuf-refresh", "5s"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tuf-root") && stderr.contains("--tuf-refresh"), "{stderr}");
}

#[tokio::test]
async fn a_server_starts_from_the_tuf_repository_and_exports_the_refresh_metrics() {
    if !python_tuf() {
        return;
    }
    let mut repo = Mirror::start(&second_root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pair = DevCa::new("vouch-tuf-ca").unwrap().issue_server(&["localhost"], &[]).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    let config = ServeConfig {
        insecure_registries: vec![repo.host()],
        tuf: Some(TufSettings {
            mirror: repo.url(),
            root: Some(repo.anchor_path()),
            cache_dir: dir.path().join("cache"),
            refresh: Duration::from_secs(60),
        }),
        ..ServeConfig::loopback(CertPaths { cert, key }, Some(dir.path().to_owned()))
    };
    let prepared = Server::prepare(config).await.unwrap();
    repo.stop();
    let text = prepared.state().metrics.encode();
    assert!(text.contains("vouch_tuf_refresh_total{result=\"ok\"} 1"), "{text}");
    assert!(text.contains("vouch_tuf_metadata_expiry_timestamp_seconds "), "{text}");
}
