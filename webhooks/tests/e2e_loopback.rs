//! The e2e scenarios (`e2e/scenarios/*.yaml`) without a cluster: for each scenario the artifacts are pushed
//! to a real registry on loopback (Debian's docker-registry) and signed with vouch's cosign-compatible
//! signer, the real `vouch serve` binary is started over TLS with the scenario's policy, and the scenario's
//! object is sent as kube-apiserver sends it: an AdmissionReview to `/mutate`, the returned JSON patch
//! applied, then the patched object to `/validate`. The answers are checked against the scenario's
//! expectations (allowed or denied, message, pinned digests, audit annotations, warnings).
//!
//! Status conditions and OpenReports reports need an API server: scenarios that expect them run only in
//! cluster mode (`e2e/run.sh` with a cluster), and this runner says so. The same scenario files drive
//! both modes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::{RegistryClient, OCI_EMPTY, OCI_MANIFEST};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::dev_pki::DevCa;

/// Scenarios this runner plays, in order.
const LOOPBACK: &[&str] = &[
    "signed-pod-pinned",
    "unsigned-pod-denied",
    "signed-deployment-pinned",
    "audit-mode-records",
    "dry-run-records",
    "model-fetcher-pinned",
    "model-fetcher-unsigned-denied",
    "egress-violation-denied",
    "egress-covered-allowed",
    "inferenceservice-storageuri-pinned",
];

/// Scenarios it does not play, and why (each also explained in e2e/README.md).
const NOT_ON_LOOPBACK: &[(&str, &str)] = &[
    ("status-and-report", "status conditions and reports are written to an API server: cluster mode only"),
    ("scan-drift", "the scanner lists Pods and writes conditions, Events and reports through an API server"),
];

/// Namespace of the scenario objects.
const NAMESPACE: &str = "e2e";
/// Name of the authority the runner adds to every scenario policy.
const AUTHORITY: &str = "e2e-key";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    about: String,
    #[serde(default)]
    artifacts: Vec<Artifact>,
    policy: PolicyDoc,
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
    #[serde(default, rename = "clusterOnly")]
    cluster_only: bool,
    /// CRDs a cluster must have for the scenario (cluster mode checks; loopback needs none).
    #[serde(default, rename = "requiresCRDs")]
    requires_crds: Vec<String>,
    /// After the object is admitted, what changes (cluster mode: `rotateKey`), for `expect.scan`.
    #[serde(default)]
    drift: Option<Value>,
    object: Value,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Artifact {
    name: String,
    kind: ArtifactKind,
    repository: String,
    tag: String,
    signed: bool,
    #[serde(default)]
    document: Option<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum ArtifactKind {
    Image,
    Modelkit,
    EgressAllowlist,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    name: String,
    spec: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    allowed: bool,
    #[serde(default)]
    message: Vec<String>,
    #[serde(default)]
    pinned: BTreeMap<String, String>,
    #[serde(default)]
    audit: Vec<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    report: Option<Value>,
    /// What the scanner writes after the drift (cluster only).
    #[serde(default)]
    scan: Option<Value>,
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/scenarios")
}

fn load_scenarios() -> BTreeMap<String, Scenario> {
    let mut out = BTreeMap::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let s: Scenario = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!out.contains_key(&s.name), "{}: scenario name {} used twice", path.display(), s.name);
        out.insert(s.name.clone(), s);
    }
    out
}

#[test]
fn every_scenario_is_played_or_its_absence_explained() {
    let scenarios = load_scenarios();
    assert!(scenarios.len() >= 11, "expected the e2e scenarios, found {}", scenarios.len());
    let played: BTreeSet<&str> = LOOPBACK.iter().copied().collect();
    let skipped: BTreeSet<&str> = NOT_ON_LOOPBACK.iter().map(|(n, _)| *n).collect();
    assert!(played.is_disjoint(&skipped));
    for (name, s) in &scenarios {
        assert!(
            played.contains(name.as_str()) || skipped.contains(name.as_str()),
            "scenario {name} is neither played on loopback nor listed as not played"
        );
        assert!(!s.about.trim().is_empty(), "{name}: say what it proves");
        for crd in &s.requires_crds {
            // A CRD name: <plural>.<group>, as `kubectl get crd` takes it.
            assert!(
                crd.split('.').count() >= 3 && crd == &crd.to_lowercase(),
                "{name}: {crd} is not a CRD name"
            );
        }
        // A scenario that needs a cluster must not be claimed by the loopback runner.
        let needs_cluster = s.cluster_only
            || s.expect.status.is_some()
            || s.expect.report.is_some()
            || s.expect.scan.is_some()
            || s.drift.is_some();
        assert!(!(needs_cluster && played.contains(name.as_str())), "{name} needs a cluster");
        // Every expectation that names an artifact names one the scenario pushes.
        let names: BTreeSet<&str> = s.artifacts.iter().map(|a| a.name.as_str()).collect();
        let text = serde_json::to_string(&(&s.object, &s.expect.pinned, &s.expect.message)).unwrap();
        for var in placeholders(&text) {
            let base = var.trim_end_matches('@');
            assert!(
                ["REGISTRY", "NAMESPACE"].contains(&base) || names.contains(base),
                "{name}: ${{{var}}} names no artifact"
            );
        }
    }
    for name in played.iter().chain(skipped.iter()) {
        assert!(scenarios.contains_key(*name), "the runner lists {name}, but no scenario file has it");
    }
}

fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push(after[..j].to_owned());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// `${REGISTRY}`, `${NAMESPACE}`, `${name}` (the artifact by tag) and `${name@}` (pinned to its digest).
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    assert!(!out.contains("${"), "unresolved placeholder in {out}");
    out
}

fn substitute_value(v: &Value, vars: &BTreeMap<String, String>) -> Value {
    serde_json::from_str(&substitute(&serde_json::to_string(v).unwrap(), vars)).unwrap()
}

async fn push_manifest_artifact(
    client: &RegistryClient,
    r: &ArtifactRef,
    artifact_type: Option<&str>,
    config: (&str, &[u8]),
    layer: (&str, &[u8]),
) -> ArtifactRef {
    let config_digest = client.push_blob(r, config.1).await.unwrap();
    let layer_digest = client.push_blob(r, layer.1).await.unwrap();
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config.0, "digest": config_digest.to_string(), "size": config.1.len()},
        "layers": [{"mediaType": layer.0, "digest": layer_digest.to_string(), "size": layer.1.len()}]
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = json!(t);
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = client.push_manifest(r, &bytes, OCI_MANIFEST).await.unwrap();
    r.with_digest(digest)
}

/// Push one scenario artifact; returns it pinned.
async fn push(client: &RegistryClient, host: &str, a: &Artifact) -> ArtifactRef {
    let r: ArtifactRef = format!("{host}/{}:{}", a.repository, a.tag).parse().unwrap();
    match a.kind {
        ArtifactKind::Image => {
            let content = format!("e2e image {} {}\n", a.repository, a.tag);
            push_demo_image(client, host, &a.repository, &a.tag, content.as_bytes()).await.unwrap()
        }
        ArtifactKind::Modelkit => {
            // A KitOps ModelKit: Kitfile-derived config and one weights layer.
            let config = serde_json::to_vec(&json!({
                "manifestVersion": "1.0.0",
                "package": {"name": a.repository.rsplit('/').next().unwrap_or("model"), "version": a.tag},
                "model": {"name": "sentiment", "path": "model.safetensors", "framework": "safetensors"}
            }))
            .unwrap();
            push_manifest_artifact(
                client,
                &r,
                None,
                ("application/vnd.kitops.modelkit.config.v1+json", &config),
                ("application/vnd.kitops.modelkit.model.v1.tar", b"not really a model\n"),
            )
            .await
        }
        ArtifactKind::EgressAllowlist => {
            let doc = serde_json::to_vec(a.document.as_ref().expect("an egressAllowlist needs a document"))
                .unwrap();
            push_manifest_artifact(
                client,
                &r,
                Some("application/vnd.vouch.egress-allowlist.v1+json"),
                (OCI_EMPTY, b"{}"),
                ("application/vnd.vouch.egress-allowlist.layer.v1+json", &doc),
            )
            .await
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `vouch serve`, stopped with SIGTERM (it drains) when dropped.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
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

/// The plural resource name kube-apiserver would put into `request.resource`.
fn resource_of(kind: &str) -> String {
    match kind {
        "NetworkPolicy" => "networkpolicies".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

/// A CREATE AdmissionReview for `object` as kube-apiserver sends it (admission.k8s.io/v1).
fn review(uid: &str, object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap();
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource_of(kind)});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": object["metadata"]["name"], "namespace": NAMESPACE, "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "uid": "e2e-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"}
        }
    })
}

/// Apply an RFC 6902 patch of `add`/`replace` operations (all vouch emits), as the API server would.
fn apply_patch(object: &mut Value, patch: &Value) {
    for op in patch.as_array().expect("a JSON patch is an array") {
        let kind = op["op"].as_str().unwrap();
        assert!(kind == "add" || kind == "replace", "unexpected patch operation {op}");
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = object.pointer_mut(parent).unwrap_or_else(|| panic!("patch path {path} has no parent"));
        match target {
            Value::Object(map) => {
                if kind == "replace" {
                    assert!(map.contains_key(&last), "replace of missing {path}");
                }
                map.insert(last, op["value"].clone());
            }
            Value::Array(items) => {
                let i: usize = last.parse().unwrap();
                if kind == "replace" {
                    items[i] = op["value"].clone();
                } else {
                    items.insert(i, op["value"].clone());
                }
            }
            other => panic!("patch {path} into {other}"),
        }
    }
}

/// An audit entry key: `audit-N` (kube-apiserver prefixes it with the webhook name, giving
/// `validate.vouch.dev/audit-N` in the audit log; see docs/audit-mode.md).
fn is_audit_key(key: &str) -> bool {
    key.strip_prefix("audit-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Play one scenario; returns what did not match (empty = as expected).
async fn play(
    s: &Scenario,
    registry: &DevRegistry,
    key: &SigningKey,
    ca: &DevCa,
    dir: &Path,
    n: usize,
) -> Vec<String> {
    let host = registry.host();
    let client = registry.client().unwrap();
    let mut vars =
        BTreeMap::from([("REGISTRY".to_owned(), host.clone()), ("NAMESPACE".to_owned(), NAMESPACE.into())]);
    for a in &s.artifacts {
        let pinned = push(&client, &host, a).await;
        if a.signed {
            sign_image_with_key(&client, &pinned, key, BTreeMap::new()).await.unwrap();
        }
        vars.insert(a.name.clone(), format!("{host}/{}:{}", a.repository, a.tag));
        vars.insert(format!("{}@", a.name), pinned.to_string());
    }

    // The scenario's policy, with the run's key as its authority.
    let mut spec = substitute_value(&s.policy.spec, &vars);
    if spec.get("authorities").is_none() {
        spec["authorities"] =
            json!([{"name": AUTHORITY, "key": {"pem": key.public_key().to_pem(), "requireTlog": false}}]);
    }
    let policy = json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "ClusterSupplyChainPolicy",
        "metadata": {"name": s.policy.name}, "spec": spec
    });
    let work = dir.join(format!("{n:02}-{}", s.name));
    let policies = work.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("policy.yaml"), serde_yaml::to_string(&policy).unwrap()).unwrap();
    let pair = ca.issue_server(&["localhost"], &[]).unwrap();
    std::fs::write(work.join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(work.join("tls.key"), &pair.key_pem).unwrap();

    let (port, health) = (free_port(), free_port());
    let log = work.join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vouch"));
    cmd.arg("serve")
        .args(["--tls-cert", work.join("tls.crt").to_str().unwrap()])
        .args(["--tls-key", work.join("tls.key").to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--health-listen", &format!("127.0.0.1:{health}")])
        .args(["--policy-dir", policies.to_str().unwrap()])
        .args(["--insecure-registry", &host])
        .args(["--no-match", "allow"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if s.dry_run {
        cmd.arg("--dry-run");
    }
    let _serve = Serve { child: cmd.spawn().unwrap(), log: log.clone() };

    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = plain.get(format!("http://127.0.0.1:{health}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: vouch serve did not become ready:\n{}",
            s.name,
            std::fs::read_to_string(&_serve.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let post = |path: &'static str, body: Value| {
        let tls = tls.clone();
        async move {
            let r = tls.post(format!("https://localhost:{port}{path}")).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path} answered HTTP {}", r.status());
            let got: Value = r.json().await.unwrap();
            assert_eq!(got["apiVersion"], "admission.k8s.io/v1");
            assert_eq!(got["kind"], "AdmissionReview");
            got["response"].clone()
        }
    };

    // Mutating admission first, its patch applied, then validating admission of the patched object.
    let mut object = substitute_value(&s.object, &vars);
    object["metadata"]["namespace"] = json!(NAMESPACE);
    let uid = format!("e2e00000-0000-0000-0000-{n:012}");
    let mutated = post("/mutate", review(&uid, &object)).await;
    let mut problems = Vec::new();
    if mutated["uid"] != json!(uid) {
        problems.push(format!("/mutate did not echo the uid: {mutated}"));
    }
    if mutated["allowed"] != json!(true) {
        problems.push(format!("/mutate must never deny: {mutated}"));
    }
    if let Some(p) = mutated["patch"].as_str() {
        assert_eq!(mutated["patchType"], "JSONPatch");
        let patch: Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(p).unwrap()).unwrap();
        apply_patch(&mut object, &patch);
    }
    let answer = post("/validate", review(&uid, &object)).await;
    if answer["uid"] != json!(uid) {
        problems.push(format!("/validate did not echo the uid: {answer}"));
    }
    let e = &s.expect;
    if answer["allowed"] != json!(e.allowed) {
        problems.push(format!("allowed: expected {}, got {answer}", e.allowed));
    }
    let message = answer["status"]["message"].as_str().unwrap_or_default();
    for want in &e.message {
        let want = substitute(want, &vars);
        if !message.contains(&want) {
            problems.push(format!("message lacks {want:?}: {message:?}"));
        }
    }
    if !e.allowed && answer["status"]["code"] != json!(403) {
        problems.push(format!("a denial carries status.code 403: {answer}"));
    }
    for (pointer, want) in &e.pinned {
        let want = substitute(want, &vars);
        let got = object.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        if got != want {
            problems.push(format!("{pointer} after /mutate: expected {want}, got {got}"));
        }
    }
    let audit: Vec<String> = answer["auditAnnotations"]
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| is_audit_key(k)).map(|(_, v)| v.to_string()).collect())
        .unwrap_or_default();
    for want in &e.audit {
        let want = substitute(want, &vars);
        if !audit.iter().any(|a| a.contains(&want)) {
            problems.push(format!("no audit annotation contains {want:?}: {audit:?}"));
        }
    }
    if e.audit.is_empty() && !audit.is_empty() && e.allowed {
        problems.push(format!("unexpected audit annotations: {audit:?}"));
    }
    let warnings: Vec<String> = answer["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    for want in &e.warnings {
        let want = substitute(want, &vars);
        if !warnings.iter().any(|w| w.contains(&want)) {
            problems.push(format!("no warning contains {want:?}: {warnings:?}"));
        }
    }
    if !problems.is_empty() {
        problems.push(format!("vouch serve log:\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scenarios_against_vouch_serve_on_loopback() {
    println!(
        "e2e mode: loopback (no cluster): `vouch serve` over TLS on 127.0.0.1, AdmissionReviews as \
         kube-apiserver sends them, a docker-registry on loopback"
    );
    let scenarios = load_scenarios();
    let registry = DevRegistry::start().await.unwrap();
    let key = SigningKey::generate();
    let ca = DevCa::new("vouch-e2e-loopback-ca").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for (n, name) in LOOPBACK.iter().enumerate() {
        let s = &scenarios[*name];
        let problems = play(s, &registry, &key, &ca, dir.path(), n + 1).await;
        if problems.is_empty() {
            println!("  ok    {name}");
        } else {
            println!("  FAIL  {name}");
            failed.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    for (name, why) in NOT_ON_LOOPBACK {
        println!("  not run  {name}: {why}");
    }
    assert!(failed.is_empty(), "{} scenario(s) failed:\n{}", failed.len(), failed.join("\n"));
}
