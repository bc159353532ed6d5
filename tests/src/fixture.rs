//! Set-up the registry integration tests share: a verifier for the loopback registry, a pushed image, a
//! key policy, a Pod admission request, and small readers of results. Only what several test files use
//! as it is; a file whose set-up differs on purpose keeps its own.
//!
//! A set-up step that fails is a failed test, so these helpers panic instead of returning errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::json;
use vouch_attest::cache::CacheConfig;
use vouch_attest::registry::{RegistryClient, RegistryConfig, OCI_MANIFEST};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, Verdict, VerifierConfig, VerifyOptions};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::{AdmissionInput, GroupVersionKind, Operation};

use crate::fake_sigstore::FakeSigstore;

/// A verifier (empty cache, public-good trust root) for the plain-HTTP registry at `host`. A registry
/// call may take 2 s and is not retried, so a fault shows at once; key signatures need no Rekor entry
/// (vouch's own are not logged).
pub fn verifier(host: &str) -> ArtifactVerifier {
    verifier_with(host, |_| {})
}

/// [`verifier`] with its config changed by `tweak` first (another timeout, retries, cache, credentials).
pub fn verifier_with(host: &str, tweak: impl FnOnce(&mut VerifierConfig)) -> ArtifactVerifier {
    let mut config = VerifierConfig {
        registry: RegistryConfig {
            insecure_registries: vec![host.to_owned()],
            timeout: Duration::from_secs(2),
            retries: 0,
            ..RegistryConfig::default()
        },
        trust_root: TrustRoot::public_good().unwrap(),
        cache: CacheConfig::default(),
        options: VerifyOptions { require_tlog_for_keys: false, ..VerifyOptions::default() },
    };
    tweak(&mut config);
    ArtifactVerifier::new(config).unwrap()
}

/// A verifier (empty cache) under `sigstore`'s trust root for the plain-HTTP registry at `host`, with the
/// registry client's default timeout and retries. Key signatures need no Rekor entry (vouch's own are not
/// logged) and certificates no SCT (`FakeSigstore::issue` leaves carry none).
pub fn fake_sigstore_verifier(host: &str, sigstore: &FakeSigstore) -> ArtifactVerifier {
    ArtifactVerifier::new(VerifierConfig {
        registry: RegistryConfig { insecure_registries: vec![host.to_owned()], ..RegistryConfig::default() },
        trust_root: sigstore.trust_root().unwrap(),
        cache: CacheConfig::default(),
        options: VerifyOptions {
            require_tlog_for_keys: false,
            require_sct: false,
            ..VerifyOptions::default()
        },
    })
    .unwrap()
}

/// Push a one-layer image to `host/repo:tag` (its layer names `repo` and `tag`, so no two images share a
/// digest); returns the reference pinned to the manifest's digest.
pub async fn push_image(client: &RegistryClient, host: &str, repo: &str, tag: &str) -> ArtifactRef {
    let r: ArtifactRef = format!("{host}/{repo}:{tag}").parse().unwrap();
    let layer = format!("layer of {repo} {tag}").into_bytes();
    let layer_digest = client.push_blob(&r, &layer).await.unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]}}))
    .unwrap();
    let config_digest = client.push_blob(&r, &config).await.unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}]
    }))
    .unwrap();
    let d = client.push_manifest(&r, &manifest, OCI_MANIFEST).await.unwrap();
    r.with_digest(d)
}

/// `s` with every line indented by `n` spaces and ended by a newline (for YAML block scalars).
pub fn indent(s: &str, n: usize) -> String {
    s.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
}

/// A `ClusterSupplyChainPolicy` named `name` over `images` in `mode` with `failurePolicy: failure`, one
/// key authority `cosign-prod` holding `key` (no Rekor entry required: vouch's own signatures are not
/// logged), and `requirements` (YAML, e.g. `signature: true`). Starts with `---`, so policies concatenate.
pub fn key_policy(
    name: &str,
    images: &str,
    key: &SigningKey,
    mode: &str,
    failure: &str,
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
  mode: {mode}
  failurePolicy: {failure}
  authorities:
    - name: cosign-prod
      key:
        requireTlog: false
        pem: |
{pem}
  requirements:
{requirements}
"#,
        pem = indent(&key.public_key().to_pem(), 10),
        requirements = indent(requirements, 4),
    )
}

/// A Pod CREATE request for `namespace/name` with one container per (container name, image) of
/// `containers`; the namespace carries its `kubernetes.io/metadata.name` label, as the API server sets it.
pub fn pod_input(namespace: &str, name: &str, containers: &[(&str, &str)]) -> AdmissionInput {
    let containers: Vec<_> = containers.iter().map(|(c, image)| json!({"name": c, "image": image})).collect();
    let pod = GroupVersionKind { group: String::new(), version: "v1".into(), kind: "Pod".into() };
    AdmissionInput::new(Operation::Create, pod, Some(namespace), name)
        .with_uid(format!("uid-{namespace}-{name}"))
        .with_object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": containers}}))
}

/// `r` by its tag (`registry/repository:tag`), without the digest it is pinned to.
pub fn tag_of(r: &ArtifactRef) -> String {
    format!("{}/{}:{}", r.registry(), r.repository(), r.tag().unwrap())
}

/// The reason and the candidates' causes of a rejected verdict, on one line; panics if `v` verified.
pub fn rejection(v: &Verdict) -> String {
    match &v.outcome {
        Ok(f) => panic!("expected a rejection, got {f:?}"),
        Err(r) => format!("{} | {}", r.reason, r.candidates.join(" | ")),
    }
}

/// The shared test material (`../shared/testdata` or `$VOUCH_TESTDATA`); missing material fails the test.
pub fn testdata() -> PathBuf {
    vouch_attest::testdata::locate().unwrap().expect("test material (../shared/testdata or $VOUCH_TESTDATA)")
}

/// The time `secs` seconds ago.
pub fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}
