//! The mutating webhook's JSON patch (RFC 6902, as `json_patch` operations): each verified image pinned to
//! its digest by a `replace` of exactly its field, and the `vouch.dev/verified` summary, which is vouch's
//! alone (a value the request brings is removed or set back).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde::Serialize;
use serde_json::{json, Value};
use vouch_policies::{Decision, Finding, FindingResult, Pin};

/// Annotation the mutating webhook sets: a compact JSON summary of what was verified.
pub const VERIFIED_ANNOTATION: &str = "vouch.dev/verified";
/// Largest `vouch.dev/verified` value, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;

/// Which objects the mutating webhook changes (`vouch serve --pin-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinScope {
    /// Every kind vouch checks: Pods, workload controllers, InferenceServices, custom kinds.
    #[default]
    All,
    /// Pods only (core/v1 Pod): controllers are validated but left as written, so GitOps tools that
    /// compare the live controller with Git see no digest they did not write.
    Pods,
}

impl PinScope {
    /// Parse `all` or `pods`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "pods" => Ok(Self::Pods),
            other => Err(format!("{other:?}: expected all or pods")),
        }
    }

    /// Whether objects of this group and kind may be changed.
    pub fn covers(self, group: &str, kind: &str) -> bool {
        match self {
            Self::All => true,
            Self::Pods => group.is_empty() && kind == "Pod",
        }
    }
}

#[derive(Serialize)]
struct SummaryEntry<'a> {
    image: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    signers: Vec<&'a str>,
}

/// The `vouch.dev/verified` value: compact JSON, one entry per pinned image with the policies it passed and
/// who signed it; entries that do not fit in [`MAX_SUMMARY_BYTES`] are counted instead.
pub fn verified_summary(decision: &Decision, pinned: &[&Pin]) -> String {
    let mut entries = Vec::new();
    for pin in pinned {
        let passes: Vec<&Finding> = decision
            .findings
            .iter()
            .filter(|f| f.result == FindingResult::Pass && f.artifact.pointer == pin.pointer)
            .collect();
        let mut policies: Vec<&str> =
            passes.iter().map(|f| f.policy.as_str()).filter(|p| !p.is_empty()).collect();
        policies.sort_unstable();
        policies.dedup();
        let mut signers: Vec<&str> = passes.iter().filter_map(|f| f.signer.as_deref()).collect();
        signers.sort_unstable();
        signers.dedup();
        entries.push(SummaryEntry { image: &pin.to, policies, signers });
    }
    let mut shown = entries.len();
    loop {
        let omitted = entries.len() - shown;
        let value = match entries.get(..shown) {
            Some(list) if omitted == 0 => json!({ "verified": list }),
            Some(list) => json!({ "verified": list, "omitted": omitted }),
            None => json!({ "omitted": omitted }),
        };
        let text = value.to_string();
        if text.len() <= MAX_SUMMARY_BYTES || shown == 0 {
            return text;
        }
        shown -= 1;
    }
}

/// The patch for a decision: each pin whose pointer still holds the image as written becomes a `replace`,
/// plus the `vouch.dev/verified` annotation (creating `metadata.annotations` if absent). When nothing is
/// pinned, the annotation is vouch's alone all the same: a value the request brings (one vouch did not
/// write: absent from, or different in, the old object) is removed, or set back to the old value.
pub fn pin_patch(object: &Value, old_object: Option<&Value>, decision: &Decision) -> Patch {
    // Fail closed on a pin that does not point at the image string it names, or whose pointer is not
    // RFC 6901 (the engine writes none such): patch nothing there.
    let pinned: Vec<(&Pin, PointerBuf)> = decision
        .pins
        .iter()
        .filter(|p| {
            p.from != p.to
                && vouch_policies::extract::value_at(object, &p.pointer).and_then(Value::as_str)
                    == Some(p.from.as_str())
        })
        .filter_map(|p| Some((p, PointerBuf::parse(p.pointer.as_str()).ok()?)))
        .collect();
    if pinned.is_empty() {
        return Patch(unwritten_summary_patch(object, old_object).into_iter().collect());
    }
    let pins: Vec<&Pin> = pinned.iter().map(|(p, _)| *p).collect();
    let summary = verified_summary(decision, &pins);
    let mut ops: Vec<PatchOperation> = pinned
        .into_iter()
        .map(|(p, path)| PatchOperation::Replace(ReplaceOperation { path, value: json!(p.to) }))
        .collect();
    let annotation = match object.get("metadata").map(|m| m.get("annotations")) {
        None => AddOperation {
            path: PointerBuf::from_tokens(["metadata"]),
            value: json!({ "annotations": { VERIFIED_ANNOTATION: summary } }),
        },
        Some(Some(a)) if a.is_object() => AddOperation { path: summary_path(), value: json!(summary) },
        // Absent or null: `add` of the whole map replaces a null member and creates an absent one.
        Some(_) => AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: json!({ VERIFIED_ANNOTATION: summary }),
        },
    };
    ops.push(PatchOperation::Add(annotation));
    Patch(ops)
}

/// `/metadata/annotations/vouch.dev~1verified`.
fn summary_path() -> PointerBuf {
    PointerBuf::from_tokens(["metadata", "annotations", VERIFIED_ANNOTATION])
}

fn verified_annotation(object: Option<&Value>) -> Option<&Value> {
    object?.get("metadata")?.get("annotations")?.get(VERIFIED_ANNOTATION)
}

/// Undo a `vouch.dev/verified` value this request brings (see [`pin_patch`]), if any.
fn unwritten_summary_patch(object: &Value, old_object: Option<&Value>) -> Option<PatchOperation> {
    let brought = verified_annotation(Some(object))?;
    let old = verified_annotation(old_object);
    if old == Some(brought) {
        return None;
    }
    let path = summary_path();
    Some(match old {
        Some(old) => PatchOperation::Replace(ReplaceOperation { path, value: old.clone() }),
        None => PatchOperation::Remove(RemoveOperation { path }),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use vouch_policies::{ArtifactKind, ArtifactLocation};

    pub(in super::super) fn finding(pointer: &str, policy: &str, result: FindingResult) -> Finding {
        Finding {
            policy: policy.into(),
            policy_namespace: None,
            mode: Default::default(),
            requirement: "signature".into(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: "app".into(),
                pointer: pointer.into(),
            },
            reference: "reg.example/app:1.0@sha256:ab".into(),
            digest: None,
            result,
            reason: "signed by key cosign-prod".into(),
            signer: Some("key sha256:cd".into()),
            rekor_log_index: None,
            sbom_digest: None,
        }
    }

    pub(in super::super) fn pinned_decision() -> Decision {
        Decision {
            allowed: true,
            findings: vec![finding("/spec/containers/0/image", "prod-signed", FindingResult::Pass)],
            pins: vec![Pin {
                pointer: "/spec/containers/0/image".into(),
                from: "reg.example/app:1.0".into(),
                to: "reg.example/app:1.0@sha256:ab".into(),
            }],
            ..Decision::default()
        }
    }

    /// The patch as the API server reads it.
    fn wire(patch: &Patch) -> Value {
        serde_json::to_value(patch).unwrap()
    }

    #[test]
    fn patch_pins_and_creates_the_annotations_map() {
        let object = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "reg.example/app:1.0"}]}});
        let ops = wire(&pin_patch(&object, None, &pinned_decision()));
        assert_eq!(ops.as_array().unwrap().len(), 2);
        assert_eq!(
            ops[0],
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": "reg.example/app:1.0@sha256:ab"})
        );
        assert_eq!((&ops[1]["op"], &ops[1]["path"]), (&json!("add"), &json!("/metadata/annotations")));
        let summary: Value =
            serde_json::from_str(ops[1]["value"][VERIFIED_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(summary["verified"][0]["image"], "reg.example/app:1.0@sha256:ab");
        assert_eq!(summary["verified"][0]["policies"][0], "prod-signed");
    }

    #[test]
    fn patch_adds_to_existing_annotations_with_an_escaped_key() {
        let object = json!({"metadata": {"annotations": {"a": "b"}}, "spec": {"containers": [{"image": "reg.example/app:1.0"}]}});
        let ops = wire(&pin_patch(&object, None, &pinned_decision()));
        assert_eq!(ops[1]["path"], "/metadata/annotations/vouch.dev~1verified");
        assert_eq!(PointerBuf::from_tokens(["a~b/c"]).as_str(), "/a~0b~1c");
    }

    #[test]
    fn the_patch_applies_and_changes_only_the_pinned_field_and_the_summary() {
        let object = json!({"metadata": {"name": "web"}, "spec": {"containers": [
            {"name": "app", "image": "reg.example/app:1.0"}, {"name": "side", "image": "reg.example/side:2"}
        ]}});
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &pin_patch(&object, None, &pinned_decision())).unwrap();
        let mut expected = object.clone();
        expected["spec"]["containers"][0]["image"] = json!("reg.example/app:1.0@sha256:ab");
        let summary = patched["metadata"]["annotations"][VERIFIED_ANNOTATION].clone();
        expected["metadata"]["annotations"] = json!({ VERIFIED_ANNOTATION: summary });
        assert_eq!(patched, expected);
    }

    #[test]
    fn no_patch_when_nothing_to_pin_or_the_pin_is_stale() {
        let object = json!({"metadata": {}, "spec": {"containers": [{"image": "reg.example/other:2"}]}});
        assert!(pin_patch(&object, None, &pinned_decision()).is_empty(), "pointer no longer holds `from`");
        assert!(pin_patch(&object, None, &Decision::allow()).is_empty());
        let mut not_a_pointer = pinned_decision();
        not_a_pointer.pins[0].pointer = "/spec/containers/0~2/image".into();
        let object = json!({"spec": {"containers": {"0~2": {"image": "reg.example/app:1.0"}}}});
        assert!(pin_patch(&object, None, &not_a_pointer).is_empty(), "not an RFC 6901 pointer");
    }

    #[test]
    fn a_summary_vouch_did_not_write_is_removed_or_set_back() {
        let forged =
            json!({"verified": [{"image": "reg.example/evil@sha256:ab", "policies": ["prod-signed"]}]})
                .to_string();
        let object = json!({
            "metadata": {"annotations": {VERIFIED_ANNOTATION: forged, "team": "a"}},
            "spec": {"containers": [{"image": "reg.example/evil@sha256:ab"}]}
        });
        // CREATE (no old object), nothing to pin: the forged summary goes.
        let ops = pin_patch(&object, None, &Decision::allow());
        assert_eq!(
            wire(&ops),
            json!([{"op": "remove", "path": "/metadata/annotations/vouch.dev~1verified"}])
        );
        // UPDATE changing vouch's earlier summary: set back to it.
        let mut old = object.clone();
        old["metadata"]["annotations"][VERIFIED_ANNOTATION] = json!("{\"verified\":[]}");
        let ops = wire(&pin_patch(&object, Some(&old), &Decision::allow()));
        assert_eq!(
            ops,
            json!([{"op": "replace", "path": "/metadata/annotations/vouch.dev~1verified", "value": "{\"verified\":[]}"}])
        );
        // UPDATE keeping it unchanged (written by vouch at CREATE): left alone.
        assert!(pin_patch(&object, Some(&object), &Decision::allow()).is_empty());
        // Something pinned: vouch's own summary replaces whatever was there.
        let mut tagged = object.clone();
        tagged["spec"]["containers"][0]["image"] = json!("reg.example/app:1.0");
        let ops = wire(&pin_patch(&tagged, None, &pinned_decision()));
        assert_eq!(
            (&ops[1]["op"], &ops[1]["path"]),
            (&json!("add"), &json!("/metadata/annotations/vouch.dev~1verified"))
        );
        assert!(ops[1]["value"].as_str().unwrap().contains("reg.example/app:1.0@sha256:ab"));
    }

    #[test]
    fn summary_stays_within_its_bound() {
        let mut d = pinned_decision();
        let pin = d.pins[0].clone();
        d.pins =
            (0..500).map(|i| Pin { pointer: format!("/spec/containers/{i}/image"), ..pin.clone() }).collect();
        let refs: Vec<&Pin> = d.pins.iter().collect();
        let s = verified_summary(&d, &refs);
        assert!(s.len() <= MAX_SUMMARY_BYTES);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert!(v["omitted"].as_u64().unwrap() > 0);
    }
}
