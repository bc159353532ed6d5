//! KServe InferenceService: `spec.predictor.model.storageUri` and `spec.predictor.<framework>.storageUri`
//! (only `oci://…` is an OCI reference: KServe's modelcar pulls it as an image; `hf://`, `s3://`, `gs://`,
//! `https://`, `pvc://`, … are fetched by the storage initializer from elsewhere and become
//! [`FetcherProblem`]s of kind `NotOci`), the `image` of those container-like specs, and the pod-spec
//! fields (containers, initContainers, volumes) the predictor, transformer and explainer embed.

use serde_json::Value;

use super::config::CompiledExtraction;
use super::json::{map, object_at, string_at};
use super::{artifact, escape_pointer_segment, fetchers, from_pod_spec, ExtractError, Extracted};
use super::{FetcherProblem, FetcherProblemKind};
use crate::decision::{ArtifactKind, ArtifactLocation};

/// The API group of KServe.
pub const KSERVE_GROUP: &str = "serving.kserve.io";
/// The scheme of storageUris that are OCI references.
pub const OCI_SCHEME: &str = "oci://";
/// Profile name of fetcher problems raised for non-OCI storageUris.
pub const STORAGE_INITIALIZER_PROFILE: &str = "kserve storage initializer";

/// Whether the kind is a KServe InferenceService (any version).
pub(crate) fn is_inference_service(group: &str, kind: &str) -> bool {
    group == KSERVE_GROUP && kind == "InferenceService"
}

/// Everything an InferenceService names.
pub(crate) fn extract(
    object: &Value,
    config: &CompiledExtraction,
    out: &mut Extracted,
) -> Result<(), ExtractError> {
    let spec = map(object_at(object, "")?.get("spec"), "/spec")?;
    let Some(spec) = spec else {
        return Ok(());
    };
    if let Some(predictor) = map(spec.get("predictor"), "/spec/predictor")? {
        // `model` first (the current API), then the per-framework specs of the older one.
        let mut keys: Vec<&String> = predictor.keys().collect();
        keys.sort_by_key(|k| (k.as_str() != "model", k.as_str()));
        for key in keys {
            let Some(Value::Object(component)) = predictor.get(key) else {
                continue;
            };
            let pointer = format!("/spec/predictor/{}", escape_pointer_segment(key));
            let name = format!("predictor.{key}");
            if let Some(image) = string_at(component.get("image"), &format!("{pointer}/image"))? {
                out.artifacts.push(artifact(
                    ArtifactKind::Container,
                    name.clone(),
                    format!("{pointer}/image"),
                    image,
                    "",
                    "",
                )?);
            }
            let uri_pointer = format!("{pointer}/storageUri");
            if let Some(uri) = string_at(component.get("storageUri"), &uri_pointer)? {
                storage_uri(uri, name, uri_pointer, out)?;
            }
        }
    }
    for component in ["predictor", "transformer", "explainer"] {
        let at = format!("/spec/{component}");
        out.artifacts.extend(from_pod_spec(object, &at)?);
        fetchers::from_init_containers(object, &at, config, out)?;
    }
    Ok(())
}

fn storage_uri(uri: &str, name: String, pointer: String, out: &mut Extracted) -> Result<(), ExtractError> {
    match uri.strip_prefix(OCI_SCHEME) {
        Some(reference) => {
            out.artifacts.push(artifact(ArtifactKind::StorageUri, name, pointer, reference, OCI_SCHEME, "")?);
        }
        None => out.fetcher_problems.push(FetcherProblem {
            message: format!(
                "InferenceService {name} storageUri {uri:?} is not an OCI reference (only oci:// is) and cannot be verified"
            ),
            location: ArtifactLocation { kind: ArtifactKind::StorageUri, name, pointer },
            fetcher_image: String::new(),
            profile: STORAGE_INITIALIZER_PROFILE.into(),
            kind: FetcherProblemKind::NotOci { source: uri.chars().take(super::MAX_IMAGE_LEN).collect() },
        }),
    }
    Ok(())
}
