//! AI model artifacts against a real `docker-registry` on loopback: ModelPack and ModelKit artifacts
//! built per the specs are recognised with exact facts, other artifacts are not models, malformed configs
//! are clear errors, and OpenSSF model signatures (made by vouch's builders and, independently, by PyPI
//! `model-signing`) verify — and fail, naming the check, on a wrong key, a changed layer, an added file
//! or no signature at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vouch_attest::cache::CacheConfig;
use vouch_attest::model::files::model_files;
use vouch_attest::model::{LayerArchive, ModelFormat, ModelLayerKind};
use vouch_attest::registry::{RegistryClient, RegistryConfig, OCI_MANIFEST};
use vouch_attest::sigstore_verify::{Authority, CertificateIdentity};
use vouch_attest::verify::{
    ArtifactVerifier, Requirement, Signer, Source, Verdict, VerifierConfig, VerifyOptions,
};
use vouch_attest::{ArtifactRef, Digest, PublicKey, SigningKey};
use vouch_tests::fake_sigstore::FakeSigstore;
use vouch_tests::fixture::{fake_sigstore_verifier, rejection, testdata};
use vouch_tests::models::{
    attach_model_signature, file_digests, model_signature_bundle, sign_model, Compression, ModelKitBuilder,
    ModelPackBuilder,
};
use vouch_webhooks::dev_registry::DevRegistry;

struct Env {
    registry: DevRegistry,
    verifier: ArtifactVerifier,
}

impl Env {
    async fn start() -> Self {
        let registry = DevRegistry::start().await.unwrap();
        let sigstore = FakeSigstore::new().unwrap();
        let verifier = fake_sigstore_verifier(&registry.host(), &sigstore);
        Self { registry, verifier }
    }

    fn client(&self) -> &RegistryClient {
        self.verifier.registry()
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host())
    }

    async fn verify_model_signature(&self, r: &ArtifactRef, key: &PublicKey) -> Verdict {
        self.verifier.verify(r, &Authority::Key(key.clone()), &Requirement::ModelSignature).await.unwrap()
    }
}

/// A ModelPack with raw weight and weight-config layers and gzip and zstd tar layers.
fn modelpack() -> ModelPackBuilder {
    ModelPackBuilder::new()
        .weight_raw("model.safetensors", &[7u8; 3000])
        .weight_config_raw("config.json", br#"{"hidden_size": 8}"#)
        .tar(
            "doc",
            "docs",
            &[("docs/README.md", b"# model"), ("docs/LICENSE", b"Apache-2.0")],
            Compression::Gzip,
        )
        .tar("code", "src", &[("src/infer.py", b"print(1)")], Compression::Zstd)
        .name("tiny-llama")
        .descriptor_field("version", json!("1.2.0"))
        .descriptor_field("family", json!("llama3"))
        .descriptor_field("datasetsURL", json!(["https://data.example/ds"]))
        .license("Apache-2.0")
        .license("MIT")
        .source_url("https://github.com/example/tiny-llama")
        .format("safetensors")
        .config_field("precision", json!("bf16"))
        .config_field("quantization", json!("awq"))
        .config_field("paramSize", json!("8b"))
        .config_field("architecture", json!("transformer"))
        .annotation("org.opencontainers.image.source", "https://github.com/example/tiny-llama")
}

#[tokio::test]
async fn modelpack_with_raw_and_archive_layers_is_recognised_with_exact_facts() {
    let env = Env::start().await;
    let builder = modelpack();
    let pinned = builder.push(env.client(), &env.reference("models/tiny:v1")).await.unwrap();
    let facts = env.verifier.model(&pinned).await.unwrap().expect("a ModelPack is a model");
    assert_eq!(facts.format, ModelFormat::ModelPack);
    let c = &facts.config;
    assert_eq!(c.name.as_deref(), Some("tiny-llama"));
    assert_eq!(c.version.as_deref(), Some("1.2.0"));
    assert_eq!(c.family.as_deref(), Some("llama3"));
    assert_eq!(c.licenses, vec!["Apache-2.0", "MIT"]);
    assert_eq!(c.source_url.as_deref(), Some("https://github.com/example/tiny-llama"));
    assert_eq!(c.datasets_url, vec!["https://data.example/ds"]);
    assert_eq!(c.format.as_deref(), Some("safetensors"));
    assert_eq!(c.precision.as_deref(), Some("bf16"));
    assert_eq!(c.quantization.as_deref(), Some("awq"));
    assert_eq!(c.param_size.as_deref(), Some("8b"));
    assert_eq!(c.architecture.as_deref(), Some("transformer"));
    assert_eq!(
        facts.manifest_annotations.get("org.opencontainers.image.source").map(String::as_str),
        Some("https://github.com/example/tiny-llama")
    );
    assert_eq!(
        facts.config_raw,
        serde_json::from_slice::<serde_json::Value>(&builder.config_json()).unwrap()
    );
    let layers: Vec<(ModelLayerKind, LayerArchive, Option<&str>)> =
        facts.layers.iter().map(|l| (l.kind, l.archive, l.path.as_deref())).collect();
    assert_eq!(
        layers,
        vec![
            (ModelLayerKind::Weight, LayerArchive::Raw, Some("model.safetensors")),
            (ModelLayerKind::WeightConfig, LayerArchive::Raw, Some("config.json")),
            (ModelLayerKind::Doc, LayerArchive::TarGzip, Some("docs")),
            (ModelLayerKind::Code, LayerArchive::TarZstd, Some("src")),
        ]
    );
    assert_eq!(facts.layers[0].digest, Digest::sha256_of(&[7u8; 3000]));
    assert_eq!(facts.layers[0].size, 3000);
    assert_eq!(facts.layers[0].media_type, "application/vnd.cncf.model.weight.v1.raw");

    // The files vouch lists (raw layers by digest, archives unpacked) are exactly the model's files.
    let files = model_files(env.client(), &pinned, &facts).await.unwrap();
    assert_eq!(files.files, file_digests(&builder.files()));
    assert_eq!(files.files.len(), 5);

    // Facts are cached by digest: asking again fetches nothing.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = env.registry.count_requests("GET", "/v2/");
    let again = env.verifier.model(&pinned).await.unwrap().unwrap();
    assert_eq!(again.config.name.as_deref(), Some("tiny-llama"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(env.registry.count_requests("GET", "/v2/"), before, "{}", env.registry.access_log());

    // Without artifactType the config media type alone makes it a ModelPack.
    let untyped =
        builder.clone().artifact_type(None).push(env.client(), &env.reference("models/tiny:untyped")).await;
    let facts =
        env.verifier.model(&untyped.unwrap()).await.unwrap().expect("config media type says ModelPack");
    assert_eq!(facts.format, ModelFormat::ModelPack);
}

#[tokio::test]
async fn modelkit_is_recognised_with_exact_facts() {
    let env = Env::start().await;
    let builder = ModelKitBuilder::new("sentiment")
        .package_field("version", json!("2.0.1"))
        .package_field("license", json!("Apache-2.0"))
        .model(
            "model.gguf",
            &[("model.gguf", b"GGUF weights")],
            Compression::Gzip,
            json!({"name": "sentiment", "format": "gguf", "framework": "llama.cpp", "license": "MIT"}),
        )
        .model_part("lora", &[("lora/adapter.bin", b"adapter")], Compression::None, json!({"type": "lora"}))
        .section(
            "datasets",
            "data",
            &[("data/train.csv", b"a,b\n1,2\n")],
            Compression::Gzip,
            json!({"license": "CC-BY-4.0"}),
        )
        .section("docs", "README.md", &[("README.md", b"# sentiment")], Compression::Gzip, json!({}))
        .section("code", "src", &[("src/train.py", b"pass")], Compression::Zstd, json!({}));
    let pinned = builder.push(env.client(), &env.reference("kits/sentiment:v2")).await.unwrap();
    let facts = env.verifier.model(&pinned).await.unwrap().expect("a ModelKit is a model");
    assert_eq!(facts.format, ModelFormat::ModelKit);
    assert_eq!(facts.config.name.as_deref(), Some("sentiment"));
    assert_eq!(facts.config.version.as_deref(), Some("2.0.1"));
    assert_eq!(facts.config.licenses, vec!["Apache-2.0", "CC-BY-4.0", "MIT"]);
    assert_eq!(facts.config.format.as_deref(), Some("gguf"));
    assert_eq!(facts.config.framework.as_deref(), Some("llama.cpp"));
    assert_eq!(facts.config_raw, builder.kitfile());
    let layers: Vec<(ModelLayerKind, LayerArchive, Option<&str>)> =
        facts.layers.iter().map(|l| (l.kind, l.archive, l.path.as_deref())).collect();
    assert_eq!(
        layers,
        vec![
            (ModelLayerKind::Weight, LayerArchive::TarGzip, Some("model.gguf")),
            (ModelLayerKind::ModelPart, LayerArchive::Tar, Some("lora")),
            (ModelLayerKind::Dataset, LayerArchive::TarGzip, Some("data")),
            (ModelLayerKind::Doc, LayerArchive::TarGzip, Some("README.md")),
            (ModelLayerKind::Code, LayerArchive::TarZstd, Some("src")),
        ]
    );
    let files = model_files(env.client(), &pinned, &facts).await.unwrap();
    assert_eq!(files.files, file_digests(&builder.files()));

    // Signed with vouch's sign_model, verified.
    let key = SigningKey::generate();
    sign_model(env.client(), &pinned, &key).await.unwrap();
    let v = env.verify_model_signature(&pinned, &key.public_key()).await;
    let facts = v.outcome.expect("signed ModelKit verifies");
    assert_eq!(facts.model_signature.unwrap().files, 5);
}

#[tokio::test]
async fn images_are_not_models_and_malformed_configs_are_clear_errors() {
    let env = Env::start().await;
    let r: ArtifactRef = env.reference("app/web:v1").parse().unwrap();
    let layer = b"layer".to_vec();
    let layer_digest = env.client().push_blob(&r, &layer).await.unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]}}))
    .unwrap();
    let config_digest = env.client().push_blob(&r, &config).await.unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}]
    }))
    .unwrap();
    let image = r.with_digest(env.client().push_manifest(&r, &manifest, OCI_MANIFEST).await.unwrap());
    assert!(env.verifier.model(&image).await.unwrap().is_none(), "a container image is not a model");
    let key = SigningKey::generate();
    let r = rejection(&env.verify_model_signature(&image, &key.public_key()).await);
    assert!(r.contains("not a model artifact"), "{r}");

    let broken = ModelPackBuilder::new().weight_raw("w.bin", b"w").raw_config(b"{not json");
    let pinned = broken.push(env.client(), &env.reference("models/broken:v1")).await.unwrap();
    let err = env.verifier.model(&pinned).await.unwrap_err().to_string();
    assert!(err.contains("malformed ModelPack config of") && err.contains("not JSON"), "{err}");
    let r = rejection(&env.verify_model_signature(&pinned, &key.public_key()).await);
    assert!(r.contains("malformed ModelPack config"), "{r}");

    let mistyped =
        ModelPackBuilder::new().weight_raw("w.bin", b"w").descriptor_field("licenses", json!("MIT"));
    let pinned = mistyped.push(env.client(), &env.reference("models/broken:v2")).await.unwrap();
    let err = env.verifier.model(&pinned).await.unwrap_err().to_string();
    assert!(err.contains("descriptor.licenses must be an array of strings"), "{err}");
}

#[tokio::test]
async fn model_signature_verifies_and_another_key_or_a_keyless_authority_is_refused() {
    let env = Env::start().await;
    let key = SigningKey::generate();
    let builder = modelpack();
    let bundle = model_signature_bundle(&key, &file_digests(&builder.files()));

    // Signed: verifies, with the signer and where the signature was found.
    let signed = builder.push(env.client(), &env.reference("models/signed:v1")).await.unwrap();
    attach_model_signature(env.client(), &signed, &bundle).await.unwrap();
    let v = env.verify_model_signature(&signed, &key.public_key()).await;
    let facts = v.outcome.expect("signed model verifies");
    let sig = facts.model_signature.expect("model signature facts");
    assert_eq!(sig.files, 5);
    assert_eq!(sig.signer, Signer::Key { fingerprint: key.public_key().fingerprint() });
    assert!(matches!(sig.source, Source::Referrer { .. }), "{:?}", sig.source);
    assert_eq!(facts.signatures.len(), 1, "the model signature is also a verified signature");
    let json = serde_json::to_value(env.verify_model_signature(&signed, &key.public_key()).await).unwrap();
    assert_eq!(json["outcome"]["Ok"]["modelSignature"]["files"], 5, "{json}");

    // Another key.
    let other = SigningKey::generate();
    let r = rejection(&env.verify_model_signature(&signed, &other.public_key()).await);
    assert!(r.contains("DSSE envelope signature does not verify"), "{r}");

    // A keyless authority does not accept a key signature.
    let keyless = Authority::Keyless {
        identities: vec![CertificateIdentity::exact("builder@example.com", "https://issuer.example")],
    };
    let v = env.verifier.verify(&signed, &keyless, &Requirement::ModelSignature).await.unwrap();
    let r = rejection(&v);
    assert!(r.contains("signed with a key, but keyless"), "{r}");
}

#[tokio::test]
async fn model_signature_fails_on_a_changed_layer_an_added_file_and_no_signature() {
    let env = Env::start().await;
    let key = SigningKey::generate();
    let bundle = model_signature_bundle(&key, &file_digests(&modelpack().files()));

    // A layer changed after signing: same paths, another weight.
    let tampered = ModelPackBuilder::new()
        .weight_raw("model.safetensors", &[8u8; 3000])
        .weight_config_raw("config.json", br#"{"hidden_size": 8}"#)
        .tar(
            "doc",
            "docs",
            &[("docs/README.md", b"# model"), ("docs/LICENSE", b"Apache-2.0")],
            Compression::Gzip,
        )
        .tar("code", "src", &[("src/infer.py", b"print(1)")], Compression::Zstd);
    let pinned = tampered.push(env.client(), &env.reference("models/signed:tampered")).await.unwrap();
    attach_model_signature(env.client(), &pinned, &bundle).await.unwrap();
    let r = rejection(&env.verify_model_signature(&pinned, &key.public_key()).await);
    assert!(r.contains("model file \"model.safetensors\" was modified"), "{r}");

    // A changed file inside an archive layer.
    let tampered = ModelPackBuilder::new()
        .weight_raw("model.safetensors", &[7u8; 3000])
        .weight_config_raw("config.json", br#"{"hidden_size": 8}"#)
        .tar(
            "doc",
            "docs",
            &[("docs/README.md", b"# MODEL"), ("docs/LICENSE", b"Apache-2.0")],
            Compression::Gzip,
        )
        .tar("code", "src", &[("src/infer.py", b"print(1)")], Compression::Zstd);
    let pinned = tampered.push(env.client(), &env.reference("models/signed:tampered-tar")).await.unwrap();
    attach_model_signature(env.client(), &pinned, &bundle).await.unwrap();
    let r = rejection(&env.verify_model_signature(&pinned, &key.public_key()).await);
    assert!(r.contains("model file \"docs/README.md\" was modified"), "{r}");

    // A file added.
    let added = modelpack().raw("weight", "backdoor.bin", b"x");
    let pinned = added.push(env.client(), &env.reference("models/signed:added")).await.unwrap();
    attach_model_signature(env.client(), &pinned, &bundle).await.unwrap();
    let r = rejection(&env.verify_model_signature(&pinned, &key.public_key()).await);
    assert!(r.contains("model file \"backdoor.bin\" is not covered by the signature"), "{r}");

    // Unsigned.
    let unsigned =
        modelpack().name("unsigned").push(env.client(), &env.reference("models/unsigned:v1")).await;
    let r = rejection(&env.verify_model_signature(&unsigned.unwrap(), &key.public_key()).await);
    assert!(
        r.contains("nothing found") && r.contains("Sigstore bundle referrers") && r.contains("model.sig"),
        "{r}"
    );
}

#[tokio::test]
async fn model_sig_inside_the_model_is_found() {
    let env = Env::start().await;
    let key = SigningKey::generate();
    let builder = modelpack();
    let bundle = model_signature_bundle(&key, &file_digests(&builder.files()));
    let with_sig = builder.weight_config_raw("model.sig", &bundle);
    let pinned = with_sig.push(env.client(), &env.reference("models/inline:v1")).await.unwrap();
    let v = env.verify_model_signature(&pinned, &key.public_key()).await;
    let sig = v.outcome.expect("model.sig verifies").model_signature.unwrap();
    assert_eq!(sig.source, Source::ModelFile { path: "model.sig".into() });
    assert_eq!(sig.files, 5, "model.sig itself is not a model file");
}

#[tokio::test]
async fn model_signing_testdata_pushed_as_modelpack_verifies_with_its_key() {
    let env = Env::start().await;
    let dir = testdata().join("model-signing");
    let bundle = std::fs::read(dir.join("model.sig")).unwrap();
    let key = PublicKey::from_pem(&std::fs::read_to_string(dir.join("ms-key.pub")).unwrap()).unwrap();
    let config = std::fs::read(dir.join("model/config.json")).unwrap();
    let weights = std::fs::read(dir.join("model/model.safetensors")).unwrap();

    let builder = ModelPackBuilder::new()
        .weight_raw("model.safetensors", &weights)
        .weight_config_raw("config.json", &config)
        .format("safetensors");
    let pinned = builder.push(env.client(), &env.reference("models/ms:v1")).await.unwrap();
    attach_model_signature(env.client(), &pinned, &bundle).await.unwrap();
    let v = env.verify_model_signature(&pinned, &key).await;
    let sig = v.outcome.expect("model-signing's signature verifies").model_signature.unwrap();
    assert_eq!(sig.files, 2);
    assert_eq!(sig.signer, Signer::Key { fingerprint: key.fingerprint() });

    // One byte of the weights changed: the same signature no longer verifies.
    let mut changed = weights.clone();
    changed[0] ^= 1;
    let tampered = ModelPackBuilder::new()
        .weight_raw("model.safetensors", &changed)
        .weight_config_raw("config.json", &config);
    let pinned = tampered.push(env.client(), &env.reference("models/ms:tampered")).await.unwrap();
    attach_model_signature(env.client(), &pinned, &bundle).await.unwrap();
    let r = rejection(&env.verify_model_signature(&pinned, &key).await);
    assert!(r.contains("model file \"model.safetensors\" was modified"), "{r}");

    // The same files in a tar+gzip layer (paths from the archive) verify too.
    let archived = ModelPackBuilder::new().tar(
        "weight",
        ".",
        &[("model.safetensors", &weights), ("config.json", &config)],
        Compression::Gzip,
    );
    let pinned = archived.push(env.client(), &env.reference("models/ms:tar")).await.unwrap();
    attach_model_signature(env.client(), &pinned, &bundle).await.unwrap();
    assert!(env.verify_model_signature(&pinned, &key).await.is_verified());
}

#[tokio::test]
async fn archive_layers_beyond_the_fetch_limit_are_a_clear_rejection() {
    let env = Env::start().await;
    let key = SigningKey::generate();
    let big: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let builder = ModelPackBuilder::new().weight_raw("w.bin", b"w").tar(
        "dataset",
        "data",
        &[("data/big.bin", &big)],
        Compression::None,
    );
    let pinned = builder.push(env.client(), &env.reference("models/big:v1")).await.unwrap();
    attach_model_signature(
        env.client(),
        &pinned,
        &model_signature_bundle(&key, &file_digests(&builder.files())),
    )
    .await
    .unwrap();
    assert!(env.verify_model_signature(&pinned, &key.public_key()).await.is_verified());

    // A verifier that may fetch at most 16 KiB per blob cannot list the files: rejected, saying why.
    let sigstore = FakeSigstore::new().unwrap();
    let small = ArtifactVerifier::new(VerifierConfig {
        registry: RegistryConfig {
            insecure_registries: vec![env.registry.host()],
            max_blob_bytes: 16 * 1024,
            ..RegistryConfig::default()
        },
        trust_root: sigstore.trust_root().unwrap(),
        cache: CacheConfig::default(),
        options: VerifyOptions {
            require_tlog_for_keys: false,
            require_sct: false,
            ..VerifyOptions::default()
        },
    })
    .unwrap();
    let v =
        small.verify(&pinned, &Authority::Key(key.public_key()), &Requirement::ModelSignature).await.unwrap();
    let r = rejection(&v);
    assert!(r.contains("is too large to check") && r.contains("larger than the 16384 bytes"), "{r}");
}
