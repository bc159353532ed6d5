//! Extraction from objects as kube-apiserver sends them: every workload kind, image volumes, the
//! ephemeralcontainers subresource, UPDATE diffing, skipped operations, and hostile manifests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use vouch_policies::extract::{extract_all, ExtractError, Extracted, ExtractionConfig, MAX_LIST_ENTRIES};
use vouch_policies::{AdmissionInput, ArtifactKind, GroupVersionKind, Operation};

fn input(group: &str, kind: &str, op: Operation, object: Value) -> AdmissionInput {
    let kind = GroupVersionKind { group: group.into(), version: "v1".into(), kind: kind.into() };
    AdmissionInput::new(op, kind, Some("default"), "web")
        .with_uid("705ab4f5-6393-11e8-b7cc-42010a800002")
        .with_object(object)
}

fn pod_spec() -> Value {
    json!({
        "initContainers": [{"name": "fetch", "image": "ghcr.io/acme/fetcher:1"}],
        "containers": [
            {"name": "app", "image": "ghcr.io/acme/app:1.0", "ports": [{"containerPort": 80}]},
            {"name": "side", "image": "ghcr.io/acme/side@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
        ],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "x"}},
            {"name": "model", "image": {"reference": "ghcr.io/acme/model:v2", "pullPolicy": "IfNotPresent"}}
        ]
    })
}

fn extract(i: &AdmissionInput) -> Result<Extracted, ExtractError> {
    extract_all(i, &ExtractionConfig::default())
}

fn skipped(i: &AdmissionInput) -> bool {
    extract(i).unwrap().skip.is_some()
}

fn artifacts(i: &AdmissionInput) -> Vec<(ArtifactKind, String, String, String)> {
    let e = extract(i).unwrap();
    if let Some(why) = e.skip {
        panic!("skipped: {why}");
    }
    assert!(e.fetcher_problems.is_empty() && e.egress.is_empty());
    e.artifacts.into_iter().map(|a| (a.location.kind, a.location.name, a.location.pointer, a.image)).collect()
}

#[test]
fn every_workload_kind_is_read_at_its_pod_spec() {
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()});
    let cases = [
        (
            "",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": pod_spec()}),
            "/spec",
        ),
        ("", "ReplicationController", json!({"spec": {"template": template}}), "/spec/template/spec"),
        ("apps", "Deployment", json!({"spec": {"replicas": 2, "template": template}}), "/spec/template/spec"),
        ("apps", "ReplicaSet", json!({"spec": {"template": template}}), "/spec/template/spec"),
        ("apps", "StatefulSet", json!({"spec": {"template": template}}), "/spec/template/spec"),
        ("apps", "DaemonSet", json!({"spec": {"template": template}}), "/spec/template/spec"),
        ("batch", "Job", json!({"spec": {"template": template}}), "/spec/template/spec"),
        (
            "batch",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
            "/spec/jobTemplate/spec/template/spec",
        ),
    ];
    for (group, kind, object, base) in cases {
        let got = artifacts(&input(group, kind, Operation::Create, object));
        let expected = vec![
            (
                ArtifactKind::InitContainer,
                "fetch".to_owned(),
                format!("{base}/initContainers/0/image"),
                "ghcr.io/acme/fetcher:1".to_owned(),
            ),
            (
                ArtifactKind::Container,
                "app".to_owned(),
                format!("{base}/containers/0/image"),
                "ghcr.io/acme/app:1.0".to_owned(),
            ),
            (
                ArtifactKind::Container,
                "side".to_owned(),
                format!("{base}/containers/1/image"),
                "ghcr.io/acme/side@sha256:0000000000000000000000000000000000000000000000000000000000000000"
                    .to_owned(),
            ),
            (
                ArtifactKind::ImageVolume,
                "model".to_owned(),
                format!("{base}/volumes/1/image/reference"),
                "ghcr.io/acme/model:v2".to_owned(),
            ),
        ];
        assert_eq!(got, expected, "{kind}");
    }
}

#[test]
fn kinds_from_other_groups_and_unknown_kinds_are_skipped() {
    let i = input(
        "example.com",
        "Deployment",
        Operation::Create,
        json!({"spec": {"template": {"spec": pod_spec()}}}),
    );
    assert!(skipped(&i), "a CRD named Deployment is not apps/Deployment");
    let i = input("", "ConfigMap", Operation::Create, json!({"data": {"image": "x"}}));
    assert!(skipped(&i));
}

#[test]
fn delete_connect_and_status_pass_without_reading() {
    for op in [Operation::Delete, Operation::Connect] {
        let mut i = input("", "Pod", op, json!("garbage"));
        i.object = None;
        assert!(skipped(&i));
    }
    let mut i = input("", "Pod", Operation::Update, json!("garbage"));
    i.sub_resource = Some("status".into());
    assert!(skipped(&i));
}

#[test]
fn ephemeral_containers_subresource_checks_only_new_ones() {
    let old = json!({"spec": {"containers": [{"name": "app", "image": "ghcr.io/acme/app:1"}]}});
    let new = json!({"spec": {
        "containers": [{"name": "app", "image": "ghcr.io/acme/app:1"}],
        "ephemeralContainers": [{"name": "debugger", "image": "ghcr.io/acme/debug:1", "targetContainerName": "app"}]
    }});
    let mut i = input("", "Pod", Operation::Update, new);
    i.sub_resource = Some("ephemeralcontainers".into());
    i.old_object = Some(vouch_policies::ObjectJson::from_value(old));
    let got = artifacts(&i);
    assert_eq!(
        got,
        vec![(
            ArtifactKind::EphemeralContainer,
            "debugger".to_owned(),
            "/spec/ephemeralContainers/0/image".to_owned(),
            "ghcr.io/acme/debug:1".to_owned()
        )]
    );
}

#[test]
fn update_verifies_only_changed_images() {
    let old = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "ghcr.io/acme/app:1"}, {"name": "side", "image": "ghcr.io/acme/side:1"}]}}}});
    let new = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "ghcr.io/acme/app:2"}, {"name": "side", "image": "ghcr.io/acme/side:1"}]}}}});
    let mut i = input("apps", "Deployment", Operation::Update, new.clone());
    i.old_object = Some(vouch_policies::ObjectJson::from_value(old));
    let got = artifacts(&i);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].3, "ghcr.io/acme/app:2");
    // A scale-only update changes no image: nothing to verify.
    i.old_object = Some(vouch_policies::ObjectJson::from_value(new));
    assert!(artifacts(&i).is_empty());
    // An unreadable old object verifies everything (fail closed).
    i.old_object = Some(vouch_policies::ObjectJson::from_value(json!({"spec": 5})));
    assert_eq!(artifacts(&i).len(), 2);
}

#[test]
fn unnamed_containers_and_missing_images() {
    let i = input(
        "",
        "Pod",
        Operation::Create,
        json!({"spec": {"containers": [{"image": "ghcr.io/a/b:1"}, {"name": "noimage"}]}}),
    );
    let got = artifacts(&i);
    assert_eq!(got.len(), 1, "a template without image (set later by tooling) names nothing");
    assert_eq!(got[0].1, "#0");
}

#[test]
fn hostile_objects_give_clear_errors() {
    let cases = [
        (
            json!({"spec": {"containers": "ghcr.io/a/b"}}),
            "/spec/containers: expected an array, found a string",
        ),
        (json!({"spec": {"containers": [5]}}), "/spec/containers/0: expected an object, found a number"),
        (
            json!({"spec": {"containers": [{"name": "a", "image": ["x"]}]}}),
            "/spec/containers/0/image: expected a string, found an array",
        ),
        (
            json!({"spec": {"containers": [{"name": 7, "image": "x"}]}}),
            "/spec/containers/0/name: expected a string, found a number",
        ),
        (
            json!({"spec": {"volumes": [{"name": "v", "image": "x"}]}}),
            "/spec/volumes/0/image: expected an object, found a string",
        ),
        (json!({"spec": []}), "/spec: expected an object, found an array"),
        (json!([1, 2]), "/: expected an object, found an array"),
    ];
    for (object, message) in cases {
        let e = extract(&input("", "Pod", Operation::Create, object)).unwrap_err();
        assert_eq!(e.to_string(), message);
    }
    let many: Vec<Value> =
        (0..MAX_LIST_ENTRIES + 1).map(|i| json!({"name": format!("c{i}"), "image": "x"})).collect();
    let e = extract(&input("", "Pod", Operation::Create, json!({"spec": {"containers": many}}))).unwrap_err();
    assert!(matches!(e, ExtractError::TooMany { count, .. } if count == MAX_LIST_ENTRIES + 1));
    let long = "a".repeat(5000);
    let e = extract(&input(
        "",
        "Pod",
        Operation::Create,
        json!({"spec": {"containers": [{"name": "a", "image": long}]}}),
    ))
    .unwrap_err();
    assert!(matches!(e, ExtractError::ImageTooLong { .. }));
    let mut i = input("", "Pod", Operation::Create, json!({}));
    i.object = None;
    assert_eq!(extract(&i).unwrap_err(), ExtractError::NoObject);
}

#[test]
fn deeply_nested_garbage_is_not_walked() {
    // Depth far beyond anything read: only the fixed pod-spec paths are visited.
    let mut deep = json!("x");
    for _ in 0..100 {
        deep = json!({ "a": deep });
    }
    let i = input(
        "",
        "Pod",
        Operation::Create,
        json!({"spec": {"containers": [{"name": "a", "image": "ghcr.io/a/b:1", "env": deep}]}}),
    );
    assert_eq!(artifacts(&i).len(), 1);
}

#[test]
fn null_lists_are_absent() {
    let i = input(
        "",
        "Pod",
        Operation::Create,
        json!({"spec": {"containers": null, "initContainers": null, "volumes": null}}),
    );
    assert!(artifacts(&i).is_empty());
}
