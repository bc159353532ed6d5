//! Pod specs: containers, initContainers, ephemeralContainers, image volumes and ModelPack CSI volumes.

use serde_json::Value;

use super::json::{list, map, name_of, object_at, string_at, walk};
use super::{artifact, escape_pointer_segment, ExtractError, ExtractedArtifact};
use crate::decision::ArtifactKind;

/// The CSI driver of the CNCF ModelPack project that mounts model artifacts.
pub const MODEL_CSI_DRIVER: &str = "model.csi.modelpack.org";
/// `volumeAttributes` keys of [`MODEL_CSI_DRIVER`] naming the model: `modelRef` (documented by ModelPack
/// and written by KServe) and the driver-prefixed key some of its examples use.
pub const MODEL_CSI_ATTRIBUTES: [&str; 2] = ["modelRef", "model.csi.modelpack.org/reference"];

/// JSON pointer of the pod spec for a built-in workload kind, `None` for kinds that name no images.
pub fn pod_spec_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Pod") => Some("/spec"),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some("/spec/template/spec"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// Every artifact of the pod spec found at `spec_pointer` in `object` (an absent spec names none).
pub fn from_pod_spec(object: &Value, spec_pointer: &str) -> Result<Vec<ExtractedArtifact>, ExtractError> {
    let Some(spec) = walk(object, spec_pointer)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    // Pointers are written where an artifact keeps one or an error names one, not for every field read.
    let fields = [
        ("initContainers", ArtifactKind::InitContainer),
        ("containers", ArtifactKind::Container),
        ("ephemeralContainers", ArtifactKind::EphemeralContainer),
    ];
    for (field, kind) in fields {
        for (i, entry) in list(spec.get(field), || format!("{spec_pointer}/{field}"))?.iter().enumerate() {
            let pointer = || format!("{spec_pointer}/{field}/{i}");
            let entry = object_at(entry, pointer)?;
            let name = name_of(entry, pointer, i)?;
            if let Some(image) = string_at(entry.get("image"), || pointer() + "/image")? {
                out.push(artifact(kind, name, pointer() + "/image", image, "", "")?);
            }
        }
    }
    let volumes = list(spec.get("volumes"), || format!("{spec_pointer}/volumes"))?;
    for (i, entry) in volumes.iter().enumerate() {
        let entry = object_at(entry, || format!("{spec_pointer}/volumes/{i}"))?;
        let (image, csi) =
            (entry.get("image").filter(|v| !v.is_null()), entry.get("csi").filter(|v| !v.is_null()));
        if image.is_none() && csi.is_none() {
            continue;
        }
        let pointer = format!("{spec_pointer}/volumes/{i}");
        if let Some(image) = image {
            let name = name_of(entry, &pointer, i)?;
            let image_pointer = format!("{pointer}/image");
            let image = object_at(image, &image_pointer)?;
            let reference_pointer = format!("{image_pointer}/reference");
            if let Some(reference) = string_at(image.get("reference"), &reference_pointer)? {
                out.push(artifact(ArtifactKind::ImageVolume, name, reference_pointer, reference, "", "")?);
            }
        }
        if let Some(csi) = csi {
            let csi_pointer = format!("{pointer}/csi");
            let csi = object_at(csi, &csi_pointer)?;
            if string_at(csi.get("driver"), &format!("{csi_pointer}/driver"))? != Some(MODEL_CSI_DRIVER) {
                continue;
            }
            let name = name_of(entry, &pointer, i)?;
            let attributes_pointer = format!("{csi_pointer}/volumeAttributes");
            let Some(attributes) = map(csi.get("volumeAttributes"), &attributes_pointer)? else {
                continue;
            };
            for key in MODEL_CSI_ATTRIBUTES {
                let at = format!("{attributes_pointer}/{}", escape_pointer_segment(key));
                if let Some(reference) = string_at(attributes.get(key), &at)? {
                    out.push(artifact(ArtifactKind::ModelVolume, name.clone(), at, reference, "", "")?);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_csi_volumes_are_models_and_other_drivers_are_not() {
        let pod = json!({"spec": {"volumes": [
            {"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "volumeAttributes": {"modelRef": "x"}}},
            {"name": "model", "csi": {"driver": "model.csi.modelpack.org", "volumeAttributes": {"modelRef": "ghcr.io/m/bert:1"}}},
            {"name": "old", "csi": {"driver": "model.csi.modelpack.org", "volumeAttributes": {"model.csi.modelpack.org/reference": "ghcr.io/m/qwen:1"}}}
        ]}});
        let got = from_pod_spec(&pod, "/spec").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].location.kind, ArtifactKind::ModelVolume);
        assert_eq!(got[0].location.pointer, "/spec/volumes/1/csi/volumeAttributes/modelRef");
        assert_eq!(got[0].image, "ghcr.io/m/bert:1");
        assert_eq!(
            got[1].location.pointer,
            "/spec/volumes/2/csi/volumeAttributes/model.csi.modelpack.org~1reference"
        );
        assert_eq!(pod.pointer(&got[1].location.pointer), Some(&json!("ghcr.io/m/qwen:1")));
    }

    #[test]
    fn a_model_csi_volume_with_a_wrong_attribute_type_is_an_error() {
        let pod = json!({"spec": {"volumes": [
            {"name": "model", "csi": {"driver": "model.csi.modelpack.org", "volumeAttributes": {"modelRef": 5}}}
        ]}});
        let e = from_pod_spec(&pod, "/spec").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/spec/volumes/0/csi/volumeAttributes/modelRef: expected a string, found a number"
        );
    }
}
