//! The webhook half of `vouch demo`: `vouch serve` started as a child process with an embedded default
//! policy and a demo certificate authority, then AdmissionReviews shaped as kube-apiserver sends them,
//! over real TLS on loopback.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use serde_json::{json, Value};
use vouch_attest::{ArtifactRef, SigningKey};

use crate::server::dev_pki::DevCa;

/// A ClusterSupplyChainPolicy `name`: every image under `host/demo/` needs a signature by `key`
/// (authority `authority`, no transparency-log entry required). The demo's embedded default policy.
pub fn key_policy(name: &str, authority: &str, host: &str, key: &SigningKey) -> String {
    let pem_yaml: String = key.public_key().to_pem().lines().map(|l| format!("          {l}\n")).collect();
    format!(
        "apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: {name}
spec:
  images: [\"{host}/demo/**\"]
  authorities:
    - name: {authority}
      key:
        requireTlog: false
        pem: |
{pem_yaml}  requirements:
    signature: true
  mode: Enforce
"
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A Pod CREATE review as kube-apiserver sends it.
fn pod_review(uid: &str, name: &str, image: &str) -> Value {
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": name, "namespace": "demo", "operation": "CREATE",
            "userInfo": {"username": "demo-user", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "demo"},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first (the server drains), then make sure.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One admission exchange the demo shows.
pub struct Exchange {
    /// What was sent.
    pub what: String,
    /// Whether the answer was the expected one.
    pub as_expected: bool,
    /// What came back, for people.
    pub detail: String,
}

/// Start `vouch serve` on loopback with the default policy and send it three reviews.
pub async fn run(
    dir: &Path,
    host: &str,
    key: &SigningKey,
    signed: &ArtifactRef,
) -> anyhow::Result<Vec<Exchange>> {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies)?;
    std::fs::write(policies.join("default.yaml"), key_policy("demo-signed", "demo-key", host, key))?;
    let ca = DevCa::new("vouch demo CA")?;
    let pair = ca.issue_server(&["localhost"], &["127.0.0.1".parse()?])?;
    std::fs::write(dir.join("tls.crt"), &pair.cert_pem)?;
    std::fs::write(dir.join("tls.key"), &pair.key_pem)?;
    let (port, health) = (free_port()?, free_port()?);
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .args(["--tls-cert", &dir.join("tls.crt").to_string_lossy()])
        .args(["--tls-key", &dir.join("tls.key").to_string_lossy()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--health-listen", &format!("127.0.0.1:{health}")])
        .args(["--policy-dir", &policies.to_string_lossy()])
        .args(["--insecure-registry", host])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting vouch serve")?;
    let _server = Server { child };

    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let ready = format!("http://127.0.0.1:{health}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if plain.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            bail!("vouch serve did not become ready:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("  vouch serve on https://127.0.0.1:{port} (health and metrics on http://127.0.0.1:{health})");

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes())?)
        .timeout(Duration::from_secs(15))
        .build()?;
    let post = |path: &'static str, review: Value| {
        let client = client.clone();
        async move {
            let url = format!("https://localhost:{port}{path}");
            let resp = client.post(url).json(&review).send().await?;
            let status = resp.status();
            let body: Value = resp.json().await?;
            anyhow::ensure!(status.is_success(), "HTTP {status}: {body}");
            Ok::<Value, anyhow::Error>(body["response"].clone())
        }
    };

    let by_tag = format!("{host}/demo/app:1.0");
    let unsigned = format!("{host}/demo/unsigned:1.0");
    let mut out = Vec::new();

    let r = post("/mutate", pod_review("11111111-0000-0000-0000-000000000001", "web", &by_tag)).await?;
    let patch = r["patch"]
        .as_str()
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default();
    let pinned = format!("{by_tag}@{}", signed.digest().map(ToString::to_string).unwrap_or_default());
    out.push(Exchange {
        what: format!("POST /mutate  pod web, image {by_tag}"),
        as_expected: r["allowed"] == true && patch.contains(&pinned),
        detail: format!("allowed, JSON patch: {patch}"),
    });

    let r = post("/validate", pod_review("11111111-0000-0000-0000-000000000002", "web", &pinned)).await?;
    out.push(Exchange {
        what: format!("POST /validate pod web, image {pinned}"),
        as_expected: r["allowed"] == true,
        detail: format!("allowed: {}", r["allowed"]),
    });

    let r = post("/validate", pod_review("11111111-0000-0000-0000-000000000003", "rogue", &unsigned)).await?;
    let message = r["status"]["message"].as_str().unwrap_or_default().to_owned();
    out.push(Exchange {
        what: format!("POST /validate pod rogue, image {unsigned}"),
        as_expected: r["allowed"] == false && message.contains("policy demo-signed"),
        detail: format!("denied: {message}"),
    });

    let metrics = plain.get(format!("http://127.0.0.1:{health}/metrics")).send().await?.text().await?;
    let decisions: Vec<&str> = metrics.lines().filter(|l| l.starts_with("vouch_decisions_total{")).collect();
    out.push(Exchange {
        what: "GET /metrics (vouch_decisions_total)".into(),
        as_expected: !decisions.is_empty(),
        detail: decisions.join("\n           "),
    });
    Ok(out)
}
