//! The scan benchmark: `cargo bench -p vouch-webhooks --bench scan` prints
//! - `vouch scan` (the release binary, as an auditor runs it) over a `kubectl get pods -A -o json` dump of
//!   10,000 running Pods naming 300 distinct images (20 unsigned) on the loopback registry: wall time, peak
//!   RSS (VmHWM of the process, polled every 20 ms; must stay under 200 MiB), and registry requests from
//!   the registry's access log, which must equal one fetch set per distinct digest (a fetch set measured
//!   by scanning one Pod of a fresh signed, and of a fresh unsigned, image). Exit 1 otherwise;
//! - admission while the in-cluster scanner's work runs in the same process (the webhook's engine and
//!   verdict cache, the cache emptied before each scan so the scan is cold): throughput and latency of
//!   `/validate` for a cached signed Pod with no scan, with a scan paced at the default 20 registry
//!   requests/s, and with an unpaced scan, in rounds (order rotating), medians and ratios.
//!
//! `VOUCH_BENCH_SECONDS` sets the time per measurement (default 3; 0.3 when run by `cargo test`);
//! `VOUCH_BENCH_SCAN_PODS`, `_IMAGES`, `_UNSIGNED` the dump (default 10000/300/20; 300/30/2 under
//! `cargo test`); `VOUCH_BENCH_ROUNDS` the rounds (default 5; 2 under `cargo test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

#[path = "../tests/server_support/mod.rs"]
mod server_support;

#[allow(dead_code)] // shared by the admission benches; this one uses part of it
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    assert_allowed, closed_loop, median, pod_review, registry_requests, rounds, server_files, Figures,
};
use serde_json::{json, Value};
use server_support::TlsClient;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::{paced, Pacer};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::manifests::ManifestReader;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::scan::{ScanOptions, Scanner};
use vouch_webhooks::server::config::{ServeConfig, DEFAULT_SCAN_MAX_REGISTRY_RPS};
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::run::Server;

/// Kept-alive connections of the admission load.
const CONCURRENCY: usize = 8;
/// Most peak RSS of `vouch scan` over the full dump.
const MAX_RSS_MIB: f64 = 200.0;

fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn setting(name: &str, full: usize, test: usize) -> usize {
    let default = if self::full() { full } else { test };
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn seconds() -> Duration {
    let default = if full() { 3.0 } else { 0.3 };
    let s = std::env::var("VOUCH_BENCH_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(default);
    Duration::from_secs_f64(s.max(0.1))
}

/// A running Pod naming `image` and running `digest`.
fn running_pod(i: usize, image: &ArtifactRef, namespaces: usize) -> Value {
    let reference = image.to_string();
    let spec_image = reference.split('@').next().unwrap().to_owned();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": format!("ns-{}", i % namespaces), "uid": format!("uid-{i}")},
        "spec": {"containers": [{"name": "app", "image": spec_image}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "image": spec_image, "ready": true, "restartCount": 0,
            "imageID": format!("{}@{}", image.repository_name(), image.digest().unwrap()),
        }]}
    })
}

fn write_list(path: &Path, pods: Vec<Value>) {
    let list =
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": pods});
    std::fs::write(path, serde_json::to_vec(&list).unwrap()).unwrap();
}

/// What one `vouch scan` run measured.
struct Run {
    elapsed: Duration,
    peak_rss_kib: u64,
    report: Value,
}

/// `vouch scan` with `args`, polling its VmHWM until it exits.
fn vouch_scan(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .arg("scan")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut { stdout }, &mut out).unwrap();
        out
    });
    let mut peak_rss_kib = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_rss_kib = peak_rss_kib.max(hwm.unwrap_or(0));
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let stdout = reader.join().unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "vouch scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run { elapsed, peak_rss_kib, report: serde_json::from_slice(&stdout).unwrap() }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let (pods, images, unsigned) = (
        setting("VOUCH_BENCH_SCAN_PODS", 10_000, 300),
        setting("VOUCH_BENCH_SCAN_IMAGES", 300, 30),
        setting("VOUCH_BENCH_SCAN_UNSIGNED", 20, 2),
    );
    assert!(unsigned <= images && images > 0);
    let registry = DevRegistry::start().await.expect("docker-registry (bash scripts/setup.sh installs it)");
    let host = registry.host();
    let client = registry.client().unwrap();
    let key = SigningKey::generate();
    let started = Instant::now();
    let mut refs = Vec::new();
    for i in 0..images {
        let r = push_demo_image(
            &client,
            &host,
            &format!("demo/scan{i}"),
            "1.0",
            format!("scan {i}\n").as_bytes(),
        )
        .await
        .unwrap();
        if i >= unsigned {
            sign_image_with_key(&client, &r, &key, BTreeMap::new()).await.unwrap();
        }
        refs.push(r);
    }
    let probe_signed =
        push_demo_image(&client, &host, "demo/probe-signed", "1.0", b"probe signed\n").await.unwrap();
    sign_image_with_key(&client, &probe_signed, &key, BTreeMap::new()).await.unwrap();
    let probe_unsigned =
        push_demo_image(&client, &host, "demo/probe-unsigned", "1.0", b"probe\n").await.unwrap();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();
    println!(
        "vouch scan benchmark: {pods} running Pods over {images} images ({unsigned} unsigned), registry {host} \
         (pushed and signed in {:.1}s)",
        started.elapsed().as_secs_f64()
    );

    let ca = DevCa::new("vouch-bench-ca").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, policies) = server_files(dir.path(), &ca, &host, &key);
    let namespaces = 20;
    let dump = dir.path().join("pods.json");
    write_list(&dump, (0..pods).map(|i| running_pod(i, &refs[i % images], namespaces)).collect());
    let (probe_s, probe_u) = (dir.path().join("probe-signed.json"), dir.path().join("probe-unsigned.json"));
    write_list(&probe_s, vec![running_pod(0, &probe_signed, 1)]);
    write_list(&probe_u, vec![running_pod(0, &probe_unsigned, 1)]);
    let policy_dir = policies.to_string_lossy().into_owned();
    let scan_args = |file: &Path| -> Vec<String> {
        ["-f", &file.to_string_lossy(), "--policy", &policy_dir, "--insecure-registry", &host, "-o", "json"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    };
    let run = |file: &Path| {
        let args = scan_args(file);
        vouch_scan(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // One fetch set per kind of image: a fresh process scanning one Pod.
    let before = registry_requests(&registry).await;
    run(&probe_s);
    let set_signed = registry_requests(&registry).await - before;
    let before = registry_requests(&registry).await;
    run(&probe_u);
    let set_unsigned = registry_requests(&registry).await - before;

    let before = registry_requests(&registry).await;
    let scan = run(&dump);
    let requests = registry_requests(&registry).await - before;
    let expected = (images - unsigned) * set_signed + unsigned * set_unsigned;
    let totals = &scan.report["totals"];
    let peak_mib = scan.peak_rss_kib as f64 / 1024.0;
    println!(
        "\nvouch scan -f pods.json (the built binary, {} bytes of JSON):",
        std::fs::metadata(&dump).unwrap().len()
    );
    println!(
        "  wall time {:.2}s ({:.0} Pods/s); peak RSS {peak_mib:.1} MiB (limit {MAX_RSS_MIB} MiB)",
        scan.elapsed.as_secs_f64(),
        pods as f64 / scan.elapsed.as_secs_f64()
    );
    println!(
        "  registry requests {requests}: expected one fetch set per distinct digest = {} x {set_signed} (signed) + \
         {unsigned} x {set_unsigned} (unsigned) = {expected}",
        images - unsigned
    );
    println!(
        "  outcomes: {} workloads, {} compliant, {} non-compliant, {} unverified",
        totals["workloads"], totals["compliant"], totals["nonCompliant"], totals["unverified"]
    );
    let failing_pods = (0..pods).filter(|i| i % images < unsigned).count();
    assert_eq!(totals["workloads"], pods, "every Pod judged");
    assert_eq!(totals["nonCompliant"], failing_pods, "exactly the Pods running unsigned images fail");
    assert_eq!(totals["unverified"], 0);

    // Admission while a scan runs in the same process (as the in-cluster scanner does).
    let server = Server::prepare(ServeConfig {
        insecure_registries: vec![host.clone()],
        insecure_ignore_tlog: true,
        shutdown_grace: Duration::from_secs(2),
        ..ServeConfig::loopback(cert, Some(policies.clone()))
    })
    .await
    .unwrap();
    let engine = server.engine().clone();
    let vouch = TlsClient::new(ca.cert_der(), server.https_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let review = Arc::new(pod_review(&host).into_bytes());
    assert_allowed(&vouch, &review).await;
    let objects = Arc::new(
        ManifestReader::read_paths(&[dump.to_string_lossy().into_owned()], std::io::empty()).unwrap(),
    );
    let scanner = Scanner::new(engine.clone());
    // A cold scan in the background, paced at `rps` (None: unpaced), while the load runs.
    let measure = |rps: Option<u32>| {
        let (scanner, objects, engine, vouch, review) =
            (scanner.clone(), objects.clone(), engine.clone(), vouch.clone(), review.clone());
        async move {
            let scan = rps.map(|rps| {
                engine.verifier().invalidate_cache();
                let pacer = std::num::NonZeroU32::new(rps).map(|n| Arc::new(Pacer::new(n)));
                tokio::spawn(async move {
                    let options = ScanOptions::default();
                    let work = scanner.scan(&objects, &options);
                    match pacer {
                        Some(p) => paced(p, work).await.len(),
                        None => work.await.len(),
                    }
                })
            });
            // The one cached review is verified again after the cache was emptied: not counted.
            assert_allowed(&vouch, &review).await;
            let figures = closed_loop(&vouch, review, CONCURRENCY, seconds()).await;
            let done = scan.map(|t| {
                let finished = t.is_finished();
                t.abort();
                finished
            });
            (figures, done)
        }
    };
    let unpaced_rps = u32::MAX;
    println!(
        "\nadmission during a cold scan of the same {pods} Pods in the same process ({CONCURRENCY} TLS connections, \
         {:?} per measurement, {} rounds, order rotating):",
        seconds(),
        rounds()
    );
    println!(
        "  round  {:>24} {:>30} {:>30}",
        "no scan rev/s p50 p99", "paced (20 req/s) rev/s p50 p99", "unpaced rev/s p50 p99"
    );
    let mut table: Vec<[Figures; 3]> = Vec::new();
    let mut finished_early = [0usize; 2];
    for r in 0..rounds() {
        let mut row = [None; 3];
        for k in 0..3 {
            let which = (r + k) % 3;
            let rps = match which {
                0 => None,
                1 => Some(DEFAULT_SCAN_MAX_REGISTRY_RPS),
                _ => Some(unpaced_rps),
            };
            let (figures, done) = measure(rps).await;
            if done == Some(true) {
                finished_early[which - 1] += 1;
            }
            row[which] = Some(figures);
        }
        let row = row.map(Option::unwrap);
        let cell = |f: &Figures| format!("{:>10.0} {:>7.3} {:>7.3}", f.per_second, f.p50_ms, f.p99_ms);
        println!("  {:<6} {:>24} {:>30} {:>30}", r + 1, cell(&row[0]), cell(&row[1]), cell(&row[2]));
        table.push(row);
    }
    let med = |k: usize, f: fn(&Figures) -> f64| median(table.iter().map(|row| f(&row[k])).collect());
    let per_s = |f: &Figures| f.per_second;
    let p99 = |f: &Figures| f.p99_ms;
    println!(
        "  median rev/s: no scan {:.0}, paced {:.0} ({:.2}x), unpaced {:.0} ({:.2}x); median p99 ms: {:.3}, {:.3}, {:.3}",
        med(0, per_s),
        med(1, per_s),
        med(1, per_s) / med(0, per_s),
        med(2, per_s),
        med(2, per_s) / med(0, per_s),
        med(0, p99),
        med(1, p99),
        med(2, p99)
    );
    println!(
        "  scans that finished within the measurement: paced {}/{}, unpaced {}/{} (a finished scan leaves the rest \
         of the measurement without load)",
        finished_early[0],
        rounds(),
        finished_early[1],
        rounds()
    );
    let _ = stop.send(());
    running.await.unwrap();

    let mut failed = false;
    if requests != expected {
        println!(
            "FAIL: {requests} registry requests, expected {expected} (one fetch set per distinct digest)"
        );
        failed = true;
    }
    if full() && peak_mib > MAX_RSS_MIB {
        println!("FAIL: peak RSS {peak_mib:.1} MiB over {MAX_RSS_MIB} MiB");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
    println!(
        "ok: one fetch set per distinct digest{}",
        if full() { ", peak RSS under the limit" } else { "" }
    );
}
