//! `vouch check` over a directory of many manifests against a real registry on loopback.
//!
//! `cargo bench -p vouch-webhooks --bench check` writes 1,000 manifests (Deployments, CronJobs, Pods, Lists
//! and multi-document files with ConfigMaps, in nested directories) naming 50 distinct images signed with
//! our own code, then checks the directory in rounds, the order alternating, two ways:
//! - binary: the `vouch` binary as CI runs it, wall time from spawn to exit (process and runtime start,
//!   flags, reading the manifests, loading and compiling the policies, verifying, rendering and writing the
//!   JSON report), and the registry requests it caused (the registry's access log, let settle);
//! - in-process: the same steps in this process, timed from parsing the flags to the rendered report
//!   (`prepare`, `evaluate_objects`, `CheckReport` rendered as JSON), each step's time, and the verifier's
//!   counters. No process start, no runtime start, no write to stdout: the difference from the binary's
//!   wall time is about those.
//!
//! Each round's figures, then the medians. Each image must be verified exactly once per check: its
//! signature tag fetched once by each binary run, one verification per image in-process. Exit 1 otherwise,
//! or when any object is not allowed.
//!
//! Under `cargo test` (no `--bench`), a quick pass: 100 manifests, 10 images, one round.
//! `VOUCH_BENCH_ROUNDS` sets the rounds (default 5 under `cargo bench`, 1 under `cargo test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser as _;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_webhooks::cli::check::{evaluate_objects, prepare, CheckArgs, CheckReport};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: CheckArgs,
}

/// One manifest file naming `image` (the shape varies with `i`).
fn manifest(i: usize, image: &str) -> String {
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: team-{t}\nspec:\n  selector:\n    matchLabels: {{app: app-{i}}}\n  template:\n    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      containers:\n        - name: app\n          image: {image}\n",
        t = i % 7
    );
    match i % 4 {
        0 => deployment,
        1 => format!(
            "# Source: chart/templates/all.yaml\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg-{i}}}\ndata: {{k: v}}\n---\n{deployment}---\n"
        ),
        2 => format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: job-{i}}}\nspec:\n  schedule: '@hourly'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: job, image: {image}}}]\n"
        ),
        _ => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i}")},
             "spec": {"containers": [{"name": "app", "image": image}]}}
        ]})
        .to_string(),
    }
}

fn file_name(i: usize) -> String {
    let ext = if i % 4 == 3 { "json" } else { "yaml" };
    format!("team-{}/svc-{}/m-{i:04}.{ext}", i % 7, i % 13)
}

fn write_manifests(dir: &Path, count: usize, images: &[String]) {
    for i in 0..count {
        let path = dir.join(file_name(i));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, manifest(i, &images[i % images.len()])).unwrap();
    }
}

/// Requests under `/v2/` in the registry's access log, once it has settled.
async fn registry_requests(registry: &DevRegistry) -> usize {
    assert!(registry.settle().await, "the registry's log kept growing");
    ["GET", "HEAD", "POST", "PUT", "PATCH"].iter().map(|m| registry.count_requests(m, "/v2/")).sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of `values` (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// What one run of the binary measured.
struct BinaryRun {
    wall: Duration,
    requests: usize,
    summary: serde_json::Value,
}

/// What one in-process check measured, step by step.
struct InProcessRun {
    /// Flags parsed, manifests read, policies loaded and compiled, verifier built.
    prepare: Duration,
    /// Every object decided.
    evaluate: Duration,
    /// The report built and rendered as JSON.
    report: Duration,
    cache: vouch_attest::cache::CacheStats,
    calls: vouch_attest::registry::RegistryStats,
    denied: usize,
}

impl InProcessRun {
    fn total(&self) -> Duration {
        self.prepare + self.evaluate + self.report
    }
}

/// `vouch <args>` as a child process; checks each signature tag in `signed` was fetched exactly once.
async fn run_binary(
    registry: &DevRegistry,
    args: &[String],
    signed: &[ArtifactRef],
    failed: &mut Vec<String>,
) -> BinaryRun {
    let signature_tag = |r: &ArtifactRef| {
        format!("/manifests/sha256-{}.sig", r.digest().unwrap().to_string().replace("sha256:", ""))
    };
    let before = registry_requests(registry).await;
    let fetched_before: Vec<usize> =
        signed.iter().map(|r| registry.count_requests("GET", &signature_tag(r))).collect();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap();
    let wall = started.elapsed();
    let requests = registry_requests(registry).await - before;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for (r, before) in signed.iter().zip(fetched_before) {
        let fetched = registry.count_requests("GET", &signature_tag(r)) - before;
        if fetched != 1 {
            failed.push(format!("{r}: signature tag fetched {fetched} times by one run of the binary"));
        }
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    BinaryRun { wall, requests, summary: report["summary"].clone() }
}

/// The binary's steps in this process, from the flags to the rendered JSON report.
async fn run_in_process(args: &[String]) -> InProcessRun {
    let started = Instant::now();
    let cli = Cli::try_parse_from(args).unwrap();
    let prepared = prepare(&cli.args).unwrap();
    let prepare_took = started.elapsed();
    let started = Instant::now();
    let (objects, distinct_seen) =
        evaluate_objects(&prepared.engine, &prepared.objects, &prepared.options).await;
    let evaluate = started.elapsed();
    let started = Instant::now();
    let report = CheckReport::new(objects, distinct_seen, cli.args.fail_on_warn);
    let rendered = serde_json::to_string_pretty(&report).unwrap();
    let report_took = started.elapsed();
    assert!(!rendered.is_empty());
    InProcessRun {
        prepare: prepare_took,
        evaluate,
        report: report_took,
        cache: prepared.engine.verifier().cache_stats(),
        calls: prepared.engine.verifier().registry_stats(),
        denied: report.summary.denied,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (manifests, distinct) = if full { (1000, 50) } else { (100, 10) };
    let registry = DevRegistry::start().await.expect("docker-registry (apt-get install docker-registry)");
    let host = registry.host();
    let client = registry.client().unwrap();
    let key = SigningKey::generate();
    let mut signed: Vec<ArtifactRef> = Vec::new();
    for i in 0..distinct {
        let r = push_demo_image(
            &client,
            &host,
            &format!("demo/bench{i}"),
            "1.0",
            format!("bench {i}\n").as_bytes(),
        )
        .await
        .unwrap();
        sign_image_with_key(&client, &r, &key, BTreeMap::new()).await.unwrap();
        signed.push(r);
    }
    let images: Vec<String> = (0..distinct).map(|i| format!("{host}/demo/bench{i}:1.0")).collect();
    let dir = tempfile::tempdir().unwrap();
    let manifests_dir = dir.path().join("manifests");
    write_manifests(&manifests_dir, manifests, &images);
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("signed.yaml"), key_policy("prod-signed", "cosign-prod", &host, &key))
        .unwrap();
    let args = [
        "check".to_owned(),
        "-f".to_owned(),
        manifests_dir.to_string_lossy().into_owned(),
        "--policy".to_owned(),
        policies.to_string_lossy().into_owned(),
        "--insecure-registry".to_owned(),
        host.clone(),
        "--output".to_owned(),
        "json".to_owned(),
    ];

    let rounds = std::env::var("VOUCH_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 5usize } else { 1 })
        .max(1);
    let mut failed = Vec::new();
    let mut measured = Vec::with_capacity(rounds);
    for r in 0..rounds {
        // Alternate which goes first: the second finds the files (and the registry) warmer.
        let (binary, in_process) = if r % 2 == 0 {
            let b = run_binary(&registry, &args, &signed, &mut failed).await;
            (b, run_in_process(&args).await)
        } else {
            let i = run_in_process(&args).await;
            (run_binary(&registry, &args, &signed, &mut failed).await, i)
        };
        measured.push((r % 2 == 0, binary, in_process));
    }

    let summary = &measured[0].1.summary;
    println!(
        "vouch check: {manifests} manifest files, {} objects ({} skipped), {} artifacts over {distinct} images; \
         {rounds} round(s), order alternating",
        summary["objects"], summary["skipped"], summary["artifacts"]
    );
    println!(
        "  binary:     the vouch process, spawn to exit: process and runtime start-up, flags, read the \
         manifests,\n              load and compile the policies, verify, render and write the JSON report"
    );
    println!(
        "  in-process: the same steps in this process, from parsing the flags to the rendered report (no \
         process or\n              runtime start-up, no write to stdout): prepare (flags, manifests, policies, \
         verifier),\n              evaluate (verify and decide every object), report (build and render)"
    );
    println!("  round  first      binary ms  requests   in-process ms =  prepare + evaluate +   report");
    let row = |label: &str, first: &str, wall: f64, requests: String, i: [f64; 4]| {
        println!(
            "  {label:<6} {first:<10} {wall:>9.1} {requests:>9}   {:>13.1} = {:>8.1} + {:>8.1} + {:>8.1}",
            i[0], i[1], i[2], i[3]
        )
    };
    for (n, (binary_first, b, i)) in measured.iter().enumerate() {
        let first = if *binary_first { "binary" } else { "in-process" };
        let steps = [ms(i.total()), ms(i.prepare), ms(i.evaluate), ms(i.report)];
        row(&(n + 1).to_string(), first, ms(b.wall), b.requests.to_string(), steps);
    }
    let med = |f: &dyn Fn(&(bool, BinaryRun, InProcessRun)) -> f64| median(measured.iter().map(f).collect());
    row(
        "median",
        "",
        med(&|m| ms(m.1.wall)),
        format!("{:.0}", med(&|m| m.1.requests as f64)),
        [
            med(&|m| ms(m.2.total())),
            med(&|m| ms(m.2.prepare)),
            med(&|m| ms(m.2.evaluate)),
            med(&|m| ms(m.2.report)),
        ],
    );
    let last = &measured[measured.len() - 1].2;
    println!(
        "  (median: each column's own median over the rounds)\n  binary: {:.1} registry requests per image; in-process (last round): verifications run {} (cache hits \
         {}), registry calls {} (errors {}, retries {})",
        med(&|m| m.1.requests as f64) / distinct as f64,
        last.cache.misses,
        last.cache.hits,
        last.calls.calls,
        last.calls.errors,
        last.calls.retries
    );
    for (_, b, i) in &measured {
        if b.summary["denied"] != 0 || b.summary["distinctArtifacts"] != distinct {
            failed.push(format!("unexpected summary {}", b.summary));
        }
        if i.denied != 0 || i.cache.misses != distinct as u64 {
            failed.push(format!("in-process: {} verifications for {distinct} images", i.cache.misses));
        }
    }
    if !failed.is_empty() {
        for f in failed {
            eprintln!("FAIL: {f}");
        }
        std::process::exit(1);
    }
}
