//! Builders for AI model artifacts as the specs lay them out — CNCF ModelPack (model-spec v1) and KitOps
//! ModelKits — pushed to a registry, and OpenSSF model signatures written as `model_signing sign key`
//! writes them (Sigstore bundle v0.3, DSSE, in-toto statement listing every file), attached as Sigstore
//! bundle referrers.
//!
//! ```no_run
//! # use vouch_attest::{registry::RegistryClient, SigningKey};
//! # use vouch_tests::models::{sign_model, ModelPackBuilder};
//! # async fn example(client: &RegistryClient, key: &SigningKey) -> anyhow::Result<()> {
//! let model = ModelPackBuilder::new()
//!     .weight_raw("model.safetensors", b"weights")
//!     .license("Apache-2.0")
//!     .format("safetensors");
//! let pinned = model.push(client, "127.0.0.1:5000/models/m:v1").await?;
//! sign_model(client, &pinned, key).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use vouch_attest::cosign::BUNDLE_ARTIFACT_TYPE;
use vouch_attest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use vouch_attest::intoto::STATEMENT_V1;
use vouch_attest::model::signing::MODEL_SIGNATURE_PREDICATE_V1;
use vouch_attest::model::{
    FILEPATH_ANNOTATION, MODELKIT_CONFIG_MEDIA_TYPE, MODELPACK_CONFIG_MEDIA_TYPE,
    MODELPACK_MANIFEST_ARTIFACT_TYPE,
};
use vouch_attest::registry::{Descriptor, ImageManifest, RegistryClient, OCI_EMPTY, OCI_MANIFEST};
use vouch_attest::{ArtifactRef, Digest, SigningKey};

/// How a tar layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `.tar`
    None,
    /// `.tar+gzip`
    Gzip,
    /// `.tar+zstd`
    Zstd,
}

impl Compression {
    fn suffix(self) -> &'static str {
        match self {
            Self::None => "tar",
            Self::Gzip => "tar+gzip",
            Self::Zstd => "tar+zstd",
        }
    }
}

/// One layer to push: media type, bytes, annotations, and the files it holds (path → content).
#[derive(Debug, Clone)]
struct Layer {
    media_type: String,
    bytes: Vec<u8>,
    annotations: BTreeMap<String, String>,
    files: Vec<(String, Vec<u8>)>,
}

impl Layer {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: Digest::sha256_of(&self.bytes),
            size: self.bytes.len() as u64,
            artifact_type: None,
            annotations: self.annotations.clone(),
            platform: None,
        }
    }
}

/// A tar archive of `files` (regular files, mode 0644, mtime 0), compressed as asked.
///
/// # Panics
/// On a path tar cannot hold (absolute, `..`): that is a bug in the test, and the builders stay chainable.
#[allow(clippy::panic)]
pub fn tar_archive(files: &[(&str, &[u8])], compression: Compression) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        // Writing to a Vec cannot fail; an invalid path is a bug in the test.
        b.append_data(&mut h, path, *content).unwrap_or_else(|e| panic!("tar entry {path}: {e}"));
    }
    let tar = b.into_inner().unwrap_or_else(|e| panic!("tar: {e}"));
    match compression {
        Compression::None => tar,
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap_or_else(|e| panic!("gzip: {e}"));
            e.finish().unwrap_or_else(|e| panic!("gzip: {e}"))
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(tar.as_slice(), ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

/// Push config + layers + manifest to `reference`; returns the reference pinned to the manifest digest.
async fn push_manifest(
    client: &RegistryClient,
    reference: &str,
    artifact_type: Option<&str>,
    config_media_type: &str,
    config: &[u8],
    layers: &[Layer],
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<ArtifactRef> {
    let r: ArtifactRef = reference.parse().with_context(|| format!("reference {reference}"))?;
    let config_digest = client.push_blob(&r, config).await?;
    for l in layers {
        client.push_blob(&r, &l.bytes).await?;
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: artifact_type.map(str::to_owned),
        config: Descriptor {
            media_type: config_media_type.to_owned(),
            digest: config_digest,
            size: config.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: layers.iter().map(Layer::descriptor).collect(),
        subject: None,
        annotations: annotations.clone(),
    };
    let bytes = serde_json::to_vec(&manifest)?;
    let digest = client.push_manifest(&r, &bytes, OCI_MANIFEST).await?;
    Ok(r.with_digest(digest))
}

/// A CNCF ModelPack artifact: `descriptor`/`config` fields, raw and tar layers with
/// `org.cncf.model.filepath` annotations, manifest annotations.
#[derive(Debug, Clone, Default)]
pub struct ModelPackBuilder {
    descriptor: Map<String, Value>,
    config: Map<String, Value>,
    layers: Vec<Layer>,
    annotations: BTreeMap<String, String>,
    config_override: Option<Vec<u8>>,
    artifact_type: Option<Option<String>>,
}

impl ModelPackBuilder {
    /// An empty ModelPack (add layers and fields).
    pub fn new() -> Self {
        Self::default()
    }

    /// A raw layer `application/vnd.cncf.model.<kind>.v1.raw` holding one file.
    pub fn raw(mut self, kind: &str, path: &str, content: &[u8]) -> Self {
        self.layers.push(Layer {
            media_type: format!("application/vnd.cncf.model.{kind}.v1.raw"),
            bytes: content.to_vec(),
            annotations: [(FILEPATH_ANNOTATION.to_owned(), path.to_owned())].into(),
            files: vec![(path.to_owned(), content.to_vec())],
        });
        self
    }

    /// A raw weight file.
    pub fn weight_raw(self, path: &str, content: &[u8]) -> Self {
        self.raw("weight", path, content)
    }

    /// A raw weight config file (`config.json`, `tokenizer.json`).
    pub fn weight_config_raw(self, path: &str, content: &[u8]) -> Self {
        self.raw("weight.config", path, content)
    }

    /// A tar layer `application/vnd.cncf.model.<kind>.v1.tar[+gzip|+zstd]` holding `files` (paths from
    /// the model root), annotated with `dir` as its file path.
    pub fn tar(mut self, kind: &str, dir: &str, files: &[(&str, &[u8])], compression: Compression) -> Self {
        self.layers.push(Layer {
            media_type: format!("application/vnd.cncf.model.{kind}.v1.{}", compression.suffix()),
            bytes: tar_archive(files, compression),
            annotations: [(FILEPATH_ANNOTATION.to_owned(), dir.to_owned())].into(),
            files: files.iter().map(|(p, c)| ((*p).to_owned(), c.to_vec())).collect(),
        });
        self
    }

    /// A layer of any media type and bytes (its files are not known to [`Self::files`]).
    pub fn layer(mut self, media_type: &str, bytes: &[u8], annotations: &[(&str, &str)]) -> Self {
        self.layers.push(Layer {
            media_type: media_type.to_owned(),
            bytes: bytes.to_vec(),
            annotations: annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            files: Vec::new(),
        });
        self
    }

    /// Add a license to `descriptor.licenses`.
    pub fn license(mut self, license: &str) -> Self {
        let list = self.descriptor.entry("licenses").or_insert_with(|| json!([]));
        if let Value::Array(a) = list {
            a.push(json!(license));
        }
        self
    }

    /// Set a `descriptor` field (`name`, `version`, `family`, `sourceURL`, `datasetsURL`, ...).
    pub fn descriptor_field(mut self, key: &str, value: Value) -> Self {
        self.descriptor.insert(key.to_owned(), value);
        self
    }

    /// Set a `config` field (`format`, `precision`, `quantization`, `paramSize`, `architecture`).
    pub fn config_field(mut self, key: &str, value: Value) -> Self {
        self.config.insert(key.to_owned(), value);
        self
    }

    /// `descriptor.name`.
    pub fn name(self, name: &str) -> Self {
        self.descriptor_field("name", json!(name))
    }

    /// `descriptor.sourceURL`.
    pub fn source_url(self, url: &str) -> Self {
        self.descriptor_field("sourceURL", json!(url))
    }

    /// `config.format` (e.g. `safetensors`, `pickle`).
    pub fn format(self, format: &str) -> Self {
        self.config_field("format", json!(format))
    }

    /// A manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Publish these bytes as the config instead of the built one (e.g. malformed JSON).
    pub fn raw_config(mut self, bytes: &[u8]) -> Self {
        self.config_override = Some(bytes.to_vec());
        self
    }

    /// Leave out the manifest `artifactType` (the config media type alone says ModelPack), or set another.
    pub fn artifact_type(mut self, artifact_type: Option<&str>) -> Self {
        self.artifact_type = Some(artifact_type.map(str::to_owned));
        self
    }

    /// The config document as it will be published.
    pub fn config_json(&self) -> Vec<u8> {
        if let Some(raw) = &self.config_override {
            return raw.clone();
        }
        let diff_ids: Vec<String> = self.layers.iter().map(|l| diff_id(l).to_string()).collect();
        let doc = json!({
            "descriptor": self.descriptor,
            "modelfs": {"type": "layers", "diffIds": diff_ids},
            "config": self.config,
        });
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// The model's files as the layers hold them (path → content).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.layers.iter().flat_map(|l| l.files.clone()).collect()
    }

    /// Push to `reference` (`host/repo:tag`); returns it pinned to the manifest digest.
    pub async fn push(&self, client: &RegistryClient, reference: &str) -> anyhow::Result<ArtifactRef> {
        let artifact_type = match &self.artifact_type {
            Some(t) => t.clone(),
            None => Some(MODELPACK_MANIFEST_ARTIFACT_TYPE.to_owned()),
        };
        push_manifest(
            client,
            reference,
            artifact_type.as_deref(),
            MODELPACK_CONFIG_MEDIA_TYPE,
            &self.config_json(),
            &self.layers,
            &self.annotations,
        )
        .await
    }
}

/// The uncompressed digest of a layer (the `diffIds` of the ModelPack `modelfs`).
fn diff_id(layer: &Layer) -> Digest {
    if layer.media_type.ends_with("+gzip") {
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(layer.bytes.as_slice());
        if std::io::Read::read_to_end(&mut d, &mut out).is_ok() {
            return Digest::sha256_of(&out);
        }
    } else if layer.media_type.ends_with("+zstd") {
        if let Ok(mut d) = ruzstd::decoding::StreamingDecoder::new(layer.bytes.as_slice()) {
            let mut out = Vec::new();
            if std::io::Read::read_to_end(&mut d, &mut out).is_ok() {
                return Digest::sha256_of(&out);
            }
        }
    }
    Digest::sha256_of(&layer.bytes)
}

/// A KitOps ModelKit: the Kitfile (as JSON) is the config; each section is a tar layer tied to its
/// Kitfile entry by digest, as `kit pack` writes it.
#[derive(Debug, Clone)]
pub struct ModelKitBuilder {
    package: Map<String, Value>,
    model: Option<Map<String, Value>>,
    sections: BTreeMap<&'static str, Vec<Map<String, Value>>>,
    layers: Vec<Layer>,
    annotations: BTreeMap<String, String>,
}

impl ModelKitBuilder {
    /// A ModelKit whose `package.name` is `name`.
    pub fn new(name: &str) -> Self {
        let mut package = Map::new();
        package.insert("name".into(), json!(name));
        Self {
            package,
            model: None,
            sections: BTreeMap::new(),
            layers: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Set a `package` field (`version`, `license`, `description`, `authors`).
    pub fn package_field(mut self, key: &str, value: Value) -> Self {
        self.package.insert(key.to_owned(), value);
        self
    }

    fn push_layer(&mut self, kind: &str, files: &[(&str, &[u8])], compression: Compression) -> Digest {
        let layer = Layer {
            media_type: format!("application/vnd.kitops.modelkit.{kind}.v1.{}", compression.suffix()),
            bytes: tar_archive(files, compression),
            annotations: BTreeMap::new(),
            files: files.iter().map(|(p, c)| ((*p).to_owned(), c.to_vec())).collect(),
        };
        let digest = Digest::sha256_of(&layer.bytes);
        self.layers.push(layer);
        digest
    }

    /// The `model` section: `path` and the files of its layer; `fields` are added to the entry
    /// (`format`, `framework`, `license`, ...).
    pub fn model(
        mut self,
        path: &str,
        files: &[(&str, &[u8])],
        compression: Compression,
        fields: Value,
    ) -> Self {
        let digest = self.push_layer("model", files, compression);
        let mut entry = entry(path, &digest, fields);
        if let Some(Value::Array(parts)) = self.model.as_mut().and_then(|m| m.remove("parts")) {
            entry.insert("parts".into(), Value::Array(parts));
        }
        self.model = Some(entry);
        self
    }

    /// A `model.parts` entry with its own layer.
    pub fn model_part(
        mut self,
        path: &str,
        files: &[(&str, &[u8])],
        compression: Compression,
        fields: Value,
    ) -> Self {
        let digest = self.push_layer("modelpart", files, compression);
        let part = Value::Object(entry(path, &digest, fields));
        let model = self.model.get_or_insert_with(Map::new);
        match model.get_mut("parts") {
            Some(Value::Array(parts)) => parts.push(part),
            _ => {
                model.insert("parts".into(), json!([part]));
            }
        }
        self
    }

    /// A `datasets`, `code` or `docs` entry with its own layer.
    pub fn section(
        mut self,
        section: &'static str,
        path: &str,
        files: &[(&str, &[u8])],
        compression: Compression,
        fields: Value,
    ) -> Self {
        let kind = match section {
            "datasets" => "dataset",
            "code" => "code",
            _ => "docs",
        };
        let digest = self.push_layer(kind, files, compression);
        self.sections.entry(section).or_default().push(entry(path, &digest, fields));
        self
    }

    /// A manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The Kitfile as JSON, as published in the config.
    pub fn kitfile(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("manifestVersion".into(), json!("1.0.0"));
        doc.insert("package".into(), Value::Object(self.package.clone()));
        if let Some(m) = &self.model {
            doc.insert("model".into(), Value::Object(m.clone()));
        }
        for (name, entries) in &self.sections {
            doc.insert((*name).into(), Value::Array(entries.iter().cloned().map(Value::Object).collect()));
        }
        Value::Object(doc)
    }

    /// The model's files (path → content).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.layers.iter().flat_map(|l| l.files.clone()).collect()
    }

    /// Push to `reference`; returns it pinned to the manifest digest.
    pub async fn push(&self, client: &RegistryClient, reference: &str) -> anyhow::Result<ArtifactRef> {
        let config = serde_json::to_vec(&self.kitfile())?;
        push_manifest(
            client,
            reference,
            None,
            MODELKIT_CONFIG_MEDIA_TYPE,
            &config,
            &self.layers,
            &self.annotations,
        )
        .await
    }
}

fn entry(path: &str, digest: &Digest, fields: Value) -> Map<String, Value> {
    let mut e = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    e.insert("path".into(), json!(path));
    e.insert("digest".into(), json!(digest.to_string()));
    e
}

/// The SHA-256 of each file.
pub fn file_digests(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Digest> {
    files.iter().map(|(p, c)| (p.clone(), Digest::sha256_of(c))).collect()
}

/// An OpenSSF model signature over `files` (path → SHA-256), as `model_signing sign key` writes it:
/// Sigstore bundle v0.3 with the public-key hint, no log entry, a DSSE envelope over an in-toto statement
/// whose resources list every file (sorted by path) and whose subject digest is the SHA-256 over the
/// concatenated resource digests.
pub fn model_signature_bundle(key: &SigningKey, files: &BTreeMap<String, Digest>) -> Vec<u8> {
    let mut root = Sha256::new();
    for d in files.values() {
        root.update(d.to_bytes());
    }
    let resources: Vec<Value> =
        files.iter().map(|(n, d)| json!({"name": n, "algorithm": "sha256", "digest": d.hex()})).collect();
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": "model", "digest": {"sha256": hex::encode(root.finalize())}}],
        "predicateType": MODEL_SIGNATURE_PREDICATE_V1,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
                "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"]},
            "resources": resources,
        },
    });
    let payload = serde_json::to_vec(&statement).unwrap_or_default();
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key);
    let hint = Digest::sha256_of(key.public_key().to_pem().as_bytes());
    serde_json::to_vec(&json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint.hex()}, "tlogEntries": []},
        "dsseEnvelope": envelope,
    }))
    .unwrap_or_default()
}

/// Attach `bundle` (bytes as they are) to the model `pinned` as a Sigstore bundle referrer
/// (artifactType and layer media type `application/vnd.dev.sigstore.bundle.v0.3+json`, empty config).
pub async fn attach_model_signature(
    client: &RegistryClient,
    pinned: &ArtifactRef,
    bundle: &[u8],
) -> anyhow::Result<Digest> {
    let subject = client.fetch_manifest(pinned).await?;
    let config = b"{}";
    let config_digest = client.push_blob(pinned, config).await?;
    let layer_digest = client.push_blob(pinned, bundle).await?;
    let descriptor = |media_type: &str, digest: Digest, size: usize| Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size: size as u64,
        artifact_type: None,
        annotations: BTreeMap::new(),
        platform: None,
    };
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(BUNDLE_ARTIFACT_TYPE.to_owned()),
        config: descriptor(OCI_EMPTY, config_digest, config.len()),
        layers: vec![descriptor(BUNDLE_ARTIFACT_TYPE, layer_digest, bundle.len())],
        subject: Some(descriptor(&subject.media_type, subject.digest, subject.bytes.len())),
        annotations: [
            ("dev.sigstore.bundle.content".to_owned(), "dsse-envelope".to_owned()),
            ("dev.sigstore.bundle.predicateType".to_owned(), MODEL_SIGNATURE_PREDICATE_V1.to_owned()),
        ]
        .into(),
    };
    let bytes = serde_json::to_vec(&manifest)?;
    Ok(client.push_referrer(pinned, &bytes, OCI_MANIFEST, BUNDLE_ARTIFACT_TYPE).await?)
}

/// Sign the model `pinned` with `key` over its files as vouch lists them, and attach the signature as a
/// referrer. Returns the bundle.
pub async fn sign_model(
    client: &RegistryClient,
    pinned: &ArtifactRef,
    key: &SigningKey,
) -> anyhow::Result<Vec<u8>> {
    let facts = vouch_attest::model::fetch_model(client, pinned)
        .await?
        .with_context(|| format!("{pinned} is not a model"))?;
    let files = vouch_attest::model::files::model_files(client, pinned, &facts).await?;
    let bundle = model_signature_bundle(key, &files.files);
    attach_model_signature(client, pinned, &bundle).await?;
    Ok(bundle)
}
