//! Shared by the `vouch check` tests and benchmark: a loopback registry with images signed by our own
//! code, policies on disk, manifest builders, and running the built binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;

/// A registry with three images and two policies:
/// - `demo/app:1.0` signed by `key`; `demo/unsigned:1.0` not signed: policy `prod-signed` (Enforce,
///   `HOST/demo/**`) requires a signature by `key`;
/// - `soft/tool:1.0` not signed: policy `soft-signed` (Warn, `HOST/soft/**`) requires one.
pub struct Fixture {
    pub registry: DevRegistry,
    pub host: String,
    pub key: SigningKey,
    pub signed: ArtifactRef,
    pub unsigned: ArtifactRef,
    pub soft: ArtifactRef,
    pub dir: tempfile::TempDir,
    /// Directory with both policies.
    pub policies: PathBuf,
}

/// A policy like [`key_policy`] with a mode and an image glob of its own.
pub fn mode_policy(name: &str, images: &str, mode: &str, key: &SigningKey) -> String {
    let pem: String = key.public_key().to_pem().lines().map(|l| format!("          {l}\n")).collect();
    format!(
        "apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: {name}
spec:
  images: [\"{images}\"]
  authorities:
    - name: cosign-{name}
      key:
        requireTlog: false
        pem: |
{pem}  requirements:
    signature: true
  mode: {mode}
"
    )
}

impl Fixture {
    pub async fn start() -> Self {
        let registry = DevRegistry::start().await.expect("docker-registry (apt-get install docker-registry)");
        let host = registry.host();
        let client = registry.client().unwrap();
        let key = SigningKey::generate();
        let signed = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
        sign_image_with_key(&client, &signed, &key, BTreeMap::new()).await.unwrap();
        let unsigned = push_demo_image(&client, &host, "demo/unsigned", "1.0", b"unsigned\n").await.unwrap();
        let soft = push_demo_image(&client, &host, "soft/tool", "1.0", b"soft tool\n").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        std::fs::write(
            policies.join("prod-signed.yaml"),
            key_policy("prod-signed", "cosign-prod", &host, &key),
        )
        .unwrap();
        std::fs::write(
            policies.join("soft-signed.yaml"),
            mode_policy("soft-signed", &format!("{host}/soft/**"), "Warn", &key),
        )
        .unwrap();
        Self { registry, host, key, signed, unsigned, soft, dir, policies }
    }

    /// `HOST/<repository>:<tag>` as a manifest would name it.
    pub fn image(&self, repository_tag: &str) -> String {
        format!("{}/{repository_tag}", self.host)
    }

    /// A directory under the fixture's temporary directory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// `vouch check` with the policies and the registry reachable over plain HTTP, plus `args`.
    pub async fn check(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut all: Vec<String> = vec![
            "check".into(),
            "--policy".into(),
            self.policies.to_string_lossy().into_owned(),
            "--insecure-registry".into(),
            self.host.clone(),
        ];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        vouch(&all, stdin).await
    }
}

/// What the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the built `vouch` binary with `args`, feeding `stdin`.
pub async fn vouch(args: &[String], stdin: Option<&str>) -> Run {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let text = stdin.unwrap_or_default().to_owned();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(text.as_bytes()).await;
    });
    let out = child.wait_with_output().await.unwrap();
    writer.await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A Deployment (YAML) in `namespace` (none when `None`) with one container.
pub fn deployment(name: &str, namespace: Option<&str>, image: &str) -> String {
    let ns = namespace.map(|n| format!("  namespace: {n}\n")).unwrap_or_default();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
{ns}  labels: {{app: {name}}}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: {image}
"
    )
}

/// A Pod (JSON) with one container.
pub fn pod_json(name: &str, image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image}]}
    })
}

/// Write `text` to `dir/name`, returning the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}
