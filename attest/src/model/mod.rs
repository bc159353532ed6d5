//! AI model artifacts in OCI registries: CNCF ModelPack (github.com/modelpack/model-spec) and KitOps
//! ModelKits (github.com/kitops-ml/kitops).
//!
//! [`fetch_model`] reads a digest-pinned manifest and, when it is a model, its config (bounded and
//! digest-checked), and turns both into [`ModelFacts`]: the format, the manifest annotations, a normalised
//! [`ModelConfig`] for policy (licenses, source URL, format, precision, ...), the config as published,
//! and the layers with their kind, archive form and file path. [`files`] turns the layers into the model's
//! files (path → SHA-256), and [`signing`] verifies OpenSSF model signatures against them.

pub mod files;
mod modelkit;
mod modelpack;
pub mod signing;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::digest::Digest;
use crate::reference::ArtifactRef;
use crate::registry::{Descriptor, ImageManifest, ManifestKind, RegistryClient, RegistryError};

pub use signing::{ModelSignatureError, ModelSignatureFacts};

/// The `artifactType` of a CNCF ModelPack manifest.
pub const MODELPACK_MANIFEST_ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
/// The media type of a CNCF ModelPack config.
pub const MODELPACK_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
/// The media type of a KitOps ModelKit config (the Kitfile as JSON).
pub const MODELKIT_CONFIG_MEDIA_TYPE: &str = "application/vnd.kitops.modelkit.config.v1+json";
/// ModelPack layer annotation naming the file (raw layers) or directory (tar layers) a layer holds.
pub const FILEPATH_ANNOTATION: &str = "org.cncf.model.filepath";
/// Largest model config read.
pub const MAX_MODEL_CONFIG_BYTES: usize = 4 * 1024 * 1024;
/// Most layers a model manifest may have.
pub const MAX_MODEL_LAYERS: usize = 4096;

/// Which packaging a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ModelFormat {
    /// CNCF ModelPack.
    ModelPack,
    /// KitOps ModelKit.
    ModelKit,
}

impl std::fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ModelPack => "ModelPack",
            Self::ModelKit => "ModelKit",
        })
    }
}

/// What a model artifact says about itself (read from the digest-pinned manifest and its config).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelFacts {
    /// ModelPack or ModelKit.
    pub format: ModelFormat,
    /// The manifest's annotations.
    pub manifest_annotations: BTreeMap<String, String>,
    /// Normalised view of the config for policy.
    pub config: ModelConfig,
    /// The config document as published.
    pub config_raw: serde_json::Value,
    /// The layers, in manifest order.
    pub layers: Vec<ModelLayer>,
}

/// The model config, normalised across formats (absent fields are `None` / empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    /// Model name (`descriptor.name`; Kitfile `package.name`, else `model.name`).
    pub name: Option<String>,
    /// Model version (`descriptor.version`; Kitfile `package.version`, else `model.version`).
    pub version: Option<String>,
    /// SPDX license expressions (`descriptor.licenses`; every `license` in the Kitfile), sorted, unique.
    pub licenses: Vec<String>,
    /// Where the model's source is (`descriptor.sourceURL`).
    #[serde(rename = "sourceURL")]
    pub source_url: Option<String>,
    /// Where the training data is (`descriptor.datasetsURL`; remote Kitfile dataset paths).
    #[serde(rename = "datasetsURL")]
    pub datasets_url: Vec<String>,
    /// Weight format, e.g. `safetensors`, `gguf`, `pickle` (`config.format`; Kitfile `model.format`).
    pub format: Option<String>,
    /// Precision, e.g. `bf16` (`config.precision`).
    pub precision: Option<String>,
    /// Quantization, e.g. `awq` (`config.quantization`).
    pub quantization: Option<String>,
    /// Parameter count, e.g. `8b` (`config.paramSize`).
    pub param_size: Option<String>,
    /// Architecture, e.g. `transformer` (`config.architecture`).
    pub architecture: Option<String>,
    /// Model family, e.g. `llama3` (`descriptor.family`).
    pub family: Option<String>,
    /// Framework, e.g. `pytorch` (Kitfile `model.framework`).
    pub framework: Option<String>,
}

/// What a layer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ModelLayerKind {
    /// Model weights (ModelPack `weight`, ModelKit `model`).
    Weight,
    /// Weight configuration such as `config.json`, `tokenizer.json` (ModelPack `weight.config`).
    WeightConfig,
    /// Documentation (ModelPack `doc`, ModelKit `docs`).
    Doc,
    /// Code.
    Code,
    /// A dataset.
    Dataset,
    /// A part of the model, e.g. an adapter (ModelKit `modelpart`).
    ModelPart,
    /// A layer of a media type not defined by the format.
    Other,
}

/// How a layer's bytes hold its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LayerArchive {
    /// The layer is the file itself.
    Raw,
    /// An uncompressed tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGzip,
    /// A zstd-compressed tar archive.
    TarZstd,
}

impl LayerArchive {
    /// From a media type's suffix (`.raw`, `.tar`, `.tar+gzip`, `.tar+zstd`); other endings are raw.
    fn from_media_type(media_type: &str) -> Self {
        if media_type.ends_with(".tar+gzip") {
            Self::TarGzip
        } else if media_type.ends_with(".tar+zstd") {
            Self::TarZstd
        } else if media_type.ends_with(".tar") {
            Self::Tar
        } else {
            Self::Raw
        }
    }
}

/// One layer of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelLayer {
    /// What it holds.
    pub kind: ModelLayerKind,
    /// Its media type as published.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The file (raw layers) or directory (tar layers) it holds, when the artifact says.
    pub path: Option<String>,
    /// How its bytes hold its files.
    pub archive: LayerArchive,
}

/// Why model facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The reference has no digest.
    #[error("{reference} is not pinned to a digest")]
    Unpinned {
        /// The reference.
        reference: String,
    },
    /// The manifest contradicts itself about its format.
    #[error("malformed model manifest {reference}: {reason}")]
    MalformedManifest {
        /// The artifact.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The config is not what its media type says.
    #[error("malformed {format} config of {reference}: {reason}")]
    MalformedConfig {
        /// The artifact.
        reference: String,
        /// ModelPack or ModelKit.
        format: ModelFormat,
        /// What is wrong.
        reason: String,
    },
    /// A layer cannot be turned into files.
    #[error("model layer {digest} of {reference}: {reason}")]
    Layer {
        /// The artifact.
        reference: String,
        /// The layer.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// The model's files exceed a limit.
    #[error("model {reference} is too large to check: {reason}")]
    TooLarge {
        /// The artifact.
        reference: String,
        /// Which limit.
        reason: String,
    },
}

impl ModelError {
    /// Whether trying again later may succeed (only registry trouble may pass).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry(e) if e.is_transient())
    }
}

/// Fetch the manifest by digest and, when it is a ModelPack or ModelKit, its config (bounded,
/// digest-checked): `Ok(None)` = not a model.
pub async fn fetch_model(
    registry: &RegistryClient,
    pinned: &ArtifactRef,
) -> Result<Option<ModelFacts>, ModelError> {
    if pinned.digest().is_none() {
        return Err(ModelError::Unpinned { reference: pinned.to_string() });
    }
    let manifest = match registry.fetch_parsed_manifest(pinned).await? {
        (_, ManifestKind::Image(m)) => m,
        (_, ManifestKind::Index(_)) => return Ok(None),
    };
    let Some(format) = detect_format(pinned, &manifest)? else {
        return Ok(None);
    };
    let size = usize::try_from(manifest.config.size).unwrap_or(usize::MAX);
    if size > MAX_MODEL_CONFIG_BYTES {
        return Err(ModelError::MalformedConfig {
            reference: pinned.to_string(),
            format,
            reason: format!("config of {size} bytes exceeds the limit of {MAX_MODEL_CONFIG_BYTES} bytes"),
        });
    }
    let config = registry.fetch_blob(pinned, &manifest.config.digest, MAX_MODEL_CONFIG_BYTES).await?;
    model_facts(pinned, format, &manifest, &config).map(Some)
}

/// The model format a manifest declares, if any; a manifest that declares two is an error.
pub fn detect_format(
    pinned: &ArtifactRef,
    manifest: &ImageManifest,
) -> Result<Option<ModelFormat>, ModelError> {
    let config_type = manifest.config.media_type.as_str();
    let modelpack_artifact = manifest.artifact_type.as_deref() == Some(MODELPACK_MANIFEST_ARTIFACT_TYPE);
    let format = match config_type {
        MODELPACK_CONFIG_MEDIA_TYPE => Some(ModelFormat::ModelPack),
        MODELKIT_CONFIG_MEDIA_TYPE if modelpack_artifact => {
            return Err(ModelError::MalformedManifest {
                reference: pinned.to_string(),
                reason: format!(
                    "artifactType {MODELPACK_MANIFEST_ARTIFACT_TYPE} with a KitOps config ({config_type})"
                ),
            })
        }
        MODELKIT_CONFIG_MEDIA_TYPE => Some(ModelFormat::ModelKit),
        _ if modelpack_artifact => {
            return Err(ModelError::MalformedManifest {
                reference: pinned.to_string(),
                reason: format!(
                    "artifactType {MODELPACK_MANIFEST_ARTIFACT_TYPE} but config media type {config_type:?}, \
                     not {MODELPACK_CONFIG_MEDIA_TYPE}"
                ),
            })
        }
        _ => None,
    };
    Ok(format)
}

/// Build the facts from a manifest already known to be a model of `format` and its config bytes.
pub fn model_facts(
    pinned: &ArtifactRef,
    format: ModelFormat,
    manifest: &ImageManifest,
    config_bytes: &[u8],
) -> Result<ModelFacts, ModelError> {
    let malformed =
        |reason: String| ModelError::MalformedConfig { reference: pinned.to_string(), format, reason };
    if manifest.layers.len() > MAX_MODEL_LAYERS {
        return Err(ModelError::MalformedManifest {
            reference: pinned.to_string(),
            reason: format!("{} layers, more than the limit of {MAX_MODEL_LAYERS}", manifest.layers.len()),
        });
    }
    let config_raw: serde_json::Value =
        serde_json::from_slice(config_bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
    if !config_raw.is_object() {
        return Err(malformed("not a JSON object".into()));
    }
    let (config, layers) = match format {
        ModelFormat::ModelPack => {
            let config = modelpack::normalise(&config_raw).map_err(malformed)?;
            (config, manifest.layers.iter().map(modelpack::layer).collect())
        }
        ModelFormat::ModelKit => {
            let kitfile = modelkit::Kitfile::parse(&config_raw).map_err(malformed)?;
            let layers = manifest.layers.iter().map(|d| kitfile.layer(d)).collect();
            (kitfile.normalise(), layers)
        }
    };
    Ok(ModelFacts { format, manifest_annotations: manifest.annotations.clone(), config, config_raw, layers })
}

/// The layer's file path annotation, if any.
fn filepath(d: &Descriptor) -> Option<String> {
    d.annotations.get(FILEPATH_ANNOTATION).filter(|p| !p.is_empty()).cloned()
}

/// Sorted, unique, non-empty.
fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.retain(|s| !s.is_empty());
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pinned() -> ArtifactRef {
        format!("reg.example/models/m@{}", Digest::sha256_of(b"m")).parse().unwrap()
    }

    fn descriptor(media_type: &str, content: &[u8], annotations: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: Digest::sha256_of(content),
            size: content.len() as u64,
            artifact_type: None,
            annotations: annotations.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            platform: None,
        }
    }

    fn manifest(artifact_type: Option<&str>, config_type: &str, layers: Vec<Descriptor>) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(crate::registry::OCI_MANIFEST.into()),
            artifact_type: artifact_type.map(Into::into),
            config: descriptor(config_type, b"{}", &[]),
            layers,
            subject: None,
            annotations: [("org.opencontainers.image.source".to_string(), "https://x".to_string())].into(),
        }
    }

    #[test]
    fn modelpack_manifest_and_config_are_read() {
        let layers = vec![
            descriptor(
                "application/vnd.cncf.model.weight.v1.raw",
                b"w",
                &[(FILEPATH_ANNOTATION, "model.safetensors")],
            ),
            descriptor("application/vnd.cncf.model.weight.config.v1.tar+gzip", b"c", &[]),
            descriptor("application/vnd.cncf.model.doc.v1.tar+zstd", b"d", &[(FILEPATH_ANNOTATION, "docs")]),
            descriptor("application/vnd.cncf.model.code.v1.tar", b"code", &[]),
            descriptor("application/vnd.cncf.model.dataset.v1.raw", b"ds", &[(FILEPATH_ANNOTATION, "d.csv")]),
            descriptor("application/octet-stream", b"x", &[]),
        ];
        let m = manifest(Some(MODELPACK_MANIFEST_ARTIFACT_TYPE), MODELPACK_CONFIG_MEDIA_TYPE, layers);
        assert_eq!(detect_format(&pinned(), &m).unwrap(), Some(ModelFormat::ModelPack));
        let config = json!({
            "descriptor": {"name": "llama3-8b", "version": "1.0", "family": "llama3",
                "licenses": ["Apache-2.0", "MIT", "Apache-2.0"], "sourceURL": "https://src",
                "datasetsURL": ["https://data/a"]},
            "config": {"format": "safetensors", "precision": "bf16", "quantization": "awq",
                "paramSize": "8b", "architecture": "transformer"},
            "modelfs": {"type": "layers", "diffIds": []}
        });
        let facts = model_facts(&pinned(), ModelFormat::ModelPack, &m, &serde_json::to_vec(&config).unwrap())
            .unwrap();
        assert_eq!(
            facts.config,
            ModelConfig {
                name: Some("llama3-8b".into()),
                version: Some("1.0".into()),
                licenses: vec!["Apache-2.0".into(), "MIT".into()],
                source_url: Some("https://src".into()),
                datasets_url: vec!["https://data/a".into()],
                format: Some("safetensors".into()),
                precision: Some("bf16".into()),
                quantization: Some("awq".into()),
                param_size: Some("8b".into()),
                architecture: Some("transformer".into()),
                family: Some("llama3".into()),
                framework: None,
            }
        );
        let kinds: Vec<(ModelLayerKind, LayerArchive, Option<&str>)> =
            facts.layers.iter().map(|l| (l.kind, l.archive, l.path.as_deref())).collect();
        assert_eq!(
            kinds,
            vec![
                (ModelLayerKind::Weight, LayerArchive::Raw, Some("model.safetensors")),
                (ModelLayerKind::WeightConfig, LayerArchive::TarGzip, None),
                (ModelLayerKind::Doc, LayerArchive::TarZstd, Some("docs")),
                (ModelLayerKind::Code, LayerArchive::Tar, None),
                (ModelLayerKind::Dataset, LayerArchive::Raw, Some("d.csv")),
                (ModelLayerKind::Other, LayerArchive::Raw, None),
            ]
        );
        let json = serde_json::to_value(&facts).unwrap();
        assert_eq!(json["format"], "modelPack");
        assert_eq!(json["config"]["sourceURL"], "https://src");
        assert_eq!(json["config"]["paramSize"], "8b");
        assert_eq!(json["layers"][1]["kind"], "weightConfig");
        assert_eq!(json["layers"][1]["archive"], "tarGzip");
        assert_eq!(json["manifestAnnotations"]["org.opencontainers.image.source"], "https://x");
    }

    #[test]
    fn modelkit_kitfile_is_normalised() {
        let model = descriptor("application/vnd.kitops.modelkit.model.v1.tar+gzip", b"m", &[]);
        let data = descriptor("application/vnd.kitops.modelkit.dataset.v1.tar", b"d", &[]);
        let part = descriptor("application/vnd.kitops.modelkit.modelpart.v1.tar+zstd", b"p", &[]);
        let docs = descriptor("application/vnd.kitops.modelkit.docs.v1.tar+gzip", b"doc", &[]);
        let code = descriptor("application/vnd.kitops.modelkit.code.v1.tar+gzip", b"c", &[]);
        let m =
            manifest(None, MODELKIT_CONFIG_MEDIA_TYPE, vec![model.clone(), data.clone(), part, docs, code]);
        assert_eq!(detect_format(&pinned(), &m).unwrap(), Some(ModelFormat::ModelKit));
        let kitfile = json!({
            "manifestVersion": "1.0.0",
            "package": {"name": "sentiment", "version": "2.1", "license": "Apache-2.0", "authors": ["a"]},
            "model": {"name": "m", "path": "./model.gguf", "license": "MIT", "framework": "pytorch",
                "format": "gguf", "digest": model.digest.to_string(),
                "parts": [{"path": "lora", "license": "Apache-2.0", "type": "lora"}]},
            "datasets": [{"name": "train", "path": "data/train.csv", "license": "CC-BY-4.0",
                "digest": data.digest.to_string()},
                {"name": "remote", "path": "s3://bucket/ds"}],
            "code": [{"path": "src", "license": "BSD-3-Clause"}],
            "docs": [{"path": "README.md"}]
        });
        let facts = model_facts(&pinned(), ModelFormat::ModelKit, &m, &serde_json::to_vec(&kitfile).unwrap())
            .unwrap();
        assert_eq!(facts.config.name.as_deref(), Some("sentiment"));
        assert_eq!(facts.config.version.as_deref(), Some("2.1"));
        assert_eq!(facts.config.licenses, vec!["Apache-2.0", "BSD-3-Clause", "CC-BY-4.0", "MIT"]);
        assert_eq!(facts.config.format.as_deref(), Some("gguf"));
        assert_eq!(facts.config.framework.as_deref(), Some("pytorch"));
        assert_eq!(facts.config.datasets_url, vec!["s3://bucket/ds"]);
        let kinds: Vec<(ModelLayerKind, LayerArchive, Option<&str>)> =
            facts.layers.iter().map(|l| (l.kind, l.archive, l.path.as_deref())).collect();
        assert_eq!(
            kinds,
            vec![
                (ModelLayerKind::Weight, LayerArchive::TarGzip, Some("model.gguf")),
                (ModelLayerKind::Dataset, LayerArchive::Tar, Some("data/train.csv")),
                (ModelLayerKind::ModelPart, LayerArchive::TarZstd, None),
                (ModelLayerKind::Doc, LayerArchive::TarGzip, None),
                (ModelLayerKind::Code, LayerArchive::TarGzip, None),
            ]
        );
        assert_eq!(serde_json::to_value(&facts).unwrap()["format"], "modelKit");
    }

    #[test]
    fn images_are_not_models_and_contradictions_are_errors() {
        let image = manifest(None, "application/vnd.oci.image.config.v1+json", vec![]);
        assert_eq!(detect_format(&pinned(), &image).unwrap(), None);
        let wrong =
            manifest(Some(MODELPACK_MANIFEST_ARTIFACT_TYPE), "application/vnd.oci.empty.v1+json", vec![]);
        let err = detect_format(&pinned(), &wrong).unwrap_err();
        assert!(err.to_string().contains("not application/vnd.cncf.model.config.v1+json"), "{err}");
        let mixed = manifest(Some(MODELPACK_MANIFEST_ARTIFACT_TYPE), MODELKIT_CONFIG_MEDIA_TYPE, vec![]);
        assert!(matches!(detect_format(&pinned(), &mixed), Err(ModelError::MalformedManifest { .. })));
    }

    #[test]
    fn malformed_configs_are_clear_errors() {
        let m = manifest(Some(MODELPACK_MANIFEST_ARTIFACT_TYPE), MODELPACK_CONFIG_MEDIA_TYPE, vec![]);
        let cases: [(&[u8], &str); 4] = [
            (b"not json", "not JSON"),
            (b"[1]", "not a JSON object"),
            (br#"{"descriptor": {"licenses": "MIT"}}"#, "descriptor.licenses"),
            (br#"{"config": {"paramSize": 8}}"#, "config.paramSize"),
        ];
        for (bytes, want) in cases {
            let err = model_facts(&pinned(), ModelFormat::ModelPack, &m, bytes).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
            assert!(
                err.to_string().starts_with("malformed ModelPack config of reg.example/models/m@"),
                "{err}"
            );
        }
        let k = manifest(None, MODELKIT_CONFIG_MEDIA_TYPE, vec![]);
        let err =
            model_facts(&pinned(), ModelFormat::ModelKit, &k, br#"{"package": {"license": 3}}"#).unwrap_err();
        assert!(err.to_string().contains("malformed ModelKit config"), "{err}");
        let err = model_facts(&pinned(), ModelFormat::ModelKit, &k, br#"{"package": {}}"#).unwrap_err();
        assert!(err.to_string().contains("manifestVersion"), "{err}");
    }
}
