//! Unit tests of compliance profiles: compilation, the built-in checks, user modules and their limits.
use super::*;
use crate::crd::{AnnotationRule, AnnotationSource, AttestationRule, ModelRule, SbomRule};
use serde_json::{json, Value};

const SLSA: &str = "https://slsa.dev/provenance/v1";

fn regulated() -> ComplianceProfileSpec {
    ComplianceProfileSpec {
        annotations: vec![
            AnnotationRule {
                key: "org.opencontainers.image.source".into(),
                pattern: Some("https://github.com/acme/.+".into()),
                ..Default::default()
            },
            AnnotationRule {
                key: "org.opencontainers.image.licenses".into(),
                in_: AnnotationSource::Manifest,
                values: vec!["Apache-2.0".into(), "MIT".into()],
                ..Default::default()
            },
        ],
        attestations: vec![AttestationRule {
            predicate_type: SLSA.into(),
            builder_id_pattern: Some("https://github.com/actions/runner.*".into()),
            condition: None,
        }],
        sbom: Some(SbomRule { required: true, min_spec_version: Some("1.5".into()) }),
        model: None,
        rego: vec![],
    }
}

/// A complete input document of a compliant image.
fn image() -> Value {
    json!({
        "profile": {"name": "regulated-v1"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"}},
        "artifact": {
            "reference": "ghcr.io/acme/app:1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "location": {"kind": "container", "name": "app"},
            "manifest": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": null,
                "annotations": {
                    "org.opencontainers.image.source": "https://github.com/acme/app",
                    "org.opencontainers.image.licenses": "Apache-2.0"
                }
            },
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "annotations": {}},
            "signatures": [{"signer": {"kind": "key", "fingerprint": "sha256:ab"}}],
            "attestations": [{
                "predicateType": SLSA,
                "predicate": {"runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}},
                "signer": {"kind": "key", "fingerprint": "sha256:ab"}
            }],
            "sbom": {"specVersion": "1.6", "components": 12, "digest": "sha256:22"},
            "model": null
        }
    })
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    *doc.pointer_mut(pointer).unwrap() = value;
}

fn compile(spec: &ComplianceProfileSpec) -> CompiledProfile {
    CompiledProfile::compile("regulated-v1", spec).unwrap()
}

#[test]
fn a_compliant_image_has_no_violations() {
    let p = compile(&regulated());
    assert_eq!(p.evaluate(&image()).unwrap(), Vec::<String>::new());
}

#[test]
fn an_empty_profile_requires_nothing() {
    let p = compile(&ComplianceProfileSpec::default());
    assert!(p.evaluate(&json!({})).unwrap().is_empty());
    assert_eq!(p.needs(), ProfileNeeds::default());
}

#[test]
fn each_rule_names_its_violation() {
    let p = compile(&regulated());
    let mut doc = image();
    set(&mut doc, "/artifact/manifest/annotations", json!({"org.opencontainers.image.licenses": "GPL-3.0"}));
    set(&mut doc, "/artifact/attestations/0/predicate/runDetails/builder/id", json!("https://evil.example"));
    set(&mut doc, "/artifact/sbom/specVersion", json!("1.4"));
    assert_eq!(
        p.evaluate(&doc).unwrap(),
        [
            "annotation org.opencontainers.image.source is missing",
            r#"manifest annotation org.opencontainers.image.licenses is "GPL-3.0", not one of ["Apache-2.0", "MIT"]"#,
            "no verified https://slsa.dev/provenance/v1 attestation has a builder id matching \
             https://github.com/actions/runner.* (found: https://evil.example)",
            "SBOM spec version 1.4 is below the minimum 1.5",
        ]
    );
    set(&mut doc, "/artifact/attestations", json!([]));
    set(&mut doc, "/artifact/sbom", Value::Null);
    let v = p.evaluate(&doc).unwrap();
    assert!(
        v.contains(&"no verified attestation of type https://slsa.dev/provenance/v1".to_owned()),
        "{v:?}"
    );
    assert!(v.contains(&"a verified SBOM is required but none was found".to_owned()), "{v:?}");
}

#[test]
fn model_rules_read_the_model_facts() {
    let spec = ComplianceProfileSpec {
        model: Some(ModelRule {
            allowed_licenses: vec!["Apache-2.0".into()],
            denied_formats: vec!["pickle".into()],
            require_source_url: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = compile(&spec);
    assert!(p.needs().model);
    let mut doc = image();
    assert!(p.evaluate(&doc).unwrap().is_empty(), "an image is not judged by model rules");
    set(
        &mut doc,
        "/artifact/model",
        json!({
            "format": "modelPack",
            "manifestAnnotations": {},
            "config": {"licenses": ["GPL-3.0"], "format": "pickle", "datasetsUrl": []},
            "layers": [{"kind": "weight", "mediaType": "application/vnd.cncf.model.weight.v1.raw",
                        "digest": "sha256:33", "size": 5, "path": "model.pkl", "archive": "raw"}]
        }),
    );
    assert_eq!(
        p.evaluate(&doc).unwrap(),
        [
            "license GPL-3.0 is not in the allowed list [Apache-2.0]",
            "model file model.pkl (weight layer sha256:33) is in the denied format pickle",
            "model weight format pickle is denied (denied formats: [pickle])",
            "the model config has no sourceURL",
        ]
    );
}

#[test]
fn a_user_module_adds_violations_and_reads_the_profile() {
    let mut spec = regulated();
    spec.rego.push(
        r#"package vouch.compliance.custom.namespaces
import rego.v1
deny contains msg if {
input.object.metadata.namespace == "prod"
count(input.artifact.signatures) < 2
msg := sprintf("profile %s: prod needs two signatures, %s has %d", [data.profile.name, input.artifact.reference, count(input.artifact.signatures)])
}
"#
        .into(),
    );
    let p = compile(&spec);
    let v = p.evaluate(&image()).unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("profile regulated-v1: prod needs two signatures, ghcr.io/acme/app:1.0@sha256:"),
        "{v:?}"
    );
    let mut doc = image();
    set(&mut doc, "/object/metadata/namespace", json!("dev"));
    assert!(p.evaluate(&doc).unwrap().is_empty());
}

#[test]
fn user_modules_may_use_the_shared_helpers() {
    let mut spec = ComplianceProfileSpec::default();
    spec.rego.push(
        "package vouch.compliance.custom.v\nimport rego.v1\nimport data.vouch.compliance.lib\n\
         deny contains \"old\" if lib.version_less(input.v, \"2.0\")\n"
            .into(),
    );
    let p = compile(&spec);
    assert_eq!(p.evaluate(&json!({"v": "1.10"})).unwrap(), ["old"]);
    assert!(p.evaluate(&json!({"v": "2.0.1"})).unwrap().is_empty());
}

#[test]
fn a_user_module_that_does_not_compile_is_named() {
    let mut spec = regulated();
    spec.rego
        .push("package vouch.compliance.custom.ok\nimport rego.v1\ndeny contains \"x\" if false\n".into());
    spec.rego.push("package vouch.compliance.custom.bad\nimport rego.v1\ndeny contains msg if {\n".into());
    let e = CompiledProfile::compile("p", &spec).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("rego[1]: does not compile"), "{e:?}");
    // Semantic errors (an unsafe variable) are found at compile time too.
    spec.rego[1] = "package vouch.compliance.custom.bad\nimport rego.v1\ndeny contains msg if x > 1\n".into();
    let e = CompiledProfile::compile("p", &spec).unwrap_err();
    assert!(e.len() == 1 && e[0].starts_with("rego[1]: does not compile"), "{e:?}");
}

#[test]
fn user_modules_stay_in_their_package_and_define_deny() {
    let mut spec = ComplianceProfileSpec::default();
    spec.rego
        .push("package vouch.compliance.annotations\nimport rego.v1\ndeny contains \"x\" if false\n".into());
    spec.rego.push("package vouch.compliance.custom.x\nimport rego.v1\nviolations := {\"a\"}\n".into());
    spec.rego.push("package vouch.compliance.custom\nimport rego.v1\ndeny contains \"x\" if false\n".into());
    let e = CompiledProfile::compile("p", &spec).unwrap_err();
    assert_eq!(
        e,
        [
            "rego[0]: package vouch.compliance.annotations must be vouch.compliance.custom.<name>",
            "rego[1]: package vouch.compliance.custom.x does not define `deny`",
            "rego[2]: package vouch.compliance.custom must be vouch.compliance.custom.<name>",
        ]
    );
}

#[test]
fn every_spec_problem_is_reported_at_once() {
    let spec = ComplianceProfileSpec {
        annotations: vec![
            AnnotationRule { key: " ".into(), ..Default::default() },
            AnnotationRule {
                key: "a".into(),
                values: vec!["x".into()],
                pattern: Some("(".into()),
                ..Default::default()
            },
        ],
        attestations: vec![AttestationRule {
            predicate_type: String::new(),
            builder_id_pattern: Some("[".into()),
            condition: Some("package c\nallow if {".into()),
        }],
        sbom: Some(SbomRule { required: false, min_spec_version: Some("v1.5".into()) }),
        model: Some(ModelRule { allowed_licenses: vec![String::new()], ..Default::default() }),
        rego: vec!["package vouch.compliance.custom.x\ndeny contains".into()],
    };
    let e = CompiledProfile::compile("p", &spec).unwrap_err();
    let fields = [
        "annotations[0]: key is empty",
        "annotations[1]: values and pattern are exclusive",
        "annotations[1].pattern: not a valid regular expression",
        "attestations[0]: predicateType is empty",
        "attestations[0].builderIdPattern: not a valid regular expression",
        "sbom.minSpecVersion: \"v1.5\" is not a version",
        "model.allowedLicenses: an entry is empty",
        "attestations[0].condition: rego condition p/attestations[0].condition does not compile",
        "rego[0]: does not compile",
    ];
    assert_eq!(e.len(), fields.len(), "{e:#?}");
    for (problem, field) in e.iter().zip(fields) {
        assert!(problem.starts_with(field), "{problem:?} should start with {field:?}");
    }
}

#[test]
fn attestation_conditions_need_one_attestation_that_meets_them() {
    let mut spec = regulated();
    spec.attestations[0].condition = Some(
        r#"package c
import rego.v1
default allow := false
allow if input.predicate.buildDefinition.externalParameters.workflow.ref == "refs/heads/main"
deny contains msg if {
not allow
msg := sprintf("built from %v", [object.get(input.predicate, ["buildDefinition", "externalParameters", "workflow", "ref"], "nowhere")])
}
"#
        .into(),
    );
    let p = compile(&spec);
    let mut doc = image();
    assert_eq!(
        p.evaluate(&doc).unwrap(),
        ["no verified https://slsa.dev/provenance/v1 attestation meets the condition of attestations[0].condition: \
          built from nowhere"]
    );
    set(
        &mut doc,
        "/artifact/attestations/0/predicate",
        json!({
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
            "buildDefinition": {"externalParameters": {"workflow": {"ref": "refs/heads/main"}}}
        }),
    );
    assert!(p.evaluate(&doc).unwrap().is_empty());
    // Without any attestation of the type only the built-in check speaks.
    set(&mut doc, "/artifact/attestations", json!([]));
    assert_eq!(p.evaluate(&doc).unwrap(), ["no verified attestation of type https://slsa.dev/provenance/v1"]);
}

#[test]
fn needs_follow_the_spec() {
    let mut spec = regulated();
    spec.attestations
        .push(AttestationRule { predicate_type: "https://cyclonedx.org/bom".into(), ..Default::default() });
    spec.attestations.push(AttestationRule { predicate_type: SLSA.into(), ..Default::default() });
    let n = compile(&spec).needs();
    assert_eq!(n.attestation_predicate_types, ["https://cyclonedx.org/bom", SLSA]);
    assert!(n.sbom && !n.model);
    spec.sbom = Some(SbomRule { required: false, min_spec_version: None });
    assert!(!compile(&spec).needs().sbom);
}

#[test]
fn a_slow_user_module_is_stopped_by_the_time_budget() {
    let mut spec = ComplianceProfileSpec::default();
    spec.rego.push(
        "package vouch.compliance.custom.slow\nimport rego.v1\n\
         deny contains \"never\" if {\n some i in numbers.range(1, input.n)\n some j in numbers.range(1, input.n)\n \
         some k in numbers.range(1, input.n)\n i + j + k < 0\n}\n"
            .into(),
    );
    let p = compile(&spec);
    assert!(p.evaluate(&json!({"n": 3})).unwrap().is_empty());
    let started = Instant::now();
    let e = p.evaluate(&json!({"n": 3000})).unwrap_err();
    assert!(started.elapsed() < EVAL_BUDGET * 3, "stopped in {:?}", started.elapsed());
    assert!(matches!(&e, ComplianceError::Eval { module, .. } if module == "rego[0]"), "{e}");
}

#[test]
fn oversized_input_is_refused() {
    let p = compile(&regulated());
    let big = json!({"object": {"data": "x".repeat(MAX_INPUT_BYTES)}});
    let e = p.evaluate(&big).unwrap_err();
    assert!(matches!(e, ComplianceError::InputTooLarge { .. }), "{e}");
    assert_eq!(e.to_string(), "the input document is larger than 8388608 bytes");
    assert!(fits(&json!({"a": "x".repeat(100)}), 110) && !fits(&json!({"a": "x".repeat(100)}), 100));
}

#[test]
fn malformed_input_is_not_an_error_but_not_compliant() {
    let p = compile(&regulated());
    for doc in
        [json!({}), json!({"artifact": "x"}), json!({"artifact": {"manifest": 7, "attestations": {"a": 1}}})]
    {
        let v = p.evaluate(&doc).unwrap();
        assert!(v.len() >= 4, "{doc}: {v:?}");
    }
}

#[test]
fn many_violations_are_capped() {
    let spec = ComplianceProfileSpec {
        annotations: (0..40)
            .map(|i| AnnotationRule { key: format!("k{i:02}"), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    let v = compile(&spec).evaluate(&json!({})).unwrap();
    assert_eq!(v.len(), MAX_VIOLATIONS + 1);
    assert_eq!(v.last().unwrap(), "... and 8 more violations");
}

#[test]
fn print_in_a_user_module_is_harmless() {
    let mut spec = ComplianceProfileSpec::default();
    spec.rego.push(
        "package vouch.compliance.custom.p\nimport rego.v1\ndeny contains \"printed\" if print(\"debug\", input)\n"
            .into(),
    );
    let p = compile(&spec);
    assert_eq!(p.evaluate(&json!({"a": 1})).unwrap(), ["printed"]);
    assert_eq!(p.evaluate(&json!({"a": 2})).unwrap(), ["printed"]);
}

#[test]
fn long_messages_are_cut() {
    let mut spec = ComplianceProfileSpec::default();
    spec.rego.push(
        "package vouch.compliance.custom.long\nimport rego.v1\ndeny contains concat(\"\", [\"é\" | some _ in numbers.range(1, 5000)]) if true\n".into(),
    );
    let v = compile(&spec).evaluate(&json!({})).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].chars().count(), MAX_MESSAGE_CHARS + 3);
    assert!(v[0].ends_with("é..."), "cut on a character boundary");
}

#[test]
fn clones_evaluate_independently() {
    let p = compile(&regulated());
    let q = p.clone();
    let mut bad = image();
    set(&mut bad, "/artifact/sbom", Value::Null);
    assert_eq!(q.evaluate(&bad).unwrap().len(), 1);
    assert!(p.evaluate(&image()).unwrap().is_empty());
}
