//! Drives the built `vouch` binary through the Sigstore conformance suite's command-line protocol
//! (`vouch sigstore verify-bundle ...`) for every bundle-verify case, with the artifact as a file and as
//! `sha256:<hex>`, and checks the exit code: 0 for passing cases, 1 for `_fail` cases.

#![allow(clippy::panic)] // test helpers outside #[test] functions report bad test data by panicking

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: missing material under CI must fail
fn testdata() -> Option<PathBuf> {
    vouch_attest::testdata::locate().unwrap()
}

/// The suite's argument list for one case, in its order.
fn args(case: &Path, by_digest: bool) -> Vec<String> {
    let mut a = vec![
        "sigstore".to_owned(),
        "verify-bundle".to_owned(),
        "--bundle".to_owned(),
        case.join("bundle.sigstore.json").display().to_string(),
    ];
    if case.join("key.pub").is_file() {
        a.extend(["--key".to_owned(), case.join("key.pub").display().to_string()]);
    } else {
        let text = |name: &str, default: &str| {
            std::fs::read_to_string(case.join(name))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| default.to_owned())
        };
        a.extend([
            "--certificate-identity".to_owned(),
            text("identity", DEFAULT_IDENTITY),
            "--certificate-oidc-issuer".to_owned(),
            text("issuer", DEFAULT_ISSUER),
        ]);
    }
    if case.join("trusted_root.json").is_file() {
        a.extend(["--trusted-root".to_owned(), case.join("trusted_root.json").display().to_string()]);
    }
    let artifact =
        if case.join("artifact").is_file() { case.join("artifact") } else { case.join("../a.txt") };
    if by_digest {
        let bytes = std::fs::read(&artifact).unwrap_or_else(|e| panic!("{}: {e}", artifact.display()));
        a.push(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))));
    } else {
        a.push(artifact.display().to_string());
    }
    a
}

#[test]
fn conformance_cases_through_the_binary() {
    let Some(data) = testdata() else {
        eprintln!("skipping: no test data");
        return;
    };
    let suite = data.join("sigstore-conformance/bundle-verify");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&suite).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 30, "expected the conformance cases in {}", suite.display());

    let mut wrong = Vec::new();
    let mut passed = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expected = if name.ends_with("_fail") { 1 } else { 0 };
        for by_digest in [false, true] {
            let out = Command::new(env!("CARGO_BIN_EXE_vouch")).args(args(case, by_digest)).output().unwrap();
            let code = out.status.code();
            let form = if by_digest { "digest" } else { "file" };
            println!("{name:<62} {form:<6} exit {code:?} {}", String::from_utf8_lossy(&out.stderr).trim());
            if code == Some(expected) {
                passed += 1;
            } else {
                wrong.push(format!("{name} ({form}): exit {code:?}, expected {expected}"));
            }
        }
    }
    println!("conformance (cli): {passed}/{} as expected", cases.len() * 2);
    assert!(wrong.is_empty(), "unexpected exit codes: {wrong:#?}");
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args([
            "sigstore",
            "verify-bundle",
            "--bundle",
            "/nonexistent/bundle.json",
            "--key",
            "/nonexistent/k.pub",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["sigstore", "verify-bundle", "--bundle", "b.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Real npm provenance (subject: the tarball's sha512 only) through the binary: the file verifies for its
/// signer and not for another; `sha256:` of the tarball cannot match and says why; `sha512:` matches.
#[test]
#[allow(clippy::unwrap_used)]
fn npm_provenance_sha512_subject_through_the_binary() {
    // Kept in the repository (attest/tests/data/npm-provenance/README.md says where it comes from).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../attest/tests/data/npm-provenance");
    let tarball = dir.join("playwright-cli-0.1.1.tgz");
    let bytes = std::fs::read(&tarball).unwrap();
    let run = |identity: &str, artifact: String| {
        let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["sigstore", "verify-bundle", "--bundle"])
            .arg(dir.join("playwright-cli-0.1.1-provenance.sigstore.json"))
            .args(["--certificate-identity", identity, "--certificate-oidc-issuer", DEFAULT_ISSUER])
            .arg(artifact)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let signer = "https://github.com/microsoft/playwright-cli/.github/workflows/publish.yml@refs/tags/v0.1.1";
    let (code, err) = run(signer, tarball.display().to_string());
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(DEFAULT_IDENTITY, tarball.display().to_string());
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = run(signer, format!("sha512:{}", hex::encode(sha2::Sha512::digest(&bytes))));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(signer, format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no in-toto subject carries a digest in sha256"), "{err}");
    assert!(err.contains("hint: a sha256 digest can only match subjects that list sha256"), "{err}");
}
