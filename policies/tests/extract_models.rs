//! Models wherever workloads put them (extract_all): image volumes and ModelPack CSI volumes in pod
//! specs, KServe InferenceService storageUris (oci:// is a reference, hf:// is a NotOci problem), and
//! custom kinds through configured JSONPath extractors — with the exact pointers, prefixes and suffixes a
//! pin writes back. Hostile objects give errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use vouch_policies::extract::{
    extract_all, ExtractError, Extracted, ExtractedArtifact, ExtractionConfig, FetcherProblemKind,
    MAX_LIST_ENTRIES,
};
use vouch_policies::{AdmissionInput, ArtifactKind, GroupVersionKind, Operation};

fn input(group: &str, version: &str, kind: &str, op: Operation, object: Value) -> AdmissionInput {
    let kind = GroupVersionKind { group: group.into(), version: version.into(), kind: kind.into() };
    AdmissionInput::new(op, kind, Some("ml"), "llm")
        .with_uid("b1a6c0de-0000-4000-8000-000000000004")
        .with_object(object)
}

fn all(i: &AdmissionInput, config: &ExtractionConfig) -> Extracted {
    let e = extract_all(i, config).unwrap();
    assert_eq!(e.skip, None);
    e
}

/// The field value a pin would rewrite must equal prefix + image + suffix.
fn assert_in_place(object: &Value, a: &ExtractedArtifact) {
    let field = object.pointer(&a.location.pointer).and_then(Value::as_str);
    assert_eq!(field, Some(format!("{}{}{}", a.prefix, a.image, a.suffix).as_str()), "{a:?}");
}

fn row(a: &ExtractedArtifact) -> (ArtifactKind, &str, &str, &str, &str) {
    (
        a.location.kind,
        a.location.name.as_str(),
        a.location.pointer.as_str(),
        a.image.as_str(),
        a.prefix.as_str(),
    )
}

#[test]
fn pod_with_an_image_volume_and_a_modelpack_csi_volume() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "llm", "namespace": "ml"},
        "spec": {
            "containers": [{
                "name": "server", "image": "ghcr.io/acme/vllm:0.6",
                "volumeMounts": [{"name": "weights", "mountPath": "/models/a"}, {"name": "csi-model", "mountPath": "/models/b"}]
            }],
            "volumes": [
                {"name": "weights", "image": {"reference": "ghcr.io/acme/models/llama:3.1", "pullPolicy": "IfNotPresent"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "csi-model", "csi": {"driver": "model.csi.modelpack.org", "readOnly": true,
                    "volumeAttributes": {"modelRef": "registry.example.com/models/qwen2.5:0.5b"}}}
            ]
        }
    });
    let got = all(&input("", "v1", "Pod", Operation::Create, pod.clone()), &ExtractionConfig::default());
    let rows: Vec<_> = got.artifacts.iter().map(row).collect();
    assert_eq!(
        rows,
        vec![
            (ArtifactKind::Container, "server", "/spec/containers/0/image", "ghcr.io/acme/vllm:0.6", ""),
            (
                ArtifactKind::ImageVolume,
                "weights",
                "/spec/volumes/0/image/reference",
                "ghcr.io/acme/models/llama:3.1",
                ""
            ),
            (
                ArtifactKind::ModelVolume,
                "csi-model",
                "/spec/volumes/2/csi/volumeAttributes/modelRef",
                "registry.example.com/models/qwen2.5:0.5b",
                ""
            ),
        ]
    );
    for a in &got.artifacts {
        assert_in_place(&pod, a);
    }
    assert!(got.fetcher_problems.is_empty() && got.egress.is_empty());
}

#[test]
fn inference_service_oci_storage_uri_is_a_reference() {
    let isvc = json!({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "llm"},
        "spec": {"predictor": {
            "model": {"modelFormat": {"name": "huggingface"}, "storageUri": "oci://ghcr.io/acme/models/llama:3.1",
                      "image": "ghcr.io/acme/kserve-hf:0.14"},
            "minReplicas": 1
        }}
    });
    let got = all(
        &input("serving.kserve.io", "v1beta1", "InferenceService", Operation::Create, isvc.clone()),
        &Default::default(),
    );
    let rows: Vec<_> = got.artifacts.iter().map(row).collect();
    assert_eq!(
        rows,
        vec![
            (
                ArtifactKind::Container,
                "predictor.model",
                "/spec/predictor/model/image",
                "ghcr.io/acme/kserve-hf:0.14",
                ""
            ),
            (
                ArtifactKind::StorageUri,
                "predictor.model",
                "/spec/predictor/model/storageUri",
                "ghcr.io/acme/models/llama:3.1",
                "oci://"
            ),
        ]
    );
    for a in &got.artifacts {
        assert_in_place(&isvc, a);
    }
    assert!(got.fetcher_problems.is_empty());
}

#[test]
fn inference_service_hf_storage_uri_is_a_not_oci_problem() {
    let isvc = json!({"spec": {"predictor": {
        "sklearn": {"storageUri": "hf://meta-llama/Llama-3.1-8B"},
        "containers": [{"name": "kserve-container", "image": "ghcr.io/acme/custom:1"}]
    }}});
    let got = all(
        &input("serving.kserve.io", "v1beta1", "InferenceService", Operation::Create, isvc),
        &Default::default(),
    );
    assert_eq!(got.artifacts.len(), 1, "the embedded pod spec's container is still an artifact");
    assert_eq!(got.artifacts[0].location.pointer, "/spec/predictor/containers/0/image");
    assert_eq!(got.fetcher_problems.len(), 1);
    let p = &got.fetcher_problems[0];
    assert_eq!(p.location.kind, ArtifactKind::StorageUri);
    assert_eq!(p.location.pointer, "/spec/predictor/sklearn/storageUri");
    assert_eq!(p.kind, FetcherProblemKind::NotOci { source: "hf://meta-llama/Llama-3.1-8B".into() });
    assert!(
        p.message.contains("hf://meta-llama/Llama-3.1-8B") && p.message.contains("not an OCI reference"),
        "{}",
        p.message
    );
    for uri in ["s3://bucket/model", "gs://bucket/m", "https://huggingface.co/x/y", "pvc://claim/m"] {
        let isvc = json!({"spec": {"predictor": {"model": {"storageUri": uri}}}});
        let got = all(
            &input("serving.kserve.io", "v1beta1", "InferenceService", Operation::Create, isvc),
            &Default::default(),
        );
        assert!(got.artifacts.is_empty(), "{uri}");
        assert!(
            matches!(&got.fetcher_problems[0].kind, FetcherProblemKind::NotOci { source } if source == uri)
        );
    }
}

fn model_deployment_config() -> ExtractionConfig {
    ExtractionConfig::from_yaml_str(
        r#"
extractors:
  - apiVersion: ml.example.com/v1alpha1
    kind: ModelDeployment
    paths: ["$.spec.model.uri", "$.spec.adapters[*].ref"]
    prefix: "oci://"
"#,
    )
    .unwrap()
}

#[test]
fn custom_kind_fields_found_by_jsonpath() {
    let object = json!({
        "apiVersion": "ml.example.com/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "chat"},
        "spec": {
            "model": {"uri": "oci://ghcr.io/acme/models/llama:3.1"},
            "adapters": [{"ref": "oci://ghcr.io/acme/lora/a:1"}, {"ref": "https://example.com/lora.bin"}, {"ref": null}]
        }
    });
    let i = input("ml.example.com", "v1alpha1", "ModelDeployment", Operation::Create, object.clone());
    let got = all(&i, &model_deployment_config());
    let rows: Vec<_> = got.artifacts.iter().map(row).collect();
    assert_eq!(
        rows,
        vec![
            (
                ArtifactKind::Field,
                "spec.model.uri",
                "/spec/model/uri",
                "ghcr.io/acme/models/llama:3.1",
                "oci://"
            ),
            (
                ArtifactKind::Field,
                "spec.adapters[0].ref",
                "/spec/adapters/0/ref",
                "ghcr.io/acme/lora/a:1",
                "oci://"
            ),
        ]
    );
    for a in &got.artifacts {
        assert_in_place(&object, a);
    }
    assert_eq!(got.fetcher_problems.len(), 1);
    assert_eq!(got.fetcher_problems[0].location.pointer, "/spec/adapters/1/ref");
    assert!(matches!(got.fetcher_problems[0].kind, FetcherProblemKind::NotOci { .. }));
    // Another version of the kind is not configured: nothing is read.
    let other = input("ml.example.com", "v1", "ModelDeployment", Operation::Create, object);
    assert!(extract_all(&other, &model_deployment_config()).unwrap().skip.is_some());
}

#[test]
fn custom_kind_wrong_types_are_errors() {
    let object = json!({"spec": {"model": {"uri": {"oci": "ghcr.io/x"}}}});
    let i = input("ml.example.com", "v1alpha1", "ModelDeployment", Operation::Create, object);
    let e = extract_all(&i, &model_deployment_config()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/spec/model/uri (matched by $.spec.model.uri): expected a string, found an object"
    );
    let many: Vec<Value> = (0..=MAX_LIST_ENTRIES).map(|k| json!({"ref": format!("oci://r/a:{k}")})).collect();
    let i = input(
        "ml.example.com",
        "v1alpha1",
        "ModelDeployment",
        Operation::Create,
        json!({"spec": {"adapters": many}}),
    );
    assert!(matches!(extract_all(&i, &model_deployment_config()).unwrap_err(), ExtractError::TooMany { .. }));
}

#[test]
fn an_invalid_configuration_is_reported_not_ignored() {
    let bad = ExtractionConfig::from_yaml_str(
        "extractors:\n  - apiVersion: x.io/v1\n    kind: K\n    paths: [\"$..uri\"]\n",
    )
    .unwrap();
    let i = input("x.io", "v1", "K", Operation::Create, json!({}));
    let e = extract_all(&i, &bad).unwrap_err();
    assert!(matches!(&e, ExtractError::Config { problems } if problems.len() == 1), "{e}");
}

#[test]
fn hostile_model_places_give_errors_not_panics() {
    let cases = [
        (
            json!({"spec": {"volumes": [{"name": "m", "csi": "model.csi.modelpack.org"}]}}),
            "/spec/volumes/0/csi: expected an object, found a string",
        ),
        (
            json!({"spec": {"volumes": [{"name": "m", "csi": {"driver": "model.csi.modelpack.org", "volumeAttributes": ["modelRef"]}}]}}),
            "/spec/volumes/0/csi/volumeAttributes: expected an object, found an array",
        ),
    ];
    for (object, message) in cases {
        let e =
            extract_all(&input("", "v1", "Pod", Operation::Create, object), &Default::default()).unwrap_err();
        assert_eq!(e.to_string(), message);
    }
    let e = extract_all(
        &input(
            "serving.kserve.io",
            "v1beta1",
            "InferenceService",
            Operation::Create,
            json!({"spec": {"predictor": {"model": {"storageUri": 7}}}}),
        ),
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "/spec/predictor/model/storageUri: expected a string, found a number");
    let attributes: serde_json::Map<String, Value> =
        (0..=MAX_LIST_ENTRIES).map(|k| (format!("k{k}"), json!("v"))).collect();
    let pod = json!({"spec": {"volumes": [{"name": "m", "csi": {"driver": "model.csi.modelpack.org", "volumeAttributes": attributes}}]}});
    let e = extract_all(&input("", "v1", "Pod", Operation::Create, pod), &Default::default()).unwrap_err();
    assert!(matches!(e, ExtractError::TooMany { .. }));
    // Deep nesting beside the read paths is not walked; deep nesting where a string is read is a type error.
    let mut deep = json!("x");
    for _ in 0..120 {
        deep = json!({ "a": deep });
    }
    let isvc = json!({"spec": {"predictor": {"model": {"storageUri": deep.clone(), "runtime": "x"}}}});
    let e = extract_all(
        &input("serving.kserve.io", "v1beta1", "InferenceService", Operation::Create, isvc),
        &Default::default(),
    )
    .unwrap_err();
    assert!(matches!(e, ExtractError::WrongType { .. }));
    let isvc = json!({"spec": {"predictor": {"model": {"storageUri": "oci://r/m:1", "args": deep}}}});
    let got = extract_all(
        &input("serving.kserve.io", "v1beta1", "InferenceService", Operation::Create, isvc),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(got.artifacts.len(), 1);
}
