//! The Rego shipped in policies/rego/, evaluated through regorus as the engine does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vouch_policies::rego::RegoCondition;

fn slsa_builder(builders: &[&str]) -> RegoCondition {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rego/slsa-builder.rego")).unwrap();
    let list: Vec<String> = builders.iter().map(|b| format!("{b:?}")).collect();
    RegoCondition::compile("slsa-builder.rego", &text.replace("{{BUILDERS}}", &list.join(", "))).unwrap()
}

#[test]
fn slsa_v1_builder_must_be_trusted() {
    let c = slsa_builder(&[
        "https://github.com/actions/runner",
        "https://cloudbuild.googleapis.com/GoogleHostedWorker",
    ]);
    let ok = c.evaluate(
        &json!({"predicate": {"runDetails": {"builder": {"id": "https://github.com/actions/runner"}}}}),
    );
    assert!(ok.unwrap().allow);
    let no = c
        .evaluate(&json!({"predicate": {"runDetails": {"builder": {"id": "https://evil.example"}}}}))
        .unwrap();
    assert!(!no.allow);
    assert_eq!(no.reasons, vec!["builder \"https://evil.example\" is not trusted"]);
}

#[test]
fn slsa_v02_builder_is_read_too() {
    let c = slsa_builder(&["https://github.com/actions/runner"]);
    assert!(
        c.evaluate(&json!({"predicate": {"builder": {"id": "https://github.com/actions/runner"}}}))
            .unwrap()
            .allow
    );
    assert!(!c.evaluate(&json!({"predicate": {"builder": {"id": "x"}}})).unwrap().allow);
}

#[test]
fn a_predicate_without_builder_is_denied() {
    let c = slsa_builder(&["https://github.com/actions/runner"]);
    let no = c.evaluate(&json!({"predicate": {}})).unwrap();
    assert!(!no.allow);
    assert_eq!(no.reasons, vec!["builder \"\" is not trusted"]);
    let no = c.evaluate(&json!({"predicate": "not an object"}));
    assert!(!no.map(|o| o.allow).unwrap_or(false), "a malformed predicate is never allowed");
}
