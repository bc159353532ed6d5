//! `vouch verify IMAGE --notation-trust-store … --notation-identity …` as a person runs it, against a real
//! registry on loopback: a Notation JWS made by vouch's test signer is admitted (exit 0) under the right
//! trust store and identity, refused (exit 1) under another, and bad flags are usage errors (exit 2); CRL files
//! given with `--notation-crl` decide revocation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use vouch_tests::fixture::push_image;
use vouch_tests::notation::{sign_and_push, NotationCa};
use vouch_webhooks::dev_registry::DevRegistry;

fn vouch(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .env("XDG_CACHE_HOME", cache.path())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_admits_a_notation_signature_and_refuses_wrong_identity_or_trust_store() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_image(&client, &host, "notation/cli", "v1").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    sign_and_push(&client, &image, &ca.issue_current("CN=release,O=vouch-test,ST=WA,C=US").unwrap(), None)
        .await
        .unwrap();

    // A trust store as a directory (notation's layout: one file per certificate) and as one PEM file.
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("ca/vouch-test");
    std::fs::create_dir_all(&store_dir).unwrap();
    std::fs::write(store_dir.join("root.crt"), ca.trust_store_pem()).unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, NotationCa::new("another root").unwrap().trust_store_pem()).unwrap();
    let by_tag = format!("{host}/notation/cli:v1");
    let store = store_dir.to_str().unwrap();
    let id = "x509.subject: C=US, ST=WA, O=vouch-test, CN=release";
    let base = ["verify", by_tag.as_str(), "--insecure-registry", host.as_str()];
    let run = |extra: &[&str]| vouch(&[&base[..], extra].concat());

    let (code, stdout, stderr) = run(&["--notation-trust-store", store, "--notation-identity", id]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&image.digest().unwrap().to_string()), "{stdout}");
    assert!(
        stdout.contains("signature by CN=release,O=vouch-test,ST=WA,C=US (certificate sha256:"),
        "{stdout}"
    );
    assert!(stdout.contains("revocation: not checked"), "{stdout}");

    let (code, stdout, _) =
        run(&["--notation-trust-store", store, "--notation-identity", "*", "--output", "json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let signer = &json["outcome"]["Ok"]["signatures"][0]["signer"];
    assert_eq!(signer["kind"], "x509", "{json}");

    let wrong_id = "x509.subject: C=US, ST=WA, O=vouch-test, CN=nightly";
    let (code, _, stderr) = run(&["--notation-trust-store", store, "--notation-identity", wrong_id]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not a trusted identity"), "{stderr}");
    let (code, _, stderr) =
        run(&["--notation-trust-store", other.to_str().unwrap(), "--notation-identity", id]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("trust store"), "{stderr}");

    // Usage errors: no identity, a malformed identity, an unknown level, a key as well.
    assert_eq!(run(&["--notation-trust-store", store]).0, 2);
    let (code, _, stderr) = run(&["--notation-trust-store", store, "--notation-identity", "CN=release"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("trusted identity \"CN=release\""), "{stderr}");
    assert_eq!(
        run(&["--notation-trust-store", store, "--notation-identity", id, "--notation-level", "lax"]).0,
        2
    );
    assert_eq!(run(&["--notation-trust-store", store, "--notation-identity", id, "--key", "k.pub"]).0, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_checks_revocation_against_notation_crl_files() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_image(&client, &host, "notation/cli", "crl").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    let signer = ca.issue_current("CN=release,O=vouch-test,ST=WA,C=US").unwrap();
    sign_and_push(&client, &image, &signer, None).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let store = file("root.pem", ca.trust_store_pem().as_bytes());
    // One CRL as DER, one as PEM: both forms are read.
    // Whole seconds: a CRL's times are.
    let next_update =
        chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 7 * 86_400, 0).unwrap();
    let clean =
        file("clean.crl", &ca.crl_valid(&[], next_update - chrono::Duration::days(8), next_update).unwrap());
    let revoked = file(
        "revoked.pem",
        vouch_attest::keys::pem_encode("X509 CRL", &ca.crl(&[&signer]).unwrap()).as_bytes(),
    );
    let garbage = file("garbage.crl", b"not a crl");
    let by_tag = format!("{host}/notation/cli:crl");
    let id = "x509.subject: C=US, ST=WA, O=vouch-test, CN=release";
    let base = [
        "verify",
        by_tag.as_str(),
        "--insecure-registry",
        host.as_str(),
        "--notation-trust-store",
        &store,
        "--notation-identity",
        id,
    ];
    let run = |extra: &[&str]| vouch(&[&base[..], extra].concat());

    let (code, stdout, stderr) = run(&["--notation-crl", &clean]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("revocation: passed: checked against the CRL from CN=vouch test notation root,O=vouch-test,ST=WA,C=US, not revoked"),
        "{stdout}"
    );
    // The verdict holds until the CRL's nextUpdate (the leaf is valid for a year), and says so.
    assert!(stdout.contains(&format!(", holds until {}", next_update.to_rfc3339())), "{stdout}");
    let (code, stdout, stderr) = run(&["--notation-crl", &clean, "--output", "json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let until = &json["outcome"]["Ok"]["signatures"][0]["validUntil"];
    assert_eq!(
        until.as_str().map(|t| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap()),
        Some(next_update),
        "{json}"
    );
    let (code, stdout, stderr) = run(&["--notation-crl", &revoked]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("revocation: certificate CN=release") && stderr.contains("is revoked"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(&["--notation-crl", &revoked, "--notation-level", "audit"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("revocation: failed (logged only): revocation: certificate CN=release"),
        "{stdout}"
    );

    // A file that is not a CRL, or not there: usage errors naming it.
    let (code, _, stderr) = run(&["--notation-crl", &garbage]);
    assert_eq!(code, 2);
    assert!(stderr.contains("garbage.crl") && stderr.contains("not a DER CRL"), "{stderr}");
    assert_eq!(run(&["--notation-crl", "/nonexistent/x.crl"]).0, 2);
}
