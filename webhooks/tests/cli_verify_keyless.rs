//! `vouch verify` on a keyless-signed image, as a person runs it with cosign's flags: the vouch binary
//! against a real registry on loopback, the image signed by the test Fulcio with a certificate carrying the
//! GitHub Workflow extensions and an embedded SCT from the test CT log (`vouch verify` always requires
//! one), logged in the test Rekor; `--trusted-root` names the test trusted root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use vouch_tests::fake_sigstore::{claim, legacy_claim, unix, FakeSigstore, San};
use vouch_tests::fixture::{ago, push_image};
use vouch_webhooks::dev_registry::DevRegistry;

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
const SHA: &str = "c7b3dfb335f051e1c86bda4c716fac97df62ad81";

fn vouch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn github_workflow_flags_verify_a_keyless_signature_and_each_mismatch_names_the_claim_and_value() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let sigstore = FakeSigstore::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trusted_root = dir.path().join("trusted_root.json");
    std::fs::write(&trusted_root, sigstore.trusted_root_json()).unwrap();

    // What Fulcio issues to a GitHub Actions run of acme/app's release workflow for tag v1.0.0: the
    // deprecated GitHub Workflow extensions (.2-.6, raw) that cosign's flags read, and current ones.
    let claims = [
        legacy_claim(2, "push").unwrap(),
        legacy_claim(3, SHA).unwrap(),
        legacy_claim(4, "Release").unwrap(),
        legacy_claim(5, "acme/app").unwrap(),
        legacy_claim(6, "refs/tags/v1.0.0").unwrap(),
        claim(12, "https://github.com/acme/app").unwrap(),
        claim(14, "refs/tags/v1.0.0").unwrap(),
    ];
    let san = San::Uri(WORKFLOW.into());
    let image = push_image(&client, &host, "acme/app", "v1.0.0").await;
    let leaf = sigstore.issue_with_sct(&san, ISSUER, ago(3600), ago(3000), &claims).unwrap();
    sigstore.sign_image(&client, &image, &leaf, Some(unix(ago(3300)))).await.unwrap();
    // The same claims, but a certificate without an SCT (as the fake issued before it had a CT log).
    let no_sct_image = push_image(&client, &host, "acme/app", "no-sct").await;
    let no_sct = sigstore.issue_with_claims(&san, ISSUER, ago(3600), ago(3000), &claims).unwrap();
    sigstore.sign_image(&client, &no_sct_image, &no_sct, Some(unix(ago(3300)))).await.unwrap();

    let image_s = image.to_string();
    let base = |image: &str, identity: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "verify",
            image,
            "--trusted-root",
            trusted_root.to_str().unwrap(),
            "--insecure-registry",
            host.as_str(),
            "--certificate-oidc-issuer",
            ISSUER,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(identity.iter().map(|s| s.to_string()));
        v
    };
    let flags = [
        ("--certificate-github-workflow-repository", "acme/app"),
        ("--certificate-github-workflow-ref", "refs/tags/v1.0.0"),
        ("--certificate-github-workflow-trigger", "push"),
        ("--certificate-github-workflow-sha", SHA),
        ("--certificate-github-workflow-name", "Release"),
    ];
    let with_flags = |image: &str, identity: &[&str], flags: &[(&str, &str)]| {
        let mut args = base(image, identity);
        for (f, v) in flags {
            args.push(f.to_string());
            args.push(v.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        vouch(&args)
    };
    let exact = ["--certificate-identity", WORKFLOW];
    let regexp = ["--certificate-identity-regexp", r"https://github\.com/acme/app/\.github/workflows/.*"];

    for identity in [&exact[..], &regexp[..]] {
        let (code, stdout, stderr) = with_flags(&image_s, identity, &flags);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains(&format!("signature by {WORKFLOW} (issuer {ISSUER})")), "{stdout}");
    }

    // Each flag alone with another value: rejected (1), naming the claim and the certificate's value.
    let mismatches = [
        ("--certificate-github-workflow-repository", "acme/other", "githubWorkflowRepository", "acme/app"),
        ("--certificate-github-workflow-ref", "refs/heads/main", "githubWorkflowRef", "refs/tags/v1.0.0"),
        ("--certificate-github-workflow-trigger", "workflow_dispatch", "githubWorkflowTrigger", "push"),
        (
            "--certificate-github-workflow-sha",
            "0000000000000000000000000000000000000000",
            "githubWorkflowSha",
            SHA,
        ),
        ("--certificate-github-workflow-name", "Nightly", "githubWorkflowName", "Release"),
    ];
    for (flag, wrong, claim_name, found) in mismatches {
        let mut these: Vec<(&str, &str)> = flags.iter().copied().filter(|(f, _)| *f != flag).collect();
        these.push((flag, wrong));
        let (code, stdout, stderr) = with_flags(&image_s, &exact, &these);
        assert_eq!(code, 1, "{flag} {wrong}: {stdout}{stderr}");
        let expected = format!("claim {claim_name}: \"{found}\" does not match \"{wrong}\"");
        assert!(stderr.contains(&expected), "{flag}: expected {expected:?} in {stderr}");
    }

    // A wrong identity or issuer is still told apart from a claim.
    let (code, _, stderr) =
        with_flags(&image_s, &["--certificate-identity", "https://github.com/acme/other"], &flags);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not an accepted signer"), "{stderr}");

    // The SCT is what made the certificate acceptable: without one, the same claims are rejected.
    let (code, stdout, stderr) = with_flags(&no_sct_image.to_string(), &exact, &flags);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("no embedded signed certificate timestamps"), "{stderr}");
}
