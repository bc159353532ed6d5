//! `vouch verify` as a person runs it: against a real registry on loopback, exit codes 0 / 1 / 2 and the
//! JSON output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

use std::collections::BTreeMap;
use std::process::Command;

use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;

fn vouch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_command_exit_codes_and_json_against_real_registry() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_demo_image(&client, &host, "cli/app", "v1", b"cli test image").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &image, &key, BTreeMap::new()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right.pub");
    let wrong = dir.path().join("wrong.pub");
    std::fs::write(&right, key.public_key().to_pem()).unwrap();
    std::fs::write(&wrong, SigningKey::generate().public_key().to_pem()).unwrap();
    let by_tag = format!("{host}/cli/app:v1");
    let right_s = right.to_str().unwrap();
    let wrong_s = wrong.to_str().unwrap();
    let common = ["--insecure-registry", host.as_str(), "--insecure-ignore-tlog"];

    let (code, stdout, stderr) =
        vouch(&[&["verify", by_tag.as_str(), "--key", right_s], &common[..]].concat());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&image.digest().unwrap().to_string()), "{stdout}");
    assert!(stdout.contains(&key.public_key().fingerprint().to_string()), "{stdout}");

    let (code, stdout, _) =
        vouch(&[&["verify", by_tag.as_str(), "--key", right_s, "--output", "json"], &common[..]].concat());
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["reference"], image.to_string());

    let (code, _, stderr) = vouch(&[&["verify", by_tag.as_str(), "--key", wrong_s], &common[..]].concat());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not verify"), "{stderr}");

    // A key-signed image without a Rekor entry is rejected unless the user opts out of the tlog.
    let (code, _, stderr) =
        vouch(&["verify", by_tag.as_str(), "--key", right_s, "--insecure-registry", &host]);
    assert_eq!(code, 1, "{stderr}");

    // Plain HTTP is never used for a registry not marked insecure: an error (2), not a verdict.
    let (code, _, stderr) = vouch(&["verify", by_tag.as_str(), "--key", right_s]);
    assert_eq!(code, 2, "{stderr}");

    // Usage errors: no authority, a bad reference, a missing key file.
    assert_eq!(vouch(&["verify", by_tag.as_str()]).0, 2);
    assert_eq!(vouch(&["verify", "Not A Ref", "--key", right_s]).0, 2);
    assert_eq!(vouch(&["verify", by_tag.as_str(), "--key", "/nonexistent.pub"]).0, 2);
}
