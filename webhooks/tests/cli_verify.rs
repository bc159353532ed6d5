//! `vouch verify` as a person runs it: against a real registry on loopback, exit codes 0 / 1 / 2 and the
//! JSON output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark/test: failing loudly is the point

use std::collections::BTreeMap;
use std::process::Command;

use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;

/// Run vouch with an empty cache directory of its own (a keyless or tlog-checked `verify` without
/// `--trusted-root` consults public-good TUF by default, caching under $XDG_CACHE_HOME).
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

/// The trusted root `vouch verify` uses: `--tuf-mirror off`, `--trusted-root` and a verification that needs
/// no Sigstore material never consult TUF (no cache directory is made); the public-good default does, and
/// answers within a bounded time whether or not the mirror is reachable; an unreachable mirror named with
/// `--tuf-mirror` answers at once.
#[tokio::test(flavor = "multi_thread")]
async fn trust_root_sources_consult_tuf_only_by_default_and_never_hang() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_demo_image(&client, &host, "cli/tuf", "v1", b"cli tuf image").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &image, &key, BTreeMap::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("key.pub");
    std::fs::write(&public, key.public_key().to_pem()).unwrap();
    let trusted_root = dir.path().join("trusted_root.json");
    std::fs::write(&trusted_root, vouch_attest::trust_root::PUBLIC_GOOD_JSON).unwrap();
    let image_s = image.to_string();
    let run = |cache: &std::path::Path, extra: &[&str]| {
        let base =
            ["verify", image_s.as_str(), "--key", public.to_str().unwrap(), "--insecure-registry", &host];
        let started = std::time::Instant::now();
        let out = vouch(&[&base[..], &["--tuf-cache", cache.to_str().unwrap()], extra].concat());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{extra:?} took {:?}",
            started.elapsed()
        );
        out
    };

    // The signature is not in any Rekor: with the tlog checked it is rejected (1) whatever the root.
    for (name, extra) in [
        ("off", &["--tuf-mirror", "off"][..]),
        ("file", &["--trusted-root", trusted_root.to_str().unwrap()][..]),
    ] {
        let cache = dir.path().join(name);
        let (code, _, stderr) = run(&cache, extra);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(stderr.contains("no transparency log entry"), "{name}: {stderr}");
        assert!(!stderr.contains("warning"), "{name}: {stderr}");
        assert!(!cache.exists(), "{name}: TUF was consulted");
    }
    // A key signature whose tlog entry is not checked needs no Sigstore material: no TUF either.
    let cache = dir.path().join("no-tlog");
    let (code, stdout, stderr) = run(&cache, &["--insecure-ignore-tlog"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!cache.exists(), "TUF was consulted");

    // Nothing named and the tlog checked: public-good TUF is consulted (its cache made); offline, the
    // refresh fails within its bound and one warning line says which root is used instead.
    let cache = dir.path().join("default");
    let (code, _, stderr) = run(&cache, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no transparency log entry"), "{stderr}");
    assert!(cache.exists(), "the public-good default did not consult TUF");
    assert!(stderr.matches("warning:").count() <= 1, "{stderr}");

    // A mirror named explicitly that does not answer (an unused loopback port): an answer at once, the
    // reason named; with nothing cached for it, a configuration error (2), never another root.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let anchor = dir.path().join("tuf-root.json");
    std::fs::write(&anchor, vouch_attest::tuf::PUBLIC_GOOD_TUF_ROOT).unwrap();
    let mirror = format!("127.0.0.1:{port}");
    let (code, _, stderr) = run(
        &dir.path().join("unreachable"),
        &[
            "--tuf-mirror",
            &format!("http://{mirror}"),
            "--tuf-root",
            anchor.to_str().unwrap(),
            "--insecure-registry",
            &mirror,
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&mirror) && stderr.contains("no last good trusted root is cached"), "{stderr}");
}
