//! Init-container fetchers (extract_all): the KitOps init container (verification on and off, valueFrom),
//! `kit unpack`, `oras pull`, `skopeo copy` in argv and in `sh -c` scripts, an https fetcher, configured
//! profiles — with the exact pointers, prefixes and suffixes a pin writes back, and the problems raised.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use vouch_policies::extract::{
    extract_all, ExtractError, Extracted, ExtractedArtifact, ExtractionConfig, FetcherProblem,
    FetcherProblemKind,
};
use vouch_policies::{AdmissionInput, ArtifactKind, GroupVersionKind, Operation};

fn deployment(init: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "llm", "namespace": "ml"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "llm"}}, "template": {
            "metadata": {"labels": {"app": "llm"}},
            "spec": {
                "initContainers": [init],
                "containers": [{"name": "server", "image": "ghcr.io/acme/vllm:0.6",
                                "volumeMounts": [{"name": "models", "mountPath": "/models"}]}],
                "volumes": [{"name": "models", "emptyDir": {}}]
            }
        }}
    })
}

fn input(object: Value, op: Operation) -> AdmissionInput {
    let kind = GroupVersionKind { group: "apps".into(), version: "v1".into(), kind: "Deployment".into() };
    AdmissionInput::new(op, kind, Some("ml"), "llm")
        .with_uid("b1a6c0de-0000-4000-8000-000000000005")
        .with_object(object)
}

const INIT: &str = "/spec/template/spec/initContainers/0";

fn run(init: Value) -> (Value, Extracted) {
    run_with(init, &ExtractionConfig::default())
}

fn run_with(init: Value, config: &ExtractionConfig) -> (Value, Extracted) {
    let object = deployment(init);
    let got = extract_all(&input(object.clone(), Operation::Create), config).unwrap();
    assert_eq!(got.skip, None);
    (object, got)
}

/// The one fetcher artifact (besides the init container's own image and the server image).
fn fetched(object: &Value, got: &Extracted) -> ExtractedArtifact {
    let f: Vec<_> = got.artifacts.iter().filter(|a| a.location.kind == ArtifactKind::Fetcher).collect();
    assert_eq!(f.len(), 1, "{:?}", got.artifacts);
    let a = f[0].clone();
    let field = object.pointer(&a.location.pointer).and_then(Value::as_str).unwrap();
    assert_eq!(field, format!("{}{}{}", a.prefix, a.image, a.suffix), "pins must rewrite the field exactly");
    a
}

fn only_problem(got: &Extracted) -> &FetcherProblem {
    assert_eq!(got.fetcher_problems.len(), 1, "{:?}", got.fetcher_problems);
    &got.fetcher_problems[0]
}

#[test]
fn kitops_init_with_key_verification_names_its_modelkit() {
    let (object, got) = run(json!({
        "name": "kitops-init", "image": "ghcr.io/kitops-ml/kitops-init:v1.5.0",
        "env": [
            {"name": "MODELKIT_REF", "value": "ghcr.io/acme/models/llama:3.1"},
            {"name": "UNPACK_PATH", "value": "/models"},
            {"name": "COSIGN_KEY", "value": "/keys/cosign.pub"}
        ]
    }));
    let a = fetched(&object, &got);
    assert_eq!(a.location.name, "kitops-init");
    assert_eq!(a.location.pointer, format!("{INIT}/env/0/value"));
    assert_eq!(
        (a.image.as_str(), a.prefix.as_str(), a.suffix.as_str()),
        ("ghcr.io/acme/models/llama:3.1", "", "")
    );
    assert!(got.fetcher_problems.is_empty(), "{:?}", got.fetcher_problems);
    // Its own image is an init-container artifact like any other.
    assert!(got.artifacts.iter().any(|a| a.location.kind == ArtifactKind::InitContainer
        && a.image == "ghcr.io/kitops-ml/kitops-init:v1.5.0"));
}

#[test]
fn kitops_init_keyless_needs_identity_and_issuer() {
    let (_, got) = run(json!({
        "name": "kitops-init", "image": "ghcr.io/kitops-ml/kitops-init:latest",
        "env": [
            {"name": "MODELKIT_REF", "value": "ghcr.io/acme/models/llama:3.1"},
            {"name": "COSIGN_CERT_IDENTITY", "value": "ci@acme.example"},
            {"name": "COSIGN_CERT_OIDC_ISSUER", "value": "https://token.actions.githubusercontent.com"}
        ]
    }));
    assert!(got.fetcher_problems.is_empty());
    let (_, got) = run(json!({
        "name": "kitops-init", "image": "mirror.example.com/kitops-ml/kitops-init:latest",
        "env": [
            {"name": "MODELKIT_REF", "value": "ghcr.io/acme/models/llama:3.1"},
            {"name": "COSIGN_CERT_IDENTITY", "value": "ci@acme.example"}
        ]
    }));
    let p = only_problem(&got);
    assert!(
        matches!(&p.kind, FetcherProblemKind::VerificationDisabled { how } if how.contains("without COSIGN_CERT_OIDC_ISSUER"))
    );
    assert_eq!(p.profile, "kitops-init", "a mirrored kitops-init is recognised by **/kitops-init");
}

#[test]
fn kitops_init_without_verification_is_flagged() {
    let (object, got) = run(json!({
        "name": "fetch-model", "image": "ghcr.io/kitops-ml/kitops-init:v1.5.0",
        "env": [{"name": "MODELKIT_REF", "value": "ghcr.io/acme/models/llama:3.1"}]
    }));
    fetched(&object, &got);
    let p = only_problem(&got);
    assert_eq!(p.location.kind, ArtifactKind::InitContainer);
    assert_eq!(p.location.name, "fetch-model");
    assert_eq!(p.location.pointer, INIT);
    assert_eq!(p.fetcher_image, "ghcr.io/kitops-ml/kitops-init:v1.5.0");
    assert!(matches!(&p.kind, FetcherProblemKind::VerificationDisabled { how }
        if how == "neither COSIGN_KEY nor COSIGN_CERT_IDENTITY with COSIGN_CERT_OIDC_ISSUER is set"));
    assert!(
        p.message
            .starts_with("init container fetch-model (kitops-init): signature verification is switched off"),
        "{}",
        p.message
    );
}

#[test]
fn kitops_init_reference_from_value_from_is_unknown() {
    let (_, got) = run(json!({
        "name": "kitops-init", "image": "ghcr.io/kitops-ml/kitops-init:v1.5.0",
        "env": [
            {"name": "MODELKIT_REF", "valueFrom": {"configMapKeyRef": {"name": "model", "key": "ref"}}},
            {"name": "COSIGN_KEY", "valueFrom": {"secretKeyRef": {"name": "cosign", "key": "cosign.pub"}}}
        ]
    }));
    assert!(got.artifacts.iter().all(|a| a.location.kind != ArtifactKind::Fetcher));
    let p = only_problem(&got);
    assert_eq!(p.kind, FetcherProblemKind::UnknownSource);
    assert!(p.message.contains("MODELKIT_REF comes from valueFrom"), "{}", p.message);
    // An optional secret may be missing: then the entrypoint does not verify.
    let (_, got) = run(json!({
        "name": "kitops-init", "image": "ghcr.io/kitops-ml/kitops-init:v1.5.0",
        "env": [
            {"name": "MODELKIT_REF", "value": "ghcr.io/acme/m:1"},
            {"name": "COSIGN_KEY", "valueFrom": {"secretKeyRef": {"name": "cosign", "key": "k", "optional": true}}}
        ]
    }));
    assert!(matches!(only_problem(&got).kind, FetcherProblemKind::VerificationDisabled { .. }));
}

#[test]
fn kitops_init_odd_references() {
    for (env, expect) in [
        (
            json!([{"name": "MODELKIT_REF", "value": "$(MODEL)"}, {"name": "COSIGN_KEY", "value": "k"}]),
            "expanded at run time",
        ),
        (json!([{"name": "COSIGN_KEY", "value": "k"}]), "MODELKIT_REF is not set"),
        (
            json!([{"name": "MODELKIT_REF", "value": "a:1"}, {"name": "MODELKIT_REF", "value": "b:1"}, {"name": "COSIGN_KEY", "value": "k"}]),
            "set more than once",
        ),
    ] {
        let (_, got) = run(json!({"name": "k", "image": "ghcr.io/kitops-ml/kitops-init:1", "env": env}));
        let p = only_problem(&got);
        assert_eq!(p.kind, FetcherProblemKind::UnknownSource);
        assert!(p.message.contains(expect), "{}", p.message);
    }
    let (_, got) = run(json!({"name": "k", "image": "ghcr.io/kitops-ml/kitops-init:1",
        "envFrom": [{"configMapRef": {"name": "model"}}],
        "env": [{"name": "COSIGN_KEY", "value": "k"}]}));
    assert!(only_problem(&got).message.contains("envFrom"));
}

#[test]
fn kit_unpack_in_argv_with_flags_around_the_reference() {
    let (object, got) = run(json!({
        "name": "unpack", "image": "ghcr.io/kitops-ml/kitops:v1.5.0",
        "command": ["kit"],
        "args": ["unpack", "--plain-http", "-d", "/models", "--filter=model", "registry.local:5000/acme/llama:3.1", "--overwrite"]
    }));
    let a = fetched(&object, &got);
    assert_eq!(a.location.pointer, format!("{INIT}/args/5"));
    assert_eq!(a.image, "registry.local:5000/acme/llama:3.1");
    assert!(got.fetcher_problems.is_empty());
    // The kitops image's entrypoint is kit: args alone are the command line.
    let (object, got) = run(json!({
        "name": "unpack", "image": "ghcr.io/kitops-ml/kitops:v1.5.0",
        "args": ["unpack", "ghcr.io/acme/llama:3.1", "--dir", "/models"]
    }));
    assert_eq!(fetched(&object, &got).location.pointer, format!("{INIT}/args/1"));
}

#[test]
fn oras_pull_in_argv() {
    let (object, got) = run(json!({
        "name": "pull", "image": "ghcr.io/oras-project/oras:v1.2.0",
        "args": ["pull", "-o", "/models", "--plain-http", "ghcr.io/acme/models/bert:1", "--concurrency", "3"]
    }));
    let a = fetched(&object, &got);
    assert_eq!(
        (a.location.pointer.as_str(), a.image.as_str()),
        ("/spec/template/spec/initContainers/0/args/4", "ghcr.io/acme/models/bert:1")
    );
    // From an OCI layout on disk: not an OCI registry reference.
    let (_, got) = run(json!({
        "name": "pull", "image": "busybox:1.36", "command": ["/usr/local/bin/oras", "pull", "--oci-layout", "/data/layout:v1"]
    }));
    assert!(
        matches!(&only_problem(&got).kind, FetcherProblemKind::NotOci { source } if source == "/data/layout:v1")
    );
}

#[test]
fn skopeo_copy_takes_the_source_after_docker_scheme() {
    let (object, got) = run(json!({
        "name": "copy", "image": "quay.io/skopeo/stable:v1.16",
        "command": ["skopeo", "copy", "--src-tls-verify=false", "--retry-times", "3",
                    "docker://ghcr.io/acme/models/bert:1", "dir:/models/bert"]
    }));
    let a = fetched(&object, &got);
    assert_eq!(a.location.pointer, format!("{INIT}/command/5"));
    assert_eq!((a.prefix.as_str(), a.image.as_str()), ("docker://", "ghcr.io/acme/models/bert:1"));
    // skopeo's own image runs skopeo: args alone are its command line.
    let (object, got) = run(json!({
        "name": "copy", "image": "quay.io/skopeo/stable:v1.16",
        "args": ["copy", "docker://ghcr.io/acme/models/bert:2", "dir:/models/bert"]
    }));
    assert_eq!(fetched(&object, &got).location.pointer, format!("{INIT}/args/1"));
    let (_, got) = run(json!({
        "name": "copy", "image": "quay.io/skopeo/stable:v1.16",
        "command": ["skopeo", "copy", "oci-archive:/data/bert.tar", "dir:/models/bert"]
    }));
    assert!(
        matches!(&only_problem(&got).kind, FetcherProblemKind::NotOci { source } if source == "oci-archive:/data/bert.tar")
    );
}

#[test]
fn scripts_are_followed_and_pinned_in_place() {
    let script = "set -eu\nkit unpack 'ghcr.io/acme/llama:3.1' -d /models --filter=model && echo done\n";
    let (object, got) = run(json!({
        "name": "fetch", "image": "ghcr.io/kitops-ml/kitops:v1.5.0",
        "command": ["/bin/sh", "-ec"], "args": [script]
    }));
    let a = fetched(&object, &got);
    assert_eq!(a.location.pointer, format!("{INIT}/args/0"));
    assert_eq!(a.image, "ghcr.io/acme/llama:3.1");
    assert_eq!(a.prefix, "set -eu\nkit unpack '");
    assert_eq!(a.suffix, "' -d /models --filter=model && echo done\n");
    // A variable as the reference is unknown at admission.
    let (_, got) = run(
        json!({"name": "fetch", "image": "alpine:3", "command": ["sh", "-c", "oras pull \"$MODEL\" -o /models"]}),
    );
    let p = only_problem(&got);
    assert_eq!(p.kind, FetcherProblemKind::UnknownSource);
    assert_eq!(p.profile, "oras pull");
    // A script that cannot be followed but mentions a fetch tool is unknown; others are not fetchers.
    let (_, got) = run(
        json!({"name": "fetch", "image": "alpine:3", "command": ["sh", "-c", "kit unpack 'ghcr.io/x:1"]}),
    );
    assert_eq!(only_problem(&got).kind, FetcherProblemKind::UnknownSource);
    let (_, got) =
        run(json!({"name": "migrate", "image": "alpine:3", "command": ["sh", "-c", "echo 'unbalanced"]}));
    assert!(got.fetcher_problems.is_empty());
    assert!(got.artifacts.iter().all(|a| a.location.kind != ArtifactKind::Fetcher));
}

#[test]
fn an_https_fetcher_is_not_oci() {
    let (_, got) = run(json!({
        "name": "download", "image": "ghcr.io/oras-project/oras:v1.2.0",
        "args": ["pull", "https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/model.safetensors"]
    }));
    let p = only_problem(&got);
    assert_eq!(p.profile, "oras pull");
    assert!(
        matches!(&p.kind, FetcherProblemKind::NotOci { source } if source.starts_with("https://huggingface.co/"))
    );
    assert!(p.message.contains("not an OCI reference"), "{}", p.message);
}

#[test]
fn unknown_flags_never_let_another_word_pass_for_the_reference() {
    // `--new-flag` is unknown: assumed to take a value, it swallows the reference; the command no longer
    // has one operand, so the source is unknown (not "/models" verified instead).
    let (_, got) = run(json!({
        "name": "pull", "image": "alpine:3", "command": ["oras", "pull", "--new-flag", "ghcr.io/acme/m:1"]
    }));
    assert_eq!(only_problem(&got).kind, FetcherProblemKind::UnknownSource);
    assert!(got.artifacts.iter().all(|a| a.location.kind != ArtifactKind::Fetcher));
}

#[test]
fn configured_profiles_by_env_arg_and_flag() {
    let config = ExtractionConfig::from_yaml_str(
        r#"
fetchers:
  - name: puller-env
    image: registry.example.com/tools/puller-env
    env: MODEL_URI
    prefix: "oci://"
  - name: puller-arg
    image: registry.example.com/tools/puller-arg
    arg: 1
  - name: puller-flag
    image: "**/puller-flag"
    flag: --from
"#,
    )
    .unwrap();
    let (object, got) = run_with(
        json!({"name": "p", "image": "registry.example.com/tools/puller-env:1",
               "env": [{"name": "MODEL_URI", "value": "oci://ghcr.io/acme/m:1"}]}),
        &config,
    );
    let a = fetched(&object, &got);
    assert_eq!((a.prefix.as_str(), a.image.as_str()), ("oci://", "ghcr.io/acme/m:1"));
    let (_, got) = run_with(
        json!({"name": "p", "image": "registry.example.com/tools/puller-env:1",
               "env": [{"name": "MODEL_URI", "value": "s3://bucket/m"}]}),
        &config,
    );
    assert!(
        matches!(&only_problem(&got).kind, FetcherProblemKind::NotOci { source } if source == "s3://bucket/m")
    );
    let (object, got) = run_with(
        json!({"name": "p", "image": "registry.example.com/tools/puller-arg:1", "args": ["fetch", "ghcr.io/acme/m:2"]}),
        &config,
    );
    assert_eq!(fetched(&object, &got).location.pointer, format!("{INIT}/args/1"));
    let (object, got) = run_with(
        json!({"name": "p", "image": "mirror.example.com/x/puller-flag:1", "command": ["/puller", "--to", "/m", "--from=ghcr.io/acme/m:3"]}),
        &config,
    );
    let a = fetched(&object, &got);
    assert_eq!(
        (a.location.pointer.as_str(), a.prefix.as_str(), a.image.as_str()),
        ("/spec/template/spec/initContainers/0/command/3", "--from=", "ghcr.io/acme/m:3")
    );
    let (_, got) = run_with(
        json!({"name": "p", "image": "mirror.example.com/x/puller-flag:1", "command": ["/puller"]}),
        &config,
    );
    assert!(only_problem(&got).message.contains("no --from"));
}

#[test]
fn plain_init_containers_are_not_fetchers_and_update_keeps_problems() {
    let (_, got) =
        run(json!({"name": "migrate", "image": "ghcr.io/acme/migrate:1", "command": ["/migrate", "--up"]}));
    assert!(got.fetcher_problems.is_empty());
    assert_eq!(got.artifacts.len(), 2);
    // UPDATE with the same fetcher: the unchanged reference is not verified again, the problem is reported.
    let init = json!({"name": "k", "image": "ghcr.io/kitops-ml/kitops-init:1", "env": [{"name": "MODELKIT_REF", "value": "ghcr.io/acme/m:1"}]});
    let mut i = input(deployment(init.clone()), Operation::Update);
    i.old_object = Some(vouch_policies::ObjectJson::from_value(deployment(init)));
    let got = extract_all(&i, &ExtractionConfig::default()).unwrap();
    assert!(got.artifacts.is_empty(), "{:?}", got.artifacts);
    assert!(matches!(only_problem(&got).kind, FetcherProblemKind::VerificationDisabled { .. }));
}

#[test]
fn hostile_fetchers_give_errors() {
    let cases = [
        (
            json!({"name": "k", "image": "ghcr.io/kitops-ml/kitops-init:1", "env": {"MODELKIT_REF": "x"}}),
            "/env: expected an array, found an object",
        ),
        (
            json!({"name": "k", "image": "alpine:3", "command": ["sh", 5]}),
            "/command/1: expected a string, found a number",
        ),
        (
            json!({"name": "k", "image": "ghcr.io/kitops-ml/kitops-init:1", "env": [{"name": "MODELKIT_REF", "value": 5}]}),
            "/env/0/value: expected a string, found a number",
        ),
    ];
    for (init, suffix) in cases {
        let e = extract_all(&input(deployment(init), Operation::Create), &ExtractionConfig::default())
            .unwrap_err();
        assert_eq!(e.to_string(), format!("{INIT}{suffix}"));
    }
    let env: Vec<Value> = (0..300).map(|k| json!({"name": format!("V{k}"), "value": "x"})).collect();
    let e = extract_all(
        &input(
            deployment(json!({"name": "k", "image": "ghcr.io/kitops-ml/kitops-init:1", "env": env})),
            Operation::Create,
        ),
        &ExtractionConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e, ExtractError::TooMany { .. }));
    // A huge script is not followed; it does not mention a tool, so nothing is flagged.
    let (_, got) =
        run(json!({"name": "k", "image": "alpine:3", "command": ["sh", "-c", "echo x; ".repeat(20_000)]}));
    assert!(got.fetcher_problems.is_empty());
}
