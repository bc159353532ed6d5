//! The CRD YAML checked in under charts/vouch/crds/ is exactly what the Rust types generate
//! (`VOUCH_UPDATE_CRDS=1 cargo test -p vouch-policies --test crds` rewrites it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kube::CustomResourceExt;
use vouch_policies::crd::{ClusterSupplyChainPolicy, ComplianceProfile, SupplyChainPolicy, TrustRoot};

fn generated() -> Vec<(&'static str, String)> {
    let yaml = |crd| {
        format!(
            "# Generated from policies/src/crd (vouch-policies); do not edit.\n{}",
            serde_yaml::to_string(&crd).unwrap()
        )
    };
    vec![
        ("clustersupplychainpolicies.vouch.dev.yaml", yaml(ClusterSupplyChainPolicy::crd())),
        ("supplychainpolicies.vouch.dev.yaml", yaml(SupplyChainPolicy::crd())),
        ("trustroots.vouch.dev.yaml", yaml(TrustRoot::crd())),
        ("complianceprofiles.vouch.dev.yaml", yaml(ComplianceProfile::crd())),
    ]
}

#[test]
fn checked_in_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/vouch/crds");
    let update = std::env::var("VOUCH_UPDATE_CRDS").is_ok_and(|v| v == "1");
    for (file, yaml) in generated() {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &yaml).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with VOUCH_UPDATE_CRDS=1)", path.display()));
        assert!(
            on_disk == yaml,
            "{} is stale: run VOUCH_UPDATE_CRDS=1 cargo test -p vouch-policies --test crds",
            path.display()
        );
    }
}

#[test]
fn crds_have_the_right_scope_and_names() {
    let c = ClusterSupplyChainPolicy::crd();
    assert_eq!(c.spec.scope, "Cluster");
    assert_eq!(c.spec.group, "vouch.dev");
    assert_eq!(c.spec.names.plural, "clustersupplychainpolicies");
    let n = SupplyChainPolicy::crd();
    assert_eq!(n.spec.scope, "Namespaced");
    let t = TrustRoot::crd();
    assert_eq!(t.spec.scope, "Cluster");
    let p = ComplianceProfile::crd();
    assert_eq!(p.spec.scope, "Cluster");
    assert_eq!(p.spec.names.short_names.as_deref(), Some(&["cprof".to_owned()][..]));
    let version = &c.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some(), "status subresource");
    // The flattened spec shows every field of PolicySpec directly under spec.
    let schema = serde_json::to_value(version.schema.as_ref().unwrap()).unwrap();
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
    for field in ["images", "match", "authorities", "requirements", "mode", "failurePolicy", "credentials"] {
        assert!(spec["properties"].get(field).is_some(), "spec.{field} missing from {spec}");
    }
}

/// The rules of a structural schema the API server enforces (Kubernetes docs, "Specifying a structural
/// schema"): every property and array item has a `type` unless it preserves unknown fields or is
/// int-or-string, and nothing inside `allOf`/`anyOf`/`oneOf`/`not` sets `type`, `description`, `default`,
/// `additionalProperties` or `nullable`. Returns the JSON paths that break them.
fn structural_problems(node: &serde_json::Value, path: &str, typed: bool, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    let escape = |k: &str| obj.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    if typed
        && !obj.contains_key("type")
        && !escape("x-kubernetes-preserve-unknown-fields")
        && !escape("x-kubernetes-int-or-string")
    {
        out.push(format!("{path}: no type"));
    }
    for junctor in ["allOf", "anyOf", "oneOf", "not"] {
        let subs: Vec<&serde_json::Value> = match obj.get(junctor) {
            Some(serde_json::Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => continue,
        };
        for s in subs {
            for forbidden in ["type", "description", "default", "additionalProperties", "nullable"] {
                if s.get(forbidden).is_some() && !escape("x-kubernetes-int-or-string") {
                    out.push(format!("{path}.{junctor}: sets {forbidden}"));
                }
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(serde_json::Value::as_object) {
        for (k, v) in props {
            structural_problems(v, &format!("{path}.{k}"), true, out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_problems(items, &format!("{path}[]"), true, out);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        structural_problems(extra, &format!("{path}.*"), true, out);
    }
}

#[test]
fn every_crd_schema_is_structural_and_the_signature_field_takes_both_forms() {
    for (name, crd) in [
        ("ClusterSupplyChainPolicy", ClusterSupplyChainPolicy::crd()),
        ("SupplyChainPolicy", SupplyChainPolicy::crd()),
        ("TrustRoot", TrustRoot::crd()),
        ("ComplianceProfile", ComplianceProfile::crd()),
    ] {
        let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
        let mut problems = Vec::new();
        structural_problems(&schema["openAPIV3Schema"], name, true, &mut problems);
        assert!(problems.is_empty(), "{name} is not structural: {problems:?}");
    }
    let schema =
        serde_json::to_value(ClusterSupplyChainPolicy::crd().spec.versions[0].schema.clone()).unwrap();
    let signature = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["requirements"]
        ["properties"]["signature"];
    // `true` or an object: no single type fits, so the API server keeps any value and vouch checks it.
    assert_eq!(signature["x-kubernetes-preserve-unknown-fields"], true, "{signature}");
    assert!(signature.get("type").is_none(), "{signature}");
    // The checker catches what it claims to catch.
    let mut problems = Vec::new();
    let bad = serde_json::json!({"type": "object", "properties": {"x": {"anyOf": [{"type": "boolean"}, {"type": "object"}]}}});
    structural_problems(&bad, "bad", true, &mut problems);
    assert_eq!(problems, ["bad.x: no type", "bad.x.anyOf: sets type", "bad.x.anyOf: sets type"]);
}
