//! What runs: the digest each container of a Pod runs, read from `status.containerStatuses[].imageID`
//! (and the init and ephemeral container statuses). A scan verifies that digest, not the tag in the spec,
//! which may name something else by now.

use std::collections::BTreeMap;

use serde_json::Value;
use vouch_attest::Digest;

/// The status lists of a Pod and the spec lists they describe.
const STATUS_LISTS: [(&str, &str); 3] = [
    ("containerStatuses", "containers"),
    ("initContainerStatuses", "initContainers"),
    ("ephemeralContainerStatuses", "ephemeralContainers"),
];

/// The digest a container status's `imageID` names: `registry/repo@sha256:…`, also behind a runtime's
/// scheme (`docker-pullable://…`, `docker://…`). `None` for an empty ID and for a bare `sha256:…`: Docker
/// reports its local image ID that way (the digest of the image's config, not of a manifest), which no
/// registry can verify.
pub fn digest_of_image_id(image_id: &str) -> Option<Digest> {
    let id = image_id.trim();
    let id = id.split_once("://").map_or(id, |(_, rest)| rest);
    let (_, digest) = id.rsplit_once('@')?;
    digest.parse().ok()
}

/// The running digest of each container of `pod` that has one, by container name (names are unique across
/// a Pod's containers, init and ephemeral containers alike).
pub fn running_digests(pod: &Value) -> BTreeMap<String, Digest> {
    let mut out = BTreeMap::new();
    for (list, _) in STATUS_LISTS {
        let Some(statuses) = pod.pointer(&format!("/status/{list}")).and_then(Value::as_array) else {
            continue;
        };
        for status in statuses {
            let name = status.get("name").and_then(Value::as_str);
            let digest = status.get("imageID").and_then(Value::as_str).and_then(digest_of_image_id);
            if let (Some(name), Some(digest)) = (name, digest) {
                out.insert(name.to_owned(), digest);
            }
        }
    }
    out
}

/// A container image of a Pod and what runs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningImage {
    /// JSON pointer of the image field (`/spec/containers/0/image`).
    pub pointer: String,
    /// The image as the spec writes it.
    pub spec_image: String,
    /// The digest the container runs, when its status names one.
    pub running: Option<Digest>,
}

/// `pod` with each container's image pinned to the digest it runs (`name:tag@sha256:<running>`, the
/// spec's name and tag kept for readability and policy matching), and what was found for every container
/// image. Containers without a running digest (not started, or a runtime that reports none) keep their
/// image as written. Objects that are not Pods come back unchanged, with no images.
pub fn pin_to_running(kind: &str, pod: &Value) -> (Value, Vec<RunningImage>) {
    if kind != "Pod" {
        return (pod.clone(), Vec::new());
    }
    let running = running_digests(pod);
    let mut pinned = pod.clone();
    let mut images = Vec::new();
    for (_, list) in STATUS_LISTS {
        let Some(containers) = pinned.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut)
        else {
            continue;
        };
        for (i, container) in containers.iter_mut().enumerate() {
            let Some(spec_image) = container.get("image").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let digest = container.get("name").and_then(Value::as_str).and_then(|n| running.get(n)).cloned();
            if let Some(d) = &digest {
                let name = spec_image.split_once('@').map_or(spec_image.as_str(), |(name, _)| name);
                container["image"] = Value::String(format!("{name}@{d}"));
            }
            images.push(RunningImage {
                pointer: format!("/spec/{list}/{i}/image"),
                spec_image,
                running: digest,
            });
        }
    }
    (pinned, images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn image_ids_of_the_runtimes_give_their_digest() {
        for id in [
            format!("docker.io/library/nginx@{D1}"),
            format!("docker-pullable://nginx@{D1}"),
            format!("registry.example:5000/team/app@{D1}"),
            format!("  ghcr.io/o/a@{D1} "),
        ] {
            assert_eq!(digest_of_image_id(&id).map(|d| d.to_string()).as_deref(), Some(D1), "{id}");
        }
    }

    #[test]
    fn image_ids_that_name_no_manifest_give_none() {
        for id in ["", D1, &format!("docker://{D1}"), "nginx:1.25", "repo@sha256:short", "repo@md5:abc"] {
            assert_eq!(digest_of_image_id(id), None, "{id:?}");
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"},
            "spec": {
                "initContainers": [{"name": "fetch", "image": "reg/fetch:1"}],
                "containers": [
                    {"name": "app", "image": "reg/app:1.0"},
                    {"name": "side", "image": format!("reg/side@{D1}")},
                    {"name": "new", "image": "reg/new:2"}
                ]
            },
            "status": {
                "initContainerStatuses": [{"name": "fetch", "imageID": format!("reg/fetch@{D1}")}],
                "containerStatuses": [
                    {"name": "app", "imageID": format!("docker-pullable://reg/app@{D2}")},
                    {"name": "side", "imageID": format!("reg/side@{D2}")},
                    {"name": "new", "imageID": ""}
                ]
            }
        })
    }

    #[test]
    fn a_pod_is_pinned_to_what_runs_and_containers_without_a_digest_keep_their_image() {
        let (pinned, images) = pin_to_running("Pod", &pod());
        assert_eq!(pinned["spec"]["containers"][0]["image"], format!("reg/app:1.0@{D2}"));
        // A spec digest that differs from the running one: what runs is verified.
        assert_eq!(pinned["spec"]["containers"][1]["image"], format!("reg/side@{D2}"));
        assert_eq!(pinned["spec"]["containers"][2]["image"], "reg/new:2");
        assert_eq!(pinned["spec"]["initContainers"][0]["image"], format!("reg/fetch:1@{D1}"));
        let by_pointer: BTreeMap<_, _> = images.iter().map(|i| (i.pointer.as_str(), i)).collect();
        assert_eq!(by_pointer.len(), 4);
        assert_eq!(by_pointer["/spec/containers/0/image"].spec_image, "reg/app:1.0");
        assert_eq!(
            by_pointer["/spec/containers/0/image"].running.as_ref().map(ToString::to_string).as_deref(),
            Some(D2)
        );
        assert_eq!(by_pointer["/spec/containers/2/image"].running, None);
        assert!(by_pointer.contains_key("/spec/initContainers/0/image"));
    }

    #[test]
    fn objects_other_than_pods_and_pods_without_status_are_left_as_written() {
        let mut without_status = pod();
        without_status.as_object_mut().unwrap().remove("status");
        let (same, images) = pin_to_running("Pod", &without_status);
        assert_eq!(same, without_status);
        assert!(images.iter().all(|i| i.running.is_none()));
        let (same, images) = pin_to_running("Deployment", &pod());
        assert_eq!(same, pod());
        assert!(images.is_empty());
    }
}
