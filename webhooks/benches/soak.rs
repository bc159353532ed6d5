//! Soak: the real `vouch serve` binary under steady admission load, against a real registry on loopback.
//!
//! `cargo bench -p vouch-webhooks --bench soak` runs for 30 minutes (`VOUCH_SOAK_SECONDS`, default 1800;
//! 4 when run by `cargo test --all-targets`). It pushes and signs a hot set of images and a larger churning
//! set (more distinct digests than `--cache-capacity`, some unsigned), starts `vouch serve` as a child
//! process over TLS, and sends Pod CREATE reviews at a fixed rate (`VOUCH_SOAK_RATE`, default 200/s) over
//! kept-alive connections: 4 in 5 name a hot image (cached), 1 in 5 the next image of the churning set
//! (mostly evicted since its last turn). Every `VOUCH_SOAK_SAMPLE_SECONDS` (default 60) it prints a sample:
//! throughput, p50/p99 latency, the server's RSS (`/proc/<pid>/status`), open descriptors, verdict cache hit
//! rate, entries and evictions and registry calls per second (the server's `/metrics`), and the load average.
//!
//! Before and after the soak, a same-run baseline: the hot path (a cached image, closed loop) of `vouch serve`
//! next to a bare axum + rustls server that reads, parses and answers each review for its uid, in rounds of
//! alternating order (`VOUCH_BENCH_ROUNDS`, default 5; 2 under `cargo test`), medians and ratio of medians,
//! so figures compare across noisy runs. Every review sent is the ~9 KB Pod CREATE of
//! [`common::pod_review`] naming one image or another.
//!
//! Exit 1 on any failed request (transport error, timeout, non-200, or a decision other than expected:
//! signed images allowed, unsigned denied), if no eviction happened, if the server does not exit 0 on
//! SIGTERM, or if RSS grew by more than [`RSS_GROWTH_LIMIT_KIB`] from the first sample after the cache
//! filled to the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

#[path = "../tests/server_support/mod.rs"]
mod server_support;

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    assert_allowed, bare_server, compare, micros, percentile_ms, pod_review, registry_requests, rounds,
    server_files, REQUEST_TIMEOUT,
};
use futures::StreamExt as _;
use server_support::{free_port, http_get, Conn, KillOnDrop, TlsClient};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::RegistryClient;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::dev_pki::DevCa;

/// RSS may grow at most this much (KiB) from the first sample after the cache filled to the end.
///
/// Why 16 MiB: once the cache is full, what the server holds is bounded (verdicts: `--cache-capacity`
/// entries of about 1 KiB, tags the same count, connections a fixed number), so growth after that point
/// is allocator noise or a leak. The allocator's noise seen in our runs is a few MiB (docs/dev/performance.md);
/// a leak of 48 bytes per review over the default run (360,000 reviews) would be 16 MiB and fail.
const RSS_GROWTH_LIMIT_KIB: u64 = 16 * 1024;
/// Kept-alive connections of the baseline measurement.
const BASELINE_CONNECTIONS: usize = 8;
/// One review in this many names an image of the churning set.
const CHURN_EVERY: u64 = 5;
/// One churning image in this many is unsigned (denied; a failure verdict, cached for a shorter time).
const UNSIGNED_EVERY: usize = 10;

/// What a run does; `cargo bench` defaults, a short run under `cargo test`, `VOUCH_SOAK_*` overrides.
#[derive(Debug, Clone)]
struct Settings {
    seconds: f64,
    sample: f64,
    rate: f64,
    connections: usize,
    capacity: usize,
    hot: usize,
    churn: usize,
    baseline: f64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn settings() -> Settings {
    let bench = std::env::args().any(|a| a == "--bench");
    let capacity = env_or("VOUCH_SOAK_CACHE_CAPACITY", if bench { 512 } else { 8usize }).max(1);
    Settings {
        seconds: env_or("VOUCH_SOAK_SECONDS", if bench { 1800.0f64 } else { 4.0 }).max(1.0),
        sample: env_or("VOUCH_SOAK_SAMPLE_SECONDS", if bench { 60.0f64 } else { 1.0 }).max(0.5),
        rate: env_or("VOUCH_SOAK_RATE", 200.0f64).max(1.0),
        connections: env_or("VOUCH_SOAK_CONNECTIONS", 16usize).max(1),
        capacity,
        hot: env_or("VOUCH_SOAK_HOT", if bench { 16 } else { 4usize }).clamp(1, capacity),
        // Twice the cache: every turn of the churning set finds most of it evicted.
        churn: env_or("VOUCH_SOAK_CHURN", 2 * capacity + UNSIGNED_EVERY).max(capacity + 1),
        baseline: if bench { 3.0 } else { 0.3 },
    }
}

/// One image as a Pod names it, and the decision expected.
#[derive(Debug, Clone)]
struct Image {
    reference: String,
    signed: bool,
}

/// The Pod CREATE review naming `image`.
fn review(template: &str, image: &str) -> Arc<Vec<u8>> {
    Arc::new(template.replace("REGISTRY_HOST/demo/app:1.0", image).into_bytes())
}

/// Push (and sign unless told otherwise) `n` images, 8 at a time.
async fn push_images(
    client: &RegistryClient,
    host: &str,
    key: &SigningKey,
    n: usize,
    make: impl Fn(usize) -> (String, String, bool),
) -> Vec<Image> {
    let jobs = (0..n).map(|i| {
        let (repository, tag, signed) = make(i);
        async move {
            let content = format!("{repository}:{tag} {i}\n");
            let r = push_demo_image(client, host, &repository, &tag, content.as_bytes()).await.unwrap();
            if signed {
                sign_image_with_key(client, &r, key, BTreeMap::new()).await.unwrap();
            }
            (i, r, repository, tag, signed)
        }
    });
    let mut done: Vec<_> = futures::stream::iter(jobs).buffer_unordered(8).collect().await;
    done.sort_by_key(|d| d.0);
    done.into_iter()
        .map(|(i, r, repository, tag, signed)| {
            // Half by tag (the tag cache churns too), half by digest.
            let reference = if i % 2 == 0 {
                format!("{host}/{repository}:{tag}")
            } else {
                format!("{host}/{repository}@{}", r.digest().unwrap())
            };
            Image { reference, signed }
        })
        .collect()
}

/// Which review the `g`-th request sends: the schedule is a pure function of `g`.
struct Plan {
    hot: Vec<(Arc<Vec<u8>>, bool)>,
    churn: Vec<(Arc<Vec<u8>>, bool)>,
    start: Instant,
    until: Instant,
    rate: f64,
    connections: usize,
}

impl Plan {
    /// The body, whether it must be allowed, whether it is a churning image.
    fn pick(&self, g: u64) -> (&Arc<Vec<u8>>, bool, bool) {
        if g % CHURN_EVERY == CHURN_EVERY - 1 {
            let (b, allowed) = &self.churn[((g / CHURN_EVERY) % self.churn.len() as u64) as usize];
            (b, *allowed, true)
        } else {
            let (b, allowed) = &self.hot[(g % self.hot.len() as u64) as usize];
            (b, *allowed, false)
        }
    }
}

/// What happened in one sampling interval.
#[derive(Debug, Default)]
struct Window {
    latencies_us: Vec<u32>,
    failed: u64,
    denied: u64,
    behind: u64,
}

/// One connection's share of the schedule: request `g = w + connections * n` is due at `g / rate`.
async fn drive(w: usize, plan: Arc<Plan>, client: TlsClient, window: Arc<Mutex<Window>>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut conn: Option<Conn> = None;
    for n in 0u64.. {
        let g = w as u64 + plan.connections as u64 * n;
        let due = plan.start + Duration::from_secs_f64(g as f64 / plan.rate);
        if due >= plan.until {
            break;
        }
        let late = Instant::now() > due + Duration::from_millis(100);
        tokio::time::sleep_until(due.into()).await;
        let (body, expect_allowed, _) = plan.pick(g);
        let started = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if conn.is_none() {
                conn = Some(client.connect().await?.0);
            }
            match conn.as_mut() {
                Some(c) => c.post("/validate", body).await,
                None => anyhow::bail!("no connection"),
            }
        })
        .await;
        let latency = started.elapsed();
        let outcome = match answer {
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Ok(Ok(r)) if r.status != 200 => {
                Err(format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)))
            }
            Ok(Ok(r)) => {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                match v["response"]["allowed"].as_bool() {
                    Some(a) if a == expect_allowed => Ok(a),
                    _ => Err(format!("expected allowed={expect_allowed}, got {}", v["response"])),
                }
            }
        };
        let mut win = window.lock().unwrap();
        win.latencies_us.push(micros(latency));
        win.behind += u64::from(late);
        match outcome {
            Ok(allowed) => win.denied += u64::from(!allowed),
            Err(e) => {
                win.failed += 1;
                drop(win);
                conn = None;
                if errors.len() < 5 {
                    let image = String::from_utf8_lossy(body);
                    let image = image.split("\"image\": \"").nth(1).and_then(|s| s.split('"').next());
                    errors.push(format!("{}: {e}", image.unwrap_or("?")));
                }
            }
        }
    }
    errors
}

/// A counter or gauge from OpenMetrics text (the first series with this exact name).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `field` (in kB) of /proc/<pid>/status.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)?.trim().split(' ').next()?.parse().ok())
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The server's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    hits: f64,
    misses: f64,
    registry_calls: f64,
    registry_http: f64,
    entries: Option<f64>,
    evictions: Option<f64>,
}

async fn counters(health: SocketAddr) -> Counters {
    let text = match tokio::time::timeout(REQUEST_TIMEOUT, http_get(health, "/metrics")).await {
        Ok(Ok((200, text))) => text,
        other => panic!("/metrics: {other:?}"),
    };
    Counters {
        hits: metric(&text, "vouch_verdict_cache_hits_total").unwrap_or_default(),
        misses: metric(&text, "vouch_verdict_cache_misses_total").unwrap_or_default(),
        registry_calls: metric(&text, "vouch_registry_calls_total").unwrap_or_default(),
        registry_http: metric(&text, "vouch_registry_http_requests_total").unwrap_or_default(),
        entries: metric(&text, "vouch_verdict_cache_entries"),
        evictions: metric(&text, "vouch_verdict_cache_evictions_total"),
    }
}

/// One printed line.
#[derive(Debug, Clone)]
struct Sample {
    elapsed: f64,
    reviews: usize,
    rss_kib: u64,
    filled: bool,
}

/// The hot path of `vouch serve` next to the bare server, alternating rounds; returns vouch's median
/// throughput.
async fn baseline(what: &str, bare: &TlsClient, vouch: &TlsClient, body: &Arc<Vec<u8>>, seconds: f64) -> f64 {
    println!(
        "{what}: hot path, {BASELINE_CONNECTIONS} connections, closed loop, {seconds} s per measurement, {} rounds \
         (order alternating), load {}",
        rounds(),
        load_average()
    );
    println!("  bare:  axum + rustls in the bench process, reads and parses the review, answers allowed for its uid");
    println!("  vouch: vouch serve, cached image");
    let c =
        compare(bare, vouch, body, BASELINE_CONNECTIONS, Duration::from_secs_f64(seconds), rounds()).await;
    c.print();
    c.vouch().per_second
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let s = settings();
    let registry = DevRegistry::start().await.expect("docker-registry (bash scripts/setup.sh installs it)");
    let host = registry.host();
    let client = registry.client().unwrap();
    let key = SigningKey::generate();

    let pushing = Instant::now();
    let hot = push_images(&client, &host, &key, s.hot, |i| (format!("demo/hot{i}"), "1".into(), true)).await;
    let churn = push_images(&client, &host, &key, s.churn, |i| {
        ("demo/churn".into(), format!("c{i}"), i % UNSIGNED_EVERY != UNSIGNED_EVERY - 1)
    })
    .await;
    println!(
        "soak: {} hot images, {} churning ({} unsigned), cache capacity {}, pushed and signed in {:.1?}",
        hot.len(),
        churn.len(),
        churn.iter().filter(|i| !i.signed).count(),
        s.capacity,
        pushing.elapsed()
    );

    let ca = DevCa::new("vouch-soak-ca").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, policies) = server_files(dir.path(), &ca, &host, &key);
    let (https_port, health_port) = (free_port(), free_port());
    let log = dir.path().join("vouch.log");
    let mut server = KillOnDrop(
        // VOUCH_SOAK_SERVER: another build of the binary (e.g. release, driven by this debug bench).
        std::process::Command::new(
            std::env::var("VOUCH_SOAK_SERVER").unwrap_or(env!("CARGO_BIN_EXE_vouch").into()),
        )
        .args(["serve", "--kube=false", "--insecure-ignore-tlog", "--no-match", "deny"])
        .arg("--tls-cert")
        .arg(&cert.cert)
        .arg("--tls-key")
        .arg(&cert.key)
        .arg("--policy-dir")
        .arg(&policies)
        .args(["--insecure-registry", &host])
        .args(["--cache-capacity", &s.capacity.to_string()])
        .args(["--listen", &format!("127.0.0.1:{https_port}")])
        .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
        // One log line per review at info: keep the disk out of the measurement.
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap(),
    );
    let pid = server.0.id();
    let health = SocketAddr::from((Ipv4Addr::LOCALHOST, health_port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(health, "/readyz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready; log:\n{}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let vouch = TlsClient::new(ca.cert_der(), SocketAddr::from((Ipv4Addr::LOCALHOST, https_port)));
    let (bare_addr, bare_stop) = bare_server(&ca, dir.path()).await;
    let bare = TlsClient::new(ca.cert_der(), bare_addr);

    let template = pod_review("REGISTRY_HOST");
    let to_reviews = |images: &[Image]| -> Vec<(Arc<Vec<u8>>, bool)> {
        images.iter().map(|i| (review(&template, &i.reference), i.signed)).collect()
    };
    let (hot_reviews, churn_reviews) = (to_reviews(&hot), to_reviews(&churn));
    // Warm the hot set (and prove the setup decides as expected before measuring anything).
    for (body, allowed) in &hot_reviews {
        let (r, _) = vouch.post("/validate", body).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["response"]["allowed"].as_bool(), Some(*allowed), "{v}");
    }
    assert_allowed(&bare, &hot_reviews[0].0).await;
    let hot_before = baseline("before", &bare, &vouch, &hot_reviews[0].0, s.baseline).await;

    let registry_before = registry_requests(&registry).await;
    let start = Instant::now() + Duration::from_millis(200);
    let plan = Arc::new(Plan {
        hot: hot_reviews.clone(),
        churn: churn_reviews,
        start,
        until: start + Duration::from_secs_f64(s.seconds),
        rate: s.rate,
        connections: s.connections,
    });
    println!(
        "\nsteady load: {:.0} reviews/s on {} connections for {} s, 1 in {CHURN_EVERY} churning; samples every {} s",
        s.rate, s.connections, s.seconds, s.sample
    );
    println!(
        "| elapsed s | reviews/s | p50 ms | p99 ms | max ms | RSS MiB | fds | cache hit % | entries | evictions | registry calls/s | load avg |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let window = Arc::new(Mutex::new(Window::default()));
    let workers: Vec<_> = (0..s.connections)
        .map(|w| tokio::spawn(drive(w, plan.clone(), vouch.clone(), window.clone())))
        .collect();

    let first = counters(health).await;
    let mut last = (start, first);
    let mut samples: Vec<Sample> = Vec::new();
    let (mut all_latencies, mut failed, mut denied, mut behind) = (Vec::<u32>::new(), 0u64, 0u64, 0u64);
    let mut k = 1u32;
    let mut finished = false;
    while !finished {
        let at = start + Duration::from_secs_f64(s.sample * f64::from(k));
        k += 1;
        if at + Duration::from_secs_f64(s.sample / 2.0) >= plan.until {
            // The last sample is taken once every review has its answer.
            tokio::time::sleep_until(plan.until.into()).await;
            finished = true;
        } else {
            tokio::time::sleep_until(at.into()).await;
        }
        if finished {
            while !workers.iter().all(|w| w.is_finished()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let now = Instant::now();
        let mut win = std::mem::take(&mut *window.lock().unwrap());
        let c = counters(health).await;
        let rss_kib = proc_status(pid, "VmRSS:").unwrap_or_default();
        let interval = now.duration_since(last.0).as_secs_f64();
        win.latencies_us.sort_unstable();
        let lookups = (c.hits - last.1.hits) + (c.misses - last.1.misses);
        let hit_rate = if lookups > 0.0 { 100.0 * (c.hits - last.1.hits) / lookups } else { 0.0 };
        let filled = c.misses >= s.capacity as f64;
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        println!(
            "| {:.0} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {:.1} | {} | {} | {:.1} | {} |",
            now.duration_since(start).as_secs_f64(),
            win.latencies_us.len() as f64 / interval,
            percentile_ms(&win.latencies_us, 0.50),
            percentile_ms(&win.latencies_us, 0.99),
            percentile_ms(&win.latencies_us, 1.0),
            rss_kib as f64 / 1024.0,
            open_fds(pid),
            hit_rate,
            show(c.entries),
            show(c.evictions),
            (c.registry_calls - last.1.registry_calls) / interval,
            load_average(),
        );
        samples.push(Sample {
            elapsed: now.duration_since(start).as_secs_f64(),
            reviews: win.latencies_us.len(),
            rss_kib,
            filled,
        });
        failed += win.failed;
        denied += win.denied;
        behind += win.behind;
        all_latencies.extend_from_slice(&win.latencies_us);
        last = (now, c);
    }
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.unwrap());
    }
    let took = last.0.duration_since(start).as_secs_f64();
    let end = last.1;
    all_latencies.sort_unstable();
    let reviews = all_latencies.len();
    let lookups = (end.hits - first.hits) + (end.misses - first.misses);

    let hot_after = baseline("\nafter", &bare, &vouch, &hot_reviews[0].0, s.baseline).await;
    let _ = bare_stop.send(());

    // SIGTERM: the server drains and exits 0.
    let term = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let registry_log = registry_requests(&registry).await - registry_before;

    let filled_at = samples.iter().position(|x| x.filled);
    let (rss_filled, rss_end) = match filled_at {
        Some(i) => (samples[i].rss_kib, samples.last().map_or(0, |x| x.rss_kib)),
        None => (0, 0),
    };
    let rss_max = samples.iter().map(|x| x.rss_kib).max().unwrap_or_default();
    let growth = rss_end.saturating_sub(rss_filled);
    let after_fill: usize = filled_at.map_or(0, |i| samples[i + 1..].iter().map(|x| x.reviews).sum());
    println!(
        "\ntotals: {reviews} reviews in {took:.1} s ({:.1}/s, target {:.0}/s; {behind} sent >100 ms late), \
         {denied} denied as expected (unsigned), {failed} failed",
        reviews as f64 / took,
        s.rate
    );
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms",
        percentile_ms(&all_latencies, 0.50),
        percentile_ms(&all_latencies, 0.99),
        percentile_ms(&all_latencies, 0.999),
        percentile_ms(&all_latencies, 1.0)
    );
    println!(
        "verdict cache: {:.1} % hits over {lookups:.0} look-ups ({:.0} misses), {} evictions, {} entries at the end \
         (capacity {})",
        100.0 * (end.hits - first.hits) / lookups.max(1.0),
        end.misses - first.misses,
        end.evictions.map_or("?".into(), |e| format!("{e:.0}")),
        end.entries.map_or("?".into(), |e| format!("{e:.0}")),
        s.capacity
    );
    println!(
        "registry: {:.0} calls by vouch ({:.1}/s) in {:.0} HTTP requests; the registry's access log: \
         {registry_log} GET/HEAD",
        end.registry_calls - first.registry_calls,
        (end.registry_calls - first.registry_calls) / took,
        end.registry_http - first.registry_http
    );
    println!(
        "hot path before/after the soak (median of the rounds): {hot_before:.0} / {hot_after:.0} reviews/s ({:+.1} %)",
        100.0 * (hot_after / hot_before - 1.0)
    );
    match filled_at {
        Some(i) => println!(
            "RSS: {:.1} MiB at the first sample after the cache filled ({:.0} s), {:.1} MiB at the end, max {:.1} MiB; \
             growth {:.2} MiB over {after_fill} reviews ({:.1} bytes/review); limit {} MiB",
            rss_filled as f64 / 1024.0,
            samples[i].elapsed,
            rss_end as f64 / 1024.0,
            rss_max as f64 / 1024.0,
            growth as f64 / 1024.0,
            growth as f64 * 1024.0 / after_fill.max(1) as f64,
            RSS_GROWTH_LIMIT_KIB / 1024
        ),
        None => println!("RSS: the cache never filled"),
    }
    println!(
        "server exit on SIGTERM: {}; load average at the end: {}",
        exit.map_or("still running after 30 s".into(), |e| e.to_string()),
        load_average()
    );

    let mut problems = Vec::new();
    if failed > 0 || reviews == 0 {
        problems.push(format!("{failed} failed reviews of {reviews}: {}", errors.join("; ")));
    }
    if filled_at.is_none() {
        problems.push("the cache never filled".into());
    }
    // Without eviction, each image is verified once per TTL at most: more misses than that can only come
    // from entries that left the cache for size.
    let ttl = vouch_attest::cache::CacheConfig::default();
    let turns = |ttl: Duration| 1.0 + (took / ttl.as_secs_f64()).ceil();
    let unsigned = churn.iter().filter(|i| !i.signed).count() as f64;
    let without_eviction =
        (hot.len() + churn.len()) as f64 * turns(ttl.success_ttl) + unsigned * turns(ttl.failure_ttl);
    if end.evictions.map_or(end.misses <= without_eviction, |e| e < 1.0) {
        problems.push(format!(
            "no eviction seen ({:.0} misses; at most {without_eviction:.0} without eviction)",
            end.misses
        ));
    }
    if growth > RSS_GROWTH_LIMIT_KIB {
        problems
            .push(format!("RSS grew {growth} KiB after the cache filled (limit {RSS_GROWTH_LIMIT_KIB} KiB)"));
    }
    if !term.success() || !exit.is_some_and(|e| e.success()) {
        problems.push(format!("vouch serve did not exit 0 on SIGTERM: {exit:?}"));
    }
    if problems.is_empty() {
        println!("PASS: no failed review, evictions seen, RSS flat (growth below the limit)");
    } else {
        for p in &problems {
            eprintln!("FAIL: {p}");
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<_> = text.lines().rev().take(20).collect();
        eprintln!("server log (last lines):\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        std::process::exit(1);
    }
}
