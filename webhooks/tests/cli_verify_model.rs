//! `vouch verify-model DIR` as a person runs it, against the OpenSSF model signature made by PyPI
//! model-signing 1.1.1 (shared test material): exit 0 verified, 1 not verified with the failed check named
//! (a changed or added file, another key, a keyless authority), 2 usage or I/O error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

use vouch_attest::{PublicKey, SigningKey};

fn vouch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shared model-signing material, or None (skip) when absent outside CI.
fn testdata() -> Option<PathBuf> {
    vouch_attest::testdata::locate().unwrap().map(|d| d.join("model-signing"))
}

/// A writable copy of the model directory (the shared files are read-only).
fn copy_model(from: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let to = tmp.path().join(entry.file_name());
        std::fs::write(&to, std::fs::read(entry.path()).unwrap()).unwrap();
    }
    tmp
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn verify_model_exit_codes_against_model_signing_material() {
    let Some(data) = testdata() else { return };
    let signature = data.join("model.sig");
    let key = data.join("ms-key.pub");
    let fingerprint =
        PublicKey::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap().fingerprint().to_string();
    let model = copy_model(&data.join("model"));
    let dir = s(model.path());

    // Verified: what was verified is printed.
    let (code, stdout, stderr) =
        vouch(&["verify-model", dir, "--signature", s(&signature), "--key", s(&key)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("verified: {dir}")), "{stdout}");
    assert!(stdout.contains(&format!("model signature by key {fingerprint}")), "{stdout}");
    assert!(stdout.contains("2 files, subject digest sha256:d21c18ff"), "{stdout}");

    // The default signature is DIR/model.sig, which is then not a model file.
    let (code, _, stderr) = vouch(&["verify-model", dir, "--key", s(&key)]);
    assert_eq!(code, 2, "no model.sig yet: {stderr}");
    assert!(stderr.contains("model.sig"), "{stderr}");
    std::fs::write(model.path().join("model.sig"), std::fs::read(&signature).unwrap()).unwrap();
    let (code, stdout, stderr) = vouch(&["verify-model", dir, "--key", s(&key)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 files"), "{stdout}");

    // Another key: not verified.
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), SigningKey::generate().public_key().to_pem()).unwrap();
    let (code, _, stderr) = vouch(&["verify-model", dir, "--key", s(other.path())]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("DSSE envelope signature does not verify"), "{stderr}");

    // A keyless authority does not accept a key signature.
    let (code, _, stderr) = vouch(&[
        "verify-model",
        dir,
        "--certificate-identity",
        "builder@example.com",
        "--certificate-oidc-issuer",
        "https://issuer.example",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("signed with a key, but keyless"), "{stderr}");

    // An added file is named.
    std::fs::write(model.path().join("README.md"), "# added").unwrap();
    let (code, _, stderr) = vouch(&["verify-model", dir, "--key", s(&key)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("model file \"README.md\" is not covered by the signature"), "{stderr}");
    std::fs::remove_file(model.path().join("README.md")).unwrap();

    // A changed byte is named by its file.
    let weights = model.path().join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let (code, stdout, stderr) = vouch(&["verify-model", dir, "--key", s(&key)]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains(&format!("not verified: {dir}: ")), "{stderr}");
    assert!(stderr.contains("model file \"model.safetensors\" was modified: signed sha256:"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");

    // Usage and I/O errors: no authority, both kinds, no such directory, a file for a directory,
    // an unreadable key.
    assert_eq!(vouch(&["verify-model", dir]).0, 2);
    assert_eq!(vouch(&["verify-model", dir, "--key", s(&key), "--certificate-identity", "x"]).0, 2);
    let (code, _, stderr) = vouch(&["verify-model", "/nonexistent/model", "--key", s(&key)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/model"), "{stderr}");
    let (code, _, stderr) = vouch(&["verify-model", s(&weights), "--key", s(&key)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert_eq!(vouch(&["verify-model", dir, "--key", "/nonexistent.pub"]).0, 2);
}
