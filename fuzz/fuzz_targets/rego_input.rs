//! The Rego input documents built from signed (attacker-shaped) predicates: a policy condition's input
//! (`condition_input`, as the engine builds it) evaluated by the shipped SLSA condition, and a compliance
//! profile's input document evaluated by the documented profiles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use vouch_policies::engine::condition_input;

fuzz_target!(|data: &[u8]| {
    let Ok(predicate) = serde_json::from_slice::<Value>(data) else { return };
    let (pinned, conditions, profiles) = vouch_fuzz::rego();
    for predicate_type in ["https://slsa.dev/provenance/v1", "https://cyclonedx.org/bom"] {
        let input = condition_input(predicate_type, &predicate, pinned, None, None);
        for condition in conditions {
            let _ = condition.evaluate(&input);
        }
    }
    let document = json!({
        "manifest": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": null,
                     "annotations": predicate.get("annotations").cloned().unwrap_or(json!({}))},
        "config": {"mediaType": null, "annotations": predicate.get("labels").cloned().unwrap_or(json!({}))},
        "signatures": [{"signer": "fuzz"}],
        "attestations": [{"predicateType": "https://slsa.dev/provenance/v1", "predicate": predicate,
                          "signer": "fuzz"}],
        "sbom": predicate.get("sbom").cloned().unwrap_or(Value::Null),
        "model": predicate.get("model").cloned().unwrap_or(Value::Null),
    });
    for profile in profiles {
        let _ = profile.evaluate(&document);
        // The whole input as the document: every shape a hostile document could take.
        let _ = profile.evaluate(&predicate);
    }
});
