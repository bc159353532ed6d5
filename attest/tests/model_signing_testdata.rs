//! The OpenSSF model signature made by PyPI model-signing 1.1.1 verifies, and every kind of tampering with
//! the model, the key or the signature fails with its own reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vouch_attest::model::signing::{self, ModelSignatureError, VerifiedModelSignature};
use vouch_attest::sigstore_verify::{SignerFacts, VerificationPolicy, Verifier, VerifyError};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::{Digest, PublicKey, SigningKey};

/// The shared model-signing material, or None (skip) when absent outside CI.
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: missing material under CI must fail
fn testdata() -> Option<PathBuf> {
    vouch_attest::testdata::locate().unwrap().map(|d| d.join("model-signing"))
}

struct Material {
    model: PathBuf,
    bundle: Vec<u8>,
    key: PublicKey,
}

fn material() -> Option<Material> {
    let dir = testdata()?;
    Some(Material {
        model: dir.join("model"),
        bundle: std::fs::read(dir.join("model.sig")).unwrap(),
        key: PublicKey::from_pem(&std::fs::read_to_string(dir.join("ms-key.pub")).unwrap()).unwrap(),
    })
}

/// `model_signing verify key`: the key decides, no transparency log (model-signing logs no key signatures).
fn verify_model_directory(
    model: &Path,
    bundle: &[u8],
    key: &PublicKey,
) -> Result<VerifiedModelSignature, ModelSignatureError> {
    let verifier = Verifier::new(TrustRoot::public_good().unwrap());
    let policy = VerificationPolicy::key(key.clone()).without_tlog();
    signing::verify_model_directory(model, bundle, &verifier, &policy)
}

/// The same over files known by their SHA-256 (as an OCI model's layers are).
fn verify_model_manifest(
    bundle: &[u8],
    key: &PublicKey,
    files: &BTreeMap<String, Digest>,
) -> Result<VerifiedModelSignature, ModelSignatureError> {
    let verifier = Verifier::new(TrustRoot::public_good().unwrap());
    let policy = VerificationPolicy::key(key.clone()).without_tlog();
    signing::verify_model_bundle(bundle, files, &verifier, &policy)
}

/// A writable copy of the model (the shared files are read-only).
fn copy_model(from: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
    }
    tmp
}

#[test]
fn signature_from_model_signing_verifies() {
    let Some(m) = material() else { return };
    let facts = verify_model_directory(&m.model, &m.bundle, &m.key).unwrap();
    assert_eq!(facts.files, 2);
    assert_eq!(facts.verified.signer, SignerFacts::Key { fingerprint: m.key.fingerprint() });
    assert_eq!(
        facts.subject_digest.to_string(),
        "sha256:d21c18ff8c0b8437d8c5390b89e360fd9f1e4259038a60eafad26f13060c5615"
    );
    // A copy elsewhere verifies too: paths are relative to the model root. Git metadata is ignored.
    let copy = copy_model(&m.model);
    std::fs::create_dir(copy.path().join(".git")).unwrap();
    std::fs::write(copy.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    assert_eq!(verify_model_directory(copy.path(), &m.bundle, &m.key).unwrap(), facts);
}

#[test]
fn changed_byte_fails_naming_the_file() {
    let Some(m) = material() else { return };
    let copy = copy_model(&m.model);
    let path = copy.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = verify_model_directory(copy.path(), &m.bundle, &m.key).unwrap_err();
    assert!(
        matches!(&err, ModelSignatureError::FileDigestMismatch { name, .. } if name == "model.safetensors"),
        "{err}"
    );
}

#[test]
fn added_file_fails_naming_the_file() {
    let Some(m) = material() else { return };
    let copy = copy_model(&m.model);
    std::fs::create_dir(copy.path().join("extra")).unwrap();
    std::fs::write(copy.path().join("extra/tokenizer.json"), "{}").unwrap();
    let err = verify_model_directory(copy.path(), &m.bundle, &m.key).unwrap_err();
    assert!(
        matches!(&err, ModelSignatureError::UnexpectedFile { name, count: 1 } if name == "extra/tokenizer.json"),
        "{err}"
    );
}

#[test]
fn removed_file_fails_naming_the_file() {
    let Some(m) = material() else { return };
    let copy = copy_model(&m.model);
    std::fs::remove_file(copy.path().join("config.json")).unwrap();
    let err = verify_model_directory(copy.path(), &m.bundle, &m.key).unwrap_err();
    assert!(
        matches!(&err, ModelSignatureError::MissingFile { name, count: 1 } if name == "config.json"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn symlink_in_model_is_refused() {
    let Some(m) = material() else { return };
    let copy = copy_model(&m.model);
    std::os::unix::fs::symlink("/etc/hostname", copy.path().join("link")).unwrap();
    let err = verify_model_directory(copy.path(), &m.bundle, &m.key).unwrap_err();
    assert!(matches!(&err, ModelSignatureError::Symlink { path } if path == "link"), "{err}");
}

#[test]
fn wrong_key_fails() {
    let Some(m) = material() else { return };
    let other = SigningKey::generate().public_key();
    let err = verify_model_directory(&m.model, &m.bundle, &other).unwrap_err();
    assert!(matches!(err, ModelSignatureError::Sigstore(VerifyError::Signature(_))), "{err}");

    // The key hint is not trusted either way: without it, the signature still rejects the other key.
    let mut bundle: serde_json::Value = serde_json::from_slice(&m.bundle).unwrap();
    bundle["verificationMaterial"]["publicKey"]["hint"] = "".into();
    let err = verify_model_directory(&m.model, &serde_json::to_vec(&bundle).unwrap(), &other).unwrap_err();
    assert!(matches!(err, ModelSignatureError::Sigstore(VerifyError::Signature(_))), "{err}");
}

#[test]
fn flipped_signature_bit_fails() {
    use base64::Engine;
    let Some(m) = material() else { return };
    let mut bundle: serde_json::Value = serde_json::from_slice(&m.bundle).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut sig = b64.decode(bundle["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = b64.encode(sig).into();
    let err = verify_model_directory(&m.model, &serde_json::to_vec(&bundle).unwrap(), &m.key).unwrap_err();
    assert!(matches!(err, ModelSignatureError::Sigstore(VerifyError::Signature(_))), "{err}");
}

#[test]
fn manifest_form_verifies_and_detects_changes() {
    let Some(m) = material() else { return };
    let mut files = BTreeMap::new();
    for name in ["config.json", "model.safetensors"] {
        files.insert(name.to_owned(), Digest::sha256_of(&std::fs::read(m.model.join(name)).unwrap()));
    }
    let facts = verify_model_manifest(&m.bundle, &m.key, &files).unwrap();
    assert_eq!(facts.files, 2);

    let mut changed = files.clone();
    changed.insert("config.json".into(), Digest::sha256_of(b"{}"));
    let err = verify_model_manifest(&m.bundle, &m.key, &changed).unwrap_err();
    assert!(
        matches!(&err, ModelSignatureError::FileDigestMismatch { name, .. } if name == "config.json"),
        "{err}"
    );

    let mut extra = files.clone();
    extra.insert("README.md".into(), Digest::sha256_of(b"hi"));
    assert!(matches!(
        verify_model_manifest(&m.bundle, &m.key, &extra),
        Err(ModelSignatureError::UnexpectedFile { .. })
    ));

    let mut fewer = files;
    fewer.remove("model.safetensors");
    assert!(matches!(
        verify_model_manifest(&m.bundle, &m.key, &fewer),
        Err(ModelSignatureError::MissingFile { .. })
    ));
}

/// A signature made here, manually, with PyPI model-signing 1.1.1's Python API using shard serialization
/// (`hashing.Config().use_shard_serialization(shard_size=1024)`, P-256 key, signature written inside the
/// model as `model.sig` and not listed in its ignore_paths). The model is regenerated byte for byte below.
const SHARDED_BUNDLE: &str = concat!(
    r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"h"#,
    r#"int":"59fc5d407b594f189fa1e06397f1e520f636d9e1d552809e9fa6a2a19e388a2f"},"tlogEntries":[]},"dsseEnve"#,
    r#"lope":{"payload":"ewogICJfdHlwZSI6ICJodHRwczovL2luLXRvdG8uaW8vU3RhdGVtZW50L3YxIiwKICAic3ViamVjdCI6IF"#,
    r#"sKICAgIHsKICAgICAgIm5hbWUiOiAibW9kZWwiLAogICAgICAiZGlnZXN0IjogewogICAgICAgICJzaGEyNTYiOiAiOGJmMzMyZT"#,
    r#"FlNzk1YmU2YWJjMmZlNmZkYjMzZjUyMmMzZDJkYzJmYmUxYjIzYjI3NzNiYjZlYzYwODE1Mjk2ZiIKICAgICAgfQogICAgfQogIF"#,
    r#"0sCiAgInByZWRpY2F0ZVR5cGUiOiAiaHR0cHM6Ly9tb2RlbF9zaWduaW5nL3NpZ25hdHVyZS92MS4wIiwKICAicHJlZGljYXRlIj"#,
    r#"ogewogICAgInNlcmlhbGl6YXRpb24iOiB7CiAgICAgICJtZXRob2QiOiAic2hhcmRzIiwKICAgICAgImFsbG93X3N5bWxpbmtzIj"#,
    r#"ogZmFsc2UsCiAgICAgICJzaGFyZF9zaXplIjogMTAyNC4wLAogICAgICAiaGFzaF90eXBlIjogInNoYTI1NiIsCiAgICAgICJpZ2"#,
    r#"5vcmVfcGF0aHMiOiBbCiAgICAgICAgIi5naXQiLAogICAgICAgICIuZ2l0aHViIiwKICAgICAgICAiLmdpdGlnbm9yZSIsCiAgIC"#,
    r#"AgICAgIi5naXRhdHRyaWJ1dGVzIgogICAgICBdCiAgICB9LAogICAgInJlc291cmNlcyI6IFsKICAgICAgewogICAgICAgICJuYW"#,
    r#"1lIjogImNvbmZpZy5qc29uOjA6MTciLAogICAgICAgICJhbGdvcml0aG0iOiAic2hhMjU2LXNoYXJkZWQtMTAyNCIsCiAgICAgIC"#,
    r#"AgImRpZ2VzdCI6ICJhYThhNmUwNWQ0ZjM3MTA0NWRmZDUwNGMxNThmZDlkMWFmZTUwNjNlMTAwZWJjOWE5NjM0NjdiYTM5ZTAwYT"#,
    r#"JjIgogICAgICB9LAogICAgICB7CiAgICAgICAgIm5hbWUiOiAid2VpZ2h0cy9wYXJ0LTAuYmluOjA6MTAyNCIsCiAgICAgICAgIm"#,
    r#"FsZ29yaXRobSI6ICJzaGEyNTYtc2hhcmRlZC0xMDI0IiwKICAgICAgICAiZGlnZXN0IjogIjJiY2UxYmE2Mjg3MjA2NjRiZTRiOW"#,
    r#"ZkZDc3YWFlMDY3OGU1ZjBmM2YwMmZjNmZmNjQxZWM4NzkwOTRmNmE0MDQiCiAgICAgIH0sCiAgICAgIHsKICAgICAgICAibmFtZS"#,
    r#"I6ICJ3ZWlnaHRzL3BhcnQtMC5iaW46MTAyNDoyMDQ4IiwKICAgICAgICAiYWxnb3JpdGhtIjogInNoYTI1Ni1zaGFyZGVkLTEwMj"#,
    r#"QiLAogICAgICAgICJkaWdlc3QiOiAiNTBkZjU4YWU3MGZlNDBmM2JkMDIzNGUxYWE4NmY5NWRmYWJhMWUxMThkNGRiNWZkNGI2OD"#,
    r#"JjYTJiNjEwMDRkNSIKICAgICAgfSwKICAgICAgewogICAgICAgICJuYW1lIjogIndlaWdodHMvcGFydC0wLmJpbjoyMDQ4OjI1MD"#,
    r#"AiLAogICAgICAgICJhbGdvcml0aG0iOiAic2hhMjU2LXNoYXJkZWQtMTAyNCIsCiAgICAgICAgImRpZ2VzdCI6ICI3MmY4NGExNT"#,
    r#"hlNzg5NDMxODlmM2FlY2EyYzFhNWMzYjAzY2ZjNTI4ODdmMzkwMzVjNWZmMGZkN2Q5ZTMwZTA4IgogICAgICB9CiAgICBdCiAgfQ"#,
    r#"p9","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEUCIANbEx95iX474hfzCe5JE86NC"#,
    r#"xYrIcEqXyAmjakMHFVxAiEA7PmRZzdastXcPlMR2kKNRClMPxDnP/JB4RbGQwrIm18=","keyid":""}]}}"#
);
const SHARDED_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbzbFAm4Mrdkpa7ggYkaYoEVtY1q2\nrKUeow+YzG3DNxbSm4ru4Ia548HeSX2K43N/Ua35yDhx/2noMYXunVa1WQ==\n-----END PUBLIC KEY-----\n";

fn sharded_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("weights")).unwrap();
    let weights: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("weights/part-0.bin"), weights).unwrap();
    std::fs::write(dir.path().join("config.json"), "{\"arch\": \"tiny\"}\n").unwrap();
    // model-signing records no shards for empty files.
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    std::fs::write(dir.path().join("model.sig"), SHARDED_BUNDLE).unwrap();
    dir
}

#[test]
fn shard_signature_from_model_signing_verifies_and_detects_changes() {
    let key = PublicKey::from_pem(SHARDED_KEY).unwrap();
    let model = sharded_model();
    let facts = verify_model_directory(model.path(), SHARDED_BUNDLE.as_bytes(), &key).unwrap();
    assert_eq!(facts.files, 2);
    assert_eq!(
        facts.subject_digest.to_string(),
        "sha256:8bf332e1e795be6abc2fe6fdb33f522c3d2dc2fbe1b23b2773bb6ec60815296f"
    );

    let weights = model.path().join("weights/part-0.bin");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[1500] ^= 1;
    std::fs::write(&weights, &bytes).unwrap();
    let err = verify_model_directory(model.path(), SHARDED_BUNDLE.as_bytes(), &key).unwrap_err();
    assert!(
        matches!(&err, ModelSignatureError::FileDigestMismatch { name, .. } if name == "weights/part-0.bin:1024:2048"),
        "{err}"
    );

    // A file the size of the signature but with other content is not mistaken for the signature.
    let model = sharded_model();
    let mut fake = SHARDED_BUNDLE.as_bytes().to_vec();
    fake[0] = b' ';
    std::fs::write(model.path().join("notes.sig"), fake).unwrap();
    let err = verify_model_directory(model.path(), SHARDED_BUNDLE.as_bytes(), &key).unwrap_err();
    assert!(matches!(&err, ModelSignatureError::UnexpectedFile { name, .. } if name == "notes.sig"), "{err}");
}
