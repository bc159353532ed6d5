//! `vouch check` over a directory of many manifests against a real registry on loopback.
//!
//! `cargo bench -p vouch-webhooks --bench check` writes 1,000 manifests (Deployments, CronJobs, Pods, Lists
//! and multi-document files with ConfigMaps, in nested directories) naming 50 distinct images signed with
//! our own code, then runs the `vouch` binary over the directory and prints the wall time and the registry
//! requests it caused (from the registry's access log, let settle), and the verifier's counters from the same check run
//! in-process. Each image must be verified exactly once: its signature tag fetched once over the whole run.
//! Exit 1 otherwise, or when any object is not allowed.
//!
//! Under `cargo test` (no `--bench`), a quick pass: 100 manifests, 10 images.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

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

    // The binary, as CI runs it. Signing looked for existing signatures: count from here.
    let signature_tag = |r: &ArtifactRef| {
        format!("/manifests/sha256-{}.sig", r.digest().unwrap().to_string().replace("sha256:", ""))
    };
    let before = registry_requests(&registry).await;
    let fetched_before: Vec<usize> =
        signed.iter().map(|r| registry.count_requests("GET", &signature_tag(r))).collect();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vouch")).args(&args).output().unwrap();
    let wall = started.elapsed();
    let requests = registry_requests(&registry).await - before;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &report["summary"];
    let mut failed = Vec::new();
    for (r, before) in signed.iter().zip(fetched_before) {
        let fetched = registry.count_requests("GET", &signature_tag(r)) - before;
        if fetched != 1 {
            failed.push(format!("{r}: signature tag fetched {fetched} times"));
        }
    }

    // The same check in-process, for the verifier's counters.
    let cli = Cli::try_parse_from(&args).unwrap();
    let prepared = prepare(&cli.args).unwrap();
    let started = Instant::now();
    let (objects, distinct_seen) =
        evaluate_objects(&prepared.engine, &prepared.objects, &prepared.options).await;
    let in_process = started.elapsed();
    let report_in_process = CheckReport::new(objects, distinct_seen, false);
    let cache = prepared.engine.verifier().cache_stats();
    let calls = prepared.engine.verifier().registry_stats();

    println!(
        "vouch check: {manifests} manifest files, {} objects ({} skipped), {} artifacts over {distinct} images",
        summary["objects"], summary["skipped"], summary["artifacts"]
    );
    println!(
        "  binary:     wall {:>8.1} ms, {requests} registry requests ({:.1} per image), exit {}",
        wall.as_secs_f64() * 1e3,
        requests as f64 / distinct as f64,
        out.status.code().unwrap_or(-1)
    );
    println!(
        "  in-process: {:>8.1} ms, verifications run {} (cache hits {}), registry calls {} (errors {}, retries {})",
        in_process.as_secs_f64() * 1e3,
        cache.misses,
        cache.hits,
        calls.calls,
        calls.errors,
        calls.retries
    );
    if summary["denied"] != 0 || summary["distinctArtifacts"] != distinct {
        failed.push(format!("unexpected summary {summary}"));
    }
    if report_in_process.summary.denied != 0 || cache.misses != distinct as u64 {
        failed.push(format!("in-process: {} verifications for {distinct} images", cache.misses));
    }
    if !failed.is_empty() {
        for f in failed {
            eprintln!("FAIL: {f}");
        }
        std::process::exit(1);
    }
}
