//! Cold storm across replicas (issue #16, parts 4 and 5): three `vouch serve` processes (the built binary)
//! and 300 concurrent Pod CREATE reviews naming 30 distinct images never verified before (2 in 3 signed,
//! 1 in 3 unsigned), spread round-robin over the replicas, against a real registry on loopback.
//!
//! `cargo bench -p vouch-webhooks --bench storm` (also run, as is, by `cargo test --all-targets`). Three
//! storms in one run, each on 30 fresh images so that every one starts cold:
//! 1. baseline: the replicas share nothing (as before `--shared-cache`);
//! 2. shared: the replicas share verdicts through one real `redis-server` (Debian's, on loopback);
//! 3. Redis killed mid-storm: the same, with Redis killed once a third of the answers are in.
//!
//! Registry requests (GET and HEAD under /v2/ in the registry's access log) are compared against one fetch
//! set per distinct digest, measured in the same run from a fresh verification of one signed and one unsigned
//! probe image. Reviews name images by digest, so the counts are about verdicts (a tag's resolution is per
//! replica and not shared). Then memory: the RSS of a process holding 10,000 cached verdicts (part 5).
//!
//! Exit 1 (a panic) on any failed review: transport error, timeout, non-200, or a decision other than
//! expected (signed allowed, unsigned denied); if the shared storm fetches more than one set per digest; or if
//! the RSS with 10,000 verdicts is 100 MiB or more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

#[path = "../tests/server_support/mod.rs"]
mod server_support;

#[allow(dead_code)] // shared by the admission benches; this one uses part of it
mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pod_review, registry_requests, server_files, REQUEST_TIMEOUT};
use futures::StreamExt as _;
use server_support::{free_port, http_get, KillOnDrop, TlsClient};
use vouch_attest::cache::{CacheConfig, VerdictCache, VerdictKey};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::RegistryClient;
use vouch_attest::verify::{Facts, SignatureFacts, Signer, Source, Verdict};
use vouch_attest::{ArtifactRef, Digest, SigningKey};
use vouch_tests::redis_server::RedisServer;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::dev_pki::DevCa;

const REPLICAS: usize = 3;
const IMAGES: usize = 30;
const REVIEWS: usize = 300;
/// One image in this many is unsigned (denied; a verified "no" is shared too).
const UNSIGNED_EVERY: usize = 3;
/// Verdicts held for the memory figure (part 5), and the most RSS allowed with them.
const VERDICTS: usize = 10_000;
const MAX_RSS_MIB: f64 = 100.0;

/// One `vouch serve` process.
struct Replica {
    process: KillOnDrop,
    client: TlsClient,
    health: SocketAddr,
}

/// Where the servers' files are.
struct Files<'a> {
    dir: &'a Path,
    cert: &'a vouch_webhooks::server::tls::CertPaths,
    policies: &'a Path,
    host: &'a str,
    ca: &'a DevCa,
}

async fn start_replicas(files: &Files<'_>, name: &str, shared: Option<(&str, &Path)>) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for r in 0..REPLICAS {
        let (https_port, health_port) = (free_port(), free_port());
        let log = files.dir.join(format!("{name}-{r}.log"));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"));
        command
            .args(["serve", "--kube=false", "--insecure-ignore-tlog", "--no-match", "deny"])
            .arg("--tls-cert")
            .arg(&files.cert.cert)
            .arg("--tls-key")
            .arg(&files.cert.key)
            .arg("--policy-dir")
            .arg(files.policies)
            .args(["--insecure-registry", files.host])
            .args(["--listen", &format!("127.0.0.1:{https_port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .env("RUST_LOG", "warn")
            .env_remove("VOUCH_SHARED_CACHE")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some((url, key)) = shared {
            // 250ms, not the default 100ms: this machine's two cores run three debug-build replicas, the
            // registry, Redis and 300 TLS handshakes at once, and a look-up whose Redis call times out
            // verifies on its own (one more fetch set).
            command
                .args(["--shared-cache", url, "--shared-cache-timeout", "250ms"])
                .arg("--shared-cache-key-file")
                .arg(key);
        }
        let process = KillOnDrop(command.spawn().unwrap());
        let health = SocketAddr::from((Ipv4Addr::LOCALHOST, health_port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http_get(health, "/readyz").await, Ok((200, _))) {
            assert!(Instant::now() < deadline, "not ready; log:\n{}", std::fs::read_to_string(&log).unwrap());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let client = TlsClient::new(files.ca.cert_der(), SocketAddr::from((Ipv4Addr::LOCALHOST, https_port)));
        replicas.push(Replica { process, client, health });
    }
    replicas
}

/// Push `n` images `demo/<prefix><i>` by digest; 1 in [`UNSIGNED_EVERY`] left unsigned.
async fn push_images(
    client: &RegistryClient,
    host: &str,
    key: &SigningKey,
    prefix: &str,
) -> Vec<(String, bool)> {
    let jobs = (0..IMAGES).map(|i| async move {
        let repository = format!("demo/{prefix}{i}");
        let r = push_demo_image(client, host, &repository, "1.0", format!("{prefix} {i}\n").as_bytes())
            .await
            .unwrap();
        let signed = i % UNSIGNED_EVERY != UNSIGNED_EVERY - 1;
        if signed {
            sign_image_with_key(client, &r, key, BTreeMap::new()).await.unwrap();
        }
        (i, format!("{host}/{repository}@{}", r.digest().unwrap()), signed)
    });
    let mut done: Vec<_> = futures::stream::iter(jobs).buffer_unordered(8).collect().await;
    done.sort_by_key(|d| d.0);
    done.into_iter().map(|(_, r, s)| (r, s)).collect()
}

/// The answer to one review, or why it failed.
async fn review(client: &TlsClient, body: &[u8], allowed: bool) -> Result<(), String> {
    let (r, _) = tokio::time::timeout(REQUEST_TIMEOUT, client.post("/validate", body))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("transport: {e}"))?;
    if r.status != 200 {
        return Err(format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    match v["response"]["allowed"].as_bool() {
        Some(a) if a == allowed => Ok(()),
        _ => Err(format!("expected allowed={allowed}: {v}")),
    }
}

/// What one storm measured.
struct Storm {
    elapsed: Duration,
    registry_requests: usize,
    failures: Vec<String>,
}

/// [`REVIEWS`] concurrent reviews, review `i` naming image `i % IMAGES` on replica `(i / IMAGES) % REPLICAS`
/// (so every image is reviewed on every replica); `midway` runs once a third of the answers are in.
async fn storm(
    registry: &DevRegistry,
    replicas: &[Replica],
    images: &[(String, bool)],
    template: &str,
    midway: impl FnOnce(),
) -> Storm {
    let before = registry_requests(registry).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..REVIEWS)
        .map(|i| {
            let (image, allowed) = images[i % IMAGES].clone();
            let body = template.replace("REGISTRY_HOST/demo/app:1.0", &image).into_bytes();
            let client = replicas[(i / IMAGES) % REPLICAS].client.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                let result =
                    review(&client, &body, allowed).await.map_err(|e| format!("review {i} ({image}): {e}"));
                answered.fetch_add(1, Ordering::SeqCst);
                result
            })
        })
        .collect();
    while answered.load(Ordering::SeqCst) < REVIEWS / 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    midway();
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failures.push(e);
        }
    }
    let elapsed = started.elapsed();
    Storm { elapsed, registry_requests: registry_requests(registry).await - before, failures }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// The sum over the replicas of each named counter.
async fn sums(replicas: &[Replica], names: &[&str]) -> Vec<u64> {
    let mut out = vec![0; names.len()];
    for r in replicas {
        let (status, text) = http_get(r.health, "/metrics").await.unwrap();
        assert_eq!(status, 200);
        for (o, n) in out.iter_mut().zip(names) {
            *o += metric(&text, n);
        }
    }
    out
}

/// `field` (kB) of /proc/<pid>/status.
fn proc_status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().split(' ').next()?.parse().ok()).unwrap()
}

fn print_storm(label: &str, s: &Storm, expected: usize) {
    println!(
        "  {label:<28} {:>5} reviews in {:>6.2}s  registry requests {:>5} ({:.2}x one set per digest)  failed {}",
        REVIEWS,
        s.elapsed.as_secs_f64(),
        s.registry_requests,
        s.registry_requests as f64 / expected as f64,
        s.failures.len()
    );
}

/// A verdict as a key-signed image's: one signature from a cosign tag layer.
fn verdict(n: usize, host: &str) -> Verdict {
    let digest = Digest::sha256_of(format!("image {n}").as_bytes());
    let reference: ArtifactRef = format!("{host}/demo/app{n}@{digest}").parse().unwrap();
    Verdict {
        reference,
        outcome: Ok(Facts {
            signatures: vec![SignatureFacts {
                signer: Signer::Key { fingerprint: Digest::sha256_of(b"key") },
                source: Source::CosignTag {
                    tag: format!("sha256-{}.sig", digest.hex()),
                    layer: Digest::sha256_of(format!("layer {n}").as_bytes()),
                },
                rekor_log_index: None,
                signing_time: None,
                annotations: Default::default(),
                checks: Vec::new(),
                valid_until: None,
            }],
            ..Facts::default()
        }),
    }
}

/// Part 5: this process's VmRSS before and after filling an L1 cache with [`VERDICTS`] verdicts.
async fn verdict_memory(host: &str) -> (u64, u64) {
    let cache = VerdictCache::<Verdict>::new(&CacheConfig::default());
    let before = proc_status_kib("self", "VmRSS:");
    // The authority part of a real key: key fingerprint + the verifier's scope (trust root, options).
    let authority = format!(
        "key:{}|trust-root:{}|tlog-for-keys:false|sct:true|candidates:16",
        Digest::sha256_of(b"key"),
        Digest::sha256_of(b"trusted root")
    );
    for n in 0..VERDICTS {
        let v = verdict(n, host);
        let key = VerdictKey {
            digest: v.reference.digest().unwrap().clone(),
            authority: authority.clone(),
            requirement: "signature".into(),
        };
        cache.get_or_verify(key, async { Ok::<_, ()>(v) }).await.unwrap();
    }
    cache.run_pending_tasks().await;
    assert_eq!(cache.stats().entries, VERDICTS as u64, "every verdict held");
    (before, proc_status_kib("self", "VmRSS:"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // Part 5 first, while this process holds nothing else: the RSS of a process with 10,000 verdicts.
    let (before_kib, after_kib) = verdict_memory("registry.example:5000").await;
    let registry = DevRegistry::start().await.expect("docker-registry (bash scripts/setup.sh installs it)");
    let mut redis = RedisServer::start().expect("redis-server (bash scripts/setup.sh installs it)");
    let host = registry.host();
    let client = registry.client().unwrap();
    let key = SigningKey::generate();
    let pushing = Instant::now();
    let sets = [
        push_images(&client, &host, &key, "baseline").await,
        push_images(&client, &host, &key, "shared").await,
        push_images(&client, &host, &key, "killed").await,
    ];
    let probes = push_images(&client, &host, &key, "probe").await;
    println!(
        "cold storm: {REPLICAS} vouch serve replicas, {REVIEWS} concurrent Pod CREATE reviews naming {IMAGES} distinct \
         images ({} unsigned), round-robin over the replicas; registry {host} (pushed and signed in {:.1?})",
        IMAGES / UNSIGNED_EVERY,
        pushing.elapsed()
    );

    let ca = DevCa::new("vouch-storm-ca").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, policies) = server_files(dir.path(), &ca, &host, &key);
    let hmac_key = dir.path().join("hmac.key");
    std::fs::write(&hmac_key, "storm bench shared-cache key, at least 32 bytes long\n").unwrap();
    let files = Files { dir: dir.path(), cert: &cert, policies: &policies, host: &host, ca: &ca };
    let template = pod_review("REGISTRY_HOST");

    // One fetch set per distinct digest: a fresh verification of one signed and one unsigned probe.
    let baseline = start_replicas(&files, "baseline", None).await;
    let (signed_probe, unsigned_probe) = (&probes[0], &probes[UNSIGNED_EVERY - 1]);
    assert!(signed_probe.1 && !unsigned_probe.1);
    let mut set = Vec::new();
    for (image, allowed) in [signed_probe, unsigned_probe] {
        let before = registry_requests(&registry).await;
        let body = template.replace("REGISTRY_HOST/demo/app:1.0", image).into_bytes();
        review(&baseline[0].client, &body, *allowed).await.unwrap();
        set.push(registry_requests(&registry).await - before);
    }
    let unsigned = IMAGES / UNSIGNED_EVERY;
    let expected = (IMAGES - unsigned) * set[0] + unsigned * set[1];
    println!(
        "  one fetch set per distinct digest: {} x {} (signed) + {unsigned} x {} (unsigned) = {expected} requests",
        IMAGES - unsigned,
        set[0],
        set[1]
    );

    let base = storm(&registry, &baseline, &sets[0], &template, || {}).await;
    drop(baseline);
    let shared_replicas = start_replicas(&files, "shared", Some((&redis.url(), &hmac_key))).await;
    let idle_rss: Vec<u64> =
        shared_replicas.iter().map(|r| proc_status_kib(&r.process.0.id().to_string(), "VmRSS:")).collect();
    let shared = storm(&registry, &shared_replicas, &sets[1], &template, || {}).await;
    let names = [
        "vouch_shared_cache_hits_total",
        "vouch_shared_cache_misses_total",
        "vouch_shared_cache_waits_total",
        "vouch_shared_cache_errors_total",
        "vouch_shared_cache_rejected_total",
    ];
    let after_shared = sums(&shared_replicas, &names).await;
    let killed = storm(&registry, &shared_replicas, &sets[2], &template, || {
        println!("  (redis killed at {})", chrono::Utc::now());
        redis.kill();
    })
    .await;
    let after_killed = sums(&shared_replicas, &names).await;
    let rss: Vec<u64> =
        shared_replicas.iter().map(|r| proc_status_kib(&r.process.0.id().to_string(), "VmRSS:")).collect();
    drop(shared_replicas);

    println!();
    print_storm("baseline (nothing shared)", &base, expected);
    print_storm("shared cache (redis)", &shared, expected);
    print_storm("redis killed after 1/3", &killed, expected);
    println!(
        "  shared/baseline registry requests: {:.2}",
        shared.registry_requests as f64 / base.registry_requests as f64
    );
    println!(
        "  shared storm, summed over replicas: shared-cache hits {} misses {} waits {} errors {} rejected {}",
        after_shared[0], after_shared[1], after_shared[2], after_shared[3], after_shared[4]
    );
    let delta: Vec<u64> = after_killed.iter().zip(&after_shared).map(|(a, b)| a - b).collect();
    println!(
        "  killed storm, summed over replicas: shared-cache hits {} misses {} waits {} errors {} rejected {}",
        delta[0], delta[1], delta[2], delta[3], delta[4]
    );

    let per_verdict = (after_kib.saturating_sub(before_kib) * 1024) as f64 / VERDICTS as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (idle_mib, replica_mib) =
        (mib(idle_rss.iter().copied().max().unwrap_or(0)), mib(rss.iter().copied().max().unwrap_or(0)));
    let estimate = replica_mib + mib(after_kib.saturating_sub(before_kib));
    println!("\nmemory with {VERDICTS} cached verdicts (key-signed, one signature each):");
    println!(
        "  a process holding them (this bench, before anything else): VmRSS {:.1} MiB before filling, {:.1} MiB \
         after (+{:.1} MiB, about {per_verdict:.0} bytes a verdict; limit {MAX_RSS_MIB} MiB)",
        mib(before_kib),
        mib(after_kib),
        mib(after_kib.saturating_sub(before_kib))
    );
    println!(
        "  vouch serve replica ({}): VmRSS {idle_mib:.1} MiB ready, {replica_mib:.1} MiB after the storms (largest of \
         {REPLICAS}); plus the {VERDICTS} verdicts: about {estimate:.1} MiB",
        if cfg!(debug_assertions) { "debug build" } else { "release build" }
    );

    let mut failed = Vec::new();
    for (label, s) in [("baseline", &base), ("shared", &shared), ("killed", &killed)] {
        for f in s.failures.iter().take(5) {
            failed.push(format!("{label}: {f}"));
        }
    }
    if shared.registry_requests > expected {
        failed.push(format!(
            "the shared storm made {} registry requests, more than one fetch set per digest ({expected})",
            shared.registry_requests
        ));
    }
    if after_shared[3] + after_shared[4] > 0 {
        let log = std::fs::read_to_string(dir.path().join("shared-0.log")).unwrap_or_default();
        let said: Vec<&str> = log.lines().filter(|l| l.contains("shared cache")).take(3).collect();
        failed.push(format!(
            "shared-cache errors or rejected entries while Redis was up; replica 0 said: {said:?}"
        ));
    }
    if mib(after_kib) >= MAX_RSS_MIB {
        failed.push(format!("RSS with {VERDICTS} verdicts reaches {MAX_RSS_MIB} MiB"));
    }
    for f in &failed {
        eprintln!("FAIL: {f}");
    }
    assert!(failed.is_empty(), "{} failure(s)", failed.len());
}
