//! The OpenSSF model signature made by PyPI model-signing 1.1.1 verifies, and every kind of tampering with
//! the model, the key or the signature fails with its own reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vouch_attest::model_signing::{
    verify_model_directory, verify_model_manifest, ModelSigningError,
};
use vouch_attest::{Digest, PublicKey, SigningKey};

/// The shared model-signing material, or None (skip) when absent outside CI.
fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("VOUCH_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    if dir.is_dir() {
        return Some(dir.join("model-signing"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "test material missing at {}",
        dir.display()
    );
    eprintln!("skipping: no test material at {}", dir.display());
    None
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
        key: PublicKey::from_pem(&std::fs::read_to_string(dir.join("ms-key.pub")).unwrap())
            .unwrap(),
    })
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
    assert_eq!(facts.key_fingerprint, m.key.fingerprint());
    assert_eq!(
        facts.subject_digest.to_string(),
        "sha256:d21c18ff8c0b8437d8c5390b89e360fd9f1e4259038a60eafad26f13060c5615"
    );
    // A copy elsewhere verifies too: paths are relative to the model root. Git metadata is ignored.
    let copy = copy_model(&m.model);
    std::fs::create_dir(copy.path().join(".git")).unwrap();
    std::fs::write(copy.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    assert_eq!(
        verify_model_directory(copy.path(), &m.bundle, &m.key).unwrap(),
        facts
    );
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
        matches!(&err, ModelSigningError::FileDigestMismatch { name, .. } if name == "model.safetensors"),
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
        matches!(&err, ModelSigningError::UnexpectedFile { name, count: 1 } if name == "extra/tokenizer.json"),
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
        matches!(&err, ModelSigningError::MissingFile { name, count: 1 } if name == "config.json"),
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
    assert!(
        matches!(&err, ModelSigningError::Symlink { path } if path == "link"),
        "{err}"
    );
}

#[test]
fn wrong_key_fails() {
    let Some(m) = material() else { return };
    let other = SigningKey::generate().public_key();
    let err = verify_model_directory(&m.model, &m.bundle, &other).unwrap_err();
    assert!(
        matches!(err, ModelSigningError::KeyHintMismatch { .. }),
        "{err}"
    );

    // Without the hint, the signature itself must still reject the other key.
    let mut bundle: serde_json::Value = serde_json::from_slice(&m.bundle).unwrap();
    bundle["verificationMaterial"]["publicKey"]["hint"] = "".into();
    let err = verify_model_directory(&m.model, &serde_json::to_vec(&bundle).unwrap(), &other)
        .unwrap_err();
    assert!(matches!(err, ModelSigningError::Signature(_)), "{err}");
}

#[test]
fn flipped_signature_bit_fails() {
    use base64::Engine;
    let Some(m) = material() else { return };
    let mut bundle: serde_json::Value = serde_json::from_slice(&m.bundle).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut sig = b64
        .decode(
            bundle["dsseEnvelope"]["signatures"][0]["sig"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = b64.encode(sig).into();
    let err = verify_model_directory(&m.model, &serde_json::to_vec(&bundle).unwrap(), &m.key)
        .unwrap_err();
    assert!(matches!(err, ModelSigningError::Signature(_)), "{err}");
}

#[test]
fn manifest_form_verifies_and_detects_changes() {
    let Some(m) = material() else { return };
    let mut files = BTreeMap::new();
    for name in ["config.json", "model.safetensors"] {
        files.insert(
            name.to_owned(),
            Digest::sha256_of(&std::fs::read(m.model.join(name)).unwrap()),
        );
    }
    let facts = verify_model_manifest(&m.bundle, &m.key, &files).unwrap();
    assert_eq!(facts.files, 2);

    let mut changed = files.clone();
    changed.insert("config.json".into(), Digest::sha256_of(b"{}"));
    let err = verify_model_manifest(&m.bundle, &m.key, &changed).unwrap_err();
    assert!(
        matches!(&err, ModelSigningError::FileDigestMismatch { name, .. } if name == "config.json"),
        "{err}"
    );

    let mut extra = files.clone();
    extra.insert("README.md".into(), Digest::sha256_of(b"hi"));
    assert!(matches!(
        verify_model_manifest(&m.bundle, &m.key, &extra),
        Err(ModelSigningError::UnexpectedFile { .. })
    ));

    let mut fewer = files;
    fewer.remove("model.safetensors");
    assert!(matches!(
        verify_model_manifest(&m.bundle, &m.key, &fewer),
        Err(ModelSigningError::MissingFile { .. })
    ));
}
