//! KitOps ModelKits: the config is the Kitfile as JSON (`application/vnd.kitops.modelkit.config.v1+json`);
//! layers are `application/vnd.kitops.modelkit.<model|modelpart|dataset|code|docs>.v1.tar[+gzip|+zstd]`,
//! each tied to its Kitfile entry by the entry's `digest`.

use serde::Deserialize;
use serde_json::Value;

use super::{filepath, sorted_unique, LayerArchive, ModelConfig, ModelLayer, ModelLayerKind};
use crate::registry::Descriptor;

const LAYER_PREFIX: &str = "application/vnd.kitops.modelkit.";

/// The parts of a Kitfile vouch reads (unknown fields are kept in `config_raw`, not here).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Kitfile {
    // Required (every Kitfile states it), so that an arbitrary JSON object is not taken for a Kitfile.
    #[allow(dead_code)]
    manifest_version: String,
    #[serde(default)]
    package: Option<Package>,
    #[serde(default)]
    model: Option<Model>,
    #[serde(default)]
    datasets: Vec<Entry>,
    #[serde(default)]
    code: Vec<Entry>,
    #[serde(default)]
    docs: Vec<Entry>,
}

#[derive(Debug, Default, Deserialize)]
struct Package {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    license: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Model {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    framework: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    parts: Vec<Entry>,
}

/// A dataset, code, docs or model-part entry.
#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

impl Kitfile {
    /// Parse the Kitfile JSON; wrong types and a missing `manifestVersion` are errors.
    pub(super) fn parse(config: &Value) -> Result<Self, String> {
        Self::deserialize(config).map_err(|e| e.to_string())
    }

    /// The normalised view: names and versions from `package` (else `model`), every license.
    pub(super) fn normalise(&self) -> ModelConfig {
        let package = self.package.as_ref();
        let model = self.model.as_ref();
        let mut licenses: Vec<String> = Vec::new();
        licenses.extend(package.and_then(|p| p.license.clone()));
        if let Some(m) = model {
            licenses.extend(m.license.clone());
            licenses.extend(m.parts.iter().filter_map(|p| p.license.clone()));
        }
        licenses.extend(
            self.datasets.iter().chain(&self.code).chain(&self.docs).filter_map(|e| e.license.clone()),
        );
        ModelConfig {
            name: package.and_then(|p| p.name.clone()).or_else(|| model.and_then(|m| m.name.clone())),
            version: package
                .and_then(|p| p.version.clone())
                .or_else(|| model.and_then(|m| m.version.clone())),
            licenses: sorted_unique(licenses),
            source_url: None,
            datasets_url: self
                .datasets
                .iter()
                .filter_map(|d| d.path.clone())
                .filter(|p| p.contains("://"))
                .collect(),
            format: model.and_then(|m| m.format.clone()),
            precision: None,
            quantization: None,
            param_size: None,
            architecture: None,
            family: None,
            framework: model.and_then(|m| m.framework.clone()),
        }
    }

    /// A layer of the ModelKit, its path from the Kitfile entry carrying its digest (else the ModelPack
    /// file path annotation newer kit versions write).
    pub(super) fn layer(&self, d: &Descriptor) -> ModelLayer {
        let kind = d.media_type.strip_prefix(LAYER_PREFIX).and_then(|rest| rest.split_once(".v1.")).map_or(
            ModelLayerKind::Other,
            |(kind, _)| match kind {
                "model" => ModelLayerKind::Weight,
                "modelpart" => ModelLayerKind::ModelPart,
                "dataset" => ModelLayerKind::Dataset,
                "code" => ModelLayerKind::Code,
                "docs" => ModelLayerKind::Doc,
                _ => ModelLayerKind::Other,
            },
        );
        let digest = d.digest.to_string();
        let same = |e: &Option<String>| e.as_deref() == Some(digest.as_str());
        let model = self.model.as_ref();
        let path = model
            .filter(|m| same(&m.digest))
            .and_then(|m| m.path.clone())
            .or_else(|| {
                let parts = model.map(|m| m.parts.as_slice()).unwrap_or_default();
                parts
                    .iter()
                    .chain(&self.datasets)
                    .chain(&self.code)
                    .chain(&self.docs)
                    .find(|e| same(&e.digest))
                    .and_then(|e| e.path.clone())
            })
            .map(|p| p.trim_start_matches("./").to_owned())
            .or_else(|| filepath(d));
        ModelLayer {
            kind,
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            path,
            archive: LayerArchive::from_media_type(&d.media_type),
        }
    }
}
