//! `vouch sign`, `vouch attest` and `vouch attach sbom` against a real registry on loopback, read back by
//! `vouch verify --key`: what scripts/image.sh publishes vouch's own image with.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use std::path::Path;
use std::process::Command;

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

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A schema-valid CycloneDX 1.5 document with two components.
fn sbom() -> serde_json::Value {
    serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "application", "name": "app", "version": "1"}},
        "components": [
            {"type": "library", "name": "serde", "version": "1.0.0", "purl": "pkg:cargo/serde@1.0.0"},
            {"type": "library", "name": "libc6", "version": "2.36", "purl": "pkg:deb/debian/libc6@2.36"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_attest_and_attach_are_read_back_by_verify() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_demo_image(&client, &host, "cli/signed", "v1", b"sign cli image").await.unwrap();
    let unsigned = push_demo_image(&client, &host, "cli/signed", "v2", b"unsigned image").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let key_file = write(dir.path(), "key.pem", key.to_pkcs8_pem());
    let public = write(dir.path(), "key.pub", key.public_key().to_pem());
    let sbom_file = write(dir.path(), "sbom.json", serde_json::to_vec(&sbom()).unwrap());
    let provenance = write(
        dir.path(),
        "provenance.json",
        br#"{"buildDefinition":{"buildType":"https://example.com/b"},"runDetails":{"builder":{"id":"t"}}}"#,
    );
    let by_tag = format!("{host}/cli/signed:v1");
    let insecure = ["--insecure-registry", host.as_str()];
    let verify = |require: &str, image: &str| {
        vouch(
            &[
                &["verify", image, "--key", public.as_str(), "--require", require, "--insecure-ignore-tlog"],
                &insecure[..],
            ]
            .concat(),
        )
    };

    // Nothing published yet: not verified (1).
    assert_eq!(verify("signature", &by_tag).0, 1);

    // Signing by tag signs the digest the tag names.
    let (code, out, err) =
        vouch(&[&["sign", "--key", &key_file, "-a", "tag=v1", &by_tag], &insecure[..]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&image.digest().unwrap().to_string()), "{out}");
    let (code, out, err) = verify("signature", &by_tag);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&key.public_key().fingerprint().to_string()), "{out}");
    assert_eq!(verify("signature", &unsigned.to_string()).0, 1, "the other image stays unsigned");

    let pinned = image.to_string();
    let (code, out, err) = vouch(
        &[
            &["attest", "--key", &key_file, "--type", "slsaprovenance1", "--predicate", &provenance, &pinned],
            &insecure[..],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = verify("attestation:https://slsa.dev/provenance/v1", &pinned);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(verify("attestation:https://slsa.dev/provenance/v0.2", &pinned).0, 1);

    // An unsigned SBOM attachment (cosign's .sbom tag and a referrer) satisfies `--require sbom`.
    let (code, out, err) =
        vouch(&[&["attach", "sbom", "--sbom", &sbom_file, &pinned], &insecure[..]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("CycloneDX 1.5 SBOM (2 components"), "{out}");
    let (code, out, err) = verify("sbom", &pinned);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sbom CycloneDX 1.5 with 2 components"), "{out}");

    // The same SBOM as a signed CycloneDX attestation.
    let (code, out, err) = vouch(
        &[
            &["attest", "--key", &key_file, "--type", "cyclonedx", "--predicate", &sbom_file, &pinned],
            &insecure[..],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = verify("attestation:https://cyclonedx.org/bom", &pinned);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_are_errors_before_anything_is_pushed() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let image = push_demo_image(&client, &host, "cli/bad", "v1", b"bad inputs").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let key_file = write(dir.path(), "key.pem", key.to_pkcs8_pem());
    let public = write(dir.path(), "key.pub", key.public_key().to_pem());
    let not_cdx =
        write(dir.path(), "not.json", br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":7}"#);
    let not_json = write(dir.path(), "broken.json", b"{");
    let pinned = image.to_string();
    let insecure = ["--insecure-registry", host.as_str()];
    let run = |args: &[&str]| vouch(&[args, &insecure[..]].concat());

    // A public key is not a signing key; an invalid SBOM is refused before it is attached.
    let (code, _, err) = run(&["sign", "--key", &public, &pinned]);
    assert_eq!(code, 2);
    assert!(err.contains("not a PKCS#8"), "{err}");
    let (code, _, err) = run(&["attach", "sbom", "--sbom", &not_cdx, &pinned]);
    assert_eq!(code, 2);
    assert!(err.contains("schema"), "{err}");
    let (code, _, err) =
        run(&["attest", "--key", &key_file, "--type", "cyclonedx", "--predicate", &not_cdx, &pinned]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) =
        run(&["attest", "--key", &key_file, "--type", "slsaprovenance1", "--predicate", &not_json, &pinned]);
    assert_eq!(code, 2);
    assert!(err.contains("not JSON"), "{err}");
    let (code, _, err) =
        run(&["attest", "--key", &key_file, "--type", "nonsense", "--predicate", &not_json, &pinned]);
    assert_eq!(code, 2);
    assert!(err.contains("--type"), "{err}");
    // A tag that does not exist, and plain HTTP to a registry not marked insecure.
    let (code, _, err) = run(&["sign", "--key", &key_file, &format!("{host}/cli/bad:missing")]);
    assert_eq!(code, 2);
    assert!(err.contains("resolving"), "{err}");
    let (code, _, _) = vouch(&["sign", "--key", &key_file, &pinned]);
    assert_eq!(code, 2);

    // None of it left a signature, attestation or SBOM behind.
    for require in ["signature", "sbom", "attestation:https://cyclonedx.org/bom"] {
        let (code, out, err) = vouch(
            &[
                &["verify", &pinned, "--key", &public, "--require", require, "--insecure-ignore-tlog"],
                &insecure[..],
            ]
            .concat(),
        );
        assert_eq!(code, 1, "{require}: {out}{err}");
    }
}
