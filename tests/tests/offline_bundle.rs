//! Offline verification bundles against a real `docker-registry` on loopback: a bundle is made from what
//! the engine read while verifying key-signed and keyless-signed images, the registry is STOPPED, and the
//! same engine deciding from the bundle alone gives the same decisions with zero HTTP requests. Artifacts
//! the bundle does not cover are unverifiable (failure policy decides); tampered bundles are refused with
//! the reason, and nothing from them is used.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vouch_attest::cache::CacheConfig;
use vouch_attest::cosign;
use vouch_attest::offline::{
    write_bundle, write_tar, BundleError, BundleSpec, CoveredArtifact, OfflineBundle, OpenOptions, Recorder,
    BUNDLE_SIG, INDEX_JSON,
};
use vouch_attest::registry::RegistryClient;
use vouch_attest::verify::{ArtifactVerifier, VerifierConfig, VerifyOptions};
use vouch_attest::SigningKey;
use vouch_policies::{
    AdmissionInput, Decision, Engine, EngineConfig, FindingResult, PolicyResources, PolicySet, Secrets,
};
use vouch_tests::fake_sigstore::{unix, FakeSigstore, San};
use vouch_tests::fixture::{key_policy, pod_input, push_image};
use vouch_webhooks::dev_registry::DevRegistry;

const ISSUER: &str = "https://issuer.vouch-test.invalid";
const IDENTITY: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

fn options() -> VerifyOptions {
    // Our own key signatures are not logged; the fake CA has no CT log.
    VerifyOptions { require_tlog_for_keys: false, require_sct: false, ..VerifyOptions::default() }
}

/// Key policy on `host/key/**` (Fail), keyless on `host/keyless/**` (Fail), key on `host/lenient/**` (Ignore).
fn policies(host: &str, key: &SigningKey) -> Vec<(String, String)> {
    let key_policy_on = |name: &str, repo: &str, failure: &str| {
        key_policy(name, &format!("{host}/{repo}/**"), key, "Enforce", failure, "signature: true")
    };
    let keyless = format!(
        r#"apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: keyless-signed
spec:
  images: ["{host}/keyless/**"]
  mode: Enforce
  failurePolicy: Fail
  authorities:
    - name: ci
      keyless:
        identities:
          - subject: "{IDENTITY}"
            issuer: "{ISSUER}"
  requirements:
    signature: true
"#
    );
    vec![
        ("key-signed.yaml".into(), key_policy_on("key-signed", "key", "Fail")),
        ("keyless-signed.yaml".into(), keyless),
        ("lenient.yaml".into(), key_policy_on("lenient", "lenient", "Ignore")),
    ]
}

fn policy_set(files: &[(String, String)]) -> PolicySet {
    let mut resources = PolicyResources::default();
    for (name, yaml) in files {
        resources.add_yaml_str(yaml, name);
    }
    let set = PolicySet::compile(resources, &Secrets::none());
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    set
}

/// A Pod `name` in `default` with one container per image (`c0`, `c1`, ...).
fn pod(name: &str, images: &[&str]) -> AdmissionInput {
    let names: Vec<String> = (0..images.len()).map(|i| format!("c{i}")).collect();
    let containers: Vec<(&str, &str)> =
        names.iter().map(String::as_str).zip(images.iter().copied()).collect();
    pod_input("default", name, &containers)
}

/// What a decision says, for comparing online and offline decisions.
fn summary(d: &Decision) -> (bool, Option<String>, Vec<(String, String, FindingResult)>) {
    let findings =
        d.findings.iter().map(|f| (f.policy.clone(), f.reference.clone(), f.result)).collect::<Vec<_>>();
    (d.allowed, d.message.clone(), findings)
}

struct World {
    _registry: DevRegistry,
    dir: tempfile::TempDir,
    bundle_key: SigningKey,
    bundle: PathBuf,
    files: Vec<(String, String)>,
    pods: Vec<AdmissionInput>,
    online: Vec<Decision>,
    host: String,
}

/// Push and sign images, decide online with a recording client, write the bundle, stop the registry.
async fn world() -> World {
    let mut registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let sigstore = FakeSigstore::new().unwrap();
    let key = SigningKey::generate();
    let pusher = registry.client().unwrap();

    let signed = push_image(&pusher, &host, "key/app", "v1").await;
    cosign::sign_image_with_key(&pusher, &signed, &key, BTreeMap::new()).await.unwrap();
    let unsigned = push_image(&pusher, &host, "key/unsigned", "v1").await;
    let keyless = push_image(&pusher, &host, "keyless/app", "v1").await;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let leaf = sigstore.issue(&San::Uri(IDENTITY.into()), ISSUER, now - hour, now - hour / 2).unwrap();
    sigstore.sign_image(&pusher, &keyless, &leaf, Some(unix(now - hour * 3 / 4))).await.unwrap();
    let lenient = push_image(&pusher, &host, "lenient/app", "v1").await;
    cosign::sign_image_with_key(&pusher, &lenient, &key, BTreeMap::new()).await.unwrap();

    let files = policies(&host, &key);
    let recorder = Recorder::new(64 << 20);
    let registry_config = registry.registry_config();
    let client = RegistryClient::recording(registry_config.clone(), recorder.clone()).unwrap();
    let verifier = ArtifactVerifier::with_registry_client(
        VerifierConfig {
            registry: registry_config,
            trust_root: sigstore.trust_root().unwrap(),
            cache: CacheConfig::default(),
            options: options(),
        },
        client.clone(),
    )
    .unwrap();
    let config = EngineConfig { budget: Duration::from_secs(20), ..EngineConfig::default() };
    let engine = Engine::new(config, policy_set(&files), verifier);
    // By tag (resolved then), by digest, unsigned, keyless, and under the lenient policy.
    let pods = vec![
        pod("by-tag", &[&format!("{host}/key/app:v1")]),
        pod("by-digest", &[&signed.to_string()]),
        pod("unsigned", &[&unsigned.to_string()]),
        pod("keyless", &[&format!("{host}/keyless/app:v1")]),
        pod("mixed", &[&format!("{host}/key/app:v1"), &keyless.to_string(), &lenient.to_string()]),
    ];
    let mut online = Vec::new();
    for p in &pods {
        online.push(engine.evaluate(p).await);
    }
    assert!(online[0].allowed && online[1].allowed && online[3].allowed && online[4].allowed, "{online:#?}");
    assert!(!online[2].allowed, "{:#?}", online[2]);
    // The counter the offline side is held to does count real requests.
    assert!(client.stats().http_requests > 0, "{:?}", client.stats());

    let mut artifacts = Vec::new();
    for r in [&signed, &unsigned, &keyless, &lenient] {
        let m = client.fetch_manifest(r).await.unwrap();
        artifacts.push(CoveredArtifact {
            reference: r.to_string(),
            digest: m.digest,
            media_type: m.media_type,
        });
    }
    let bundle_key = SigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("site.bundle.tar");
    let created = chrono::Utc::now();
    let spec = BundleSpec {
        recording: recorder.snapshot().unwrap(),
        artifacts,
        policies: files.clone(),
        policy_features: vec![],
        trusted_root_json: Some(sigstore.trusted_root_json()),
        keys: vec![("cosign.pub".into(), key.public_key().to_pem())],
        created,
        expires: created + chrono::Duration::days(7),
    };
    write_bundle(&spec, Some(&bundle_key), &bundle).unwrap();
    registry.stop();
    World { _registry: registry, dir, bundle_key, bundle, files, pods, online, host }
}

fn offline_engine(bundle: &OfflineBundle, config: EngineConfig) -> Engine {
    let verifier = bundle.verifier(CacheConfig::default(), options()).unwrap();
    Engine::new(config, policy_set(&bundle.policies_yaml()), verifier)
}

/// Proves: with the registry stopped, the bundle alone gives every decision the registry gave, and the
/// offline client sent no HTTP request at all (while answering many calls).
#[tokio::test]
async fn decisions_from_the_bundle_equal_online_decisions_with_the_registry_stopped() {
    let w = world().await;
    let bundle = OfflineBundle::open(&w.bundle, Some(&w.bundle_key.public_key())).unwrap();
    assert!(bundle.is_authenticated());
    assert_eq!(bundle.policies_yaml(), w.files);
    let engine =
        offline_engine(&bundle, EngineConfig { budget: Duration::from_secs(5), ..EngineConfig::default() });
    for (p, online) in w.pods.iter().zip(&w.online) {
        let offline = engine.evaluate(p).await;
        assert_eq!(summary(&offline), summary(online), "pod {}", p.name);
    }
    let stats = engine.verifier().registry_stats();
    assert!(stats.calls > 0, "{stats:?}");
    assert_eq!(stats.http_requests, 0, "{stats:?}");
    assert!(engine.verifier().registry().is_offline());
}

/// Proves: an artifact the bundle does not cover is an Error finding ("not in the offline bundle"):
/// denied under failurePolicy Fail, allowed with a warning under Ignore — and still no HTTP request.
#[tokio::test]
async fn artifacts_not_in_the_bundle_are_left_to_the_failure_policy() {
    let w = world().await;
    let bundle = OfflineBundle::open(&w.bundle, Some(&w.bundle_key.public_key())).unwrap();
    let engine =
        offline_engine(&bundle, EngineConfig { budget: Duration::from_secs(5), ..EngineConfig::default() });

    let strict = engine.evaluate(&pod("new", &[&format!("{}/key/new:v1", w.host)])).await;
    assert!(!strict.allowed, "{strict:#?}");
    let f = &strict.findings[0];
    assert_eq!(f.result, FindingResult::Error, "{f:#?}");
    assert!(f.reason.contains("not in the offline bundle"), "{}", f.reason);
    assert!(
        strict.message.as_deref().unwrap_or_default().contains("not in the offline bundle"),
        "{strict:#?}"
    );

    let lenient = engine.evaluate(&pod("new-lenient", &[&format!("{}/lenient/new:v1", w.host)])).await;
    assert!(lenient.allowed, "{lenient:#?}");
    assert_eq!(lenient.findings[0].result, FindingResult::Error);
    assert!(lenient.warnings.iter().any(|m| m.contains("not in the offline bundle")), "{lenient:#?}");
    assert_eq!(engine.verifier().registry_stats().http_requests, 0);
}

fn entries_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn tampered(w: &World, name: &str, change: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> PathBuf {
    let mut entries = entries_of(&w.bundle);
    change(&mut entries);
    let path = w.dir.path().join(name);
    write_tar(&path, &entries, 0).unwrap();
    path
}

fn refused(path: &Path, key: Option<&SigningKey>) -> BundleError {
    OfflineBundle::open(path, key.map(|k| k.public_key()).as_ref())
        .expect_err("a tampered bundle must be refused")
}

/// Proves: every kind of tampering with a real bundle is refused with a reason naming what is wrong.
#[tokio::test]
async fn tampered_bundles_are_refused_with_the_reason() {
    let w = world().await;
    let key = Some(&w.bundle_key);

    // A changed byte in a signature layer (a blob).
    let sig_layer = tampered(&w, "byte.tar", |entries| {
        let (_, bytes) = entries
            .iter_mut()
            .find(|(n, b)| n.starts_with("blobs/") && b.starts_with(b"{\"critical\""))
            .expect("a simple-signing payload blob");
        bytes[10] ^= 0x20;
    });
    let e = refused(&sig_layer, key);
    assert!(matches!(e, BundleError::BlobDigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not match its digest"), "{e}");

    // The signature of another bundle (same key).
    let (mut other_entries, other_path) = (entries_of(&w.bundle), w.dir.path().join("other.tar"));
    other_entries.retain(|(n, _)| n != BUNDLE_SIG);
    let recording = vouch_attest::offline::Recording::default();
    let now = chrono::Utc::now();
    let other = BundleSpec {
        recording,
        artifacts: vec![],
        policies: vec![("allow-all.yaml".into(), "# nothing\n".into())],
        policy_features: vec![],
        trusted_root_json: None,
        keys: vec![],
        created: now,
        expires: now + chrono::Duration::days(1),
    };
    write_bundle(&other, Some(&w.bundle_key), &other_path).unwrap();
    let other_sig = entries_of(&other_path).into_iter().find(|(n, _)| n == BUNDLE_SIG).unwrap();
    let swapped = tampered(&w, "swapped.tar", |entries| {
        *entries.iter_mut().find(|(n, _)| n == BUNDLE_SIG).unwrap() = other_sig;
    });
    let e = refused(&swapped, key);
    assert!(matches!(e, BundleError::SignatureForOtherContent), "{e}");

    // A removed entry.
    let removed = tampered(&w, "removed.tar", |entries| {
        let pos = entries.iter().rposition(|(n, _)| n.starts_with("blobs/")).unwrap();
        entries.remove(pos);
    });
    assert!(matches!(refused(&removed, key), BundleError::MissingBlob { .. }));

    // index.json not the one the signed index names.
    let index = tampered(&w, "index.tar", |entries| {
        let (_, bytes) = entries.iter_mut().find(|(n, _)| n == INDEX_JSON).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v["manifests"].as_array_mut().unwrap().pop();
        *bytes = serde_json::to_vec(&v).unwrap();
    });
    assert!(matches!(refused(&index, key), BundleError::IndexDigestMismatch { .. }));

    // Expired (checked a year from now), a wrong key, unsigned when a key is required.
    let later = OpenOptions {
        now: chrono::Utc::now() + chrono::Duration::days(365),
        ..OpenOptions::new(Some(w.bundle_key.public_key()))
    };
    assert!(matches!(OfflineBundle::open_with(&w.bundle, &later), Err(BundleError::Expired { .. })));
    let e = refused(&w.bundle, Some(&SigningKey::generate()));
    assert!(matches!(e, BundleError::BadSignature { .. }), "{e}");
    let unsigned = tampered(&w, "unsigned.tar", |entries| entries.retain(|(n, _)| n != BUNDLE_SIG));
    assert!(matches!(refused(&unsigned, key), BundleError::Unsigned));

    // A path traversal entry in front of an otherwise good bundle.
    let mut header = tar::Header::new_old();
    let name = b"../../../tmp/vouch-evil";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(b"evil");
    bytes.resize(1024, 0);
    bytes.extend_from_slice(&std::fs::read(&w.bundle).unwrap());
    let traversal = w.dir.path().join("traversal.tar");
    std::fs::write(&traversal, bytes).unwrap();
    let e = refused(&traversal, key);
    assert!(matches!(e, BundleError::UnsafeEntry { .. }) && e.to_string().contains("path traversal"), "{e}");
    assert!(!Path::new("/tmp/vouch-evil").exists());
}
