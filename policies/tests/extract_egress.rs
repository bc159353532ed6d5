//! Egress declarations (extract_all): annotations on a workload and its pod template (with and without an
//! allowlist reference, which becomes a pinnable artifact), NetworkPolicy ipBlocks with ports (checked
//! against the namespace's allowlist), custom-resource fields through JSONPath, and UPDATEs that keep the
//! allowlist a declaration needs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use vouch_policies::extract::{
    extract_all, EgressDeclaration, ExtractError, Extracted, ExtractionConfig, MAX_LIST_ENTRIES,
};
use vouch_policies::{AdmissionInput, ArtifactKind, GroupVersionKind, Operation};

fn input(group: &str, version: &str, kind: &str, op: Operation, object: Value) -> AdmissionInput {
    let kind = GroupVersionKind { group: group.into(), version: version.into(), kind: kind.into() };
    AdmissionInput::new(op, kind, Some("ml"), "agent")
        .with_uid("b1a6c0de-0000-4000-8000-000000000006")
        .with_object(object)
}

fn deployment(object_annotations: Value, template_annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "agent", "annotations": object_annotations},
        "spec": {"template": {
            "metadata": {"annotations": template_annotations},
            "spec": {"containers": [{"name": "agent", "image": "ghcr.io/acme/agent:2"}]}
        }}
    })
}

fn all(i: &AdmissionInput, config: &ExtractionConfig) -> Extracted {
    let e = extract_all(i, config).unwrap();
    assert_eq!(e.skip, None);
    e
}

fn decl(location: &str, endpoints: &[&str], allowlist: Option<usize>) -> EgressDeclaration {
    EgressDeclaration {
        location: location.into(),
        endpoints: endpoints.iter().map(|e| (*e).to_owned()).collect(),
        allowlist,
    }
}

#[test]
fn workload_annotations_declare_egress_against_their_allowlist() {
    let object = deployment(
        json!({"vouch.dev/egress-allowlist": " ghcr.io/acme/egress/agent:v3 \n"}),
        json!({"vouch.dev/egress": "api.openai.com:443, 10.0.0.0/8:5432\n*.s3.amazonaws.com:443"}),
    );
    let got = all(&input("apps", "v1", "Deployment", Operation::Create, object.clone()), &Default::default());
    let allowlist =
        got.artifacts.iter().position(|a| a.location.kind == ArtifactKind::EgressAllowlist).unwrap();
    let a = &got.artifacts[allowlist];
    assert_eq!(a.location.pointer, "/metadata/annotations/vouch.dev~1egress-allowlist");
    assert_eq!(a.location.name, "annotation vouch.dev/egress-allowlist");
    assert_eq!(
        (a.prefix.as_str(), a.image.as_str(), a.suffix.as_str()),
        (" ", "ghcr.io/acme/egress/agent:v3", " \n")
    );
    assert_eq!(
        object.pointer(&a.location.pointer).and_then(Value::as_str).unwrap(),
        format!("{}{}{}", a.prefix, a.image, a.suffix)
    );
    assert_eq!(
        got.egress,
        vec![decl(
            "pod template annotation vouch.dev/egress",
            &["api.openai.com:443", "10.0.0.0/8:5432", "*.s3.amazonaws.com:443"],
            Some(allowlist)
        )]
    );
}

#[test]
fn egress_without_an_allowlist_reference_falls_to_the_namespace() {
    let object = deployment(json!({"vouch.dev/egress": "api.example.com:443"}), json!({}));
    let got = all(&input("apps", "v1", "Deployment", Operation::Create, object), &Default::default());
    assert_eq!(got.egress, vec![decl("annotation vouch.dev/egress", &["api.example.com:443"], None)]);
    assert!(got.artifacts.iter().all(|a| a.location.kind != ArtifactKind::EgressAllowlist));
}

#[test]
fn network_policy_ip_blocks_with_ports() {
    let np = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "egress"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                {"namespaceSelector": {"matchLabels": {"team": "ml"}}},
                {"ipBlock": {"cidr": "2001:db8::/32"}}
            ], "ports": [{"protocol": "TCP", "port": 5432}, {"port": 6379}]},
            {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]},
            {"ports": [{"port": 53, "protocol": "UDP"}]}
        ]}
    });
    let got =
        all(&input("networking.k8s.io", "v1", "NetworkPolicy", Operation::Create, np), &Default::default());
    assert!(got.artifacts.is_empty());
    assert_eq!(
        got.egress,
        vec![
            decl("NetworkPolicy egress[0].to[0]", &["10.0.0.0/8:5432", "10.0.0.0/8:6379"], None),
            decl("NetworkPolicy egress[0].to[2]", &["[2001:db8::/32]:5432", "[2001:db8::/32]:6379"], None),
            decl("NetworkPolicy egress[1].to[0]", &["203.0.113.0/24"], None),
            decl("NetworkPolicy egress[2]", &["0.0.0.0/0:53", "[::/0]:53"], None),
        ]
    );
}

#[test]
fn custom_resource_fields_declare_egress() {
    let config = ExtractionConfig::from_yaml_str(
        r#"
extractors:
  - apiVersion: agents.example.com/v1
    kind: Agent
    paths: ["$.spec.model"]
    prefix: "oci://"
    egressAllowlistPaths: ["$.spec.egress.allowlist"]
    egressEndpointPaths: ["$.spec.allowedEndpoints", "$.spec.tools[*].endpoint"]
"#,
    )
    .unwrap();
    let object = json!({"apiVersion": "agents.example.com/v1", "kind": "Agent",
    "metadata": {"name": "a", "annotations": {"vouch.dev/egress": "extra.example.com:443"}},
    "spec": {
        "model": "oci://ghcr.io/acme/models/llama:3.1",
        "egress": {"allowlist": "ghcr.io/acme/egress/agent:v3"},
        "allowedEndpoints": ["api.example.com:443", "10.0.0.0/8:5432"],
        "tools": [{"endpoint": "search.example.com:443"}]
    }});
    let got = all(&input("agents.example.com", "v1", "Agent", Operation::Create, object), &config);
    let kinds: Vec<_> =
        got.artifacts.iter().map(|a| (a.location.kind, a.location.pointer.as_str())).collect();
    assert_eq!(
        kinds,
        vec![(ArtifactKind::Field, "/spec/model"), (ArtifactKind::EgressAllowlist, "/spec/egress/allowlist")]
    );
    assert_eq!(
        got.egress,
        vec![
            decl("spec.allowedEndpoints", &["api.example.com:443", "10.0.0.0/8:5432"], Some(1)),
            decl("spec.tools[0].endpoint", &["search.example.com:443"], Some(1)),
            decl("annotation vouch.dev/egress", &["extra.example.com:443"], None),
        ]
    );
    let bad = json!({"spec": {"allowedEndpoints": [443]}});
    let e = extract_all(&input("agents.example.com", "v1", "Agent", Operation::Create, bad), &config)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/spec/allowedEndpoints/0 (matched by $.spec.allowedEndpoints): expected a string, found a number"
    );
}

#[test]
fn update_keeps_the_unchanged_allowlist_a_declaration_needs() {
    let old = deployment(
        json!({"vouch.dev/egress-allowlist": "ghcr.io/acme/egress/agent:v3", "vouch.dev/egress": "a.example.com:443"}),
        json!({}),
    );
    let new = deployment(
        json!({"vouch.dev/egress-allowlist": "ghcr.io/acme/egress/agent:v3", "vouch.dev/egress": "a.example.com:443,b.example.com:443"}),
        json!({}),
    );
    let mut i = input("apps", "v1", "Deployment", Operation::Update, new);
    i.old_object = Some(vouch_policies::ObjectJson::from_value(old));
    let got = all(&i, &Default::default());
    assert_eq!(got.artifacts.len(), 1, "the unchanged container image is dropped, the allowlist kept");
    assert_eq!(got.artifacts[0].location.kind, ArtifactKind::EgressAllowlist);
    assert_eq!(
        got.egress,
        vec![decl("annotation vouch.dev/egress", &["a.example.com:443", "b.example.com:443"], Some(0))]
    );
}

#[test]
fn hostile_egress_gives_errors() {
    let object = deployment(json!({"vouch.dev/egress": ["a.example.com"]}), json!({}));
    let e = extract_all(&input("apps", "v1", "Deployment", Operation::Create, object), &Default::default())
        .unwrap_err();
    assert_eq!(e.to_string(), "/metadata/annotations/vouch.dev~1egress: expected a string, found an array");
    let many = (0..=MAX_LIST_ENTRIES).map(|k| format!("h{k}.example.com")).collect::<Vec<_>>().join(",");
    let object = deployment(json!({"vouch.dev/egress": many}), json!({}));
    let e = extract_all(&input("apps", "v1", "Deployment", Operation::Create, object), &Default::default())
        .unwrap_err();
    assert!(matches!(e, ExtractError::TooMany { .. }));
    let object =
        deployment(json!({"vouch.dev/egress": format!("{}.example.com", "a".repeat(2000))}), json!({}));
    let e = extract_all(&input("apps", "v1", "Deployment", Operation::Create, object), &Default::default())
        .unwrap_err();
    assert_eq!(e.to_string(), "/metadata/annotations/vouch.dev~1egress: value longer than 1024 characters");
    let np = json!({"spec": {"egress": [{"to": [{"ipBlock": {"cidr": 10}}]}]}});
    let e = extract_all(
        &input("networking.k8s.io", "v1", "NetworkPolicy", Operation::Create, np),
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "/spec/egress/0/to/0/ipBlock/cidr: expected a string, found a number");
    let np = json!({"spec": {"egress": {"to": []}}});
    assert!(extract_all(
        &input("networking.k8s.io", "v1", "NetworkPolicy", Operation::Create, np),
        &Default::default()
    )
    .is_err());
}

#[test]
fn other_kinds_and_operations_are_skipped() {
    let i = input(
        "",
        "v1",
        "ConfigMap",
        Operation::Create,
        json!({"metadata": {"annotations": {"vouch.dev/egress": "x"}}}),
    );
    assert!(extract_all(&i, &Default::default()).unwrap().skip.is_some());
    let mut i = input("apps", "v1", "Deployment", Operation::Delete, json!(null));
    i.object = None;
    assert!(extract_all(&i, &Default::default()).unwrap().skip.is_some());
    let mut i = input("apps", "v1", "Deployment", Operation::Update, json!({}));
    i.sub_resource = Some("status".into());
    assert!(extract_all(&i, &Default::default()).unwrap().skip.is_some());
    let mut i = input("", "v1", "Pod", Operation::Create, json!({}));
    i.object = None;
    assert_eq!(extract_all(&i, &Default::default()).unwrap_err(), ExtractError::NoObject);
}
