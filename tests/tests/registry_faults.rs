//! Registry faults through the policy engine: a real registry (Debian's docker-registry) on loopback with
//! our fault proxy (`vouch_tests::fault_proxy`) in front, a real signed image, and the engine deciding.
//!
//! Each fault must end in the decision the policy's failure behaviour says, within the time budget
//! (elapsed < budget + slack, never a hang), with a message naming the cause and the failure counted by
//! kind; never an unverified admission in enforce mode. Two classes (docs/operations.md, "Failure
//! behaviour"): a registry that cannot be talked to (down, slow, silent, reset, dropped, cut short,
//! throttled, not HTTP) is an `error` finding that `failurePolicy` decides; a registry that answers
//! something wrong (a body over the limit, garbage where a manifest should be) is a `fail` finding:
//! denied in enforce mode whatever the failure policy. After a flapping registry recovers, verification
//! succeeds again: failures are not kept in the verdict cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vouch_attest::cache::CacheConfig;
use vouch_attest::cosign;
use vouch_attest::registry::{FailureKind, RegistryClient, RegistryConfig};
use vouch_attest::verify::ArtifactVerifier;
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::crd::Mode;
use vouch_policies::{AdmissionInput, Decision, Engine, EngineConfig, FindingResult, PolicySet};
use vouch_tests::fault_proxy::{Fault, FaultProxy};
use vouch_tests::fixture::{self, key_policy, pod_input, push_image};
use vouch_webhooks::dev_registry::DevRegistry;

/// The engine's time budget for one evaluation.
const BUDGET: Duration = Duration::from_secs(2);
/// One registry call's time (below the budget, so that the registry's own timeout is what fires).
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// What an evaluation may take beyond the budget (scheduling on a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(1500);

struct Rig {
    registry: DevRegistry,
    proxy: FaultProxy,
    key: SigningKey,
    /// The signed image by tag, through the proxy.
    image: String,
    /// The same image pinned to its digest.
    pinned: ArtifactRef,
}

/// A registry with a signed image, pushed and signed through the proxy (passing everything through).
async fn rig() -> Rig {
    let registry = DevRegistry::start().await.unwrap();
    let proxy = FaultProxy::start(&registry.host()).await.unwrap();
    let host = proxy.host();
    let pusher = RegistryClient::new(RegistryConfig {
        insecure_registries: vec![host.clone()],
        ..RegistryConfig::default()
    })
    .unwrap();
    let key = SigningKey::generate();
    let pinned = push_image(&pusher, &host, "acme/app", "1.0").await;
    cosign::sign_image_with_key(&pusher, &pinned, &key, BTreeMap::new()).await.unwrap();
    Rig { registry, proxy, key, image: format!("{host}/acme/app:1.0"), pinned }
}

/// A fresh verifier (empty cache) reading from `host`.
fn verifier(host: &str, retries: u32) -> ArtifactVerifier {
    verifier_with(host, retries, CacheConfig::default())
}

/// The shared verifier with this file's call timeout, `retries` and `cache`.
fn verifier_with(host: &str, retries: u32, cache: CacheConfig) -> ArtifactVerifier {
    fixture::verifier_with(host, |c| {
        c.registry.timeout = CALL_TIMEOUT;
        c.registry.retries = retries;
        c.cache = cache;
    })
}

fn engine(host: &str, key: &SigningKey, mode: &str, failure: &str, verifier: ArtifactVerifier) -> Engine {
    let set = PolicySet::from_yaml_str(&key_policy(
        "signed",
        &format!("{host}/**"),
        key,
        mode,
        failure,
        "signature: true",
    ));
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    Engine::new(EngineConfig { budget: BUDGET, ..EngineConfig::default() }, set, verifier)
}

/// A Pod `web` in `default` running `image`.
fn pod(image: &str) -> AdmissionInput {
    pod_input("default", "web", &[("app", image)])
}

/// Evaluate `image` under a fresh engine and verifier; returns the decision, the time taken and the
/// verifier (for its registry counters). Asserts the time bound.
async fn judge(
    host: &str,
    key: &SigningKey,
    image: &str,
    (mode, failure): (&str, &str),
    retries: u32,
) -> (Decision, ArtifactVerifier, Duration) {
    let v = verifier(host, retries);
    let e = engine(host, key, mode, failure, v.clone());
    let started = Instant::now();
    let d = Box::pin(e.evaluate(&pod(image))).await;
    let took = started.elapsed();
    assert!(took < BUDGET + SLACK, "{mode}/{failure}: took {took:?}, budget {BUDGET:?}: {d:?}");
    (d, v, took)
}

/// The four ways a policy can be set up for a failure, and what each must decide.
const SETUPS: [(&str, &str); 4] =
    [("Enforce", "Fail"), ("Enforce", "Ignore"), ("Warn", "Fail"), ("Audit", "Fail")];

/// What a fault must produce: the finding result, words of its reason, and the failure kind counted.
struct Expect {
    result: FindingResult,
    cause: &'static [&'static str],
    kind: FailureKind,
}

fn names_cause(text: &str, cause: &[&str]) -> bool {
    cause.iter().any(|c| text.contains(c))
}

/// Evaluate `image` under every setup at once (the fault is the same for all) and check each decision.
async fn check_fault(rig: &Rig, image: &str, what: &str, expect: Expect) {
    let host = rig.proxy.host();
    // Boxed: four engine evaluations side by side are too deep a future for a test thread's stack.
    let runs = SETUPS.map(|setup| Box::pin(judge(&host, &rig.key, image, setup, 0)));
    let results = futures_join(runs).await;
    for ((mode, failure), (d, v, took)) in SETUPS.iter().zip(results) {
        let label = format!("{what} under {mode}/{failure}");
        // Shown with --nocapture: what an operator would read, and how long it took.
        eprintln!(
            "{label}: {took:.2?}: {:?}: {}",
            f_result(&d),
            d.message.as_deref().or(d.warnings.first().map(String::as_str)).unwrap_or("(audit)")
        );
        assert_eq!(d.findings.len(), 1, "{label}: {d:?}");
        let f = &d.findings[0];
        assert_eq!(f.result, expect.result, "{label}: {f:?}");
        assert!(
            names_cause(&f.reason, expect.cause),
            "{label}: reason {:?} names none of {:?}",
            f.reason,
            expect.cause
        );
        assert!(d.pins.is_empty(), "{label}: nothing unverified is pinned: {:?}", d.pins);
        let ignored = expect.result == FindingResult::Error && *failure == "Ignore";
        match *mode {
            "Enforce" if ignored => {
                assert!(d.allowed, "{label}: {d:?}");
                assert_eq!(d.warnings.len(), 1, "{label}: {d:?}");
                assert!(
                    d.warnings[0].ends_with("(allowed: failurePolicy Ignore)"),
                    "{label}: {:?}",
                    d.warnings
                );
                assert!(names_cause(&d.warnings[0], expect.cause), "{label}: {:?}", d.warnings);
            }
            "Enforce" => {
                assert!(!d.allowed, "{label}: an unverified image was admitted in enforce mode: {d:?}");
                let message = d.message.as_deref().unwrap_or_default();
                assert!(
                    message
                        .starts_with(&format!("Pod default/web: container app: image {}", rig.proxy.host())),
                    "{label}: {message}"
                );
                assert!(names_cause(message, expect.cause), "{label}: {message}");
            }
            "Warn" => {
                assert!(d.allowed, "{label}: {d:?}");
                assert_eq!(d.warnings.len(), 1, "{label}: {d:?}");
                assert!(names_cause(&d.warnings[0], expect.cause), "{label}: {:?}", d.warnings);
            }
            _ => {
                assert!(d.allowed && d.warnings.is_empty(), "{label}: {d:?}");
                assert_eq!(d.audit.len(), 1, "{label}: {d:?}");
                assert_eq!((d.audit[0].result, d.audit[0].mode), (expect.result, Mode::Audit), "{label}");
            }
        }
        let stats = v.registry_stats();
        assert!(
            stats.failures.get(expect.kind) > 0,
            "{label}: no {} failure counted: {stats:?}",
            expect.kind
        );
    }
}

fn f_result(d: &Decision) -> Option<FindingResult> {
    d.findings.first().map(|f| f.result)
}

async fn futures_join<F: std::future::Future>(runs: [F; 4]) -> Vec<F::Output> {
    let [a, b, c, d] = runs;
    let (a, b, c, d) = tokio::join!(a, b, c, d);
    vec![a, b, c, d]
}

const TIMED_OUT: &[&str] = &["timed out: no answer within", "did not finish within the budget"];

/// Proves: the rig works: with the proxy passing through, the signed image is verified under every setup.
#[tokio::test]
async fn pass_through_verifies() {
    let rig = rig().await;
    for setup in SETUPS {
        let (d, _, _) = judge(&rig.proxy.host(), &rig.key, &rig.image, setup, 0).await;
        assert!(d.allowed && d.warnings.is_empty() && d.audit.is_empty(), "{setup:?}: {d:?}");
        assert_eq!(d.findings[0].result, FindingResult::Pass, "{setup:?}");
    }
    assert!(rig.proxy.connections() > 0);
    assert_eq!(rig.proxy.faulted(), 0);
}

/// Proves: a registry that is down (connection refused) is an error the failure policy decides.
#[tokio::test]
async fn registry_down() {
    let mut rig = rig().await;
    rig.registry.stop();
    // Behind the proxy: connections accepted and closed without an answer.
    check_fault(
        &rig,
        &rig.image,
        "registry down behind the proxy",
        Expect {
            result: FindingResult::Error,
            cause: &["closed the connection before answering in full"],
            kind: FailureKind::ClosedEarly,
        },
    )
    .await;
    // Nothing listening at all.
    let host = rig.registry.host();
    let image = format!("{host}/acme/app:1.0");
    for setup in SETUPS {
        let (d, v, _) = judge(&host, &rig.key, &image, setup, 2).await;
        assert_eq!(d.findings[0].result, FindingResult::Error, "{setup:?}: {d:?}");
        assert!(d.findings[0].reason.contains("Connection refused"), "{setup:?}: {:?}", d.findings[0].reason);
        assert_eq!(d.allowed, setup != ("Enforce", "Fail"), "{setup:?}: {d:?}");
        assert!(v.registry_stats().failures.get(FailureKind::Unreachable) > 0);
    }
}

/// Proves: a registry slower than the budget (per response, per connection, or never answering) ends in
/// a timeout within the budget, decided by the failure policy.
#[tokio::test]
async fn slow_past_the_budget() {
    let rig = rig().await;
    let timed_out = || Expect { result: FindingResult::Error, cause: TIMED_OUT, kind: FailureKind::Timeout };
    rig.proxy.set(Fault::DelayResponse(Duration::from_secs(30)));
    check_fault(&rig, &rig.image, "slow responses", timed_out()).await;
    rig.proxy.set(Fault::DelayConnection(Duration::from_secs(30)));
    check_fault(&rig, &rig.image, "slow connections", timed_out()).await;
    rig.proxy.set(Fault::Silent);
    check_fault(&rig, &rig.pinned.to_string(), "never answering", timed_out()).await;
    // Slow but within the budget: verified.
    rig.proxy.set(Fault::DelayResponse(Duration::from_millis(50)));
    let (d, _, _) = judge(&rig.proxy.host(), &rig.key, &rig.image, ("Enforce", "Fail"), 0).await;
    assert!(d.allowed, "{d:?}");
}

/// Proves: dropped, reset and truncated connections are errors the failure policy decides, each named.
#[tokio::test]
async fn dropped_reset_and_truncated_connections() {
    let rig = rig().await;
    rig.proxy.set(Fault::Drop);
    let closed = || Expect {
        result: FindingResult::Error,
        cause: &["closed the connection before answering in full"],
        kind: FailureKind::ClosedEarly,
    };
    check_fault(&rig, &rig.image, "dropped", closed()).await;
    rig.proxy.set(Fault::Reset);
    let reset =
        Expect { result: FindingResult::Error, cause: &["reset the connection"], kind: FailureKind::Reset };
    check_fault(&rig, &rig.image, "reset", reset).await;
    // Cut in the status line, and (GET of a manifest by digest) in the body.
    rig.proxy.set(Fault::Truncate(12));
    check_fault(&rig, &rig.image, "truncated head", closed()).await;
    rig.proxy.set(Fault::Truncate(400));
    check_fault(&rig, &rig.pinned.to_string(), "truncated body", closed()).await;
}

/// Proves: HTTP 429 with a Retry-After beyond the budget fails at once (no waiting it out), named as
/// throttling; within the budget it is waited for and verification succeeds.
#[tokio::test]
async fn throttling() {
    let rig = rig().await;
    rig.proxy.set(Fault::Throttle { requests: 1000, retry_after: "30".into() });
    check_fault(
        &rig,
        &rig.image,
        "throttled beyond the budget",
        Expect {
            result: FindingResult::Error,
            cause: &["registry throttled the request for", "HTTP 429, asked to retry after 30s"],
            kind: FailureKind::Throttled,
        },
    )
    .await;
    // With retries allowed, a Retry-After beyond the budget is still not waited for.
    let started = Instant::now();
    let (d, v, _) = judge(&rig.proxy.host(), &rig.key, &rig.image, ("Enforce", "Fail"), 2).await;
    assert!(!d.allowed, "{d:?}");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(v.registry_stats().retries, 0, "{:?}", v.registry_stats());

    // Two 429s (the anonymous-access probe takes one), Retry-After 1 s: waited for, then verified.
    rig.proxy.set(Fault::Throttle { requests: 2, retry_after: "1".into() });
    let before = rig.proxy.connections();
    let started = Instant::now();
    let (d, v, _) = judge(&rig.proxy.host(), &rig.key, &rig.image, ("Enforce", "Fail"), 2).await;
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.findings[0].result, FindingResult::Pass);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After was honoured: {:?}",
        started.elapsed()
    );
    assert!(v.registry_stats().retries >= 1, "{:?}", v.registry_stats());
    assert!(rig.proxy.connections() - before > 2);
}

/// Proves: oversized bodies (a huge Content-Length, an endless body, a Content-Length that lies) and
/// garbage are caught, named, and never admitted in enforce mode — an answer that is wrong is a failed
/// check (fail), not an outage (error): failurePolicy Ignore does not admit it.
#[tokio::test]
async fn oversized_and_garbage_answers() {
    let rig = rig().await;
    let too_large = || Expect {
        result: FindingResult::Fail,
        cause: &["is too large: the body is over the limit of"],
        kind: FailureKind::TooLarge,
    };
    rig.proxy.set(Fault::Oversized { declared: Some(1 << 40) });
    check_fault(&rig, &rig.image, "huge Content-Length", too_large()).await;
    rig.proxy.set(Fault::Oversized { declared: None });
    check_fault(&rig, &rig.pinned.to_string(), "endless body", too_large()).await;
    // A Content-Length of 64 over an endless body, and a 200 of random bytes: not a manifest (asked by
    // tag: the tag "resolves" to the digest of the filler, whose signature tag is filler again).
    let not_a_manifest = || Expect {
        result: FindingResult::Fail,
        cause: &["not a valid registry response"],
        kind: FailureKind::InvalidResponse,
    };
    rig.proxy.set(Fault::Oversized { declared: Some(64) });
    check_fault(&rig, &rig.image, "lying Content-Length", not_a_manifest()).await;
    rig.proxy.set(Fault::GarbageBody);
    check_fault(&rig, &rig.pinned.to_string(), "garbage body by digest", not_a_manifest()).await;
    check_fault(&rig, &rig.image, "garbage body by tag", not_a_manifest()).await;
    // Not HTTP at all: the registry cannot be talked to (error, failure policy decides).
    rig.proxy.set(Fault::Garbage);
    check_fault(
        &rig,
        &rig.image,
        "not HTTP",
        Expect {
            result: FindingResult::Error,
            cause: &["sent something that is not HTTP (not a registry response)"],
            kind: FailureKind::InvalidResponse,
        },
    )
    .await;
}

/// Proves: a flapping registry (every other connection bad) is ridden out by retries; without retries it
/// fails, and once it recovers the same engine verifies again: an outage is never cached, and a wrong
/// answer (a rejection) only for the short failure TTL, never as long as a success.
#[tokio::test]
async fn flapping_registry_recovers_without_a_poisoned_cache() {
    let rig = rig().await;
    let host = rig.proxy.host();
    let image = rig.pinned.to_string();
    let failure_ttl = Duration::from_secs(1);
    for bad in [Fault::Reset, Fault::Drop, Fault::Garbage, Fault::Truncate(300), Fault::GarbageBody] {
        // With retries: every bad connection is followed by a good one.
        rig.proxy.set(Fault::Flapping(Box::new(bad.clone())));
        let faulted = rig.proxy.faulted();
        let (d, v, _) = judge(&host, &rig.key, &image, ("Enforce", "Fail"), 2).await;
        assert!(rig.proxy.faulted() > faulted, "{bad:?}: the proxy faulted nothing");
        if bad == Fault::GarbageBody {
            // A wrong answer is not an outage and is not retried: denied.
            assert!(!d.allowed, "{bad:?}: {d:?}");
        } else {
            assert!(d.allowed, "{bad:?} with retries: {d:?}");
            assert!(v.registry_stats().retries >= 1, "{bad:?}: {:?}", v.registry_stats());
        }

        // Without retries, one engine (one verdict cache) throughout.
        let cache = CacheConfig { failure_ttl, ..CacheConfig::default() };
        let v = verifier_with(&host, 0, cache.clone());
        assert!(cache.success_ttl > cache.failure_ttl * 10);
        let e = engine(&host, &rig.key, "Enforce", "Fail", v.clone());
        rig.proxy.set(Fault::Flapping(Box::new(bad.clone())));
        let d = e.evaluate(&pod(&image)).await;
        assert!(!d.allowed && d.pins.is_empty(), "{bad:?}: flapping without retries: {d:?}");
        rig.proxy.set(Fault::PassThrough);
        let d = e.evaluate(&pod(&image)).await;
        if bad == Fault::GarbageBody {
            // The garbage signature blob was a failed candidate: a rejection, cached for the failure TTL.
            if !d.allowed {
                tokio::time::sleep(failure_ttl + Duration::from_millis(300)).await;
            }
        } else {
            assert!(d.allowed, "{bad:?}: an outage was cached: {d:?}");
        }
        let d = e.evaluate(&pod(&image)).await;
        assert!(d.allowed, "{bad:?}: still denied after the registry recovered: {d:?}");
        assert_eq!(d.findings[0].result, FindingResult::Pass);
    }
}
