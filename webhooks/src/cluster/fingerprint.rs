//! What a status write checks before it writes: that the stored object still is the object vouch reviewed.
//!
//! vouch does not authenticate the caller of its webhook (the API server, or anything else that reaches the
//! Service), so a review is a claim, not a fact. A result is written to an object only when the stored
//! object shows the same fingerprint as the reviewed one:
//! - a Pod: its images, by container (`containers`, `initContainers`, `ephemeralContainers`). Not the whole
//!   spec, which the scheduler changes (`nodeName`) after admission;
//! - any other kind: its whole `spec` (custom resources' specs change only by updates, which are reviewed
//!   again).
//!
//! So a forged review naming an existing Pod with other images than the Pod runs writes nothing there.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Pod spec fields that hold containers with images.
const POD_CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The fingerprint of an object of this kind (`v1`/`Pod` or any other), from the object as JSON;
/// `None` when it has nothing to fingerprint (no spec), so that nothing is written to it.
pub fn of_object(api_version: &str, kind: &str, object: &Value) -> Option<String> {
    let spec = object.get("spec")?;
    if api_version == "v1" && kind == "Pod" {
        Some(pod_images(spec))
    } else {
        let mut canonical = String::new();
        write_canonical(spec, &mut canonical);
        Some(hex::encode(Sha256::digest(canonical.as_bytes())))
    }
}

fn pod_images(spec: &Value) -> String {
    let mut lines: Vec<String> = Vec::new();
    for list in POD_CONTAINER_LISTS {
        for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            let field = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or_default().to_owned();
            // JSON-quoted, so that no name or image can forge a line separator.
            lines.push(format!("{list}\t{}\t{}", Value::from(field("name")), Value::from(field("image"))));
        }
    }
    lines.sort_unstable();
    hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
}

/// JSON with object keys sorted (serde_json may keep insertion order, depending on its features).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                if let Some(child) = map.get(k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(images: &[(&str, &str)], node: &str) -> Value {
        let containers: Vec<Value> = images.iter().map(|(n, i)| json!({"name": n, "image": i})).collect();
        json!({"metadata": {"name": "p"}, "spec": {"nodeName": node, "containers": containers}})
    }

    #[test]
    fn a_pod_is_known_by_its_images_not_by_where_it_runs() {
        let reviewed = of_object("v1", "Pod", &pod(&[("app", "r/app@sha256:aa"), ("side", "r/s:1")], ""));
        let scheduled =
            of_object("v1", "Pod", &pod(&[("side", "r/s:1"), ("app", "r/app@sha256:aa")], "node-7"));
        assert_eq!(reviewed, scheduled, "order of containers and the node do not matter");
        let other = of_object("v1", "Pod", &pod(&[("app", "r/app@sha256:bb"), ("side", "r/s:1")], ""));
        assert_ne!(reviewed, other, "another image is another pod");
        let swapped = of_object("v1", "Pod", &pod(&[("app", "r/s:1"), ("side", "r/app@sha256:aa")], ""));
        assert_ne!(reviewed, swapped, "images belong to their container");
        let mut init = pod(&[("app", "r/app@sha256:aa"), ("side", "r/s:1")], "");
        init["spec"]["initContainers"] = json!([{"name": "fetch", "image": "r/evil:1"}]);
        assert_ne!(reviewed, of_object("v1", "Pod", &init), "an init container counts");
    }

    #[test]
    fn other_kinds_are_known_by_their_whole_spec_in_any_key_order() {
        let a = json!({"spec": {"model": "r/m@sha256:aa", "replicas": 2}, "status": {"x": 1}});
        let b = json!({"status": {"x": 2}, "spec": {"replicas": 2, "model": "r/m@sha256:aa"}});
        let c = json!({"spec": {"replicas": 3, "model": "r/m@sha256:aa"}});
        assert_eq!(of_object("example.com/v1", "Widget", &a), of_object("example.com/v1", "Widget", &b));
        assert_ne!(of_object("example.com/v1", "Widget", &a), of_object("example.com/v1", "Widget", &c));
        assert_eq!(of_object("example.com/v1", "Widget", &json!({"metadata": {}})), None);
    }

    #[test]
    fn names_and_images_cannot_forge_a_line_break() {
        let one = json!({"spec": {"containers": [{"name": "a\tb", "image": "x"}]}});
        let two = json!({"spec": {"containers": [{"name": "a", "image": "b\tx"}]}});
        assert_ne!(of_object("v1", "Pod", &one), of_object("v1", "Pod", &two));
    }
}
