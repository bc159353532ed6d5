//! The policy engine against a real `docker-registry` on loopback: decisions per mode, dry-run, no-match,
//! failure policy (unreachable registry, budget exceeded), Rego conditions on attestations, pins, and
//! per-request pull credentials. Every denial message is checked word for word.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use vouch_attest::cosign;
use vouch_attest::intoto::{SLSA_PROVENANCE_V1, STATEMENT_V1};
use vouch_attest::registry::{Credentials, RegistryClient};
use vouch_attest::verify::ArtifactVerifier;
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::crd::Mode;
use vouch_policies::{
    AdmissionInput, Decision, Engine, EngineConfig, FindingResult, NoMatchAction, ObjectJson, PolicySet,
};
use vouch_tests::fixture::{indent, key_policy, pod_input, push_image, tag_of, verifier, verifier_with};
use vouch_webhooks::dev_registry::DevRegistry;

const GOOD_BUILDER: &str = "https://github.com/actions/runner";

async fn attest(client: &RegistryClient, img: &ArtifactRef, key: &SigningKey, builder: &str) {
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": img.repository_name(), "digest": {"sha256": img.digest().unwrap().hex()}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {"buildType": "https://vouch-test.invalid/build/v1", "externalParameters": {}, "resolvedDependencies": []},
            "runDetails": {"builder": {"id": builder}}
        }
    });
    cosign::attest_with_key(client, img, key, &statement).await.unwrap();
}

/// A Pod `web` in `default` with one container per (name, image).
fn pod(containers: &[(&str, &str)]) -> AdmissionInput {
    pod_input("default", "web", containers)
}

fn engine(yaml: &str, verifier: ArtifactVerifier, config: EngineConfig) -> Engine {
    let set = PolicySet::from_yaml_str(yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    Engine::new(config, set, verifier)
}

fn config() -> EngineConfig {
    EngineConfig { budget: Duration::from_secs(10), ..EngineConfig::default() }
}

struct World {
    registry: DevRegistry,
    key: SigningKey,
    signed: ArtifactRef,
    unsigned: ArtifactRef,
    verifier: ArtifactVerifier,
}

async fn world() -> World {
    let registry = DevRegistry::start().await.unwrap();
    let verifier = verifier(&registry.host());
    let key = SigningKey::generate();
    let host = registry.host();
    let signed = push_image(verifier.registry(), &host, "acme/app", "1.0").await;
    cosign::sign_image_with_key(verifier.registry(), &signed, &key, BTreeMap::new()).await.unwrap();
    let unsigned = push_image(verifier.registry(), &host, "acme/unsigned", "1.0").await;
    World { registry, key, signed, unsigned, verifier }
}

#[tokio::test]
async fn enforce_allows_verified_images_and_pins_them() {
    let w = world().await;
    let yaml = key_policy(
        "prod-signed",
        &format!("{}/acme/**", w.registry.host()),
        &w.key,
        "Enforce",
        "Fail",
        "signature: true",
    );
    let e = engine(&yaml, w.verifier.clone(), config());
    let image = tag_of(&w.signed);
    let d = e.evaluate(&pod(&[("app", &image)])).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(d.findings.len(), 1);
    let f = &d.findings[0];
    assert_eq!(f.result, FindingResult::Pass);
    assert_eq!(f.policy, "prod-signed");
    assert_eq!(f.requirement, "signature");
    assert_eq!(f.digest.as_ref(), w.signed.digest());
    assert_eq!(f.signer.as_deref(), Some(format!("key {}", w.key.public_key().fingerprint()).as_str()));
    assert_eq!(d.pins.len(), 1);
    assert_eq!(d.pins[0].pointer, "/spec/containers/0/image");
    assert_eq!(d.pins[0].from, image);
    assert_eq!(d.pins[0].to, format!("{image}@{}", w.signed.digest().unwrap()));
    // Pinning does not change what is verified: the pinned reference verifies the same digest.
    let again = e.evaluate(&pod(&[("app", &d.pins[0].to)])).await;
    assert!(again.allowed);
    assert!(again.pins.is_empty(), "already pinned");
    assert_eq!(again.findings[0].digest.as_ref(), w.signed.digest());
}

#[tokio::test]
async fn enforce_denies_with_an_exact_message() {
    let w = world().await;
    let yaml = key_policy(
        "prod-signed",
        &format!("{}/acme/**", w.registry.host()),
        &w.key,
        "Enforce",
        "Fail",
        "signature: true",
    );
    let e = engine(&yaml, w.verifier.clone(), config());
    let signed = tag_of(&w.signed);
    let unsigned = tag_of(&w.unsigned);
    let d = e.evaluate(&pod(&[("app", &signed), ("side", &unsigned)])).await;
    assert!(!d.allowed);
    let message = d.message.unwrap();
    let expected_prefix = format!(
        "Pod default/web: container side: image {unsigned}@{} : policy prod-signed: signature: no signature verifies against key cosign-prod (",
        w.unsigned.digest().unwrap()
    );
    assert!(message.starts_with(&expected_prefix), "{message}\nexpected prefix: {expected_prefix}");
    assert!(message.ends_with(')'), "{message}");
    assert!(!message.contains("container app"), "the verified container is not blamed: {message}");
    assert!(d.pins.is_empty(), "nothing is pinned in a denied request");

    // Two failures: joined with "; " after one object prefix.
    let d = e.evaluate(&pod(&[("a", &unsigned), ("b", &unsigned)])).await;
    let message = d.message.unwrap();
    assert!(message.starts_with("Pod default/web: container a: image "), "{message}");
    assert!(message.contains("); container b: image "), "{message}");
}

#[tokio::test]
async fn warn_and_audit_modes_admit() {
    let w = world().await;
    let images = format!("{}/acme/**", w.registry.host());
    let unsigned = tag_of(&w.unsigned);
    let warn = engine(
        &key_policy("p", &images, &w.key, "Warn", "Fail", "signature: true"),
        w.verifier.clone(),
        config(),
    );
    let d = warn.evaluate(&pod(&[("app", &unsigned)])).await;
    assert!(d.allowed);
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].starts_with("Pod default/web: container app: image "), "{:?}", d.warnings);
    assert!(d.audit.is_empty());

    let audit = engine(
        &key_policy("p", &images, &w.key, "Audit", "Fail", "signature: true"),
        w.verifier.clone(),
        config(),
    );
    let d = audit.evaluate(&pod(&[("app", &unsigned)])).await;
    assert!(d.allowed && d.warnings.is_empty());
    assert_eq!(d.audit.len(), 1);
    assert_eq!(d.audit[0].result, FindingResult::Fail);
    assert_eq!(d.audit[0].mode, Mode::Audit);
}

#[tokio::test]
async fn dry_run_denies_nothing_and_records_everything() {
    let w = world().await;
    let images = format!("{}/acme/**", w.registry.host());
    let cfg = EngineConfig { dry_run: true, no_match: NoMatchAction::Deny, ..config() };
    let e = engine(
        &key_policy("p", &images, &w.key, "Enforce", "Fail", "signature: true"),
        w.verifier.clone(),
        cfg,
    );
    let signed = tag_of(&w.signed);
    let d = e
        .evaluate(&pod(&[
            ("app", &tag_of(&w.unsigned)),
            ("other", "docker.io/library/nginx:1.27"),
            ("signed", &signed),
        ]))
        .await;
    assert!(d.allowed);
    assert!(d.message.is_none());
    assert_eq!(d.audit.len(), 2, "the unsigned image and the uncovered one: {:?}", d.audit);
    assert!(d.audit.iter().all(|f| f.mode == Mode::Audit));
    // Dry-run pins what passed, as enforcing would (the recorded digest is what runs), and nothing else.
    assert_eq!(d.pins.len(), 1, "{:?}", d.pins);
    assert_eq!(d.pins[0].pointer, "/spec/containers/2/image");
    assert_eq!(d.pins[0].to, format!("{signed}@{}", w.signed.digest().unwrap()));
}

#[tokio::test]
async fn no_match_action_is_configurable() {
    let w = world().await;
    let yaml = key_policy("p", "ghcr.io/acme/**", &w.key, "Enforce", "Fail", "signature: true");
    let uncovered = tag_of(&w.unsigned);
    let allow = engine(&yaml, w.verifier.clone(), config()).evaluate(&pod(&[("app", &uncovered)])).await;
    assert_eq!(allow, Decision::allow());
    let cfg = EngineConfig { no_match: NoMatchAction::Warn, ..config() };
    let warn = engine(&yaml, w.verifier.clone(), cfg).evaluate(&pod(&[("app", &uncovered)])).await;
    assert!(warn.allowed);
    assert_eq!(
        warn.warnings,
        vec![format!(
            "Pod default/web: container app: image {uncovered} : policy: no policy covers this image"
        )]
    );
    let cfg = EngineConfig { no_match: NoMatchAction::Deny, ..config() };
    let deny = engine(&yaml, w.verifier.clone(), cfg).evaluate(&pod(&[("app", &uncovered)])).await;
    assert!(!deny.allowed);
    assert_eq!(
        deny.message.unwrap(),
        format!("Pod default/web: container app: image {uncovered} : policy: no policy covers this image")
    );
}

#[tokio::test]
async fn unreachable_registry_follows_the_failure_policy() {
    let key = SigningKey::generate();
    // Nothing listens on port 1.
    let v = verifier("127.0.0.1:1");
    let image = "127.0.0.1:1/acme/app:1";
    let closed = engine(
        &key_policy("p", "127.0.0.1:1/**", &key, "Enforce", "Fail", "signature: true"),
        v.clone(),
        config(),
    );
    let d = closed.evaluate(&pod(&[("app", image)])).await;
    assert!(!d.allowed);
    let message = d.message.unwrap();
    assert!(
        message.starts_with("Pod default/web: container app: image 127.0.0.1:1/acme/app:1 : policy p: signature: cannot verify: registry 127.0.0.1:1 is unreachable"),
        "{message}"
    );
    assert_eq!(d.findings[0].result, FindingResult::Error);

    let open =
        engine(&key_policy("p", "127.0.0.1:1/**", &key, "Enforce", "Ignore", "signature: true"), v, config());
    let d = open.evaluate(&pod(&[("app", image)])).await;
    assert!(d.allowed);
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].ends_with("(allowed: failurePolicy Ignore)"), "{:?}", d.warnings);
}

#[tokio::test]
async fn a_registry_slower_than_the_budget_is_a_transient_failure() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let key = SigningKey::generate();
    let v = verifier(&host);
    let cfg = EngineConfig { budget: Duration::from_millis(300), ..config() };
    let e = engine(
        &key_policy("slow", &format!("{host}/**"), &key, "Enforce", "Fail", "signature: true"),
        v,
        cfg,
    );
    let started = std::time::Instant::now();
    let d = e.evaluate(&pod(&[("app", &format!("{host}/acme/app:1"))])).await;
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by the budget");
    assert!(!d.allowed);
    assert!(d
        .message
        .unwrap()
        .contains("cannot verify: verification did not finish within the budget of 300ms"));
    hold.abort();
}

#[tokio::test]
async fn rego_conditions_judge_attestations() {
    let w = world().await;
    let host = w.registry.host();
    let good = push_image(w.verifier.registry(), &host, "acme/built", "good").await;
    attest(w.verifier.registry(), &good, &w.key, GOOD_BUILDER).await;
    let bad = push_image(w.verifier.registry(), &host, "acme/built", "bad").await;
    attest(w.verifier.registry(), &bad, &w.key, "https://evil.example/builder").await;
    let condition =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/rego/slsa-builder.rego"))
            .unwrap()
            .replace("{{BUILDERS}}", &format!("\"{GOOD_BUILDER}\""));
    let requirements = format!(
        "attestations:\n  - predicateType: {SLSA_PROVENANCE_V1}\n    condition: |\n{}",
        indent(&condition, 6)
    );
    let yaml = key_policy("slsa", &format!("{host}/acme/**"), &w.key, "Enforce", "Fail", &requirements);
    let e = engine(&yaml, w.verifier.clone(), config());
    let d = e.evaluate(&pod(&[("app", &tag_of(&good))])).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(d.findings[0].requirement, format!("attestation {SLSA_PROVENANCE_V1}"));
    let d = e.evaluate(&pod(&[("app", &tag_of(&bad))])).await;
    assert!(!d.allowed);
    let message = d.message.unwrap();
    assert!(
        message.ends_with(&format!(
            "policy slsa: attestation {SLSA_PROVENANCE_V1}: key cosign-prod: condition not met: builder \"https://evil.example/builder\" is not trusted"
        )),
        "{message}"
    );
    // Unattested images fail the requirement.
    let d = e.evaluate(&pod(&[("app", &tag_of(&w.signed))])).await;
    assert!(d
        .message
        .unwrap()
        .contains("no https://slsa.dev/provenance/v1 attestation verifies against key cosign-prod"));
}

/// Proves: a Rego condition reads the whole admitted object, also the parts the webhook does not read at
/// once (a container's `resources`), and an object whose whole cannot be read (nesting past the parser's
/// limit in such a part) fails the condition with a clear reason instead of passing it.
#[tokio::test]
async fn rego_conditions_see_the_whole_object_read_from_the_review_text() {
    let w = world().await;
    let host = w.registry.host();
    let img = push_image(w.verifier.registry(), &host, "acme/sized", "1").await;
    attest(w.verifier.registry(), &img, &w.key, GOOD_BUILDER).await;
    let condition = "package vouch.sized\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.object.spec.containers[0].resources.limits.cpu == \"1\"\n\ndeny contains \"cpu limit is not 1\" if not allow\n";
    let requirements = format!(
        "attestations:\n  - predicateType: {SLSA_PROVENANCE_V1}\n    condition: |\n{}",
        indent(condition, 6)
    );
    let yaml = key_policy("sized", &format!("{host}/acme/**"), &w.key, "Enforce", "Fail", &requirements);
    let e = engine(&yaml, w.verifier.clone(), config());
    // The object as the webhook holds it: its text, read pruned at once (no `resources`).
    let review_object = |resources: &str| {
        let text = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web","namespace":"default"}},"spec":{{"containers":[{{"name":"app","image":"{}","resources":{resources}}}]}}}}"#,
            tag_of(&img)
        );
        let kind = pod(&[]).kind;
        let object = ObjectJson::from_json(bytes::Bytes::from(text), &kind).unwrap();
        assert!(object.read().pointer("/spec/containers/0/resources").is_none(), "read pruned");
        AdmissionInput { object: Some(object), ..pod(&[]) }
    };
    let d = e.evaluate(&review_object(r#"{"limits":{"cpu":"1"}}"#)).await;
    assert!(d.allowed, "{:?}", d.message);
    let d = e.evaluate(&review_object(r#"{"limits":{"cpu":"8"}}"#)).await;
    assert!(!d.allowed);
    assert!(
        d.message.as_deref().unwrap().ends_with("condition not met: cpu limit is not 1"),
        "{:?}",
        d.message
    );
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let d = e.evaluate(&review_object(&format!(r#"{{"x":{deep}}}"#))).await;
    assert!(!d.allowed, "an unreadable object never passes a condition");
    let message = d.message.unwrap();
    assert!(
        message.contains("key cosign-prod: condition not evaluated: the object is not readable JSON: recursion limit exceeded"),
        "{message}"
    );
}

#[tokio::test]
async fn pull_credentials_of_the_request_reach_the_registry() {
    let registry = DevRegistry::start_with_basic_auth("puller", "s3cret").await.unwrap();
    let host = registry.host();
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:s3cret");
    let creds = Credentials::from_docker_config_json(
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#).as_bytes(),
    )
    .unwrap();
    let key = SigningKey::generate();
    // Push with credentials; verify with a verifier that has none of its own.
    let pusher = verifier_with(&host, |c| c.registry.credentials = creds.clone());
    let img = push_image(pusher.registry(), &host, "private/app", "1").await;
    cosign::sign_image_with_key(pusher.registry(), &img, &key, BTreeMap::new()).await.unwrap();
    let e = engine(
        &key_policy("private", &format!("{host}/private/**"), &key, "Enforce", "Fail", "signature: true"),
        verifier(&host),
        config(),
    );
    let image = tag_of(&img);
    let without = e.evaluate(&pod(&[("app", &image)])).await;
    assert!(!without.allowed, "anonymous access is refused");
    let mut with = pod(&[("app", &image)]);
    with.pull_credentials = creds;
    let d = e.evaluate(&with).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(d.pins.len(), 1);
}

#[tokio::test]
async fn selectors_namespaces_and_kinds_decide_which_policies_apply() {
    let w = world().await;
    let host = w.registry.host();
    let yaml = format!(
        "{}---\napiVersion: vouch.dev/v1alpha1\nkind: SupplyChainPolicy\nmetadata: {{name: team, namespace: team-a}}\nspec:\n  images: [\"{host}/acme/**\"]\n  authorities: [{{name: k, key: {{requireTlog: false, pem: {pem:?}}}}}]\n  requirements: {{signature: true}}\n",
        key_policy("prod-only", &format!("{host}/acme/**"), &w.key, "Enforce", "Fail",
            "signature: true").replace("  mode: Enforce", "  mode: Enforce\n  match:\n    namespaceSelector: {matchLabels: {env: prod}}\n    kinds: [Pod]"),
        pem = w.key.public_key().to_pem(),
    );
    let e = engine(&yaml, w.verifier.clone(), config());
    let unsigned = tag_of(&w.unsigned);
    // default namespace without env=prod: neither policy applies.
    let d = e.evaluate(&pod(&[("app", &unsigned)])).await;
    assert!(d.allowed && d.findings.is_empty(), "{d:?}");
    // env=prod: the cluster policy applies.
    let mut prod = pod(&[("app", &unsigned)]);
    prod.namespace_labels.get_or_insert_default().insert("env".into(), "prod".into());
    let d = e.evaluate(&prod).await;
    assert!(!d.allowed);
    assert!(d.findings.iter().all(|f| f.policy == "prod-only"));
    // Namespace team-a: only the namespaced policy applies.
    let mut team = pod(&[("app", &unsigned)]);
    team.namespace = Some("team-a".into());
    let d = e.evaluate(&team).await;
    assert!(!d.allowed);
    assert_eq!(d.findings[0].policy, "team");
    assert_eq!(d.findings[0].policy_namespace.as_deref(), Some("team-a"));
}

/// Namespace labels the caller cannot know (`vouch serve` without cluster access, `vouch check` without
/// `--namespace-labels`) never turn a namespaceSelector into "no policy applies": the policy is applied and
/// what it finds wrong is an Error for its failure policy — Fail denies, Ignore allows with a warning; what
/// it verifies passes and is pinned as usual.
#[tokio::test]
async fn unknown_namespace_labels_apply_a_selector_policy_through_its_failure_policy() {
    let w = world().await;
    let host = w.registry.host();
    let policy = |failure: &str| {
        key_policy("prod-only", &format!("{host}/acme/**"), &w.key, "Enforce", failure, "signature: true")
            .replace(
                "  mode: Enforce",
                "  mode: Enforce\n  match:\n    namespaceSelector: {matchLabels: {env: prod}}",
            )
    };
    let unknown = |image: &str| {
        let mut input = pod(&[("app", image)]);
        input.namespace_labels = None;
        input
    };
    let unsigned = tag_of(&w.unsigned);
    let e = engine(&policy("Fail"), w.verifier.clone(), config());
    let d = e.evaluate(&unknown(&unsigned)).await;
    assert!(!d.allowed, "an unknown selector must not admit an unsigned image: {d:?}");
    let message = d.message.unwrap();
    assert!(message.contains("policy prod-only: signature: no signature verifies"), "{message}");
    assert!(message.contains("the labels of namespace default are unknown"), "{message}");
    assert_eq!(d.findings[0].result, FindingResult::Error);
    // Known labels that do not match: the policy does not apply (as before).
    assert!(e.evaluate(&pod(&[("app", &unsigned)])).await.allowed);
    // What verifies passes and is pinned, labels known or not.
    let signed = e.evaluate(&unknown(&tag_of(&w.signed))).await;
    assert!(signed.allowed && signed.warnings.is_empty(), "{signed:?}");
    assert_eq!(signed.pins.len(), 1);
    // failurePolicy Ignore: allowed, with a warning that names the cause.
    let ignore = engine(&policy("Ignore"), w.verifier.clone(), config());
    let d = ignore.evaluate(&unknown(&unsigned)).await;
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(
        d.warnings[0].contains("are unknown") && d.warnings[0].ends_with("(allowed: failurePolicy Ignore)")
    );
    assert!(d.pins.is_empty());
}

/// Fail closed on configuration errors: a policy that does not compile but still names images denies them
/// (per its mode), even with failurePolicy Ignore and even when another policy verifies the image.
#[tokio::test]
async fn a_broken_policy_acts_per_its_mode_and_pins_nothing() {
    let w = world().await;
    let images = format!("{}/acme/**", w.registry.host());
    let broken_requirement =
        "attestations: [{predicateType: \"https://slsa.dev/provenance/v1\", condition: \"package p\\nallow if {\"}]";
    let signed = tag_of(&w.signed);
    let expected = format!(
        "Pod default/web: container app: image {signed} : policy typo: configuration: policy typo is invalid: requirements.attestations[0].condition: rego condition typo/attestations[0].rego does not compile"
    );

    let yaml = key_policy("prod-signed", &images, &w.key, "Enforce", "Fail", "signature: true")
        + &key_policy("typo", &images, &w.key, "Enforce", "Ignore", broken_requirement);
    let set = PolicySet::from_yaml_str(&yaml);
    assert_eq!(set.problems().len(), 1, "{:?}", set.problems());
    let e = Engine::new(config(), set, w.verifier.clone());
    let d = e.evaluate(&pod(&[("app", &signed)])).await;
    assert!(!d.allowed);
    let message = d.message.unwrap();
    assert!(message.starts_with(&expected), "{message}\nexpected prefix: {expected}");
    assert!(!message.contains("prod-signed"), "the verified policy is not blamed: {message}");
    assert!(d.pins.is_empty(), "a broken policy's image is not pinned");
    let broken = d.findings.iter().find(|f| f.policy == "typo").unwrap();
    assert_eq!((broken.result, broken.mode), (FindingResult::Fail, Mode::Enforce));
    assert_eq!(broken.digest, None, "nothing was fetched for it");

    let yaml = key_policy("typo", &images, &w.key, "Audit", "Fail", broken_requirement);
    let e = Engine::new(config(), PolicySet::from_yaml_str(&yaml), w.verifier.clone());
    let d = e.evaluate(&pod(&[("app", &signed)])).await;
    assert!(d.allowed && d.warnings.is_empty(), "{d:?}");
    assert_eq!(d.audit.len(), 1);
    assert_eq!((d.audit[0].result, d.audit[0].mode), (FindingResult::Fail, Mode::Audit));
    assert!(d.audit[0].reason.starts_with("policy typo is invalid: "), "{:?}", d.audit[0]);
    assert!(d.pins.is_empty());
}
