//! Issue #4 end to end through `Engine::evaluate` against a real `docker-registry` on loopback: ModelPack
//! and ModelKit artifacts built per the specs, signed with our own code, and admitted through every place a
//! workload names them (image volume, CSI model volume, KServe storageUri, fetcher init containers, a
//! custom resource via JSONPath); unverifiable fetchers; compliance profiles; model-signing authorities;
//! signed egress allowlists. Each rule has a negative case, and messages are checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use vouch_attest::cosign;
use vouch_attest::verify::ArtifactVerifier;
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::extract::ExtractionConfig;
use vouch_policies::{
    AdmissionInput, Decision, Engine, EngineConfig, FindingResult, GroupVersionKind, Operation, PolicySet,
};
use vouch_tests::fixture::{indent, tag_of, verifier};
use vouch_tests::models::{sign_model, ModelPackBuilder};
use vouch_webhooks::dev_registry::DevRegistry;

/// A cluster policy over `images` with key authority `k` (format `format`) and extra spec lines.
fn policy(name: &str, images: &str, key: &SigningKey, format: &str, extra: &str) -> String {
    format!(
        r#"---
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {{name: {name}}}
spec:
  images: ["{images}"]
  authorities:
    - name: k
      signatureFormat: {format}
      key:
        requireTlog: false
        pem: |
{pem}
{extra}"#,
        pem = indent(&key.public_key().to_pem(), 10),
        extra = indent(extra, 2),
    )
}

fn input(kind: GroupVersionKind, object: Value) -> AdmissionInput {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    AdmissionInput::new(Operation::Create, kind, Some("ml"), &name)
        .with_uid("u")
        .with_object(object)
        .with_namespace_labels(Some(BTreeMap::new()))
}

fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
    GroupVersionKind { group: group.into(), version: version.into(), kind: kind.into() }
}

fn pod(spec: Value) -> AdmissionInput {
    pod_with(json!({}), spec)
}

fn pod_with(annotations: Value, spec: Value) -> AdmissionInput {
    input(
        gvk("", "v1", "Pod"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "infer", "namespace": "ml", "annotations": annotations}, "spec": spec}),
    )
}

fn engine(yaml: &str, v: &ArtifactVerifier, extraction: ExtractionConfig) -> Engine {
    let set = PolicySet::from_yaml_str(yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let config = EngineConfig { budget: Duration::from_secs(20), extraction, ..EngineConfig::default() };
    Engine::new(config, set, v.clone())
}

struct World {
    _registry: DevRegistry,
    host: String,
    key: SigningKey,
    v: ArtifactVerifier,
    /// A cosign-signed ModelPack (safetensors, Apache-2.0, with a source URL and the OCI source annotation).
    model: ArtifactRef,
    /// The same kind of model, unsigned.
    unsigned: ArtifactRef,
}

async fn world() -> World {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let v = verifier(&host);
    let key = SigningKey::generate();
    let model = ModelPackBuilder::new()
        .weight_raw("model.safetensors", b"weights v1")
        .license("Apache-2.0")
        .format("safetensors")
        .source_url("https://github.com/acme/m")
        .annotation("org.opencontainers.image.source", "https://github.com/acme/m")
        .push(v.registry(), &format!("{host}/models/llm:v1"))
        .await
        .unwrap();
    cosign::sign_image_with_key(v.registry(), &model, &key, BTreeMap::new()).await.unwrap();
    let unsigned = ModelPackBuilder::new()
        .weight_raw("model.safetensors", b"weights unsigned")
        .license("Apache-2.0")
        .format("safetensors")
        .push(v.registry(), &format!("{host}/models/unsigned:v1"))
        .await
        .unwrap();
    World { _registry: registry, host, key, v, model, unsigned }
}

impl World {
    fn models_policy(&self, extra: &str) -> String {
        policy("models", &format!("{}/models/**", self.host), &self.key, "cosign", extra)
    }
}

fn pinned_to(d: &Decision, pointer: &str) -> String {
    d.pins
        .iter()
        .find(|p| p.pointer == pointer)
        .unwrap_or_else(|| panic!("no pin at {pointer}: {:?}", d.pins))
        .to
        .clone()
}

#[tokio::test]
async fn models_are_verified_and_pinned_wherever_a_pod_names_them() {
    let w = world().await;
    let e = engine(&w.models_policy("requirements: {signature: true}"), &w.v, ExtractionConfig::default());
    let model = tag_of(&w.model);
    let digest = w.model.digest().unwrap().to_string();
    let spec = json!({
        "containers": [{"name": "srv", "image": format!("{}/models/llm:v1", w.host)}],
        "volumes": [
            {"name": "weights", "image": {"reference": model}},
            {"name": "csi", "csi": {"driver": "model.csi.modelpack.org", "volumeAttributes": {"modelRef": model}}}
        ]
    });
    let d = e.evaluate(&pod(spec)).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(pinned_to(&d, "/spec/volumes/0/image/reference"), format!("{model}@{digest}"));
    assert_eq!(pinned_to(&d, "/spec/volumes/1/csi/volumeAttributes/modelRef"), format!("{model}@{digest}"));
    assert!(d.findings.iter().all(|f| f.result == FindingResult::Pass), "{:?}", d.findings);

    // Negative: the unsigned model in a CSI volume is denied, naming the volume and the requirement.
    let unsigned = tag_of(&w.unsigned);
    let spec = json!({"containers": [], "volumes": [
        {"name": "csi", "csi": {"driver": "model.csi.modelpack.org", "volumeAttributes": {"modelRef": unsigned}}}]});
    let d = e.evaluate(&pod(spec)).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.starts_with(&format!("Pod ml/infer: model volume csi: image {unsigned}@")), "{m}");
    assert!(m.contains(": policy models: signature: no signature verifies against key k"), "{m}");
    assert!(d.pins.is_empty());
}

#[tokio::test]
async fn inference_service_oci_storage_uri_is_pinned_with_its_scheme() {
    let w = world().await;
    let e = engine(&w.models_policy("requirements: {signature: true}"), &w.v, ExtractionConfig::default());
    let isvc = |uri: &str| {
        input(
            gvk("serving.kserve.io", "v1beta1", "InferenceService"),
            json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                   "metadata": {"name": "llm", "namespace": "ml"},
                   "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}, "storageUri": uri}}}}),
        )
    };
    let uri = format!("oci://{}", tag_of(&w.model));
    let d = e.evaluate(&isvc(&uri)).await;
    assert!(d.allowed, "{:?}", d.message);
    let pin = &d.pins[0];
    assert_eq!(pin.pointer, "/spec/predictor/model/storageUri");
    assert_eq!(pin.from, uri);
    assert_eq!(pin.to, format!("{uri}@{}", w.model.digest().unwrap()));

    // A model hub URL cannot be verified: denied under enforce, naming the source.
    let d = e.evaluate(&isvc("hf://meta-llama/Llama-3-8B")).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("storageUri predictor.model: policy models: fetcher: "), "{m}");
    assert!(m.contains("hf://meta-llama/Llama-3-8B"), "{m}");
    assert!(m.contains("not an OCI reference"), "{m}");
}

fn init_pod(init: Value) -> AdmissionInput {
    pod(json!({"initContainers": [init], "containers": []}))
}

#[tokio::test]
async fn fetchers_are_verified_and_pinned_in_env_and_args() {
    let w = world().await;
    let tools = format!("{}/tools/**", w.host);
    let yaml = w.models_policy("requirements: {signature: true}")
        + &policy("tools", &tools, &w.key, "cosign", "requirements: {signature: true}");
    // The fetcher images themselves must verify too: sign them.
    let kit = ModelPackBuilder::new().weight_raw("x", b"kitops-init image stand-in");
    let kit = kit.push(w.v.registry(), &format!("{}/tools/kitops-init:v1", w.host)).await.unwrap();
    cosign::sign_image_with_key(w.v.registry(), &kit, &w.key, BTreeMap::new()).await.unwrap();
    let oras = ModelPackBuilder::new().weight_raw("x", b"oras image stand-in");
    let oras = oras.push(w.v.registry(), &format!("{}/tools/oras:v1", w.host)).await.unwrap();
    cosign::sign_image_with_key(w.v.registry(), &oras, &w.key, BTreeMap::new()).await.unwrap();
    let e = engine(&yaml, &w.v, ExtractionConfig::default());
    let model = tag_of(&w.model);
    let digest = w.model.digest().unwrap().to_string();

    // KitOps init container with its own verification on: allowed, MODELKIT_REF pinned.
    let kitops = |extra_env: Value| {
        let mut env = vec![
            json!({"name": "MODELKIT_REF", "value": model}),
            json!({"name": "UNPACK_PATH", "value": "/m"}),
        ];
        if !extra_env.is_null() {
            env.push(extra_env);
        }
        json!({"name": "model-init", "image": tag_of(&kit), "env": env})
    };
    let d = e.evaluate(&init_pod(kitops(json!({"name": "COSIGN_KEY", "value": "k8s://ml/cosign"})))).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(pinned_to(&d, "/spec/initContainers/0/env/0/value"), format!("{model}@{digest}"));

    // KitOps with verification off: flagged (enforce: denied).
    let d = e.evaluate(&init_pod(kitops(Value::Null))).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(
        m.contains(
            "initContainer model-init: policy tools: fetcher: init container model-init (kitops-init)"
        ),
        "{m}"
    );

    // oras pull in args, and in a shell script: the reference is pinned inside the field.
    let init = json!({"name": "pull", "image": tag_of(&oras), "command": ["oras"],
                      "args": ["pull", "--plain-http", model, "-o", "/m"]});
    let d = e.evaluate(&init_pod(init)).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(pinned_to(&d, "/spec/initContainers/0/args/2"), format!("{model}@{digest}"));
    let script = format!("set -e; oras pull {model} -o /m && echo done");
    let init = json!({"name": "pull", "image": tag_of(&oras), "command": ["sh", "-c", script]});
    let d = e.evaluate(&init_pod(init)).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(
        pinned_to(&d, "/spec/initContainers/0/command/2"),
        format!("set -e; oras pull {model}@{digest} -o /m && echo done")
    );

    // skopeo copy docker://REF: pinned with the transport kept.
    let init = json!({"name": "copy", "image": tag_of(&oras), "command": ["skopeo", "copy", format!("docker://{model}"), "dir:/m"]});
    let d = e.evaluate(&init_pod(init)).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(pinned_to(&d, "/spec/initContainers/0/command/2"), format!("docker://{model}@{digest}"));

    // kit unpack of an unsigned model: denied, naming the fetcher.
    let init = json!({"name": "unpack", "image": tag_of(&oras), "command": ["kit", "unpack", tag_of(&w.unsigned), "-d", "/m"]});
    let d = e.evaluate(&init_pod(init)).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains(": policy models: signature: no signature verifies against key k"), "{m}");
}

#[tokio::test]
async fn an_https_fetcher_is_denied_under_enforce_and_warned_under_warn() {
    let w = world().await;
    let tools = format!("{}/tools/**", w.host);
    let oras = ModelPackBuilder::new().weight_raw("x", b"oras stand-in");
    let oras = oras.push(w.v.registry(), &format!("{}/tools/fetch:v1", w.host)).await.unwrap();
    cosign::sign_image_with_key(w.v.registry(), &oras, &w.key, BTreeMap::new()).await.unwrap();
    let url = "https://huggingface.co/acme/m/resolve/main/model.safetensors";
    let init = json!({"name": "model-init", "image": tag_of(&oras), "command": ["sh", "-c", format!("oras pull {url} -o /m")]});
    let enforce = policy("tools", &tools, &w.key, "cosign", "requirements: {signature: true}");
    let d = engine(&enforce, &w.v, ExtractionConfig::default()).evaluate(&init_pod(init.clone())).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("initContainer model-init: policy tools: fetcher: "), "{m}");
    assert!(m.contains(url) && m.contains("which is not an OCI reference and cannot be verified"), "{m}");

    let warn = policy(
        "tools",
        &tools,
        &w.key,
        "cosign",
        "requirements: {signature: true}\nfetchers: {unverifiableSource: Warn}",
    );
    let d = engine(&warn, &w.v, ExtractionConfig::default()).evaluate(&init_pod(init.clone())).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].contains(url), "{:?}", d.warnings);

    // No policy covers the fetcher image: fail closed.
    let other = policy("other", "example.invalid/**", &w.key, "cosign", "requirements: {signature: true}");
    let d = engine(&other, &w.v, ExtractionConfig::default()).evaluate(&init_pod(init)).await;
    assert!(!d.allowed);
    assert!(d.message.unwrap().contains("initContainer model-init: no policy: fetcher: "));
}

/// Model downloads by generic tools (curl of a Hugging Face file, `huggingface-cli download`, a configured
/// `mc cp`) make the init container a fetcher of an unverifiable source, judged in the policy's
/// `fetchers.unverifiableSource` mode; a curl of a health endpoint and an `echo` of a download do not.
#[tokio::test]
async fn generic_model_downloads_are_unverifiable_fetchers() {
    let w = world().await;
    let tools = format!("{}/tools/**", w.host);
    let image = ModelPackBuilder::new().weight_raw("x", b"shell stand-in");
    let image = image.push(w.v.registry(), &format!("{}/tools/shell:v1", w.host)).await.unwrap();
    cosign::sign_image_with_key(w.v.registry(), &image, &w.key, BTreeMap::new()).await.unwrap();
    let url = "https://huggingface.co/acme/m/resolve/main/model.safetensors";
    let script = format!(
        "set -e\n# huggingface-cli download acme/other\necho 'ollama pull llama3'\n\
         until curl -fsS http://config:8080/healthz; do sleep 1; done\n\
         curl -fsSL {url} -o /m/model.safetensors\nhuggingface-cli download acme/tokenizer --local-dir /m/tok\n\
         mc cp --recursive minio://models/adapter /m/adapter\n"
    );
    let init = json!({"name": "model-init", "image": tag_of(&image), "command": ["sh", "-c", script]});
    let extraction = ExtractionConfig::from_yaml_str(
        "downloaders: [{name: minio-client, command: mc, subcommands: [cp]}]",
    )
    .unwrap();

    let warn = policy(
        "tools",
        &tools,
        &w.key,
        "cosign",
        "requirements: {signature: true}\nfetchers: {unverifiableSource: Warn}",
    );
    let d = engine(&warn, &w.v, extraction.clone()).evaluate(&init_pod(init.clone())).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(d.warnings.len(), 3, "{:#?}", d.warnings);
    for (warning, source) in d.warnings.iter().zip([url, "hf://acme/tokenizer", "minio://models/adapter"]) {
        assert!(warning.contains("initContainer model-init: policy tools: fetcher: "), "{warning}");
        assert!(warning.contains(source) && warning.contains("not an OCI reference"), "{warning}");
    }

    // Under the default mode (the policy's, Enforce) the same pod is denied; without the configured
    // pattern `mc cp` is not a fetcher.
    let enforce = policy("tools", &tools, &w.key, "cosign", "requirements: {signature: true}");
    let d = engine(&enforce, &w.v, ExtractionConfig::default()).evaluate(&init_pod(init)).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains(url) && m.contains("hf://acme/tokenizer") && !m.contains("minio://"), "{m}");
    assert!(!m.contains("healthz") && !m.contains("ollama") && !m.contains("acme/other"), "{m}");
}

#[tokio::test]
async fn a_custom_resource_field_found_by_jsonpath_is_verified_and_pinned() {
    let w = world().await;
    let extraction = ExtractionConfig::from_yaml_str(
        r#"
extractors:
  - apiVersion: ml.example.com/v1alpha1
    kind: ModelDeployment
    paths: ["$.spec.model.uri"]
    prefix: "oci://"
"#,
    )
    .unwrap();
    let e = engine(&w.models_policy("requirements: {signature: true}"), &w.v, extraction);
    let cr = |r: &str| {
        input(
            gvk("ml.example.com", "v1alpha1", "ModelDeployment"),
            json!({"apiVersion": "ml.example.com/v1alpha1", "kind": "ModelDeployment",
                   "metadata": {"name": "chat", "namespace": "ml"}, "spec": {"model": {"uri": format!("oci://{r}")}}}),
        )
    };
    let d = e.evaluate(&cr(&tag_of(&w.model))).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(pinned_to(&d, "/spec/model/uri"), format!("oci://{}", w.model));
    let d = e.evaluate(&cr(&tag_of(&w.unsigned))).await;
    assert!(!d.allowed);
    assert!(d.message.unwrap().contains(": policy models: signature: no signature verifies against key k"));
}

fn profile(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: vouch.dev/v1alpha1\nkind: ComplianceProfile\nmetadata: {{name: {name}}}\nspec:\n{}",
        indent(spec, 2)
    )
}

#[tokio::test]
async fn compliance_profiles_pass_and_fail_with_the_violation_named() {
    let w = world().await;
    let yaml = w.models_policy("requirements: {signature: true}\ncomplianceProfile: open-models")
        + &profile(
            "open-models",
            "annotations: [{key: org.opencontainers.image.source, in: manifest}]\nmodel: {allowedLicenses: [Apache-2.0, MIT], deniedFormats: [pickle]}",
        )
        + &profile("strict", "annotations: [{key: org.example.openness, in: any}]");
    let e = engine(&yaml, &w.v, ExtractionConfig::default());
    let vol = |r: &ArtifactRef| json!({"containers": [], "volumes": [{"name": "m", "image": {"reference": tag_of(r)}}]});
    let d = e.evaluate(&pod(vol(&w.model))).await;
    assert!(d.allowed, "{:?}", d.message);
    let c =
        d.findings.iter().find(|f| f.requirement == "compliance open-models").expect("compliance finding");
    assert_eq!(c.result, FindingResult::Pass, "{c:?}");

    // A workload selecting a second profile by annotation: its missing annotation is named.
    let d = e.evaluate(&pod_with(json!({"vouch.dev/compliance-profile": "strict"}), vol(&w.model))).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("policy models: compliance strict: "), "{m}");
    assert!(m.contains("org.example.openness"), "{m}");

    // Pickle weights under a GPL license, without the source annotation: each rule fails.
    let bad = ModelPackBuilder::new()
        .weight_raw("model.pkl", b"pickled")
        .license("GPL-3.0-only")
        .format("pickle")
        .push(w.v.registry(), &format!("{}/models/pickled:v1", w.host))
        .await
        .unwrap();
    cosign::sign_image_with_key(w.v.registry(), &bad, &w.key, BTreeMap::new()).await.unwrap();
    let d = e.evaluate(&pod(vol(&bad))).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("policy models: compliance open-models: "), "{m}");
    assert!(m.contains("org.opencontainers.image.source"), "{m}");
    assert!(m.to_lowercase().contains("pickle"), "{m}");
    assert!(m.contains("GPL-3.0-only"), "{m}");

    // A policy that only assigns a profile still fails what it cannot read (nothing passes unseen).
    let only_profile = w.models_policy("complianceProfile: open-models")
        + &profile("open-models", "annotations: [{key: org.opencontainers.image.source}]");
    let missing = format!("{}/models/missing:v1", w.host);
    let d = engine(&only_profile, &w.v, ExtractionConfig::default())
        .evaluate(&pod(
            json!({"containers": [], "volumes": [{"name": "m", "image": {"reference": missing}}]}),
        ))
        .await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("policy models: compliance open-models: cannot resolve the image"), "{m}");

    // An unknown profile fails closed.
    let d = e.evaluate(&pod_with(json!({"vouch.dev/compliance-profile": "nope"}), vol(&w.model))).await;
    assert!(!d.allowed);
    assert!(d.message.unwrap().contains("compliance nope: unknown compliance profile \"nope\""));
}

/// Proves (threat model: namespace users): a profile a workload names itself is checked, but it does not
/// make a policy that asks nothing of its own (here it only sets an egress default) cover the artifact, so
/// `--no-match deny` still applies: a workload cannot trade it for the laxest profile there is.
#[tokio::test]
async fn a_profile_the_workload_names_does_not_stand_in_for_a_policy() {
    let w = world().await;
    let yaml = w.models_policy("egress: {}")
        + &profile("lax", "annotations: [{key: org.opencontainers.image.source, in: manifest}]");
    let set = PolicySet::from_yaml_str(&yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let config = EngineConfig {
        budget: Duration::from_secs(20),
        no_match: vouch_policies::NoMatchAction::Deny,
        ..EngineConfig::default()
    };
    let e = Engine::new(config, set, w.v.clone());
    let vol = json!({"containers": [], "volumes": [{"name": "m", "image": {"reference": tag_of(&w.model)}}]});
    for annotations in [json!({}), json!({"vouch.dev/compliance-profile": "lax"})] {
        let d = e.evaluate(&pod_with(annotations.clone(), vol.clone())).await;
        assert!(!d.allowed, "{annotations}: {d:?}");
        let m = d.message.unwrap();
        assert!(m.contains("policy: no policy covers this image"), "{annotations}: {m}");
    }
    // The named profile was still checked (and passed): checked, just not counted as coverage.
    let d = e.evaluate(&pod_with(json!({"vouch.dev/compliance-profile": "lax"}), vol.clone())).await;
    let lax = d.findings.iter().find(|f| f.requirement == "compliance lax").expect("the profile ran");
    assert_eq!(lax.result, FindingResult::Pass, "{lax:?}");
    // A policy with a requirement of its own covers the artifact: allowed.
    let covering = w.models_policy("requirements: {signature: true}")
        + &profile("lax", "annotations: [{key: org.opencontainers.image.source, in: manifest}]");
    let config = EngineConfig {
        budget: Duration::from_secs(20),
        no_match: vouch_policies::NoMatchAction::Deny,
        ..EngineConfig::default()
    };
    let e = Engine::new(config, PolicySet::from_yaml_str(&covering), w.v.clone());
    let d = e.evaluate(&pod_with(json!({"vouch.dev/compliance-profile": "lax"}), vol)).await;
    assert!(d.allowed, "{:?}", d.message);
}

#[tokio::test]
async fn a_model_signing_authority_verifies_model_signatures() {
    let w = world().await;
    let signer = SigningKey::generate();
    let model = ModelPackBuilder::new()
        .weight_raw("model.safetensors", b"weights signed with model-signing")
        .push(w.v.registry(), &format!("{}/models/ms:v1", w.host))
        .await
        .unwrap();
    sign_model(w.v.registry(), &model, &signer).await.unwrap();
    let images = format!("{}/models/**", w.host);
    let yaml = policy("ms", &images, &signer, "modelSigning", "requirements: {signature: true}");
    let e = engine(&yaml, &w.v, ExtractionConfig::default());
    let vol = |r: &ArtifactRef| {
        pod(json!({"containers": [], "volumes": [{"name": "m", "image": {"reference": tag_of(r)}}]}))
    };
    let d = e.evaluate(&vol(&model)).await;
    assert!(d.allowed, "{:?}", d.message);
    assert!(
        d.findings[0].reason.starts_with("model signature over 1 files verified against key k"),
        "{:?}",
        d.findings
    );

    // Negative: a model only cosign-signed has no model signature by this authority.
    let d = e.evaluate(&vol(&w.model)).await;
    assert!(!d.allowed);
    assert!(d.message.unwrap().contains("policy ms: signature: no signature verifies against key k"));

    // A different key does not verify the model signature.
    let other =
        policy("ms", &images, &SigningKey::generate(), "modelSigning", "requirements: {signature: true}");
    let d = engine(&other, &w.v, ExtractionConfig::default()).evaluate(&vol(&model)).await;
    assert!(!d.allowed);
}

async fn push_allowlist(w: &World, repo: &str, hosts: &[&str], cidrs: &[&str], sign: bool) -> ArtifactRef {
    let doc = json!({
        "apiVersion": vouch_attest::egress::API_VERSION,
        "name": repo,
        "hosts": hosts.iter().map(|h| json!({"host": h, "ports": [443]})).collect::<Vec<_>>(),
        "cidrs": cidrs.iter().map(|c| json!({"cidr": c})).collect::<Vec<_>>(),
    });
    let list = vouch_attest::egress::Allowlist::parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
    let r: ArtifactRef = format!("{}/egress/{repo}:v1", w.host).parse().unwrap();
    let pinned = vouch_attest::egress::push_allowlist(w.v.registry(), &r, &list).await.unwrap();
    if sign {
        cosign::sign_image_with_key(w.v.registry(), &pinned, &w.key, BTreeMap::new()).await.unwrap();
    }
    pinned
}

#[tokio::test]
async fn declared_egress_is_checked_against_a_verified_allowlist() {
    let w = world().await;
    let signed = push_allowlist(&w, "agents", &["api.example.com"], &["10.0.0.0/8"], true).await;
    let unsigned = push_allowlist(&w, "forged", &["**.example.net"], &[], false).await;
    let yaml = policy(
        "egress",
        &format!("{}/egress/**", w.host),
        &w.key,
        "cosign",
        "requirements: {signature: true}",
    );
    let e = engine(&yaml, &w.v, ExtractionConfig::default());
    let agent = |list: &ArtifactRef, endpoints: &str| {
        pod_with(
            json!({"vouch.dev/egress-allowlist": tag_of(list), "vouch.dev/egress": endpoints}),
            json!({"containers": []}),
        )
    };
    let d = e.evaluate(&agent(&signed, "api.example.com:443, 10.1.2.3")).await;
    assert!(d.allowed, "{:?}", d.message);
    let pass = d.findings.iter().find(|f| f.requirement == "egress").expect("egress finding");
    assert_eq!(pass.result, FindingResult::Pass, "{pass:?}");
    assert_eq!(
        pinned_to(&d, "/metadata/annotations/vouch.dev~1egress-allowlist"),
        format!("{}@{}", tag_of(&signed), signed.digest().unwrap())
    );

    // An endpoint the list does not cover is denied, named.
    let d = e.evaluate(&agent(&signed, "api.example.com:443, exfil.example.org:443")).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("policy egress: egress: "), "{m}");
    assert!(m.contains("exfil.example.org:443"), "{m}");
    assert!(!m.contains("api.example.com:443 ("), "covered endpoints are not named: {m}");

    // An unsigned allowlist is not used: denied.
    let d = e.evaluate(&agent(&unsigned, "evil.example.net:443")).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("did not verify"), "{m}");
}

#[tokio::test]
async fn network_policies_stay_within_the_namespace_allowlist() {
    let w = world().await;
    let signed = push_allowlist(&w, "ml-namespace", &[], &["10.0.0.0/8"], true).await;
    let yaml = policy(
        "egress",
        &format!("{}/egress/**", w.host),
        &w.key,
        "cosign",
        "requirements: {signature: true}\negress: {}",
    );
    let e = engine(&yaml, &w.v, ExtractionConfig::default());
    let netpol = |cidr: &str| {
        let mut i = input(
            gvk("networking.k8s.io", "v1", "NetworkPolicy"),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "out", "namespace": "ml"},
                   "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                            "egress": [{"to": [{"ipBlock": {"cidr": cidr}}]}]}}),
        );
        i.namespace_annotations.insert("vouch.dev/egress-allowlist".into(), tag_of(&signed));
        i
    };
    let d = e.evaluate(&netpol("10.20.0.0/16")).await;
    assert!(d.allowed, "{:?}", d.message);
    assert!(d.pins.is_empty(), "the namespace's allowlist is not in the object");

    let d = e.evaluate(&netpol("0.0.0.0/0")).await;
    assert!(!d.allowed);
    let m = d.message.unwrap();
    assert!(m.contains("0.0.0.0/0"), "{m}");
    assert!(m.contains("NetworkPolicy egress[0].to[0]"), "{m}");

    // No allowlist for the namespace while a policy governs egress: denied, saying so.
    let mut none = netpol("10.20.0.0/16");
    none.namespace_annotations.clear();
    let d = e.evaluate(&none).await;
    assert!(!d.allowed);
    assert!(d.message.unwrap().contains("no egress allowlist for namespace ml"));

    // A policy's default allowlist stands in for the namespace annotation.
    let with_default = policy(
        "egress",
        &format!("{}/egress/**", w.host),
        &w.key,
        "cosign",
        &format!("requirements: {{signature: true}}\negress: {{allowlist: \"{}\"}}", tag_of(&signed)),
    );
    let e = engine(&with_default, &w.v, ExtractionConfig::default());
    let d = e.evaluate(&none).await;
    assert!(d.allowed, "{:?}", d.message);
    let f = d.findings.iter().find(|f| f.requirement == "egress").expect("egress finding");
    assert_eq!((f.result, f.artifact.name.as_str()), (FindingResult::Pass, "policy egress default"));
    let mut wide = netpol("192.168.0.0/16");
    wide.namespace_annotations.clear();
    let d = e.evaluate(&wide).await;
    assert!(!d.allowed);
    assert!(d.message.unwrap().contains("192.168.0.0/16"));
}
