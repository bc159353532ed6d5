//! What the admission benches share: the files a server needs (certificate, one key policy), the review
//! the load sends, the closed-loop TLS load client and its percentiles, the bare axum + rustls baseline
//! server, the same-run comparison of the two (alternating rounds, medians), and the registry's request
//! count.

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

use crate::server_support::{fixture, TlsClient};

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

/// The admission review the load sends, naming images on `host`: a Pod CREATE as kube-apiserver sends it
/// for a Pod the ReplicaSet controller makes from a Deployment (labels, annotations, owner reference,
/// managedFields, env, probes, resources, volumes with the service-account token projection), as compact
/// JSON (about 9 KB), the image `<host>/demo/app:1.0`.
pub fn pod_review(host: &str) -> String {
    let pretty = fixture("pod-create-replicaset.json", host);
    serde_json::from_slice::<serde_json::Value>(&pretty).unwrap().to_string()
}

/// What a closed loop measured.
#[derive(Debug, Clone, Copy)]
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

/// The part of a review the baseline reads: the uid its answer must echo. The rest is skipped, but
/// serde_json still reads it through and fails on malformed JSON.
#[derive(serde::Deserialize)]
struct MinimalReview {
    request: MinimalRequest,
}

#[derive(serde::Deserialize)]
struct MinimalRequest {
    uid: String,
}

/// What any webhook must do at least: read the whole body, parse it, answer for its uid.
async fn bare_validate(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match serde_json::from_slice::<MinimalReview>(&body) {
        Ok(review) => axum::Json(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review.request.uid, "allowed": true},
        }))
        .into_response(),
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// The baseline: the same rustls configuration and accept loop as `vouch serve`, a handler that reads
/// the review, parses it and answers "allowed" for its uid ([`bare_validate`]). Returns its address and
/// the sender that stops it.
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
    let app = axum::Router::new().route("/validate", axum::routing::post(bare_validate));
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

/// Posts `body` once to `/validate` and checks the answer is 200, allowed, and for the review's uid.
pub async fn assert_allowed(client: &TlsClient, body: &[u8]) {
    let (r, _) = client.post("/validate", body).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(answer["response"]["uid"], sent["request"]["uid"], "{answer}");
}

/// Rounds of a same-run comparison: `VOUCH_BENCH_ROUNDS`, default 5 under `cargo bench`, 2 when run by
/// `cargo test`.
pub fn rounds() -> usize {
    let default = if std::env::args().any(|a| a == "--bench") { 5 } else { 2 };
    std::env::var("VOUCH_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default).max(1)
}

/// One round of [`compare`]: the baseline and vouch, one after the other.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub bare_first: bool,
    pub bare: Figures,
    pub vouch: Figures,
}

/// What [`compare`] measured, round by round.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub rounds: Vec<Round>,
}

/// `rounds` rounds of the same closed loop (`body` on `connections` connections for `duration`) against
/// the baseline and vouch, the order swapped every round (bare first in rounds 1, 3, 5...): neither server
/// always gets the warmer caches or the quieter seconds of a busy machine.
pub async fn compare(
    bare: &TlsClient,
    vouch: &TlsClient,
    body: &Arc<Vec<u8>>,
    connections: usize,
    duration: Duration,
    rounds: usize,
) -> Comparison {
    let mut measured = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let bare_first = r % 2 == 0;
        let (first, second) = if bare_first { (bare, vouch) } else { (vouch, bare) };
        let a = closed_loop(first, body.clone(), connections, duration).await;
        let b = closed_loop(second, body.clone(), connections, duration).await;
        let (bare, vouch) = if bare_first { (a, b) } else { (b, a) };
        measured.push(Round { bare_first, bare, vouch });
    }
    Comparison { rounds: measured }
}

/// The median of `values` (the mean of the two middle ones for an even count); 0 when empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Comparison {
    fn medians(&self, of: impl Fn(&Round) -> Figures) -> Figures {
        let figures: Vec<Figures> = self.rounds.iter().map(of).collect();
        Figures {
            per_second: median(figures.iter().map(|f| f.per_second).collect()),
            p50_ms: median(figures.iter().map(|f| f.p50_ms).collect()),
            p99_ms: median(figures.iter().map(|f| f.p99_ms).collect()),
        }
    }

    /// The baseline's median throughput, p50 and p99 over the rounds (each the median of its own).
    pub fn bare(&self) -> Figures {
        self.medians(|r| r.bare)
    }

    /// vouch's median throughput, p50 and p99 over the rounds.
    pub fn vouch(&self) -> Figures {
        self.medians(|r| r.vouch)
    }

    /// vouch's median throughput over the baseline's.
    pub fn ratio(&self) -> f64 {
        self.vouch().per_second / self.bare().per_second
    }

    /// The lowest and highest vouch/bare throughput ratio of a single round.
    pub fn ratio_range(&self) -> (f64, f64) {
        let ratios = self.rounds.iter().map(|r| r.vouch.per_second / r.bare.per_second);
        ratios.fold((f64::INFINITY, 0.0), |(lo, hi), x| (lo.min(x), hi.max(x)))
    }

    /// One line per round, then the medians and the ratios.
    pub fn print(&self) {
        println!(
            "  round  first   {:>12} {:>8} {:>8}   {:>12} {:>8} {:>8}   vouch/bare",
            "bare rev/s", "p50 ms", "p99 ms", "vouch rev/s", "p50 ms", "p99 ms"
        );
        let row = |label: &str, first: &str, b: &Figures, v: &Figures, ratio: f64| {
            println!(
                "  {label:<6} {first:<6}  {:>12.0} {:>8.3} {:>8.3}   {:>12.0} {:>8.3} {:>8.3}   {ratio:>10.2}",
                b.per_second, b.p50_ms, b.p99_ms, v.per_second, v.p50_ms, v.p99_ms
            )
        };
        for (i, r) in self.rounds.iter().enumerate() {
            let first = if r.bare_first { "bare" } else { "vouch" };
            row(&(i + 1).to_string(), first, &r.bare, &r.vouch, r.vouch.per_second / r.bare.per_second);
        }
        row("median", "", &self.bare(), &self.vouch(), self.ratio());
        let (lo, hi) = self.ratio_range();
        println!(
            "  vouch/bare: {:.2} (median throughput over median throughput); single rounds {lo:.2} to {hi:.2}",
            self.ratio()
        );
    }
}

/// The GET and HEAD requests under `/v2/` in the registry's access log, once the log has settled
/// ([`DevRegistry::settle`]: the last lines are written after the answers the client already has).
pub async fn registry_requests(registry: &DevRegistry) -> usize {
    assert!(registry.settle().await, "the registry's log kept growing");
    registry.count_requests("GET", "/v2/") + registry.count_requests("HEAD", "/v2/")
}
