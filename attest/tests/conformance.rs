//! Runs every case of the Sigstore conformance suite's bundle-verify set (independently produced test
//! material in ../shared/testdata) through the library verifier, once with the artifact file and once with
//! its `sha256:<hex>` digest, and asserts each gives the expected verdict.

use std::path::{Path, PathBuf};

use vouch_attest::digest::Digest;
use vouch_attest::keys::PublicKey;
use vouch_attest::sigstore_verify::{Artifact, Bundle, CertificateIdentity, VerificationPolicy, Verifier};
use vouch_attest::trust_root::TrustRoot;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: missing material under CI must fail
fn testdata() -> Option<PathBuf> {
    vouch_attest::testdata::locate().unwrap()
}

/// One case's verdict in one artifact form: Ok(()) verified, Err(reason) rejected.
fn run_case(case: &Path, trust_dir: &Path, by_digest: bool) -> Result<(), String> {
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
    let bundle = Bundle::from_json(&read(case.join("bundle.sigstore.json"))?).map_err(|e| e.to_string())?;
    let root_path = if case.join("trusted_root.json").is_file() {
        case.join("trusted_root.json")
    } else {
        trust_dir.join("sigstore-public-good.trusted_root.json")
    };
    let root = TrustRoot::from_json(&read(root_path)?).map_err(|e| e.to_string())?;
    let artifact_path =
        if case.join("artifact").is_file() { case.join("artifact") } else { case.join("../a.txt") };
    let artifact_bytes = read(artifact_path)?;
    let policy = if case.join("key.pub").is_file() {
        let pem = String::from_utf8(read(case.join("key.pub"))?).map_err(|e| e.to_string())?;
        VerificationPolicy::key(PublicKey::from_pem(&pem).map_err(|e| e.to_string())?)
    } else {
        let text = |name: &str, default: &str| {
            std::fs::read_to_string(case.join(name))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| default.to_owned())
        };
        VerificationPolicy::keyless(vec![CertificateIdentity::exact(
            &text("identity", DEFAULT_IDENTITY),
            &text("issuer", DEFAULT_ISSUER),
        )])
    };
    let verifier = Verifier::new(root);
    let artifact = if by_digest {
        Artifact::Digest(Digest::sha256_of(&artifact_bytes))
    } else {
        Artifact::Bytes(&artifact_bytes)
    };
    verifier.verify(&bundle, artifact, &policy).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn sigstore_conformance_bundle_verify_cases() {
    let Some(data) = testdata() else {
        eprintln!("skipping: no test data");
        return;
    };
    let suite = data.join("sigstore-conformance/bundle-verify");
    let trust_dir = data.join("sigstore-conformance/trust");
    let trust_dir = if trust_dir.is_dir() { trust_dir } else { data.join("trust") };
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&suite).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 30, "expected the conformance cases in {}", suite.display());

    let (mut passed, mut failed) = (0, Vec::new());
    println!("{:<62} {:<6} {:<6} {:<6} reason", "case", "expect", "file", "digest");
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect_ok = !name.ends_with("_fail");
        for by_digest in [false, true] {
            let result = run_case(case, &trust_dir, by_digest);
            let good = result.is_ok() == expect_ok;
            if good {
                passed += 1;
            } else {
                failed.push(format!("{name} ({})", if by_digest { "digest" } else { "file" }));
            }
            println!(
                "{:<62} {:<6} {:<6} {}",
                name,
                if expect_ok { "pass" } else { "fail" },
                if by_digest { "digest" } else { "file" },
                match &result {
                    Ok(()) => "verified".to_owned(),
                    Err(e) => format!("rejected: {e}"),
                } + if good { "" } else { "   <-- WRONG" }
            );
        }
    }
    println!("conformance: {passed}/{} verdicts as expected", cases.len() * 2);
    assert!(failed.is_empty(), "unexpected verdicts: {failed:#?}");
}
