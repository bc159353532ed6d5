//! The chart's kars preset (charts/vouch/extractors/kars.yaml) on kars custom resources: references made of
//! an object's parts (`allowlistRef`, `bundleRef`: `registry/repository@digest`, with the declared
//! artifactType, never pinned), endpoints made of parts (`allowedEndpoints[*]`: `host:port`), git agent code
//! in any form as one non-OCI source, and the errors of objects and configurations that are not what the
//! preset expects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::{json, Value};
use vouch_policies::extract::{
    extract_all, EgressDeclaration, ExtractError, Extracted, ExtractionConfig, FetcherProblemKind,
};
use vouch_policies::{AdmissionInput, ArtifactKind, GroupVersionKind, Operation};

const KARS: &str = "application/vnd.kars.egress-allowlist.v1+yaml";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn preset() -> ExtractionConfig {
    ExtractionConfig::read_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/vouch/extractors/kars.yaml"),
    )
    .unwrap()
}

fn input(kind: &str, op: Operation, object: Value) -> AdmissionInput {
    let kind =
        GroupVersionKind { group: "kars.azure.com".into(), version: "v1alpha1".into(), kind: kind.into() };
    AdmissionInput::new(op, kind, Some("kars-research"), "research-agent").with_object(object)
}

fn extract(kind: &str, object: Value) -> Result<Extracted, ExtractError> {
    extract_all(&input(kind, Operation::Create, object), &preset())
}

fn allowlist_ref() -> Value {
    json!({"registry": "myacr.azurecr.io", "repository": "policy/egress-allowlist/research-agent",
           "digest": DIGEST, "artifactType": KARS})
}

/// A KarsSandbox as kars's CRD describes it (tests/data/kars in the webhooks crate has the CRD).
fn sandbox(runtime: Value, network: Value) -> Value {
    json!({"apiVersion": "kars.azure.com/v1alpha1", "kind": "KarsSandbox",
        "metadata": {"name": "research-agent", "namespace": "kars-research"},
        "spec": {"runtime": runtime, "sandbox": {"isolation": "enhanced"},
                 "inferenceRef": {"name": "shared-inference"}, "networkPolicy": network}})
}

fn byo(image: &str) -> Value {
    json!({"kind": "BYO", "byo": {"image": image, "contractVersion": "v1"}})
}

fn hermes(agent_code: Value) -> Value {
    json!({"kind": "Hermes", "hermes": {"version": "0.15.2", "agentCode": agent_code}})
}

#[test]
fn the_preset_compiles_and_names_every_kars_kind() {
    let config = preset();
    let kinds: Vec<&str> = config.extractors.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["KarsSandbox", "KarsEval", "McpServer", "InferencePolicy", "ToolPolicy", "KarsMemory"]
    );
    assert!(config.extractors.iter().all(|e| e.api_version == "kars.azure.com/v1alpha1"));
    config.compile().unwrap();
}

#[test]
fn a_sandbox_names_its_runtime_its_allowlist_by_parts_and_its_endpoints_by_parts() {
    let network = json!({"egressMode": "Strict", "allowlistRef": allowlist_ref(), "allowedEndpoints": [
        {"host": "api.github.com", "port": 443}, {"host": "api.telegram.org", "port": 443},
        {"host": "2001:db8::1", "port": 8443}, {"host": "10.1.2.3", "port": "5432"}
    ]});
    let got = extract("KarsSandbox", sandbox(byo("myacr.azurecr.io/kars/runtime:1.0"), network)).unwrap();
    let artifacts: Vec<_> = got
        .artifacts
        .iter()
        .map(|a| {
            (
                a.location.kind,
                a.location.name.as_str(),
                a.location.pointer.as_str(),
                a.image.as_str(),
                a.artifact_type.as_deref(),
            )
        })
        .collect();
    let allowlist = format!("myacr.azurecr.io/policy/egress-allowlist/research-agent@{DIGEST}");
    assert_eq!(
        artifacts,
        [
            (
                ArtifactKind::Field,
                "spec.runtime.byo.image",
                "/spec/runtime/byo/image",
                "myacr.azurecr.io/kars/runtime:1.0",
                None
            ),
            (
                ArtifactKind::EgressAllowlist,
                "spec.networkPolicy.allowlistRef",
                "/spec/networkPolicy/allowlistRef",
                allowlist.as_str(),
                Some(KARS)
            ),
        ]
    );
    assert_eq!(
        got.egress,
        [EgressDeclaration {
            location: "spec.networkPolicy.allowedEndpoints[*]".into(),
            endpoints: vec![
                "api.github.com:443".into(),
                "api.telegram.org:443".into(),
                "[2001:db8::1]:8443".into(),
                "10.1.2.3:5432".into()
            ],
            allowlist: Some(1),
        }]
    );
    assert!(got.fetcher_problems.is_empty());
}

#[test]
fn an_allowlist_without_declared_endpoints_is_still_checked() {
    let got =
        extract("KarsSandbox", sandbox(byo("r.io/kars/rt:1"), json!({"allowlistRef": allowlist_ref()})))
            .unwrap();
    assert_eq!(
        got.egress,
        [EgressDeclaration {
            location: "spec.networkPolicy.allowlistRef".into(),
            endpoints: vec![],
            allowlist: Some(1)
        }]
    );
    // Without an allowlist, the endpoints go to the namespace's (the engine resolves it).
    let got = extract(
        "KarsSandbox",
        sandbox(
            byo("r.io/kars/rt:1"),
            json!({"allowedEndpoints": [{"host": "api.github.com", "port": 443}]}),
        ),
    )
    .unwrap();
    assert_eq!(got.egress[0].allowlist, None);
    // An endpoint object without its port means every port.
    let got = extract(
        "KarsSandbox",
        sandbox(byo("r.io/kars/rt:1"), json!({"allowedEndpoints": [{"host": "api.github.com"}]})),
    )
    .unwrap();
    assert_eq!(got.egress[0].endpoints, ["api.github.com"]);
}

#[test]
fn agent_code_is_an_image_or_a_git_repository_in_any_form() {
    let got = extract(
        "KarsSandbox",
        sandbox(hermes(json!({"oci": {"image": "ghcr.io/acme/agent:1.2.3"}})), json!({})),
    )
    .unwrap();
    assert_eq!(got.artifacts[0].location.pointer, "/spec/runtime/hermes/agentCode/oci/image");
    assert_eq!(got.artifacts[0].image, "ghcr.io/acme/agent:1.2.3");
    for url in [
        "git@github.com:acme/agent.git",
        "github.com:acme/agent",
        "ssh://git@github.com/acme/agent.git",
        "git://git.example.com/agent",
        "https://github.com/acme/agent",
        "github.com/acme/agent.git",
    ] {
        let got =
            extract("KarsSandbox", sandbox(hermes(json!({"git": {"url": url, "ref": "v1"}})), json!({})))
                .unwrap();
        assert!(got.artifacts.is_empty(), "{url}: {:?}", got.artifacts);
        assert_eq!(got.fetcher_problems.len(), 1, "{url}: one non-OCI source");
        let p = &got.fetcher_problems[0];
        assert_eq!(p.kind, FetcherProblemKind::NotOci { source: url.into() }, "{url}");
        assert_eq!(p.location.pointer, "/spec/runtime/hermes/agentCode/git/url");
        assert_eq!(p.profile, "extractor KarsSandbox");
        assert!(p.fetcher_image.is_empty());
        if !url.contains("://") {
            assert!(p.message.contains("names the git repository"), "{url}: {}", p.message);
        }
    }
}

#[test]
fn sibling_kinds_name_their_bundles_by_parts() {
    let bundle = |t: &str| json!({"registry": "myacr.azurecr.io", "repository": "kars/policies/p", "digest": DIGEST, "artifactType": t});
    let cases = [
        (
            "McpServer",
            json!({"spec": {"url": "https://mcp.example.com", "bundleRef": bundle("application/vnd.kars.mcp-tools.v1+yaml")}}),
            "/spec/bundleRef",
        ),
        (
            "InferencePolicy",
            json!({"spec": {"appliesTo": {}, "bundleRef": bundle("application/vnd.kars.inference-policy.v1+yaml")}}),
            "/spec/bundleRef",
        ),
        (
            "ToolPolicy",
            json!({"spec": {"appliesTo": {}, "agtProfile": {"bundleRef": bundle("application/vnd.kars.agt-profile.v1+yaml")}}}),
            "/spec/agtProfile/bundleRef",
        ),
        (
            "KarsMemory",
            json!({"spec": {"sandboxRef": {"name": "a"}, "bundleRef": bundle("application/vnd.kars.memory-policy.v1+yaml")}}),
            "/spec/bundleRef",
        ),
        (
            "KarsEval",
            json!({"spec": {"targetSandboxRef": {"name": "a"}, "corpus": {"bundleRef": bundle("application/vnd.kars.eval-corpus.v1+yaml")}}}),
            "/spec/corpus/bundleRef",
        ),
    ];
    for (kind, object, pointer) in cases {
        let got = extract(kind, object).unwrap();
        assert_eq!(got.artifacts.len(), 1, "{kind}");
        let a = &got.artifacts[0];
        assert_eq!((a.location.kind, a.location.pointer.as_str()), (ArtifactKind::Field, pointer), "{kind}");
        assert_eq!(a.image, format!("myacr.azurecr.io/kars/policies/p@{DIGEST}"), "{kind}");
        assert!(a.artifact_type.as_deref().unwrap().starts_with("application/vnd.kars."), "{kind}");
        assert!((a.prefix.as_str(), a.suffix.as_str()) == ("", ""));
    }
    // The eval's runner image is a plain field; a builtin corpus names nothing.
    let got = extract("KarsEval", json!({"spec": {"runnerImage": "ghcr.io/azure/kars-conformance-runner:1", "corpus": {"builtin": "jailbreak-baseline"}}})).unwrap();
    assert_eq!(
        got.artifacts.iter().map(|a| a.location.pointer.as_str()).collect::<Vec<_>>(),
        ["/spec/runnerImage"]
    );
}

#[test]
fn parts_that_are_missing_or_would_change_the_reference_are_errors() {
    let with = |change: &dyn Fn(&mut Value)| {
        let mut r = allowlist_ref();
        change(&mut r);
        extract("KarsSandbox", sandbox(byo("r.io/kars/rt:1"), json!({"allowlistRef": r})))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        with(&|r| {
            r.as_object_mut().unwrap().remove("digest");
        }),
        "/spec/networkPolicy/allowlistRef/digest: missing (a part of the object $.spec.networkPolicy.allowlistRef selects)"
    );
    assert_eq!(
        with(&|r| r["registry"] = json!("myregistry")),
        "/spec/networkPolicy/allowlistRef/registry: registry \"myregistry\" is not a registry host (host[:port] with a dot or a port, or localhost)"
    );
    assert!(with(&|r| r["registry"] = json!("evil.example/x")).contains("is not a registry host"));
    assert!(with(&|r| r["repository"] = json!("policy/list:v1")).contains("is not a repository path"));
    assert!(with(&|r| r["repository"] = json!("policy/list@sha256:00")).contains("is not a repository path"));
    assert!(with(&|r| r["digest"] = json!("sha256:abc")).contains("is not a digest"));
    assert_eq!(
        with(&|r| r["digest"] = json!(5)),
        "/spec/networkPolicy/allowlistRef/digest: expected a string, found a number"
    );
    let e = extract(
        "KarsSandbox",
        sandbox(byo("r.io/kars/rt:1"), json!({"allowlistRef": "myacr.azurecr.io/x@sha256:00"})),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/spec/networkPolicy/allowlistRef (matched by $.spec.networkPolicy.allowlistRef): expected an object, found a string"
    );
    let e =
        extract("KarsSandbox", sandbox(byo("r.io/kars/rt:1"), json!({"allowedEndpoints": [{"port": 443}]})))
            .unwrap_err();
    assert!(matches!(e, ExtractError::MissingPart { .. }), "{e}");
    let e = extract(
        "KarsSandbox",
        sandbox(byo("r.io/kars/rt:1"), json!({"allowedEndpoints": [{"host": "a.example", "port": true}]})),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/spec/networkPolicy/allowedEndpoints/0/port: expected a port number, found a boolean"
    );
    // null parts of the object are absent.
    let got = extract("KarsSandbox", sandbox(byo("r.io/kars/rt:1"), json!({"allowlistRef": null}))).unwrap();
    assert!(got.egress.is_empty());
}

#[test]
fn update_keeps_the_allowlist_its_declaration_needs() {
    let object = sandbox(
        byo("r.io/kars/rt:1"),
        json!({"allowlistRef": allowlist_ref(), "allowedEndpoints": [{"host": "a.example.com", "port": 443}]}),
    );
    let mut newer = object.clone();
    newer["spec"]["networkPolicy"]["allowedEndpoints"] = json!([{"host": "b.example.com", "port": 443}]);
    let i = input("KarsSandbox", Operation::Update, newer).with_old_object(object);
    let got = extract_all(&i, &preset()).unwrap();
    assert_eq!(got.artifacts.len(), 1, "the unchanged runtime is dropped, the allowlist kept");
    assert_eq!(got.artifacts[0].location.kind, ArtifactKind::EgressAllowlist);
    assert_eq!(got.egress[0].allowlist, Some(0));
}

#[test]
fn composite_paths_are_validated_with_the_configuration() {
    let problems = |yaml: &str| match ExtractionConfig::from_yaml_str(yaml) {
        Err(e) => e,
        Ok(c) => c.validate().unwrap_err().join("\n"),
    };
    let head = "extractors:\n  - apiVersion: x.io/v1\n    kind: X\n";
    assert!(problems(&format!("{head}    paths: [{{path: $.a, repository: r}}]\n"))
        .contains("missing field `digest`"));
    assert!(problems(&format!("{head}    paths: [{{path: $.a, repository: r, digest: d, tag: t}}]\n"))
        .contains("unknown field `tag`"));
    assert!(problems(&format!("{head}    paths: [{{path: $.a, repository: $.r, digest: d}}]\n"))
        .contains("repository \"$.r\" must be the name of a field of the selected object, not a path"));
    assert!(problems(&format!("{head}    paths: [{{path: $.a, repository: r, digest: r}}]\n"))
        .contains("names the same field as another part"));
    assert!(problems(&format!("{head}    paths: [{{path: \"$..a\", repository: r, digest: d}}]\n"))
        .contains("descendant"));
    assert!(problems(&format!("{head}    paths: [\"$.b\"]\n    egressAllowlistPaths: [\"$.a\"]\n    egressEndpointPaths: [{{path: $.e, port: p}}]\n"))
        .contains("missing field `host`"));
    assert!(problems(&format!("{head}    paths: [5]\n")).contains("a JSONPath string or an object"));
    // Plain strings and parts mix.
    let c = ExtractionConfig::from_yaml_str(&format!(
        "{head}    paths: [\"$.a\", {{path: $.b, registry: reg, repository: repo, digest: d, artifactType: t}}]\n"
    ))
    .unwrap();
    c.compile().unwrap();
}

#[test]
fn a_configured_fetcher_with_a_git_source_is_not_read_as_a_reference() {
    let config = ExtractionConfig::from_yaml_str(
        "fetchers:\n  - name: code-puller\n    image: \"**/puller\"\n    env: SOURCE\n",
    )
    .unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "code", "image": "r.io/tools/puller:1",
            "env": [{"name": "SOURCE", "value": "git@github.com:acme/agent.git"}]}],
        "containers": [{"name": "app", "image": "r.io/app:1"}]}});
    let kind = GroupVersionKind { group: String::new(), version: "v1".into(), kind: "Pod".into() };
    let got =
        extract_all(&AdmissionInput::new(Operation::Create, kind, Some("ns"), "p").with_object(pod), &config)
            .unwrap();
    assert_eq!(got.fetcher_problems.len(), 1);
    assert_eq!(
        got.fetcher_problems[0].kind,
        FetcherProblemKind::NotOci { source: "git@github.com:acme/agent.git".into() }
    );
}
