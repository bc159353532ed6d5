//! The webhook server over real TLS on loopback: certificate rotation under load (a Kubernetes
//! Secret-volume `..data` swap, then a bad pair that must not replace the good one), graceful drain, and
//! the `vouch serve` binary: SIGTERM exits 0 after draining, bad configuration exits 2 before binding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server_support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use server_support::{fixture, free_port, http_get, SecretVolume, TlsClient};
use sha2::{Digest as _, Sha256};
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::run::Server;
use vouch_webhooks::server::tls::{self, CertPaths, ReloadingCert};

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn config(volume: &SecretVolume, policy_dir: &std::path::Path) -> ServeConfig {
    ServeConfig {
        tls_reload_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        ..ServeConfig::loopback(
            CertPaths { cert: volume.cert(), key: volume.key() },
            Some(policy_dir.to_owned()),
        )
    }
}

/// With `--client-ca`, only a caller presenting a client certificate from that CA gets an answer: no
/// certificate, another CA's client certificate, or a serving certificate as a client one fail the TLS
/// handshake (nothing is evaluated, nothing written), and each is counted under its reason in
/// `vouch_tls_handshake_failures_total`; the health port is not affected. A rotated bundle is picked up,
/// and a garbage one keeps the CAs in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_admits_only_the_api_servers_certificate() {
    let serving_ca = DevCa::new("vouch-serving-ca").unwrap();
    let pair = serving_ca.issue_server(&["localhost"], &[]).unwrap();
    let volume = SecretVolume::new(&pair.cert_pem, &pair.key_pem);
    let (apiserver_ca, other_ca) = (DevCa::new("apiserver-client-ca").unwrap(), DevCa::new("other").unwrap());
    let apiserver = apiserver_ca.issue_client("kube-apiserver").unwrap();
    let impostor = other_ca.issue_client("kube-apiserver").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, apiserver_ca.cert_pem()).unwrap();
    let policies = tempfile::tempdir().unwrap();
    let server =
        Server::prepare(ServeConfig { client_ca: Some(ca_file.clone()), ..config(&volume, policies.path()) })
            .await
            .unwrap();
    let (https, health) = (server.https_addr().unwrap(), server.health_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let body = fixture("pod-delete.json", "registry.test");
    let as_apiserver =
        TlsClient::with_client_cert(serving_ca.cert_der(), https, &apiserver.cert_pem, &apiserver.key_pem);
    let (r, _) = as_apiserver.post("/validate", &body).await.unwrap();
    assert_eq!(r.status, 200);

    let refused = |client: TlsClient| async move {
        // TLS 1.3: the server's verdict on the client certificate arrives after the client's handshake,
        // so the failure shows on the request.
        client.post("/validate", &fixture("pod-delete.json", "registry.test")).await.map(|(r, _)| r.status)
    };
    assert!(refused(TlsClient::new(serving_ca.cert_der(), https)).await.is_err(), "no client certificate");
    let stranger =
        TlsClient::with_client_cert(serving_ca.cert_der(), https, &impostor.cert_pem, &impostor.key_pem);
    assert!(refused(stranger.clone()).await.is_err(), "another CA's client certificate");
    let server_as_client = apiserver_ca.issue_server(&["localhost"], &[]).unwrap();
    let wrong_usage = TlsClient::with_client_cert(
        serving_ca.cert_der(),
        https,
        &server_as_client.cert_pem,
        &server_as_client.key_pem,
    );
    assert!(refused(wrong_usage).await.is_err(), "a serving certificate used as a client certificate");
    // A caller that does not trust vouch's serving certificate (a wrong caBundle) turns it down itself.
    let distrustful =
        TlsClient::with_client_cert(other_ca.cert_der(), https, &apiserver.cert_pem, &apiserver.key_pem);
    assert!(distrustful.connect().await.is_err(), "a caller that does not trust the serving certificate");
    assert_eq!(http_get(health, "/readyz").await.unwrap().0, 200, "the health port asks for nothing");
    // Each refusal is counted under its reason (and logged at warn, rate-limited: server/handshake.rs).
    let counted = [
        r#"vouch_tls_handshake_failures_total{reason="no_client_certificate"} 1"#,
        r#"vouch_tls_handshake_failures_total{reason="untrusted_client_certificate"} 2"#,
        r#"vouch_tls_handshake_failures_total{reason="server_certificate_rejected"} 1"#,
        r#"vouch_tls_handshake_failures_total{reason="other"} 0"#,
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = http_get(health, "/metrics").await.unwrap().1;
        if counted.iter().all(|line| metrics.contains(line)) {
            break;
        }
        assert!(Instant::now() < deadline, "expected {counted:#?} in:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A garbage bundle is refused (counted), the CAs in force stay; then a rotation to the other CA.
    std::fs::write(&ca_file, "garbage").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http_get(health, "/metrics").await.unwrap().1.contains("vouch_client_ca_reload_errors_total 1") {
        assert!(Instant::now() < deadline, "garbage bundle not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(as_apiserver.post("/validate", &body).await.unwrap().0.status, 200);
    std::fs::write(&ca_file, other_ca.cert_pem()).unwrap();
    while !http_get(health, "/metrics").await.unwrap().1.contains("vouch_client_ca_reloads_total 1") {
        assert!(Instant::now() < deadline, "rotated bundle not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stranger.post("/validate", &body).await.unwrap().0.status, 200, "the new CA's client");
    assert!(as_apiserver.post("/validate", &body).await.is_err(), "the old CA's client, after rotation");
    let _ = stop.send(());
    running.await.unwrap();
}

fn sha(der: &[u8]) -> Vec<u8> {
    Sha256::digest(der).to_vec()
}

/// Under continuous load on fresh connections, a `..data` symlink swap to a new pair is picked up
/// without a failed request, and a mismatched pair published afterwards is rejected (the new good
/// certificate stays, the reload error is counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificate_rotation_under_load() {
    let ca = DevCa::new("vouch-test-ca").unwrap();
    let a = ca.issue_server(&["localhost"], &[]).unwrap();
    let b = ca.issue_server(&["localhost"], &[]).unwrap();
    let c = ca.issue_server(&["localhost"], &[]).unwrap();
    let mut volume = SecretVolume::new(&a.cert_pem, &a.key_pem);
    let policies = tempfile::tempdir().unwrap();
    let server = Server::prepare(config(&volume, policies.path())).await.unwrap();
    let https = server.https_addr().unwrap();
    let health = server.health_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = TlsClient::new(ca.cert_der(), https);
    let body = Arc::new(fixture("pod-delete.json", "registry.test"));

    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_b = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (client, body, done, ok, failures, seen_b) =
            (client.clone(), body.clone(), done.clone(), ok.clone(), failures.clone(), seen_b.clone());
        let b_sha = sha(&b.cert_der);
        load.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                match client.post("/validate", &body).await {
                    Ok((r, leaf)) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if sha(&leaf) == b_sha {
                            seen_b.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok((r, _)) => failures.lock().unwrap().push(format!("HTTP {}", r.status)),
                    Err(e) => failures.lock().unwrap().push(format!("{e:#}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, leaf) = client.post("/validate", &body).await.unwrap();
    assert_eq!(sha(&leaf), sha(&a.cert_der), "serving A at first");

    volume.update(&b.cert_pem, &b.key_pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen_b.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "rotation to B not seen within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // C's certificate with A's key: must be refused; B stays.
    volume.update(&c.cert_pem, &a.key_pem);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, leaf) = client.post("/validate", &body).await.unwrap();
    assert_eq!(sha(&leaf), sha(&b.cert_der), "a bad pair keeps the last good certificate");
    let (status, metrics) = http_get(health, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("vouch_tls_reloads_total 1"), "{metrics}");
    assert!(metrics.contains("vouch_tls_reload_errors_total 1"), "{metrics}");

    done.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failed request(s), first: {:?}", failures.len(), failures.first());
    assert!(ok.load(Ordering::Relaxed) > 20, "load ran: {} requests", ok.load(Ordering::Relaxed));
    let _ = stop.send(());
    running.await.unwrap();
}

async fn slow_server(
    handler_delay: Duration,
    grace: Duration,
) -> (SocketAddr, TlsClient, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Duration>) {
    let ca = DevCa::new("vouch-test-ca").unwrap();
    let pair = ca.issue_server(&["localhost"], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &pair.key_pem).unwrap();
    let provider = tls::install_crypto_provider();
    let cert = ReloadingCert::load(
        CertPaths { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") },
        provider.clone(),
    )
    .unwrap();
    let config = tls::server_config(cert, None, provider).unwrap();
    let app = axum::Router::new().route(
        "/validate",
        post(move || async move {
            tokio::time::sleep(handler_delay).await;
            "done"
        }),
    );
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(async move {
        let _dir = dir;
        let shutdown = async {
            let _ = stopped.await;
        };
        let started = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let s2 = started.clone();
        let shutdown = async move {
            shutdown.await;
            *s2.lock().unwrap() = Some(Instant::now());
        };
        let handshakes = Arc::default();
        vouch_webhooks::server::serve_https(listener, config, app, serving, handshakes, shutdown, grace)
            .await;
        let t = started.lock().unwrap().unwrap();
        t.elapsed()
    });
    (addr, TlsClient::new(ca.cert_der(), addr), stop, task)
}

/// After shutdown begins, an in-flight request still completes, new connections are refused, and the
/// server returns once it has drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_requests() {
    let (addr, client, stop, task) = slow_server(Duration::from_millis(800), Duration::from_secs(5)).await;
    let (mut conn, _) = client.connect().await.unwrap();
    let in_flight = tokio::spawn(async move { conn.post("/validate", b"{}").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections while draining");
    let r = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!((r.status, r.body.as_slice()), (200, b"done".as_slice()));
    let drained_after = task.await.unwrap();
    assert!(drained_after < Duration::from_secs(2), "returned {drained_after:?} after shutdown began");
}

/// A request that outlives the grace period does not hold the process: the server returns at the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_is_bounded_by_the_grace_period() {
    let (_addr, client, stop, task) = slow_server(Duration::from_secs(30), Duration::from_millis(300)).await;
    let (mut conn, _) = client.connect().await.unwrap();
    let in_flight = tokio::spawn(async move { conn.post("/validate", b"{}").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let drained_after = tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    assert!(
        drained_after >= Duration::from_millis(300) && drained_after < Duration::from_secs(2),
        "{drained_after:?}"
    );
    in_flight.abort();
}

/// Kills the child process when dropped (a failing test must not leave a server running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vouch serve`: ready, answers over TLS with JSON logs carrying the request span (one info line for a
/// review allowed with a warning; none at info for a plain allow), and on SIGTERM drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_and_exits_zero_on_sigterm() {
    let ca = DevCa::new("vouch-test-ca").unwrap();
    let pair = ca.issue_server(&["localhost"], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &pair.key_pem).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let (https_port, health_port) = (free_port(), free_port());
    let log = dir.path().join("stderr.log");
    let mut child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["serve", "--tls-cert"])
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .arg("--policy-dir")
            .arg(&policies)
            .args(["--no-match", "warn"])
            .env_remove("RUST_LOG")
            .args(["--listen", &format!("127.0.0.1:{https_port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let health = SocketAddr::from((Ipv4Addr::LOCALHOST, health_port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http_get(health, "/readyz").await {
            break;
        }
        assert!(Instant::now() < deadline, "not ready; log:\n{}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = TlsClient::new(ca.cert_der(), SocketAddr::from((Ipv4Addr::LOCALHOST, https_port)));
    let (r, _) = client.post("/validate", &fixture("pod-delete.json", "registry.test")).await.unwrap();
    assert_eq!(r.status, 200);
    let (r, _) = client.post("/validate", &fixture("pod-create.json", "registry.test")).await.unwrap();
    assert_eq!(r.status, 200);

    let kill =
        std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "log:\n{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let decided: Vec<_> = lines.iter().filter(|l| l["fields"]["message"] == "admission decided").collect();
    assert_eq!(decided.len(), 1, "only the review with a warning is logged at info:\n{text}");
    let decided = decided[0];
    assert_eq!(decided["level"], "INFO");
    assert_eq!(decided["fields"]["warnings"], 1, "{decided}");
    assert_eq!(decided["span"]["uid"], "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
    assert_eq!(decided["span"]["operation"], "CREATE");
    assert_eq!(decided["span"]["kind"], "Pod");
    assert_eq!(decided["span"]["namespace"], "prod");
    assert_eq!(decided["span"]["object_name"], "web");
    // Allowed with a warning (docs/operations.md#logs).
    assert_eq!(decided["span"]["decision"], "warned");
    assert!(lines.iter().any(|l| l["fields"]["signal"] == "SIGTERM"), "{text}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "all connections drained"), "{text}");
}

/// Bad configuration: exit 2 with every problem listed, and no port bound.
#[test]
fn binary_refuses_bad_configuration_before_binding() {
    let health_port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["serve", "--tls-cert", "/nonexistent/tls.crt", "--no-match", "sometimes"])
        .args([
            "--health-listen",
            &format!("127.0.0.1:{health_port}"),
            "--timeout-budget",
            "forever",
            "--kube=false",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in ["--tls-cert", "--tls-key: required", "--policy-dir", "--no-match", "--timeout-budget"] {
        assert!(stderr.contains(want), "missing {want}: {stderr}");
    }
    assert!(StdListener::bind((Ipv4Addr::LOCALHOST, health_port)).is_ok(), "the health port was never bound");
}
