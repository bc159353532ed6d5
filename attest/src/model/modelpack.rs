//! CNCF ModelPack (model-spec v1): the config (`descriptor`, `config`, `modelfs`) and the layer media
//! types `application/vnd.cncf.model.<kind>.v1.<raw|tar|tar+gzip|tar+zstd>`.

use serde_json::Value;

use super::{filepath, sorted_unique, LayerArchive, ModelConfig, ModelLayer, ModelLayerKind};
use crate::registry::Descriptor;

const LAYER_PREFIX: &str = "application/vnd.cncf.model.";

/// The normalised view of a ModelPack config; a field of the wrong JSON type is an error naming it.
pub(super) fn normalise(config: &Value) -> Result<ModelConfig, String> {
    let descriptor = section(config, "descriptor")?;
    let exec = section(config, "config")?;
    if let Some(fs) = config.get("modelfs") {
        if !fs.is_object() {
            return Err("modelfs must be an object".into());
        }
    }
    Ok(ModelConfig {
        name: string(descriptor, "descriptor", "name")?,
        version: string(descriptor, "descriptor", "version")?,
        licenses: sorted_unique(strings(descriptor, "descriptor", "licenses")?),
        source_url: string(descriptor, "descriptor", "sourceURL")?,
        datasets_url: strings(descriptor, "descriptor", "datasetsURL")?,
        format: string(exec, "config", "format")?,
        precision: string(exec, "config", "precision")?,
        quantization: string(exec, "config", "quantization")?,
        param_size: string(exec, "config", "paramSize")?,
        architecture: string(exec, "config", "architecture")?,
        family: string(descriptor, "descriptor", "family")?,
        framework: None,
    })
}

/// A layer of a ModelPack manifest.
pub(super) fn layer(d: &Descriptor) -> ModelLayer {
    let kind = d.media_type.strip_prefix(LAYER_PREFIX).and_then(|rest| rest.split_once(".v1.")).map_or(
        ModelLayerKind::Other,
        |(kind, _)| match kind {
            "weight" => ModelLayerKind::Weight,
            "weight.config" => ModelLayerKind::WeightConfig,
            "doc" => ModelLayerKind::Doc,
            "code" => ModelLayerKind::Code,
            "dataset" => ModelLayerKind::Dataset,
            _ => ModelLayerKind::Other,
        },
    );
    ModelLayer {
        kind,
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        path: filepath(d),
        archive: LayerArchive::from_media_type(&d.media_type),
    }
}

/// `config[name]` as an object (absent = empty).
fn section<'a>(config: &'a Value, name: &str) -> Result<Option<&'a serde_json::Map<String, Value>>, String> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("{name} must be an object")),
    }
}

fn string(
    section: Option<&serde_json::Map<String, Value>>,
    section_name: &str,
    field: &str,
) -> Result<Option<String>, String> {
    match section.and_then(|s| s.get(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{section_name}.{field} must be a string")),
    }
}

fn strings(
    section: Option<&serde_json::Map<String, Value>>,
    section_name: &str,
    field: &str,
) -> Result<Vec<String>, String> {
    let wrong = || format!("{section_name}.{field} must be an array of strings");
    match section.and_then(|s| s.get(field)) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong)).collect()
        }
        Some(_) => Err(wrong()),
    }
}
