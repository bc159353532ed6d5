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
