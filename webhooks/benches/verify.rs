//! Verification throughput and single-flight, measured against a real registry on loopback.
//!
//! `cargo bench -p vouch-webhooks --bench verify` prints:
//! - verifications per second of a key-signed image: cache miss (registry + crypto) vs cache hit, and the ratio;
//! - verifications per second of a keyless Sigstore bundle (the conformance suite's happy path), offline:
//!   "parse + verify" reads the bundle's JSON every time (`Bundle::from_json`, as a verifier handed a
//!   `.sigstore.json` file does, and as sigstore-python's figure counts it: the figure to compare), "verify
//!   only" reuses one parsed bundle, "parse only" is `Bundle::from_json` alone. Verify is the certificate
//!   chain, SCT, tlog entry and identity;
//! - the same bundle verified by sigstore-python in the same run (offline, in-process: a Python loop of
//!   `Bundle.from_json` + `Verifier.verify_artifact` against the same trusted root), and vouch's
//!   parse + verify rate over it, per wall-clock second and per CPU second of each process (on a shared
//!   machine other load lengthens wall time, not CPU time: the CPU ratio is the steadier one). Needs PyPI `sigstore` in the interpreter named by `VOUCH_BENCH_PYTHON`
//!   (default `python3`), e.g. `python3 -m venv /tmp/sigstore-venv && /tmp/sigstore-venv/bin/pip install
//!   sigstore==4.5.1` then `VOUCH_BENCH_PYTHON=/tmp/sigstore-venv/bin/python`; without it the comparison
//!   is skipped with a note;
//! - registry requests for one cold verification vs 200 concurrent identical ones (from the registry's
//!   access log, let settle before counting): single-flight means the two are equal. The run fails (exit 1)
//!   if they are not.
//!
//! `VOUCH_BENCH_SECONDS` sets the time per measurement (default 3; 0.2 when run by `cargo test`).
//! `cargo bench -p vouch-webhooks --bench verify -- keyless` runs only the keyless figures (no registry).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vouch_attest::cache::CacheConfig;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::RegistryConfig;
use vouch_attest::sigstore_verify::{
    Artifact, Authority, Bundle, CertificateIdentity, Matcher, VerificationPolicy, Verifier,
};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, Requirement, VerifierConfig, VerifyOptions};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;

/// The allocator of the vouch binary (webhooks/src/main.rs), so verification runs here as it does there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn seconds() -> Duration {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, as a quick check of the
    // single-flight property, with short measurements whose figures mean little.
    let default = if std::env::args().any(|a| a == "--bench") { 3.0 } else { 0.2 };
    let s = std::env::var("VOUCH_BENCH_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(default);
    Duration::from_secs_f64(s.max(0.1))
}

#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: missing material under CI must fail
fn testdata() -> PathBuf {
    // Absent material (outside CI) reads as missing files below, and the keyless figure is skipped.
    vouch_attest::testdata::locate().unwrap().unwrap_or_default()
}

fn verifier(host: &str, cache: CacheConfig) -> ArtifactVerifier {
    ArtifactVerifier::new(VerifierConfig {
        registry: RegistryConfig { insecure_registries: vec![host.to_owned()], ..RegistryConfig::default() },
        trust_root: TrustRoot::public_good().unwrap(),
        cache,
        options: VerifyOptions { require_tlog_for_keys: false, ..VerifyOptions::default() },
    })
    .unwrap()
}

/// Seconds of CPU this process has used (all its threads): `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`.
fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Operations per wall-clock second and per CPU second of this process.
#[derive(Clone, Copy)]
struct Rate {
    wall: f64,
    cpu: f64,
}

/// Run `f` for [`seconds`] and print its rate per wall-clock second and per CPU second. The CPU figure is
/// the one to compare on a shared machine: other processes' load lengthens wall time, not CPU time.
async fn rate<F, Fut>(what: &str, mut f: F) -> Rate
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let budget = seconds();
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let mut n = 0u64;
    while start.elapsed() < budget {
        assert!(f().await, "{what}: verification failed during the benchmark");
        n += 1;
    }
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    let r = Rate { wall: n as f64 / wall, cpu: n as f64 / cpu.max(f64::MIN_POSITIVE) };
    println!("{what:<58} {:>12.1} /s  {:>10.1} /CPU-s  ({n} in {wall:.2}s, {cpu:.2} CPU-s)", r.wall, r.cpu);
    r
}

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Keyless: the conformance suite's happy-path v0.3 bundle, offline, one Verifier built once; then
/// sigstore-python on the same bundle, artifact and trusted root.
async fn keyless() {
    let case = testdata().join("sigstore-conformance/bundle-verify/happy-path-v0.3");
    let bundle_path = case.join("bundle.sigstore.json");
    let artifact_path = testdata().join("sigstore-conformance/bundle-verify/a.txt");
    let (Ok(json), Ok(artifact)) = (std::fs::read(&bundle_path), std::fs::read(&artifact_path)) else {
        println!("keyless bundle: skipped, no testdata at {}", testdata().display());
        return;
    };
    let sigstore = Verifier::new(TrustRoot::public_good().unwrap());
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::new(
        Matcher::Exact(IDENTITY.into()),
        Matcher::Exact(ISSUER.into()),
    )]);
    println!("keyless Sigstore bundle v0.3, {} bytes of JSON:", json.len());
    let vouch = rate("  parse + verify (Bundle::from_json, then verify)", || async {
        Bundle::from_json(&json)
            .is_ok_and(|bundle| sigstore.verify(&bundle, Artifact::Bytes(&artifact), &policy).is_ok())
    })
    .await;
    let bundle = Bundle::from_json(&json).unwrap();
    rate("  verify only (the bundle parsed once, before)", || async {
        sigstore.verify(&bundle, Artifact::Bytes(&artifact), &policy).is_ok()
    })
    .await;
    rate("  parse only (Bundle::from_json)", || async { Bundle::from_json(&json).is_ok() }).await;
    match sigstore_python_rate(&bundle_path, &artifact_path) {
        Ok((python, version)) => {
            println!(
                "{:<58} {:>12.1} /s  {:>10.1} /CPU-s",
                format!("  sigstore-python {version}, parse + verify"),
                python.wall,
                python.cpu
            );
            println!(
                "{:<58} {:>12.2} x  {:>10.2} x per CPU-s  (aim: >= 3)",
                "  vouch / sigstore-python (parse + verify)",
                vouch.wall / python.wall.max(f64::MIN_POSITIVE),
                vouch.cpu / python.cpu.max(f64::MIN_POSITIVE)
            );
        }
        Err(why) => println!("  sigstore-python: skipped ({why})"),
    }
}

/// sigstore-python's verification loop: the bundle parsed and verified each time, offline, in-process.
const SIGSTORE_PYTHON_LOOP: &str = r#"
import sys, time
import sigstore
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity
bundle, artifact, root, seconds, identity, issuer = sys.argv[1:7]
raw = open(bundle, "rb").read()
data = open(artifact, "rb").read()
verifier = Verifier(trusted_root=TrustedRoot.from_file(root))
policy = Identity(identity=identity, issuer=issuer)
verifier.verify_artifact(data, Bundle.from_json(raw), policy)  # raises unless it verifies
n, start, cpu = 0, time.perf_counter(), time.process_time()
while time.perf_counter() - start < float(seconds):
    verifier.verify_artifact(data, Bundle.from_json(raw), policy)
    n += 1
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(n / wall, n / cpu, sigstore.__version__)
"#;

/// Run [`SIGSTORE_PYTHON_LOOP`] on the bundle with the embedded public-good trusted root: (rate, version)
/// (its CPU figure is the interpreter process's `time.process_time()`).
fn sigstore_python_rate(bundle: &Path, artifact: &Path) -> Result<(Rate, String), String> {
    let python = std::env::var("VOUCH_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python).args(["-c", "import sigstore"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err(format!(
            "no PyPI `sigstore` in {python}; `pip install sigstore==4.5.1`, or set VOUCH_BENCH_PYTHON"
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, vouch_attest::trust_root::PUBLIC_GOOD_JSON).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&python)
        .args(["-c", SIGSTORE_PYTHON_LOOP])
        .arg(bundle)
        .arg(artifact)
        .arg(&root)
        .arg(seconds().as_secs_f64().to_string())
        .args([IDENTITY, ISSUER])
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut fields = stdout.split_whitespace();
    let mut number = || fields.next().and_then(|r| r.parse::<f64>().ok());
    let (wall, cpu) = (number(), number());
    match (out.status.success(), wall, cpu, fields.next()) {
        (true, Some(wall), Some(cpu), Some(version)) => Ok((Rate { wall, cpu }, version.to_owned())),
        _ => Err(format!("sigstore-python failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// GET and HEAD requests under `/v2/` in the registry's access log, once it has settled.
async fn registry_requests(r: &DevRegistry) -> usize {
    assert!(r.settle().await, "the registry's log kept growing");
    r.count_requests("GET", "/v2/") + r.count_requests("HEAD", "/v2/")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().skip(1).any(|a| a == "keyless") {
        println!("vouch verification benchmark, keyless only ({:?} per measurement)\n", seconds());
        keyless().await;
        return;
    }
    let registry = DevRegistry::start().await.expect("docker-registry (bash scripts/setup.sh)");
    let host = registry.host();
    let client = registry.client().unwrap();
    let key = SigningKey::generate();
    let authority = Authority::Key(key.public_key());
    let mut images = Vec::new();
    for name in ["bench/a", "bench/b", "bench/c"] {
        let image = push_demo_image(&client, &host, name, "1", name.as_bytes()).await.unwrap();
        sign_image_with_key(&client, &image, &key, BTreeMap::new()).await.unwrap();
        images.push(image);
    }
    let by_tag: ArtifactRef = format!("{host}/bench/a:1").parse().unwrap();
    println!("vouch verification benchmark (registry {host}, {:?} per measurement)\n", seconds());

    // Cache miss: nothing is kept, every call goes to the registry and verifies.
    let no_cache =
        CacheConfig { success_ttl: Duration::ZERO, failure_ttl: Duration::ZERO, ..CacheConfig::default() };
    let cold = verifier(&host, no_cache);
    let miss = rate("key-signed image, cache miss (registry + verify)", || async {
        cold.verify(&images[0], &authority, &Requirement::Signature).await.is_ok_and(|v| v.is_verified())
    })
    .await;
    let misses = cold.cache_stats().misses;

    let warm = verifier(&host, CacheConfig::default());
    let hit = rate("key-signed image by digest, cache hit", || async {
        warm.verify(&images[0], &authority, &Requirement::Signature).await.is_ok_and(|v| v.is_verified())
    })
    .await;
    rate("key-signed image by tag, cache hit (tag resolution cached)", || async {
        warm.verify(&by_tag, &authority, &Requirement::Signature).await.is_ok_and(|v| v.is_verified())
    })
    .await;
    println!(
        "{:<58} {:>12.1} x  (misses counted: {misses})",
        "cache hit / cache miss (by digest)",
        hit.wall / miss.wall.max(f64::MIN_POSITIVE)
    );
    keyless().await;

    // Single flight: one cold verification vs 200 concurrent identical ones, counted by the registry.
    let before = registry_requests(&registry).await;
    let one = verifier(&host, CacheConfig::default());
    assert!(one.verify(&images[1], &authority, &Requirement::Signature).await.unwrap().is_verified());
    let single = registry_requests(&registry).await - before;

    let before = registry_requests(&registry).await;
    let burst = verifier(&host, CacheConfig::default());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let burst = burst.clone();
            let image = images[2].clone();
            let authority = authority.clone();
            tokio::spawn(async move { burst.verify(&image, &authority, &Requirement::Signature).await })
        })
        .collect();
    let started = Instant::now();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_verified());
    }
    let took = started.elapsed();
    let concurrent = registry_requests(&registry).await - before;
    let stats = burst.cache_stats();
    println!(
        "\nregistry requests: one cold verification {single}, 200 concurrent identical verifications {concurrent} \
         (in {took:.2?}; cache {} miss, {} hits)",
        stats.misses, stats.hits
    );
    if concurrent != single || stats.misses != 1 {
        println!("FAIL: concurrent identical look-ups did not share one set of registry fetches");
        std::process::exit(1);
    }
    println!("ok: 200 concurrent identical look-ups caused exactly one set of registry fetches");
}
