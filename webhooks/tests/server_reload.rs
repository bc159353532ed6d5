//! Configuration faults while serving, over real TLS on loopback: a policy directory or trusted root
//! replaced by garbage under load (the last good one stays in force, /readyz and `vouch_config_stale` say
//! so, no request fails), then by good new content (it decides); the serving certificate rotated while
//! requests are in flight (none fails); and SIGTERM to the real `vouch serve` binary with many requests
//! in flight (each gets its answer, new connections are refused, exit 0 within the grace period).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use server_support::{fixture, free_port, http_get, TlsClient};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::trust_root::PUBLIC_GOOD_JSON;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::run::Server;
use vouch_webhooks::server::tls::CertPaths;

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A directory laid out as kubelet lays out a ConfigMap or Secret volume: `..<version>/` with the files,
/// `..data` a symlink to it, and each file a symlink through `..data`.
struct ConfigVolume {
    dir: tempfile::TempDir,
    version: usize,
}

impl ConfigVolume {
    fn new(files: &[(&str, &[u8])]) -> Self {
        let mut v = Self { dir: tempfile::tempdir().unwrap(), version: 0 };
        v.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), v.dir.path().join(name)).unwrap();
        }
        v
    }

    /// Publish new contents (same file names) the way kubelet does: a new directory, an atomic rename of a
    /// fresh `..data` symlink, then removal of the old directory.
    fn update(&mut self, files: &[(&str, &[u8])]) {
        self.version += 1;
        let name = format!("..2026_12_02_17_00_{:02}.{}", self.version, 1000 + self.version);
        let versioned = self.dir.path().join(&name);
        std::fs::create_dir(&versioned).unwrap();
        for (file, contents) in files {
            std::fs::write(versioned.join(file), contents).unwrap();
        }
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.path().join("..data")).ok();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.path().join(old)).unwrap();
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A webhook certificate for `localhost` and the CA that issued it.
struct Tls {
    ca: DevCa,
    dir: tempfile::TempDir,
}

impl Tls {
    fn new() -> Self {
        let ca = DevCa::new("vouch-reload-ca").unwrap();
        let pair = ca.issue_server(&["localhost"], &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), &pair.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &pair.key_pem).unwrap();
        Self { ca, dir }
    }

    fn paths(&self) -> CertPaths {
        CertPaths { cert: self.dir.path().join("tls.crt"), key: self.dir.path().join("tls.key") }
    }
}

fn config(tls: CertPaths, policy_dir: &Path, trusted_root: Option<PathBuf>, registry: &str) -> ServeConfig {
    ServeConfig {
        tls_reload_interval: Duration::from_millis(100),
        no_match: vouch_policies::NoMatchAction::Deny,
        trusted_root,
        insecure_registries: vec![registry.to_owned()],
        shutdown_grace: Duration::from_secs(5),
        ..ServeConfig::loopback(tls, Some(policy_dir.to_owned()))
    }
}

/// What the load saw: decisions by `allowed`, and every failed request (not HTTP 200 with a review).
#[derive(Default)]
struct Seen {
    allowed: AtomicUsize,
    denied: AtomicUsize,
    failures: Mutex<Vec<String>>,
    last_denial: Mutex<String>,
}

impl Seen {
    fn record(&self, r: anyhow::Result<server_support::HttpResponse>) {
        let r = match r {
            Ok(r) if r.status == 200 => r,
            Ok(r) => return self.failures.lock().unwrap().push(format!("HTTP {}", r.status)),
            Err(e) => return self.failures.lock().unwrap().push(format!("{e:#}")),
        };
        let Ok(review) = serde_json::from_slice::<Value>(&r.body) else {
            return self.failures.lock().unwrap().push("not JSON".into());
        };
        match review["response"]["allowed"].as_bool() {
            Some(true) => {
                self.allowed.fetch_add(1, Ordering::SeqCst);
            }
            Some(false) => {
                self.denied.fetch_add(1, Ordering::SeqCst);
                *self.last_denial.lock().unwrap() =
                    review["response"]["status"]["message"].as_str().unwrap_or_default().to_owned();
            }
            None => self.failures.lock().unwrap().push(format!("no decision: {review}")),
        }
    }

    fn counts(&self) -> (usize, usize) {
        (self.allowed.load(Ordering::SeqCst), self.denied.load(Ordering::SeqCst))
    }

    /// Waits (at most 10 s) until `n` more decisions than now have been seen: the load is answered in the
    /// state the test just reached, however fast the machine reached it.
    async fn more_decisions(&self, n: usize) {
        let total = |s: &Self| s.counts().0 + s.counts().1;
        let target = total(self) + n;
        let deadline = Instant::now() + Duration::from_secs(10);
        while total(self) < target {
            assert!(Instant::now() < deadline, "the load stalled at {:?}", self.counts());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `tasks` loops posting `body` to /validate on fresh connections until `done`.
fn load(
    client: &TlsClient,
    body: Vec<u8>,
    tasks: usize,
    seen: &Arc<Seen>,
    done: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let body = Arc::new(body);
    (0..tasks)
        .map(|_| {
            let (client, body, seen, done) = (client.clone(), body.clone(), seen.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    seen.record(client.post("/validate", &body).await.map(|(r, _)| r));
                }
            })
        })
        .collect()
}

/// Poll `what` (a /readyz or /metrics look) until `ok` holds, for at most 10 s.
async fn wait_for(health: SocketAddr, path: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(health, path).await.unwrap();
        if ok(&body) {
            assert_eq!(status, 200, "{path}: {body}");
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never showed what was expected; last:\n{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A policy file replaced by garbage under load: decisions do not change, no request fails, /readyz stays
/// 200 but says stale with the file and the error, `vouch_config_stale{source="policies"}` is 1. Replaced by
/// a good policy requiring another key: that policy decides (the signed pod is now denied), the gauge is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_directory_replaced_under_load() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    let (key, other_key) = (SigningKey::generate(), SigningKey::generate());
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();

    let first = key_policy("prod-signed", "cosign-prod", &host, &key);
    let mut volume = ConfigVolume::new(&[("policy.yaml", first.as_bytes())]);
    let tls = Tls::new();
    let server = Server::prepare(config(tls.paths(), volume.path(), None, &host)).await.unwrap();
    let https = server.https_addr().unwrap();
    let health = server.health_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let (status, ready) = http_get(health, "/readyz").await.unwrap();
    assert_eq!((status, ready.lines().next()), (200, Some("ready")), "{ready}");
    assert!(ready.contains(&format!("in force: policies: {} sha256:", volume.path().display())), "{ready}");

    let tls_client = TlsClient::new(tls.ca.cert_der(), https);
    let seen = Arc::new(Seen::default());
    let done = Arc::new(AtomicBool::new(false));
    let tasks = load(&tls_client, fixture("pod-create.json", &host), 4, &seen, &done);
    seen.more_decisions(10).await;
    assert!(seen.counts().0 >= 10, "the signed pod is allowed under the first policy: {:?}", seen.counts());

    volume.update(&[("policy.yaml", b"apiVersion: vouch.dev/v1alpha1\nkind: [unterminated\n")]);
    let ready = wait_for(health, "/readyz", |b| b.contains("stale")).await;
    assert!(ready.starts_with("ready, with stale configuration\n"), "{ready}");
    assert!(ready.contains("stale: policies: ") && ready.contains("policy.yaml"), "{ready}");
    assert!(ready.contains("not valid YAML"), "the error is named: {ready}");
    let (_, metrics) = http_get(health, "/metrics").await.unwrap();
    assert!(metrics.contains("vouch_config_stale{source=\"policies\"} 1"), "{metrics}");
    assert!(metrics.contains("vouch_config_reload_errors_total{source=\"policies\"} 1"), "{metrics}");
    seen.more_decisions(15).await; // the load kept running while the garbage was on disk
    assert_eq!(
        seen.counts().1,
        0,
        "the last good policy kept deciding: {}",
        seen.last_denial.lock().unwrap()
    );

    let second = key_policy("prod-signed", "cosign-next", &host, &other_key);
    volume.update(&[("policy.yaml", second.as_bytes())]);
    wait_for(health, "/metrics", |m| m.contains("vouch_config_stale{source=\"policies\"} 0")).await;
    let ready = wait_for(health, "/readyz", |b| !b.contains("stale")).await;
    assert_eq!(ready.lines().next(), Some("ready"), "{ready}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.counts().1 == 0 {
        assert!(Instant::now() < deadline, "the new policy never decided");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let denial = seen.last_denial.lock().unwrap().clone();
    assert!(denial.contains("no signature verifies against key cosign-next"), "{denial}");
    let (_, metrics) = http_get(health, "/metrics").await.unwrap();
    assert!(metrics.contains("vouch_config_reloads_total{source=\"policies\"} 1"), "{metrics}");

    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = seen.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failed request(s), first: {:?}", failures.len(), failures.first());
    let (allowed, denied) = seen.counts();
    assert!(allowed > 20 && denied > 0, "load ran: {allowed} allowed, {denied} denied");
    eprintln!("policy reload under load: {allowed} allowed, {denied} denied, 0 failed");
    let _ = stop.send(());
    running.await.unwrap();
}

/// `--trusted-root` replaced by garbage under load: kept out (stale, gauge 1, the last good fingerprint
/// still in force), no request fails; replaced by a good root (another document): its fingerprint is in
/// force and the gauge is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trusted_root_replaced_under_load() {
    let mut volume = ConfigVolume::new(&[("trusted_root.json", PUBLIC_GOOD_JSON.as_bytes())]);
    let policies = tempfile::tempdir().unwrap();
    let tls = Tls::new();
    let root_path = volume.path().join("trusted_root.json");
    let server =
        Server::prepare(config(tls.paths(), policies.path(), Some(root_path.clone()), "registry.test"))
            .await
            .unwrap();
    let https = server.https_addr().unwrap();
    let health = server.health_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let fingerprint = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
    let first = format!(
        "in force: trusted_root: {} {}",
        root_path.display(),
        fingerprint(PUBLIC_GOOD_JSON.as_bytes())
    );
    let (_, ready) = http_get(health, "/readyz").await.unwrap();
    assert!(ready.contains(&first), "{ready}");

    let seen = Arc::new(Seen::default());
    let done = Arc::new(AtomicBool::new(false));
    let client = TlsClient::new(tls.ca.cert_der(), https);
    let tasks = load(&client, fixture("pod-delete.json", "registry.test"), 4, &seen, &done);

    volume
        .update(&[("trusted_root.json", b"{\"mediaType\": \"application/vnd.dev.sigstore.trustedroot+json")]);
    let ready = wait_for(health, "/readyz", |b| b.contains("stale")).await;
    assert!(ready.contains(&format!("stale: trusted_root: {}: ", root_path.display())), "{ready}");
    assert!(ready.contains(&first), "the last good root stays in force: {ready}");
    let (_, metrics) = http_get(health, "/metrics").await.unwrap();
    assert!(metrics.contains("vouch_config_stale{source=\"trusted_root\"} 1"), "{metrics}");
    assert!(metrics.contains("vouch_config_stale{source=\"policies\"} 0"), "{metrics}");
    seen.more_decisions(10).await;

    // The same root as another document: a new fingerprint, under which verdicts are cached afresh.
    let rewritten = serde_json::to_vec(&serde_json::from_str::<Value>(PUBLIC_GOOD_JSON).unwrap()).unwrap();
    volume.update(&[("trusted_root.json", &rewritten)]);
    let second = format!("in force: trusted_root: {} {}", root_path.display(), fingerprint(&rewritten));
    let ready = wait_for(health, "/readyz", |b| b.contains(&second)).await;
    assert_eq!(ready.lines().next(), Some("ready"), "{ready}");
    let (_, metrics) = http_get(health, "/metrics").await.unwrap();
    assert!(metrics.contains("vouch_config_stale{source=\"trusted_root\"} 0"), "{metrics}");
    assert!(metrics.contains("vouch_config_reloads_total{source=\"trusted_root\"} 1"), "{metrics}");
    assert!(metrics.contains("vouch_config_reload_errors_total{source=\"trusted_root\"} 1"), "{metrics}");
    seen.more_decisions(10).await;

    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = seen.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failed request(s), first: {:?}", failures.len(), failures.first());
    assert!(seen.counts().0 >= 20, "load ran: {:?}", seen.counts());
    let _ = stop.send(());
    running.await.unwrap();
}

/// A registry that answers every request 404, `delay` after reading it: admissions naming its images
/// stay in flight that long. Counts the requests it has read.
struct SlowRegistry {
    host: String,
    received: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn slow_registry(delay: Duration) -> SlowRegistry {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
                let response = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    SlowRegistry { host, received, task }
}

/// A Pod CREATE review with its own uid naming `image` (at the slow registry).
fn pod_review(host: &str, uid: &str, image: &str) -> Vec<u8> {
    String::from_utf8(fixture("pod-create.json", host))
        .unwrap()
        .replace("0df28fbd-5f5f-11e8-bc74-36e6bb280816", uid)
        .replace(&format!("{host}/demo/app:1.0"), &format!("{host}/{image}"))
        .into_bytes()
}

fn sha(der: &[u8]) -> Vec<u8> {
    Sha256::digest(der).to_vec()
}

/// The certificate rotated (a Secret volume `..data` swap) while requests are in flight: requests that
/// started on the old certificate finish after the new one is served, a kept-alive connection opened on the
/// old certificate keeps working, new connections get the new one, and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificate_rotated_with_requests_in_flight() {
    let slow = slow_registry(Duration::from_millis(700)).await;
    let ca = DevCa::new("vouch-rotation-ca").unwrap();
    let a = ca.issue_server(&["localhost"], &[]).unwrap();
    let b = ca.issue_server(&["localhost"], &[]).unwrap();
    let mut certs =
        ConfigVolume::new(&[("tls.crt", a.cert_pem.as_bytes()), ("tls.key", a.key_pem.as_bytes())]);
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("policy.yaml"),
        key_policy("slow-signed", "k", &slow.host, &SigningKey::generate()),
    )
    .unwrap();
    let paths = CertPaths { cert: certs.path().join("tls.crt"), key: certs.path().join("tls.key") };
    let server = Server::prepare(config(paths, policies.path(), None, &slow.host)).await.unwrap();
    let https = server.https_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = TlsClient::new(ca.cert_der(), https);
    let (mut kept_alive, leaf) = client.connect().await.unwrap();
    assert_eq!(sha(&leaf), sha(&a.cert_der));

    // (leaf, started, finished, uid echoed) of every request.
    type Done = (Vec<u8>, Instant, Instant, bool);
    let finished = Arc::new(Mutex::new(Vec::<Done>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (client, finished, failures, done, host) =
            (client.clone(), finished.clone(), failures.clone(), done.clone(), slow.host.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let uid = format!("rotation-{t}-{n}");
                let body = pod_review(&host, &uid, &format!("demo/app:t{t}-{n}"));
                let started = Instant::now();
                match client.connect().await {
                    Ok((mut conn, leaf)) => match conn.post("/validate", &body).await {
                        Ok(r) if r.status == 200 => {
                            let review: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                            let echoed = review["response"]["uid"] == uid.as_str();
                            finished.lock().unwrap().push((leaf, started, Instant::now(), echoed));
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("HTTP {}", r.status)),
                        Err(e) => failures.lock().unwrap().push(format!("{e:#}")),
                    },
                    Err(e) => failures.lock().unwrap().push(format!("{e:#}")),
                }
            }
        }));
    }
    // Requests are in flight (the registry holds them) when the new pair is published.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.received.load(Ordering::SeqCst) < 6 {
        assert!(Instant::now() < deadline, "requests never reached the registry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    certs.update(&[("tls.crt", b.cert_pem.as_bytes()), ("tls.key", b.key_pem.as_bytes())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let rotated_at = loop {
        let (_, leaf) = client.connect().await.unwrap();
        if sha(&leaf) == sha(&b.cert_der) {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "rotation to B not seen within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r =
        kept_alive.post("/validate", &pod_review(&slow.host, "kept-alive", "demo/app:kept")).await.unwrap();
    assert_eq!(r.status, 200, "a connection opened on the old certificate keeps working");
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failed request(s), first: {:?}", failures.len(), failures.first());
    let finished = std::mem::take(&mut *finished.lock().unwrap());
    assert!(finished.iter().all(|f| f.3), "every answer echoes its own uid");
    let spanning = finished
        .iter()
        .filter(|(leaf, started, ended, _)| {
            *leaf == a.cert_der && *started < rotated_at && *ended > rotated_at
        })
        .count();
    let on_b = finished.iter().filter(|f| f.0 == b.cert_der).count();
    assert!(spanning >= 1, "no request on the old certificate was in flight across the rotation");
    assert!(on_b >= 1, "no request completed on the new certificate");
    eprintln!(
        "rotation with requests in flight: {} requests, {spanning} spanned the rotation, {on_b} on the new certificate, 0 failed",
        finished.len()
    );
    let _ = stop.send(());
    running.await.unwrap();
}

/// Kills the child process when dropped (a failing test must not leave a server running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGTERM to the `vouch serve` binary with many admissions in flight (each held by a slow registry):
/// every one gets its own answer (the engine's decision, not a fallback), new connections are refused at
/// once, and the process exits 0 within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_requests_in_flight() {
    const IN_FLIGHT: usize = 16;
    const GRACE: Duration = Duration::from_secs(10);
    let delay = Duration::from_millis(2500);
    let slow = slow_registry(delay).await;
    let tls = Tls::new();
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("policy.yaml"),
        key_policy("slow-signed", "k", &slow.host, &SigningKey::generate()),
    )
    .unwrap();
    let (https_port, health_port) = (free_port(), free_port());
    let log = tls.dir.path().join("stderr.log");
    let mut child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
            .arg("serve")
            .arg("--tls-cert")
            .arg(tls.paths().cert)
            .arg("--tls-key")
            .arg(tls.paths().key)
            .arg("--policy-dir")
            .arg(policies.path())
            .args(["--insecure-registry", &slow.host])
            .args(["--listen", &format!("127.0.0.1:{https_port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .args(["--shutdown-grace", "10s", "--timeout-budget", "8s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let health = SocketAddr::from((Ipv4Addr::LOCALHOST, health_port));
    let https = SocketAddr::from((Ipv4Addr::LOCALHOST, https_port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(http_get(health, "/readyz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready; log:\n{}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let client = TlsClient::new(tls.ca.cert_der(), https);
    let mut in_flight = Vec::new();
    for i in 0..IN_FLIGHT {
        let (client, host) = (client.clone(), slow.host.clone());
        in_flight.push(tokio::spawn(async move {
            let uid = format!("in-flight-{i}");
            let body = pod_review(&host, &uid, &format!("demo/app:v{i}"));
            let (r, _) = client.post("/validate", &body).await?;
            anyhow::Ok((uid, r, Instant::now()))
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.received.load(Ordering::SeqCst) < IN_FLIGHT {
        assert!(
            Instant::now() < deadline,
            "only {} requests reached the registry",
            slow.received.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kill =
        std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let term_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = tokio::net::TcpStream::connect(https).await;
    assert!(refused.is_err(), "a new connection was accepted while draining");

    let mut answered = 0;
    for t in in_flight {
        let (uid, r, at) = t.await.unwrap().expect("every in-flight request gets its answer");
        assert_eq!(r.status, 200);
        let review: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(review["response"]["uid"], uid.as_str());
        assert_eq!(review["response"]["allowed"], false, "{review}");
        let message = review["response"]["status"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("time budget"), "the engine decided, not the fallback: {message}");
        assert!(at > term_at, "answered after SIGTERM");
        answered += 1;
    }
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(term_at.elapsed() < GRACE + Duration::from_secs(2), "still running after the grace period");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exited_after = term_at.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "log:\n{text}");
    assert!(exited_after < GRACE, "exit {exited_after:?} after SIGTERM");
    assert!(text.contains("all connections drained"), "{text}");
    eprintln!("SIGTERM with {answered} requests in flight: all answered, exit 0 after {exited_after:?}");
}

/// With no last good configuration to fall back on, `vouch serve` refuses a policy directory that does
/// not compile completely: exit 2 naming the file and the problem, no port bound.
#[test]
fn binary_refuses_a_policy_directory_that_does_not_compile_at_start() {
    let tls = Tls::new();
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("good.yaml"),
        key_policy("ok", "k", "reg.example", &SigningKey::generate()),
    )
    .unwrap();
    std::fs::write(policies.path().join("bad.yaml"), "kind: [unterminated\n").unwrap();
    let health_port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .arg("serve")
        .arg("--tls-cert")
        .arg(tls.paths().cert)
        .arg("--tls-key")
        .arg(tls.paths().key)
        .arg("--policy-dir")
        .arg(policies.path())
        .args(["--listen", "127.0.0.1:0", "--health-listen", &format!("127.0.0.1:{health_port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("none is put in force (1 problem(s))"), "{stderr}");
    assert!(stderr.contains("bad.yaml#1: not valid YAML"), "{stderr}");
    assert!(StdListener::bind((Ipv4Addr::LOCALHOST, health_port)).is_ok(), "the health port was never bound");
}
