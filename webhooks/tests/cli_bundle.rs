//! `vouch bundle create|verify` as a person runs them against a real registry on loopback, and
//! `vouch serve --bundle` answering AdmissionReviews with that registry STOPPED: decisions come from the
//! bundle alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use server_support::{fixture, TlsClient};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::config::{BundleSource, ServeConfig};
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::run::Server;
use vouch_webhooks::server::tls::CertPaths;

fn vouch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Replace the first occurrence of `from` in the file by `to` (same length: the tar framing stays valid).
fn patch_file(src: &Path, dst: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(src).unwrap();
    let pos = bytes.windows(from.len()).position(|w| w == from).expect("pattern in the bundle");
    bytes[pos..pos + to.len()].copy_from_slice(to);
    std::fs::write(dst, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_verify_and_serve_from_a_bundle_with_the_registry_stopped() {
    let mut registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    let unsigned =
        push_demo_image(&client, &host, "demo/unsigned", "1.0", b"nobody signed me\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("prod-signed.yaml"), key_policy("prod-signed", "cosign-prod", &host, &key))
        .unwrap();
    let bundle_key = SigningKey::generate();
    let (key_path, pub_path) = (dir.path().join("bundle.key"), dir.path().join("bundle.pub"));
    std::fs::write(&key_path, bundle_key.to_pkcs8_pem()).unwrap();
    std::fs::write(&pub_path, bundle_key.public_key().to_pem()).unwrap();
    let bundle = dir.path().join("site.tar");
    let app_tag = format!("{host}/demo/app:1.0");
    let unsigned_tag = format!("{host}/demo/unsigned:1.0");

    let (code, stdout, stderr) = vouch(&[
        "bundle",
        "create",
        &app_tag,
        &unsigned_tag,
        "--policy",
        s(&policies),
        "--key",
        s(&key_path),
        "--expires",
        "2d",
        "--insecure-registry",
        &host,
        "-o",
        s(&bundle),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("wrote") && stdout.contains("2 artifacts") && stdout.contains("signed"),
        "{stdout}"
    );
    assert!(stdout.contains("would be denied"), "the unsigned image's denial is shown: {stdout}");

    // verify lists the contents, exit 0.
    let (code, stdout, stderr) = vouch(&["bundle", "verify", s(&bundle), "--bundle-key", s(&pub_path)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("OK") && stdout.contains("signature verified"), "{stdout}");
    assert!(stdout.contains(&app.digest().unwrap().to_string()), "{stdout}");
    assert!(stdout.contains("prod-signed.yaml"), "{stdout}");
    let (code, stdout, _) =
        vouch(&["bundle", "verify", s(&bundle), "--bundle-key", s(&pub_path), "--output", "json"]);
    assert_eq!(code, 0);
    let listing: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listing["artifacts"].as_array().unwrap().len(), 2, "{listing}");
    assert_eq!(listing["signedBy"], bundle_key.public_key().fingerprint().to_string());

    // Tampered: a changed byte in the carried policy; a wrong key; no key for a signed bundle.
    let tampered = dir.path().join("tampered.tar");
    patch_file(&bundle, &tampered, b"requireTlog: false", b"requireTlog: falsE");
    let (code, _, stderr) = vouch(&["bundle", "verify", s(&tampered), "--bundle-key", s(&pub_path)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("REFUSED") && stderr.contains("does not match its digest"), "{stderr}");
    let wrong = dir.path().join("wrong.pub");
    std::fs::write(&wrong, SigningKey::generate().public_key().to_pem()).unwrap();
    let (code, _, stderr) = vouch(&["bundle", "verify", s(&bundle), "--bundle-key", s(&wrong)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not verify with key"), "{stderr}");
    let (code, _, stderr) = vouch(&["bundle", "verify", s(&bundle)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("give its public key"), "{stderr}");
    let (code, _, stderr) = vouch(&["bundle", "verify", s(&dir.path().join("missing.tar"))]);
    assert_eq!(code, 2, "{stderr}");

    // Serve from the bundle with the registry stopped.
    registry.stop();
    let ca = DevCa::new("vouch-bundle-ca").unwrap();
    let pair = ca.issue_server(&["localhost"], &[]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &pair.key_pem).unwrap();
    let config = ServeConfig {
        no_match: vouch_policies::NoMatchAction::Deny,
        insecure_ignore_tlog: true,
        shutdown_grace: Duration::from_secs(5),
        ..ServeConfig::loopback(
            CertPaths { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") },
            None,
        )
    };
    // A tampered bundle stops start-up with the reason.
    let refused = Server::prepare_with_bundle(
        config.clone(),
        Some(BundleSource { path: tampered, key: Some(pub_path.clone()), allow_unsigned: false }),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("does not match its digest"), "{refused}");

    let server = Server::prepare_with_bundle(
        config,
        Some(BundleSource { path: bundle.clone(), key: Some(pub_path.clone()), allow_unsigned: false }),
    )
    .await
    .unwrap();
    let tls = TlsClient::new(ca.cert_der(), server.https_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let signed_pod = fixture("pod-create.json", &host);
    let (r, _) = tls.post("/validate", &signed_pod).await.unwrap();
    assert_eq!(r.status, 200);
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["allowed"], true, "{got}");

    let unsigned_pod =
        String::from_utf8(signed_pod.clone()).unwrap().replace("/demo/app:1.0", "/demo/unsigned:1.0");
    let (r, _) = tls.post("/validate", unsigned_pod.as_bytes()).await.unwrap();
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["allowed"], false, "{got}");
    let message = got["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("no signature verifies against key cosign-prod"), "{message}");
    assert!(message.contains(&unsigned.digest().unwrap().to_string()), "{message}");

    // Not in the bundle: unverifiable, and the policy's failurePolicy (default Fail) denies.
    let new_pod = String::from_utf8(signed_pod).unwrap().replace("/demo/app:1.0", "/demo/new:1.0");
    let (r, _) = tls.post("/validate", new_pod.as_bytes()).await.unwrap();
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["allowed"], false, "{got}");
    let message = got["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("not in the offline bundle"), "{message}");

    let _ = stop.send(());
    running.await.unwrap();

    // The `vouch serve` binary with --bundle/--bundle-key: a tampered bundle stops it (exit 2, with the
    // reason) before any port is bound; the good one answers a review, registry still stopped.
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, health) = (free_port(), free_port());
    let serve = |bundle: &Path| {
        let (listen, health_listen) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{health}"));
        let args = [
            "serve",
            "--tls-cert",
            s(&dir.path().join("tls.crt")),
            "--tls-key",
            s(&dir.path().join("tls.key")),
            "--listen",
            &listen,
            "--health-listen",
            &health_listen,
            "--bundle",
            s(bundle),
            "--bundle-key",
            s(&pub_path),
            "--no-match",
            "deny",
        ]
        .map(str::to_owned);
        Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = serve(&dir.path().join("tampered.tar")).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    let mut child = serve(&bundle);
    let health_addr: SocketAddr = format!("127.0.0.1:{health}").parse().unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if matches!(server_support::http_get(health_addr, "/readyz").await, Ok((200, _))) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls = TlsClient::new(ca.cert_der(), format!("127.0.0.1:{port}").parse().unwrap());
    let answer =
        if ready { Some(tls.post("/validate", &fixture("pod-create.json", &host)).await) } else { None };
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(ready, "vouch serve --bundle did not become ready");
    let (r, _) = answer.unwrap().unwrap();
    let got: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got["response"]["allowed"], true, "{got}");
    assert_eq!(status.code(), Some(0));
}

/// `bundle create -f`: every artifact the manifests reference is covered; `--include-layers` adds the
/// image's config and layers; an unreachable registry makes create fail rather than write an incomplete
/// bundle; an unsigned bundle is listed as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_from_manifests_with_layers_and_refuse_incomplete_bundles() {
    let mut registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"layer bytes of the app\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, key_policy("prod-signed", "cosign-prod", &host, &key)).unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(
        manifests.join("deploy.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: prod}}\nspec:\n  selector: \
             {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      \
             containers:\n        - name: app\n          image: {host}/demo/app:1.0\n"
        ),
    )
    .unwrap();
    let count = |bundle: &Path| {
        let (code, stdout, stderr) = vouch(&["bundle", "verify", s(bundle), "--output", "json"]);
        assert_eq!(code, 0, "{stderr}");
        let listing: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(listing["signed"], false, "{listing}");
        assert_eq!(listing["artifacts"].as_array().unwrap().len(), 1, "{listing}");
        assert!(listing["artifacts"][0]["reference"].as_str().unwrap().contains("/demo/app"), "{listing}");
        listing["blobs"].as_u64().unwrap()
    };
    let plain = dir.path().join("plain.tar");
    let (code, stdout, stderr) = vouch(&[
        "bundle",
        "create",
        "-f",
        s(&manifests),
        "--policy",
        s(&policy),
        "--insecure-registry",
        &host,
        "-o",
        s(&plain),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("UNSIGNED") && stdout.contains("Deployment web: pass"), "{stdout}");
    let with_layers = dir.path().join("layers.tar");
    let (code, stdout, stderr) = vouch(&[
        "bundle",
        "create",
        "-f",
        s(&manifests),
        "--policy",
        s(&policy),
        "--insecure-registry",
        &host,
        "--include-layers",
        "-o",
        s(&with_layers),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The image's config and its one layer on top of what verification read.
    assert_eq!(count(&with_layers), count(&plain) + 2);

    registry.stop();
    let incomplete = dir.path().join("incomplete.tar");
    let (code, _, stderr) = vouch(&[
        "bundle",
        "create",
        "-f",
        s(&manifests),
        "--policy",
        s(&policy),
        "--insecure-registry",
        &host,
        "-o",
        s(&incomplete),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the bundle would be incomplete"), "{stderr}");
    assert!(!incomplete.exists());
}

/// A bundle whose policies use a newer policy field lists it (`policyFeatures`), and a reader that does not
/// know a listed feature refuses the bundle instead of reading the policy without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_feature_the_reader_does_not_know_is_refused_not_ignored() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"pinned app\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &app, &key, BTreeMap::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let text = key_policy("pinned", "cosign-prod", &host, &key)
        .replace("  mode: Enforce\n", "  mode: Enforce\n  requireDigest: true\n");
    assert!(text.contains("requireDigest: true"), "{text}");
    std::fs::write(&policy, text).unwrap();
    let bundle = dir.path().join("pinned.tar");
    let pinned = format!("{host}/demo/app:1.0@{}", app.digest().unwrap());
    let (code, stdout, stderr) = vouch(&[
        "bundle",
        "create",
        &pinned,
        "--policy",
        s(&policy),
        "--insecure-registry",
        &host,
        "-o",
        s(&bundle),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = vouch(&["bundle", "verify", s(&bundle)]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // The same bundle as a newer vouch would write it, with a feature this one does not know (unsigned:
    // vouch-bundle.json is not a blob, so only the reader's rules stand between it and the policies).
    let future = dir.path().join("future.tar");
    patch_file(&bundle, &future, b"\"requireDigest\"", b"\"requireDigesX\"");
    let (code, _, stderr) = vouch(&["bundle", "verify", s(&future)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr
            .contains("the bundle's policies use \"requireDigesX\", which this build of vouch does not know"),
        "{stderr}"
    );
}
