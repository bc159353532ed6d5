//! `vouch verify` and `vouch bundle create` with `--tuf-mirror`: the trusted root comes from a TUF repository
//! made by python-tuf (attest/tests/tuf/repo.py) and served on loopback (a bundle records it); with the mirror
//! gone the last good root cached is used (with a warning), with nothing cached it is a configuration error
//! (2); the flags' rules are enforced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;

use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::trust_root::PUBLIC_GOOD_JSON;
use vouch_attest::{Digest, SigningKey};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;

#[path = "../../attest/tests/tuf_support/mod.rs"]
mod tuf_support;
use tuf_support::{python_tuf, Mirror};

fn vouch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_and_bundle_create_take_the_trusted_root_from_tuf_and_keep_the_last_good_one() {
    if !python_tuf() {
        return;
    }
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_demo_image(&client, &host, "demo/app", "v1", b"tuf test image").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &image, &key, BTreeMap::new()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let pubkey = dir.path().join("key.pub");
    std::fs::write(&pubkey, key.public_key().to_pem()).unwrap();
    // The mirror publishes a trusted root other than the embedded one (its last CT log removed).
    let mut doc: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD_JSON.as_bytes()).unwrap();
    doc["ctlogs"].as_array_mut().unwrap().pop();
    let published = serde_json::to_vec_pretty(&doc).unwrap();
    let mut repo = Mirror::start(&published).unwrap();
    let mirror = repo.url();
    let mirror_host = repo.host();
    let anchor = repo.anchor_path();
    let cache = dir.path().join("cache");
    let image_ref = image.to_string();
    // The registry and the mirror on loopback, the mirror trusted from its first root, cached in `cache`.
    let tuf_flags = |cache: &std::path::Path| -> Vec<String> {
        let (anchor, cache) = (anchor.to_str().unwrap(), cache.to_str().unwrap());
        ["--insecure-registry", &host, "--insecure-registry", &mirror_host, "--tuf-mirror", &mirror]
            .into_iter()
            .chain(["--tuf-root", anchor, "--tuf-cache", cache])
            .map(str::to_owned)
            .collect()
    };
    let with_tuf = |args: &[&str], cache: &std::path::Path| {
        let flags = tuf_flags(cache);
        let all: Vec<&str> = args.iter().copied().chain(flags.iter().map(String::as_str)).collect();
        vouch(&all)
    };
    let verify = |cache: &std::path::Path| {
        with_tuf(&["verify", &image_ref, "--key", pubkey.to_str().unwrap(), "--insecure-ignore-tlog"], cache)
    };

    let (code, stdout, stderr) = verify(&cache);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // The root in force was fetched through TUF and cached.
    let cached: Vec<_> = walk(&cache).into_iter().filter(|p| p.ends_with("trusted_root.json")).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(std::fs::read(&cached[0]).unwrap(), published);

    // A bundle made with the TUF flags records the root the mirror published.
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("signed.yaml"), key_policy("signed", "k", &host, &key)).unwrap();
    let bundle = dir.path().join("site.tar");
    let (code, stdout, stderr) = with_tuf(
        &[
            "bundle",
            "create",
            &image_ref,
            "--policy",
            policies.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ],
        &cache,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = vouch(&["bundle", "verify", bundle.to_str().unwrap(), "--allow-unsigned"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let recorded = format!("trusted root {}", Digest::sha256_of(&published));
    assert!(stdout.contains(&recorded), "{recorded} in {stdout}");

    // The mirror gone: the last good root, with a warning naming why.
    repo.stop();
    let (code, stdout, stderr) = verify(&cache);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("unreachable") && stderr.contains("using the last good trusted root"),
        "{stderr}"
    );

    // Nothing cached and nothing reachable: a configuration error, not a verdict.
    let (code, _, stderr) = verify(&dir.path().join("empty-cache"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no last good trusted root is cached"), "{stderr}");

    // A private mirror needs the root it is trusted from; --trusted-root and --tuf-mirror exclude each other.
    let base =
        ["verify", image_ref.as_str(), "--key", pubkey.to_str().unwrap(), "--tuf-mirror", mirror.as_str()];
    let (code, _, stderr) = vouch(&base);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tuf-root"), "{stderr}");
    let (code, _, stderr) = vouch(&[&base[..], &["--trusted-root", anchor.to_str().unwrap()]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `vouch check` with a TrustRoot that names a TUF repository (`spec.tuf`) among its policies: the trusted
/// root is obtained from the python-tuf mirror (and cached); with the mirror gone and nothing cached, the
/// TrustRoot is a policy problem naming the TUF failure (exit 2), never silently dropped.
#[tokio::test(flavor = "multi_thread")]
async fn check_follows_a_trust_root_that_names_a_tuf_repository() {
    let Some(mut repo) = Mirror::start(PUBLIC_GOOD_JSON.as_bytes()) else { return };
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_demo_image(&client, &host, "demo/app", "v1", b"tuf check image").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &image, &key, BTreeMap::new()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("signed.yaml"), key_policy("signed", "k", &host, &key)).unwrap();
    let anchor = serde_json::to_string(&String::from_utf8(repo.anchor()).unwrap()).unwrap();
    std::fs::write(
        policies.join("trust-root.yaml"),
        format!(
            "apiVersion: vouch.dev/v1alpha1\nkind: TrustRoot\nmetadata: {{name: private}}\nspec:\n  tuf:\n    \
             mirror: {}\n    root: {{inline: {anchor}}}\n",
            repo.url()
        ),
    )
    .unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: app, namespace: default}}\nspec:\n  containers:\n  \
             - {{name: app, image: \"{image}\"}}\n"
        ),
    )
    .unwrap();
    let mirror_host = repo.host();
    let check = |cache: &std::path::Path| {
        vouch(&[
            "check",
            "-f",
            pod.to_str().unwrap(),
            "--policy",
            policies.to_str().unwrap(),
            "--insecure-registry",
            &host,
            "--insecure-registry",
            &mirror_host,
            "--tuf-cache",
            cache.to_str().unwrap(),
        ])
    };
    let cache = dir.path().join("cache");
    let (code, stdout, stderr) = check(&cache);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let cached: Vec<_> = walk(&cache).into_iter().filter(|p| p.ends_with("trusted_root.json")).collect();
    assert_eq!(cached.len(), 1, "fetched through TUF and cached: {cached:?}");

    repo.stop();
    let (code, stdout, stderr) = check(&cache);
    assert_eq!(code, 0, "the last good root cached: {stdout}{stderr}");
    let (code, stdout, stderr) = check(&dir.path().join("empty-cache"));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("TrustRoot private: tuf: "), "{stderr}");
    assert!(stderr.contains("no last good trusted root is cached"), "{stderr}");
}
