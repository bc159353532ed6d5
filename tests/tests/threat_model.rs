//! The registry-side claims of docs/threat-model.md, each against a real `docker-registry` on loopback
//! (a scripted server only where the real registry refuses to misbehave): material of one artifact
//! attached to another, referrers lying about their subject, verdicts of one authority reused for another,
//! content changed at rest, layers pointing elsewhere, and hostile signature manifests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use vouch_attest::cosign;
use vouch_attest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use vouch_attest::intoto::STATEMENT_V1;
use vouch_attest::registry::{ManifestKind, RegistryClient, RegistryConfig, OCI_INDEX, OCI_MANIFEST};
use vouch_attest::sbom::CYCLONEDX_MEDIA_TYPE;
use vouch_attest::sigstore_verify::{
    Authority, Bundle, BundleContent, Signer as BundleSigner, VerificationMaterial,
};
use vouch_attest::verify::{ArtifactVerifier, Requirement};
use vouch_attest::{ArtifactRef, Digest, SigningKey};
use vouch_policies::{Engine, EngineConfig, PolicySet};
use vouch_tests::fixture::{indent, pod_input, push_image, rejection, verifier_with};
use vouch_webhooks::dev_registry::DevRegistry;

/// The shared verifier with the registry settings these tests were written for: 5 s per call and the
/// client's default retries.
fn verifier_for(host: &str) -> ArtifactVerifier {
    verifier_with(host, |c| {
        c.registry.timeout = Duration::from_secs(5);
        c.registry.retries = RegistryConfig::default().retries;
    })
}

/// A cosign v3 signature (DSSE statement over `signed`, predicate cosign/sign/v1) by `key`.
fn cosign_v3_bundle(signed: &ArtifactRef, key: &SigningKey) -> Bundle {
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": signed.repository_name(), "digest": {"sha256": signed.digest().unwrap().hex()}}],
        "predicateType": cosign::COSIGN_SIGN_PREDICATE_V1,
        "predicate": {}
    });
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), key);
    Bundle::new(
        vouch_attest::sigstore_verify::bundle::MEDIA_TYPE_V0_3.into(),
        VerificationMaterial {
            signer: BundleSigner::PublicKey { hint: String::new() },
            tlog_entries: vec![],
            timestamps: vec![],
        },
        BundleContent::Dsse(envelope),
    )
}

/// The smallest CycloneDX document vouch accepts as an SBOM.
fn minimal_sbom() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "left-pad", "version": "1.3.0"}]
    }))
    .unwrap()
}

/// Overwrite the referrers tag index (`sha256-<hex>`) of `subject` with exactly `entries`: what anyone
/// with push access to the repository can do on a registry without the referrers API.
async fn write_referrers_index(client: &RegistryClient, subject: &ArtifactRef, entries: serde_json::Value) {
    let tag = subject.with_tag(&subject.digest().unwrap().cosign_tag_stem()).unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    client.push_manifest(&tag, &serde_json::to_vec(&index).unwrap(), OCI_INDEX).await.unwrap();
}

/// The referrers index entry for the manifest `digest` (its size and artifact type as the registry has it).
async fn index_entry(
    client: &RegistryClient,
    repo: &ArtifactRef,
    digest: &Digest,
    artifact_type: &str,
) -> serde_json::Value {
    let fetched = client.fetch_manifest(&repo.with_digest(digest.clone())).await.unwrap();
    json!({"mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": fetched.bytes.len(), "artifactType": artifact_type})
}

/// Proves: a cosign v3 signature (bundle referrer) of image A is not accepted for image B, whether its
/// referrer manifest is re-pushed with B as the subject or A's manifest is listed verbatim among B's
/// referrers. (The `.sig` tag copy is `cosign_registry.rs` `failures_have_distinct_clear_reasons`.)
#[tokio::test]
async fn a_bundle_referrer_of_image_a_is_not_accepted_for_image_b() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let verifier = verifier_for(&host);
    let client = verifier.registry().clone();
    let key = SigningKey::generate();
    let authority = Authority::Key(key.public_key());
    let a = push_image(&client, &host, "team/app", "a").await;
    let b = push_image(&client, &host, "team/app", "b").await;
    let referrer_of_a = cosign::push_bundle_referrer(&client, &a, &cosign_v3_bundle(&a, &key)).await.unwrap();
    assert!(verifier.verify(&a, &authority, &Requirement::Signature).await.unwrap().is_verified());

    // A's bundle in a manifest that honestly names B as its subject.
    cosign::push_bundle_referrer(&client, &b, &cosign_v3_bundle(&a, &key)).await.unwrap();
    let r = rejection(&verifier.verify(&b, &authority, &Requirement::Signature).await.unwrap());
    assert!(r.contains(&format!("does not cover {}", b.digest().unwrap())), "{r}");

    // A's referrer manifest itself (subject A) listed among B's referrers.
    let entry = index_entry(&client, &a, &referrer_of_a, cosign::BUNDLE_ARTIFACT_TYPE).await;
    write_referrers_index(&client, &b, json!([entry])).await;
    let fresh = verifier_for(&host);
    let r = rejection(&fresh.verify(&b, &authority, &Requirement::Signature).await.unwrap());
    assert!(r.contains(&format!("its subject is {}, not this artifact", a.digest().unwrap())), "{r}");
}

/// Proves: a referrer listed for B whose manifest's subject is another digest is ignored, which matters
/// most for unsigned material: A's SBOM referrer listed in B's referrers index does not give B an SBOM.
#[tokio::test]
async fn a_referrer_whose_manifest_names_another_subject_is_ignored() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let verifier = verifier_for(&host);
    let client = verifier.registry().clone();
    let authority = Authority::Key(SigningKey::generate().public_key());
    let a = push_image(&client, &host, "team/sbom", "a").await;
    let b = push_image(&client, &host, "team/sbom", "b").await;
    let sbom_of_a = cosign::push_sbom_referrer(&client, &a, &minimal_sbom()).await.unwrap();
    assert!(verifier.verify(&a, &authority, &Requirement::Sbom).await.unwrap().is_verified());
    let r = rejection(&verifier.verify(&b, &authority, &Requirement::Sbom).await.unwrap());
    assert!(r.contains("nothing found"), "{r}");

    let entry = index_entry(&client, &a, &sbom_of_a, CYCLONEDX_MEDIA_TYPE).await;
    write_referrers_index(&client, &b, json!([entry])).await;
    // The index is read (the listed manifest is fetched), and refused for its subject.
    let fresh = verifier_for(&host);
    let r = rejection(&fresh.verify(&b, &authority, &Requirement::Sbom).await.unwrap());
    assert!(
        r.contains(&format!(
            "referrer {sbom_of_a}: unexpected referrer manifest: its subject is {}",
            a.digest().unwrap()
        )),
        "{r}"
    );
    // A still has its SBOM.
    assert!(fresh.verify(&a, &authority, &Requirement::Sbom).await.unwrap().is_verified());
}

/// A cluster policy for the namespace `ns` over `images` with one key authority.
fn ns_policy(
    name: &str,
    ns: &str,
    images: &str,
    key: &SigningKey,
    require_tlog: bool,
    requirements: &str,
) -> String {
    format!(
        r#"---
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: {name}
spec:
  images: ["{images}"]
  match:
    namespaces: ["{ns}"]
  mode: Enforce
  failurePolicy: Fail
  authorities:
    - name: {name}-key
      key:
        requireTlog: {require_tlog}
        pem: |
{pem}
  requirements:
{requirements}
"#,
        pem = indent(&key.public_key().to_pem(), 10),
        requirements = indent(requirements, 4),
    )
}

/// Proves: verdicts are cached per authority, tlog setting and requirement, so one digest verified under
/// policy P1 (key K1) never satisfies P2 (key K2), P3 (K1 but a Rekor entry required) or P4 (K1 but an
/// attestation required) — in either order, and with all four asked concurrently on one shared cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verdict_under_one_authority_never_satisfies_another_policy() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let seed = verifier_for(&host);
    let k1 = SigningKey::generate();
    let k2 = SigningKey::generate();
    let img = push_image(seed.registry(), &host, "shared/app", "1.0").await;
    cosign::sign_image_with_key(seed.registry(), &img, &k1, BTreeMap::new()).await.unwrap();
    let images = format!("{host}/shared/**");
    let yaml = [
        ns_policy("p1-k1", "team-1", &images, &k1, false, "signature: true"),
        ns_policy("p2-k2", "team-2", &images, &k2, false, "signature: true"),
        ns_policy("p3-k1-tlog", "team-3", &images, &k1, true, "signature: true"),
        ns_policy(
            "p4-k1-attested",
            "team-4",
            &images,
            &k1,
            false,
            "attestations:\n  - predicateType: https://slsa.dev/provenance/v1",
        ),
    ]
    .concat();
    let image = img.to_string();
    let engine = || {
        let set = PolicySet::from_yaml_str(&yaml);
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let config = EngineConfig { budget: Duration::from_secs(10), ..EngineConfig::default() };
        // A fresh verifier (and so a fresh cache) per engine: each order starts cold.
        Engine::new(config, set, verifier_for(&host))
    };
    let expect = |ns: &str, allowed: bool, d: &vouch_policies::Decision| {
        assert_eq!(d.allowed, allowed, "{ns}: {:?}", d.message);
        if !allowed {
            let m = d.message.as_deref().unwrap();
            let wanted = match ns {
                "team-2" => "no signature verifies against key p2-k2-key",
                "team-3" => "no transparency log entry",
                _ => "no https://slsa.dev/provenance/v1 attestation verifies against key p4-k1-attested-key",
            };
            assert!(m.contains(wanted), "{ns}: {m}");
        }
    };
    let cases = [("team-1", true), ("team-2", false), ("team-3", false), ("team-4", false)];

    // K1's pass first, then the others.
    let e = engine();
    for (ns, allowed) in cases {
        expect(ns, allowed, &e.evaluate(&pod_input(ns, "web", &[("app", &image)])).await);
    }
    // The others first (their failures cached), then K1's pass.
    let e = engine();
    for (ns, allowed) in cases.iter().rev() {
        expect(ns, *allowed, &e.evaluate(&pod_input(ns, "web", &[("app", &image)])).await);
    }
    // All at once, many times, on one cold cache.
    let e = engine();
    let mut tasks = Vec::new();
    for round in 0..10 {
        for (ns, allowed) in cases {
            let e = e.clone();
            let input = pod_input(ns, "web", &[("app", &image)]);
            tasks.push(tokio::spawn(async move { (round, ns, allowed, e.evaluate(&input).await) }));
        }
    }
    for t in tasks {
        let (_, ns, allowed, d) = t.await.unwrap();
        expect(ns, allowed, &d);
    }
    let stats = e.verifier().cache_stats();
    assert!(stats.misses >= 4, "one verification per distinct (authority, options, requirement): {stats:?}");
}

/// Proves: content changed at rest in the registry (served under its old digest) is refused by digest:
/// a changed signature payload is a failed candidate, a changed signature manifest fails the look-up.
#[tokio::test]
async fn content_changed_at_rest_is_refused_by_its_digest() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let verifier = verifier_for(&host);
    let client = verifier.registry().clone();
    let key = SigningKey::generate();
    let authority = Authority::Key(key.public_key());

    let img = push_image(&client, &host, "rest/app", "payload").await;
    cosign::sign_image_with_key(&client, &img, &key, BTreeMap::new()).await.unwrap();
    assert!(verifier.verify(&img, &authority, &Requirement::Signature).await.unwrap().is_verified());
    let sig_tag = cosign::signature_tag(&img, cosign::SIGNATURE_SUFFIX).unwrap();
    let (_, kind) = client.fetch_parsed_manifest(&sig_tag).await.unwrap();
    let ManifestKind::Image(sig) = kind else { panic!("the .sig tag is an image manifest") };
    let payload = &sig.layers[0].digest;
    vouch_tests::egress::tamper_blob_at_rest(
        &host,
        payload,
        br#"{"critical":{"image":{"docker-manifest-digest":"sha256:0"}}}"#,
    )
    .unwrap();
    let r = rejection(&verifier_for(&host).verify(&img, &authority, &Requirement::Signature).await.unwrap());
    assert!(r.contains(&format!("content digest mismatch: expected {payload}")), "{r}");

    let img = push_image(&client, &host, "rest/app", "manifest").await;
    cosign::sign_image_with_key(&client, &img, &key, BTreeMap::new()).await.unwrap();
    let sig_tag = cosign::signature_tag(&img, cosign::SIGNATURE_SUFFIX).unwrap();
    let sig_manifest = client.fetch_manifest(&sig_tag).await.unwrap();
    let forged = String::from_utf8(sig_manifest.bytes.clone()).unwrap().replace("\"layers\"", "\"layers\" ");
    vouch_tests::egress::tamper_blob_at_rest(&host, &sig_manifest.digest, forged.as_bytes()).unwrap();
    let outcome = verifier_for(&host).verify(&img, &authority, &Requirement::Signature).await;
    let e = outcome.expect_err("a signature manifest that does not match its digest is not read");
    assert!(
        e.to_string().contains(&format!("content digest mismatch: expected {}", sig_manifest.digest)),
        "{e}"
    );
    assert!(!e.is_transient(), "a lying registry is not retried into an allow by failurePolicy Ignore");
}

/// A scripted registry for `repo` that records every request line: `GET /v2/`, the `.sig` manifest
/// `sig_manifest` for `sig_tag`, and `other_blob` under `/v2/other/repo/blobs/` only; 404 otherwise.
async fn scripted_registry(
    repo: &'static str,
    sig_tag: String,
    sig_manifest: Vec<u8>,
    other_blob: (Digest, Vec<u8>),
) -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (log, sig_tag, sig_manifest, other_blob) =
                (log.clone(), sig_tag.clone(), sig_manifest.clone(), other_blob.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let line = head.lines().next().unwrap_or_default().to_owned();
                log.lock().unwrap().push(line.clone());
                let path = line.split(' ').nth(1).unwrap_or_default();
                let (status, ctype, body): (&str, &str, Vec<u8>) = if path == "/v2/" {
                    ("200 OK", "application/json", b"{}".to_vec())
                } else if path == format!("/v2/{repo}/manifests/{sig_tag}") {
                    ("200 OK", OCI_MANIFEST, sig_manifest)
                } else if path == format!("/v2/other/repo/blobs/{}", other_blob.0) {
                    ("200 OK", "application/octet-stream", other_blob.1)
                } else {
                    ("404 Not Found", "application/json", br#"{"errors":[{"code":"NOT_FOUND"}]}"#.to_vec())
                };
                let mut out = format!(
                    "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(&body);
                let _ = socket.write_all(&out).await;
            });
        }
    });
    (host, seen, server)
}

/// Proves: a signature manifest whose layer lives in another repository, and names a foreign URL
/// (`urls`), is read only from the repository the reference names: nothing is fetched from the other
/// repository or the URL, and the missing layer is a failed candidate, not a pass.
#[tokio::test]
async fn layers_are_read_from_the_named_repository_only() {
    let image_digest = Digest::sha256_of(b"the image manifest");
    // A valid signature of the image, stored (by the attacker's choice) only in another repository.
    let payload = vouch_tests::handwritten_cosign::payload("victim/app", &image_digest.to_string());
    let payload_digest = Digest::sha256_of(&payload);
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let canary_addr = canary.local_addr().unwrap();
    let canary_hits = Arc::new(AtomicUsize::new(0));
    let hits = canary_hits.clone();
    let canary_task = tokio::spawn(async move {
        while canary.accept().await.is_ok() {
            hits.fetch_add(1, Ordering::SeqCst);
        }
    });
    let empty = Digest::sha256_of(b"{}");
    let sig_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [{
            "mediaType": cosign::SIMPLE_SIGNING_MEDIA_TYPE, "digest": payload_digest.to_string(), "size": payload.len(),
            "urls": [format!("http://{canary_addr}/v2/other/repo/blobs/{payload_digest}")],
            "annotations": {(cosign::SIGNATURE_ANNOTATION): vouch_tests::handwritten_cosign::sign_b64(
                &p256::ecdsa::SigningKey::random(&mut rand_core::OsRng), &payload)}
        }]
    }))
    .unwrap();
    let sig_tag = image_digest.cosign_tag_stem() + ".sig";
    let (host, seen, server) =
        scripted_registry("victim/app", sig_tag, sig_manifest, (payload_digest.clone(), payload)).await;
    let verifier = verifier_for(&host);
    let img: ArtifactRef = format!("{host}/victim/app@{image_digest}").parse().unwrap();
    let r = rejection(
        &verifier
            .verify(&img, &Authority::Key(SigningKey::generate().public_key()), &Requirement::Signature)
            .await
            .unwrap(),
    );
    assert!(r.contains(&format!("layer {payload_digest}")) && r.contains("not found"), "{r}");
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests.iter().all(|l| l.contains(" /v2/ ") || l.contains(" /v2/victim/app/")),
        "only the named repository is read: {requests:?}"
    );
    assert!(
        requests.iter().any(|l| l.contains(&format!("/v2/victim/app/blobs/{payload_digest}"))),
        "{requests:?}"
    );
    assert_eq!(canary_hits.load(Ordering::SeqCst), 0, "the layer's urls are never followed");
    server.abort();
    canary_task.abort();
}

/// Proves: hostile signature manifests are bounded with a clear outcome: 200 layers cost at most
/// `max_candidates` (16) blob fetches and are reported as 16 failed candidates; a manifest nested
/// thousands of levels deep in an unknown field is refused with a reason, never a stack overflow.
#[tokio::test]
async fn hostile_signature_manifests_are_bounded() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let verifier = verifier_for(&host);
    let client = verifier.registry().clone();
    let authority = Authority::Key(SigningKey::generate().public_key());

    let img = push_image(&client, &host, "hostile/app", "many").await;
    let sig_tag = cosign::signature_tag(&img, cosign::SIGNATURE_SUFFIX).unwrap();
    let blob = b"not a simple-signing payload".to_vec();
    let blob_digest = client.push_blob(&sig_tag, &blob).await.unwrap();
    let empty = client.push_blob(&sig_tag, b"{}").await.unwrap();
    let layer = json!({"mediaType": cosign::SIMPLE_SIGNING_MEDIA_TYPE, "digest": blob_digest.to_string(), "size": blob.len()});
    let many = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": vec![layer; 200]
    });
    client.push_manifest(&sig_tag, &serde_json::to_vec(&many).unwrap(), OCI_MANIFEST).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = registry.count_requests("GET", &format!("/blobs/{blob_digest}"));
    let verdict = verifier.verify(&img, &authority, &Requirement::Signature).await.unwrap();
    let Err(rejected) = &verdict.outcome else { panic!("200 junk layers verify nothing") };
    assert_eq!(rejected.candidates.len(), 16, "{:?}", rejected.candidates);
    assert!(rejected.reason.starts_with("none of 16 candidates verified"), "{}", rejected.reason);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetched = registry.count_requests("GET", &format!("/blobs/{blob_digest}")) - before;
    assert!(fetched <= 16, "{fetched} blob fetches for 200 layers");

    let img = push_image(&client, &host, "hostile/app", "deep").await;
    let sig_tag = cosign::signature_tag(&img, cosign::SIGNATURE_SUFFIX).unwrap();
    let depth = 5000;
    let deep = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{empty}","size":2}},"layers":[],"x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    client.push_manifest(&sig_tag, deep.as_bytes(), OCI_MANIFEST).await.unwrap();
    match verifier.verify(&img, &authority, &Requirement::Signature).await {
        Ok(v) => {
            let r = rejection(&v);
            assert!(r.contains("nothing found") || r.contains("recursion"), "{r}");
        }
        Err(e) => assert!(e.to_string().contains("recursion limit"), "{e}"),
    }
}

/// Proves: a policy author's Rego condition that would run for minutes is stopped by the per-evaluation
/// time limit: the requirement fails with the limit named (enforce: denied), and the engine answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_rego_condition_is_cut_off_by_its_time_limit() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let verifier = verifier_for(&host);
    let key = SigningKey::generate();
    let img = push_image(verifier.registry(), &host, "slow/app", "1.0").await;
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": img.repository_name(), "digest": {"sha256": img.digest().unwrap().hex()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        // The loop bound comes from the signed predicate, so compiling the condition (empty input) is quick.
        "predicate": {"n": 100000}
    });
    cosign::attest_with_key(verifier.registry(), &img, &key, &statement).await.unwrap();
    // 10^10 iterations, none of which holds: minutes of work without the limit.
    let condition = "package slow\n\nallow if {\n  some i in numbers.range(1, input.predicate.n)\n  some j in numbers.range(1, input.predicate.n)\n  i * j == -1\n}\n";
    let requirements = format!(
        "attestations:\n  - predicateType: https://slsa.dev/provenance/v1\n    condition: |\n{}",
        indent(condition, 6)
    );
    let yaml = ns_policy("slow", "team-1", &format!("{host}/slow/**"), &key, false, &requirements);
    let set = PolicySet::from_yaml_str(&yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let config = EngineConfig { budget: Duration::from_secs(20), ..EngineConfig::default() };
    let engine = Engine::new(config, set, verifier);
    let d = engine.evaluate(&pod_input("team-1", "web", &[("app", &img.to_string())])).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("policy slow: attestation https://slsa.dev/provenance/v1: key slow-key:"), "{m}");
    assert!(m.contains("execution exceeded time limit"), "the time limit is named: {m}");
    assert!(!m.contains("within the budget"), "cut off by the Rego limit, not the request budget: {m}");
}
