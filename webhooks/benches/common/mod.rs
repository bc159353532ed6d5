//! What the admission benches share: the files a server needs (certificate, one key policy), the
//! closed-loop TLS load client and its percentiles, the bare axum + rustls baseline server measured in the
//! same run, and the registry's request count.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::tls::{self, CertPaths, ReloadingCert};

use crate::server_support::TlsClient;

/// One review (connect if needed, send, read the answer) must finish within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes into `dir` a `localhost` server certificate issued by `ca` (`tls.crt`, `tls.key`) and the policy
/// `prod-signed` (images on `host` signed by `key`, authority `cosign-prod`) in `dir/policies`; returns the
/// certificate's paths and the policy directory.
pub fn server_files(dir: &Path, ca: &DevCa, host: &str, key: &SigningKey) -> (CertPaths, PathBuf) {
    let pair = ca.issue_server(&["localhost"], &[]).unwrap();
    let cert = CertPaths { cert: dir.join("tls.crt"), key: dir.join("tls.key") };
    std::fs::write(&cert.cert, &pair.cert_pem).unwrap();
    std::fs::write(&cert.key, &pair.key_pem).unwrap();
    let policies = dir.join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("prod-signed.yaml"), key_policy("prod-signed", "cosign-prod", host, key))
        .unwrap();
    (cert, policies)
}

/// What a closed loop measured.
pub struct Figures {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `connections` kept-alive connections, each posting `body` to `/validate` and waiting for the answer
/// before sending the next, for `duration`. Every answer must be 200 within [`REQUEST_TIMEOUT`].
pub async fn closed_loop(
    client: &TlsClient,
    body: Arc<Vec<u8>>,
    connections: usize,
    duration: Duration,
) -> Figures {
    let until = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, body) = (client.clone(), body.clone());
            tokio::spawn(async move {
                let (mut conn, _) = client.connect().await.unwrap();
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let r = tokio::time::timeout(REQUEST_TIMEOUT, conn.post("/validate", &body))
                        .await
                        .expect("review timed out")
                        .unwrap();
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    latencies.push(micros(t.elapsed()));
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let per_second = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_unstable();
    Figures { per_second, p50_ms: percentile_ms(&all, 0.50), p99_ms: percentile_ms(&all, 0.99) }
}

/// `d` in whole microseconds, saturating (a u32 holds 71 minutes: latencies are kept compact).
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The `q` quantile (0 to 1) of `sorted` latencies in microseconds, in milliseconds; 0 when empty.
pub fn percentile_ms(sorted: &[u32], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |us| f64::from(*us) / 1e3)
}

/// The baseline: the same rustls configuration and accept loop as `vouch serve`, a handler that only
/// answers "allowed". Returns its address and the sender that stops it.
pub async fn bare_server(ca: &DevCa, dir: &Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let pair = ca.issue_server(&["localhost"], &[]).unwrap();
    std::fs::write(dir.join("bare.crt"), &pair.cert_pem).unwrap();
    std::fs::write(dir.join("bare.key"), &pair.key_pem).unwrap();
    let provider = tls::install_crypto_provider();
    let cert = ReloadingCert::load(
        CertPaths { cert: dir.join("bare.crt"), key: dir.join("bare.key") },
        provider.clone(),
    )
    .unwrap();
    let config = tls::server_config(cert, None, provider).unwrap();
    let answer = serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816", "allowed": true, "status": {}}});
    let app = axum::Router::new()
        .route("/validate", axum::routing::post(move || async move { axum::Json(answer.clone()) }));
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(vouch_webhooks::server::serve_https(
        listener,
        config,
        app,
        Arc::new(AtomicBool::new(false)),
        Arc::default(),
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    (addr, stop)
}

/// The GET and HEAD requests under `/v2/` in the registry's access log so far.
pub fn registry_requests(registry: &DevRegistry) -> usize {
    registry.count_requests("GET", "/v2/") + registry.count_requests("HEAD", "/v2/")
}
