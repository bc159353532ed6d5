//! Azure kars end to end: KarsSandbox and KarsEval objects written from kars's CRDs (tests/data/kars, with
//! its origin and licence) against the loopback registry, with the chart's kars preset as the extraction
//! configuration. Signed runtime and agent-code images are admitted and unsigned ones denied; a kars egress
//! allowlist signed by the trusted key covers the endpoints a sandbox declares (a subdomain of an allowed
//! host too) and an endpoint outside it is denied by name; an allowlist signed by another key, one that is
//! not canonical (the rule named) and one whose declared artifactType is not its own are denied; a git
//! agent-code URL is one non-OCI source, reported once. `vouch check` (the function and the binary) and the
//! webhook decide every object the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use check_support::{mode_policy, write, Fixture};
use clap::Parser as _;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::egress::{
    KarsAllowlist, EGRESS_ALLOWLIST_ARTIFACT_TYPE, KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
};
use vouch_attest::registry::{RegistryClient, OCI_EMPTY, OCI_MANIFEST};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::manifests::{resource_of, ManifestObject};
use vouch_webhooks::cli::check::{evaluate_objects, prepare, CheckArgs, Outcome};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::server::admission::validate_response;
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::router;
use vouch_webhooks::server::run::Server;
use vouch_webhooks::server::tls::CertPaths;

/// The artifactType of the (made-up, kars §6 reserves it) signed eval-corpus bundle.
const CORPUS_ARTIFACT_TYPE: &str = "application/vnd.kars.eval-corpus.v1+yaml";

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: CheckArgs,
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kars").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

/// The chart's kars preset: the extraction configuration under test.
fn preset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/vouch/extractors/kars.yaml")
}

/// Push a one-layer OCI artifact (empty config) of `artifact_type` holding `content`; its digest reference.
async fn push_artifact(client: &RegistryClient, r: &str, artifact_type: &str, content: &[u8]) -> ArtifactRef {
    let r: ArtifactRef = r.parse().unwrap();
    let config = client.push_blob(&r, b"{}").await.unwrap();
    let layer = client.push_blob(&r, content).await.unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": layer.to_string(), "size": content.len()}],
    });
    let digest =
        client.push_manifest(&r, &serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST).await.unwrap();
    r.with_digest(digest)
}

async fn signed(client: &RegistryClient, r: ArtifactRef, key: &SigningKey) -> ArtifactRef {
    sign_image_with_key(client, &r, key, BTreeMap::new()).await.unwrap();
    r
}

/// `{registry, repository, digest}` of a pinned reference.
fn parts(r: &ArtifactRef, host: &str) -> (String, String) {
    let repository = r.repository_name().strip_prefix(&format!("{host}/")).unwrap().to_owned();
    (repository, r.digest().unwrap().to_string())
}

/// A template of tests/data/kars with its placeholders replaced (longest names first).
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut values = values.to_vec();
    values.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = template.to_owned();
    for (k, v) in values {
        out = out.replace(k, &v);
    }
    out
}

fn endpoints(list: &[(&str, u16)]) -> String {
    let items: Vec<String> = list.iter().map(|(h, p)| format!("{{host: {h}, port: {p}}}")).collect();
    format!("[{}]", items.join(", "))
}

/// The allowlist a sandbox names: where, and the artifactType it declares.
struct AllowlistRef<'a> {
    pinned: &'a ArtifactRef,
    artifact_type: &'a str,
}

fn allowlist_values(host: &str, a: &AllowlistRef<'_>) -> Vec<(&'static str, String)> {
    let (repository, digest) = parts(a.pinned, host);
    vec![
        ("REGISTRY", host.to_owned()),
        ("ALLOWLIST_REPOSITORY", repository),
        ("ALLOWLIST_DIGEST", digest),
        ("ALLOWLIST_ARTIFACT_TYPE", a.artifact_type.to_owned()),
    ]
}

fn byo(name: &str, host: &str, runtime: &str, eps: &[(&str, u16)], a: &AllowlistRef<'_>) -> String {
    let mut values = allowlist_values(host, a);
    values.extend([
        ("NAME", name.to_owned()),
        ("RUNTIME_IMAGE", runtime.to_owned()),
        ("ENDPOINTS", endpoints(eps)),
    ]);
    fill(&read("karssandbox-byo.yaml"), &values)
}

fn hermes(name: &str, host: &str, agent_code: &str, eps: &[(&str, u16)], a: &AllowlistRef<'_>) -> String {
    let mut values = allowlist_values(host, a);
    values.extend([
        ("NAME", name.to_owned()),
        ("AGENT_CODE", agent_code.to_owned()),
        ("ENDPOINTS", endpoints(eps)),
    ]);
    fill(&read("karssandbox-hermes.yaml"), &values)
}

/// A JSON Schema of the CRD's `openAPIV3Schema` (the `x-kubernetes-*` keys dropped, unknown fields refused
/// where properties are listed, as the API server prunes them).
fn strict(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let mut out: serde_json::Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !k.starts_with("x-kubernetes-"))
                .map(|(k, v)| (k.clone(), strict(v)))
                .collect();
            let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if out.contains_key("properties") && !preserve {
                out.insert("additionalProperties".into(), json!(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
        other => other.clone(),
    }
}

/// Every KarsSandbox built is valid for kars's CRD (its spec; metadata is the API server's).
fn assert_valid_sandbox(yaml: &str) {
    let crd: Value = serde_yaml::from_str(&read("karssandbox-crd.yaml")).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let validator = jsonschema::validator_for(&strict(schema)).unwrap();
    let object: Value = serde_yaml::from_str(yaml).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&object["spec"]).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "not a KarsSandbox by kars's CRD: {errors:?}\n{yaml}");
}

/// The AdmissionReview kube-apiserver sends for creating `o`.
fn review(uid: &str, o: &ManifestObject, namespace: &str) -> Value {
    let gvk = json!({"group": o.kind.group, "version": o.kind.version, "kind": o.kind.kind});
    let gvr =
        json!({"group": o.kind.group, "version": o.kind.version, "resource": resource_of(&o.kind.kind)});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": o.name, "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "kars-cli", "groups": ["system:authenticated"]},
            "object": o.object, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kars_sandboxes_are_decided_the_same_by_check_and_the_webhook() {
    let fx = Fixture::start().await;
    let client = fx.registry.client().unwrap();
    let host = fx.host.clone();
    let other_key = SigningKey::generate();

    // Images: the runtime and agent code signed by the trusted key, one runtime unsigned.
    let runtime = signed(
        &client,
        push_demo_image(&client, &host, "kars/runtime-byo", "1.0", b"byo\n").await.unwrap(),
        &fx.key,
    )
    .await;
    let _agent = signed(
        &client,
        push_demo_image(&client, &host, "kars/agent-code", "1.0", b"agent\n").await.unwrap(),
        &fx.key,
    )
    .await;
    let _runner = signed(
        &client,
        push_demo_image(&client, &host, "kars/conformance-runner", "1.0", b"run\n").await.unwrap(),
        &fx.key,
    )
    .await;
    push_demo_image(&client, &host, "kars/runtime-unsigned", "1.0", b"unsigned\n").await.unwrap();

    // Allowlists: the canonical document signed by the trusted key, a copy signed by another key, a
    // non-canonical one (endpoints out of order) signed by the trusted key.
    let document = read("egress-allowlist.yaml");
    let parsed = KarsAllowlist::parse(document.as_bytes()).unwrap();
    assert_eq!(parsed.to_canonical_yaml(), document, "the test document is canonical");
    let allowlist_at = |repo: &str| format!("{host}/policy/egress-allowlist/{repo}:v3");
    let good = push_artifact(
        &client,
        &allowlist_at("research-agent"),
        KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
        document.as_bytes(),
    )
    .await;
    let good = signed(&client, good, &fx.key).await;
    let foreign_doc = document.replace("name: research-agent", "name: foreign");
    let foreign = push_artifact(
        &client,
        &allowlist_at("foreign"),
        KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
        foreign_doc.as_bytes(),
    )
    .await;
    let foreign = signed(&client, foreign, &other_key).await;
    let unsorted_doc = document.replace(
        "    - host: api.github.com\n      port: 443\n    - host: telegram.org\n      port: 443\n",
        "    - host: telegram.org\n      port: 443\n    - host: api.github.com\n      port: 443\n",
    );
    assert_ne!(unsorted_doc, document);
    let unsorted = push_artifact(
        &client,
        &allowlist_at("unsorted"),
        KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
        unsorted_doc.as_bytes(),
    )
    .await;
    let unsorted = signed(&client, unsorted, &fx.key).await;
    // A signed eval corpus.
    let corpus = push_artifact(
        &client,
        &format!("{host}/policy/corpus/jailbreak:1"),
        CORPUS_ARTIFACT_TYPE,
        b"cases: []\n",
    )
    .await;
    let corpus = signed(&client, corpus, &fx.key).await;

    // Policies: kars images and bundles, and the allowlists (the netsec key here is the same trusted key).
    for (name, images) in [
        ("kars-images", format!("{host}/kars/**")),
        ("kars-allowlists", format!("{host}/policy/egress-allowlist/**")),
        ("kars-bundles", format!("{host}/policy/corpus/**")),
    ] {
        std::fs::write(
            fx.policies.join(format!("{name}.yaml")),
            mode_policy(name, &images, "Enforce", &fx.key),
        )
        .unwrap();
    }

    let kars = KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE;
    let trusted = AllowlistRef { pinned: &good, artifact_type: kars };
    let oci = |image: &str| format!("{{oci: {{image: {image}}}}}");
    let (gh, tg, sub) = (("api.github.com", 443), ("telegram.org", 443), ("api.telegram.org", 443));
    let sandboxes = [
        byo("byo-signed", &host, &fx.image("kars/runtime-byo:1.0"), &[gh, sub], &trusted),
        hermes("hermes-signed", &host, &oci(&fx.image("kars/agent-code:1.0")), &[tg], &trusted),
        byo("byo-unsigned", &host, &fx.image("kars/runtime-unsigned:1.0"), &[gh], &trusted),
        byo("endpoint-outside", &host, &format!("{runtime}"), &[gh, ("evil.example.net", 443)], &trusted),
        byo("port-outside", &host, &format!("{runtime}"), &[("api.github.com", 80)], &trusted),
        byo(
            "allowlist-other-key",
            &host,
            &format!("{runtime}"),
            &[gh],
            &AllowlistRef { pinned: &foreign, artifact_type: kars },
        ),
        byo(
            "allowlist-non-canonical",
            &host,
            &format!("{runtime}"),
            &[gh],
            &AllowlistRef { pinned: &unsorted, artifact_type: kars },
        ),
        byo(
            "allowlist-wrong-type",
            &host,
            &format!("{runtime}"),
            &[gh],
            &AllowlistRef { pinned: &good, artifact_type: EGRESS_ALLOWLIST_ARTIFACT_TYPE },
        ),
        hermes(
            "hermes-git",
            &host,
            "{git: {url: \"git@github.com:acme/agent.git\", ref: v1.2.3}}",
            &[tg],
            &trusted,
        ),
    ];
    for s in &sandboxes {
        assert_valid_sandbox(s);
    }
    let (corpus_repository, corpus_digest) = parts(&corpus, &host);
    let eval = fill(
        &read("karseval.yaml"),
        &[
            ("NAME", "nightly".to_owned()),
            ("REGISTRY", host.clone()),
            ("CORPUS_REPOSITORY", corpus_repository),
            ("CORPUS_DIGEST", corpus_digest),
            ("CORPUS_ARTIFACT_TYPE", CORPUS_ARTIFACT_TYPE.to_owned()),
            ("RUNNER_IMAGE", fx.image("kars/conformance-runner:1.0")),
        ],
    );
    let dir = fx.subdir("manifests");
    let mut documents: Vec<String> = sandboxes.to_vec();
    documents.push(eval);
    let file = write(&dir, "kars.yaml", &documents.join("---\n"));
    let policies = fx.policies.to_string_lossy().into_owned();
    let extraction = preset().to_string_lossy().into_owned();

    // The webhook, as `vouch serve --policy-dir … --extraction-config charts/vouch/extractors/kars.yaml`.
    let ca = DevCa::new("kars").unwrap();
    let pair = ca.issue_server(&["localhost"], &[]).unwrap();
    let tls = tempfile::tempdir().unwrap();
    std::fs::write(tls.path().join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(tls.path().join("tls.key"), &pair.key_pem).unwrap();
    let server = Server::prepare(ServeConfig {
        insecure_registries: vec![host.clone()],
        extraction_config: Some(preset()),
        shutdown_grace: Duration::from_secs(1),
        ..ServeConfig::loopback(
            CertPaths { cert: tls.path().join("tls.crt"), key: tls.path().join("tls.key") },
            Some(fx.policies.clone()),
        )
    })
    .await
    .unwrap();
    let app = router(server.state().clone());

    // check, through the function the command uses.
    let cli = Cli::try_parse_from([
        "check",
        "-f",
        &file,
        "--policy",
        &policies,
        "--insecure-registry",
        &host,
        "--extraction-config",
        &extraction,
        "--timeout-budget",
        "8s",
    ])
    .unwrap();
    let prepared = prepare(&cli.args).unwrap();
    let (reports, _) = evaluate_objects(&prepared.engine, &prepared.objects, &prepared.options).await;
    assert_eq!(reports.len(), 10);

    let mut outcomes = Vec::new();
    let mut messages = BTreeMap::new();
    for (i, (object, report)) in prepared.objects.iter().zip(&reports).enumerate() {
        let uid = format!("00000000-0000-0000-0000-{i:012}");
        let ns = report.namespace.clone().unwrap();
        assert_eq!(ns, "kars-research");
        let body = serde_json::to_vec(&review(&uid, object, &ns)).unwrap();
        let request = Request::post("/validate")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let webhook = &answer["response"];
        let what = report.label();
        assert_eq!(webhook["allowed"], json!(report.decision.allowed), "{what}: {webhook}");
        assert_eq!(webhook["status"]["message"].as_str(), report.decision.message.as_deref(), "{what}");
        assert_eq!(answer, validate_response(&uid, &report.decision).body, "{what}");
        outcomes.push((report.name.clone(), report.outcome));
        messages.insert(report.name.clone(), report.decision.message.clone().unwrap_or_default());
        if report.name == "byo-signed" {
            // The runtime image's tag is pinned; the allowlist reference names a digest already.
            let pointers: Vec<&str> = report.decision.pins.iter().map(|p| p.pointer.as_str()).collect();
            assert_eq!(pointers, ["/spec/runtime/byo/image"], "{:?}", report.decision.pins);
            let egress = report.decision.findings.iter().find(|f| f.requirement == "egress").unwrap();
            assert!(
                egress.reason.contains("2 endpoints declared at spec.networkPolicy.allowedEndpoints[*] are in egress allowlist research-agent"),
                "{}",
                egress.reason
            );
            let allowlist =
                format!("{host}/policy/egress-allowlist/research-agent@{}", good.digest().unwrap());
            assert!(report.decision.findings.iter().any(|f| f.reference == allowlist), "{allowlist}");
        }
    }
    assert_eq!(
        outcomes,
        [
            ("byo-signed".to_owned(), Outcome::Allowed),
            ("hermes-signed".to_owned(), Outcome::Allowed),
            ("byo-unsigned".to_owned(), Outcome::Denied),
            ("endpoint-outside".to_owned(), Outcome::Denied),
            ("port-outside".to_owned(), Outcome::Denied),
            ("allowlist-other-key".to_owned(), Outcome::Denied),
            ("allowlist-non-canonical".to_owned(), Outcome::Denied),
            ("allowlist-wrong-type".to_owned(), Outcome::Denied),
            ("hermes-git".to_owned(), Outcome::Denied),
            ("nightly".to_owned(), Outcome::Allowed),
        ],
        "{messages:#?}"
    );
    let m = |name: &str| messages[name].clone();
    assert!(m("byo-unsigned").contains("field spec.runtime.byo.image: image "), "{}", m("byo-unsigned"));
    assert!(m("byo-unsigned").contains("kars/runtime-unsigned:1.0@sha256:"), "{}", m("byo-unsigned"));
    assert!(
        m("byo-unsigned").contains("policy kars-images: signature: no signature verifies"),
        "{}",
        m("byo-unsigned")
    );
    assert!(
        m("endpoint-outside").contains("evil.example.net:443 (not in egress allowlist research-agent)"),
        "{}",
        m("endpoint-outside")
    );
    assert!(!m("endpoint-outside").contains("api.github.com:443 ("), "only what is outside is named");
    assert!(
        m("port-outside").contains("api.github.com:80 (not in egress allowlist research-agent)"),
        "{}",
        m("port-outside")
    );
    assert!(
        m("allowlist-other-key").contains("policy kars-allowlists: signature: no signature verifies"),
        "{}",
        m("allowlist-other-key")
    );
    assert!(m("allowlist-other-key").contains("the allowlist"), "{}", m("allowlist-other-key"));
    assert!(
        m("allowlist-non-canonical").contains(
            "is not canonical (rule §0.6 list ordering of kars's policy-canonical-format): line 10: endpoint api.github.com:443 comes after telegram.org:443"
        ),
        "{}",
        m("allowlist-non-canonical")
    );
    assert!(
        m("allowlist-wrong-type").contains(&format!(
            "the object declares artifactType {EGRESS_ALLOWLIST_ARTIFACT_TYPE}, but the artifact's is {kars}"
        )),
        "{}",
        m("allowlist-wrong-type")
    );
    let git = m("hermes-git");
    assert_eq!(
        git.matches("names the git repository \"git@github.com:acme/agent.git\"").count(),
        1,
        "once: {git}"
    );
    assert!(git.contains("field spec.runtime.hermes.agentCode.git.url: policy "), "{git}");
    assert!(!git.contains("not a valid reference"), "{git}");

    // The binary agrees with the function.
    let run = fx
        .check(
            &["-f", &file, "--extraction-config", &extraction, "-o", "json", "--timeout-budget", "8s"],
            None,
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    for (o, report) in json["objects"].as_array().unwrap().iter().zip(&reports) {
        assert_eq!(o["decision"]["allowed"], json!(report.decision.allowed));
        assert_eq!(o["decision"]["message"].as_str(), report.decision.message.as_deref());
    }
}
