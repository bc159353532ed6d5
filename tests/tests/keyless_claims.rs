//! Keyless claims (Fulcio certificate extensions) against a real `docker-registry` on loopback: images
//! signed keylessly by the test Fulcio with certificates carrying the GitHub Actions extensions in both
//! encodings, verified through `ArtifactVerifier` (what `vouch verify` runs) and through policies (what the
//! webhook runs). A denial names the claim and the certificate's value; two authorities that differ only
//! by claims never share a cached verdict.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use vouch_attest::sigstore_verify::{Authority, CertificateIdentity, Claim, Matcher};
use vouch_attest::verify::{ArtifactVerifier, Requirement};
use vouch_attest::ArtifactRef;
use vouch_policies::{Engine, EngineConfig, PolicySet};
use vouch_tests::fake_sigstore::{claim, legacy_claim, unix, FakeSigstore, San};
use vouch_tests::fixture::{ago, fake_sigstore_verifier, pod_input, push_image, rejection, tag_of};
use vouch_webhooks::dev_registry::DevRegistry;

const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The SAN names the reusable workflow that signed; the claims say from which repository and ref it ran.
const WORKFLOW: &str = "https://github.com/acme/workflows/.github/workflows/sign.yml@refs/tags/v2";

struct World {
    registry: DevRegistry,
    verifier: ArtifactVerifier,
    /// Signed from `refs/heads/dev` of acme/app.
    image: ArtifactRef,
}

/// An image signed by a certificate as Fulcio issues it to a GitHub Actions run of acme/app on
/// `refs/heads/dev`: the deprecated extensions raw, the current ones DER UTF8String.
async fn world() -> World {
    let registry = DevRegistry::start().await.unwrap();
    let sigstore = FakeSigstore::new().unwrap();
    let verifier = fake_sigstore_verifier(&registry.host(), &sigstore);
    let image = push_image(verifier.registry(), &registry.host(), "acme/app", "1.0").await;
    let claims = [
        legacy_claim(2, "push").unwrap(),
        legacy_claim(5, "acme/app").unwrap(),
        legacy_claim(6, "refs/heads/dev").unwrap(),
        claim(9, WORKFLOW).unwrap(),
        claim(11, "github-hosted").unwrap(),
        claim(12, "https://github.com/acme/app").unwrap(),
        claim(14, "refs/heads/dev").unwrap(),
        claim(20, "push").unwrap(),
    ];
    let leaf = sigstore
        .issue_with_claims(&San::Uri(WORKFLOW.into()), ISSUER, ago(3600), ago(3000), &claims)
        .unwrap();
    sigstore.sign_image(verifier.registry(), &image, &leaf, Some(unix(ago(3300)))).await.unwrap();
    World { registry, verifier, image }
}

fn keyless(claims: &[(Claim, Matcher)]) -> Authority {
    let identity = claims
        .iter()
        .fold(CertificateIdentity::exact(WORKFLOW, ISSUER), |id, (c, m)| id.with_claim(*c, m.clone()));
    Authority::Keyless { identities: vec![identity] }
}

fn exact(s: &str) -> Matcher {
    Matcher::Exact(s.to_owned())
}

#[tokio::test]
async fn claims_admit_or_deny_naming_the_claim_and_never_share_a_cached_verdict() {
    let w = world().await;
    let verify = |a: Authority| {
        let (v, image) = (w.verifier.clone(), w.image.clone());
        async move { v.verify(&image, &a, &Requirement::Signature).await.unwrap() }
    };
    let dev = keyless(&[
        (Claim::SourceRepositoryUri, exact("https://github.com/acme/app")),
        (Claim::SourceRepositoryRef, exact("refs/heads/dev")),
        (Claim::GithubWorkflowRepository, exact("acme/app")),
        (Claim::GithubWorkflowRef, exact("refs/heads/dev")),
        (Claim::RunnerEnvironment, exact("github-hosted")),
        (Claim::BuildTrigger, Matcher::regex("push|workflow_dispatch").unwrap()),
    ]);
    assert!(verify(dev.clone()).await.is_verified(), "the certificate's own claims admit");

    // Same image, subject and issuer, same verifier and cache: only the ref differs, and it is denied.
    let main = keyless(&[(Claim::SourceRepositoryRef, exact("refs/heads/main"))]);
    let r = rejection(&verify(main).await);
    assert!(
        r.contains(r#"claim sourceRepositoryRef: "refs/heads/dev" does not match "refs/heads/main""#),
        "{r}"
    );
    // The cosign flag's claim (deprecated extension) is told apart by name.
    let r = rejection(&verify(keyless(&[(Claim::GithubWorkflowRef, exact("refs/heads/main"))])).await);
    assert!(
        r.contains(r#"claim githubWorkflowRef: "refs/heads/dev" does not match "refs/heads/main""#),
        "{r}"
    );
    // An extension the certificate lacks is absent, not empty.
    let r =
        rejection(&verify(keyless(&[(Claim::SourceRepositoryVisibilityAtSigning, exact("private"))])).await);
    assert!(r.contains("claim sourceRepositoryVisibilityAtSigning is absent"), "{r}");
    // The earlier verdicts were not overwritten, and an identity without claims verifies as before.
    assert!(verify(dev).await.is_verified());
    assert!(verify(keyless(&[])).await.is_verified());
}

fn policy(name: &str, images: &str, claims_yaml: &str) -> String {
    format!(
        r#"---
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {{name: {name}}}
spec:
  images: ["{images}"]
  authorities:
    - name: release
      keyless:
        identities:
          - subject: "{WORKFLOW}"
            issuer: "{ISSUER}"
            {claims_yaml}
  requirements: {{signature: true}}
"#
    )
}

fn engine(yaml: &str, verifier: ArtifactVerifier) -> Engine {
    let set = PolicySet::from_yaml_str(yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    Engine::new(EngineConfig { budget: Duration::from_secs(10), ..EngineConfig::default() }, set, verifier)
}

#[tokio::test]
async fn a_policy_with_claims_denies_another_ref_with_the_claim_in_the_message() {
    let w = world().await;
    let images = format!("{}/acme/**", w.registry.host());
    let pod = pod_input("default", "web", &[("app", &tag_of(&w.image))]);

    // Two engines on one verifier (one cache), their policies differing only by a claim.
    let from_main = engine(
        &policy("release-from-main", &images, "claims: {sourceRepositoryRef: refs/heads/main}"),
        w.verifier.clone(),
    );
    let from_any_branch = engine(
        &policy(
            "release-from-a-branch",
            &images,
            r#"claimsRegExp: {sourceRepositoryRef: "refs/heads/.+", githubWorkflowRepository: "acme/.*"}"#,
        ),
        w.verifier.clone(),
    );
    let d = from_any_branch.evaluate(&pod).await;
    assert!(d.allowed, "{:?}", d.message);

    let d = from_main.evaluate(&pod).await;
    assert!(!d.allowed);
    let message = d.message.unwrap();
    let prefix = format!(
        "Pod default/web: container app: image {}@{} : policy release-from-main: signature: ",
        tag_of(&w.image),
        w.image.digest().unwrap()
    );
    assert!(message.starts_with(&prefix), "{message}\nexpected prefix: {prefix}");
    assert!(
        message.contains(&format!(
            r#"certificate identity "{WORKFLOW}" issued by "{ISSUER}" does not carry the required claims: claim sourceRepositoryRef: "refs/heads/dev" does not match "refs/heads/main""#
        )),
        "{message}"
    );
    // And the other way round: the denial was not cached under the admitting policy's authority.
    assert!(from_any_branch.evaluate(&pod).await.allowed);
}
