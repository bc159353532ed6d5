//! Signed egress allowlists against a real `docker-registry` on loopback: published with vouch's own code,
//! signed (key and keyless), their signatures verified by `ArtifactVerifier` like any artifact, fetched by
//! digest and asked what they cover. Every way a fetch must fail is checked for its precise reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use vouch_attest::cosign;
use vouch_attest::egress::{
    self, Allowlist, AnyAllowlist, CanonicalRule, EgressError, Endpoint, HostRule,
    EGRESS_ALLOWLIST_ARTIFACT_TYPE, EGRESS_ALLOWLIST_MEDIA_TYPE, KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
};
use vouch_attest::registry::{RegistryClient, RegistryError, OCI_INDEX};
use vouch_attest::sigstore_verify::{Authority, CertificateIdentity};
use vouch_attest::verify::{ArtifactVerifier, Requirement, Signer};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_tests::egress as eg;
use vouch_tests::fake_sigstore::{unix, FakeSigstore, San};
use vouch_tests::fixture::fake_sigstore_verifier;
use vouch_tests::handwritten_cosign as hw;
use vouch_webhooks::dev_registry::DevRegistry;

const ISSUER: &str = "https://issuer.vouch-test.invalid";
const IDENTITY: &str = "netsec@vouch-test.invalid";

struct Env {
    registry: DevRegistry,
    sigstore: FakeSigstore,
    verifier: ArtifactVerifier,
}

impl Env {
    async fn start() -> Self {
        let registry = DevRegistry::start().await.unwrap();
        let sigstore = FakeSigstore::new().unwrap();
        let verifier = fake_sigstore_verifier(&registry.host(), &sigstore);
        Self { registry, sigstore, verifier }
    }

    fn client(&self) -> &RegistryClient {
        self.verifier.registry()
    }

    fn reference(&self, repo_and_tag: &str) -> ArtifactRef {
        format!("{}/{repo_and_tag}", self.registry.host()).parse().unwrap()
    }
}

fn payments() -> Allowlist {
    eg::allowlist(
        "payments-egress",
        &[
            ("api.stripe.com", Some(&[443])),
            ("*.s3.amazonaws.com", Some(&[443])),
            ("**.internal.example", None),
        ],
        &[("10.20.0.0/16", Some(&[5432])), ("2001:db8::/32", None)],
    )
    .unwrap()
}

fn endpoint(s: &str) -> Endpoint {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_key_signed_allowlist_verifies_is_fetched_by_digest_and_covers_what_it_lists() {
    let env = Env::start().await;
    let key = SigningKey::generate();
    let list = payments();
    let pinned = eg::push_signed_with_key(env.client(), &env.reference("egress/payments:v1"), &list, &key)
        .await
        .unwrap();
    assert!(pinned.digest().is_some());
    assert_eq!(pinned.tag(), Some("v1"));

    // The signature is verified like any artifact's.
    let v = env
        .verifier
        .verify(&pinned, &Authority::Key(key.public_key()), &Requirement::Signature)
        .await
        .unwrap();
    let facts = v.outcome.expect("the allowlist's signature verifies");
    assert_eq!(facts.signatures[0].signer, Signer::Key { fingerprint: key.public_key().fingerprint() });

    // Fetched by digest, it is the list that was published.
    let fetched = egress::fetch_allowlist(env.client(), &pinned).await.unwrap();
    assert_eq!(fetched, list);
    assert!(fetched.covers(&endpoint("api.stripe.com:443")));
    assert!(fetched.covers(&endpoint("mybucket.s3.amazonaws.com:443")));
    assert!(fetched.covers(&endpoint("db.eu.internal.example")));
    assert!(fetched.covers(&endpoint("10.20.1.0/24:5432")));
    assert!(fetched.covers(&endpoint("[2001:db8::5]:8080")));
    assert!(!fetched.covers(&endpoint("api.stripe.com:80")));
    assert!(!fetched.covers(&endpoint("a.b.s3.amazonaws.com:443")));
    assert!(!fetched.covers(&endpoint("10.0.0.0/8:5432")));
    let uncovered = fetched.uncovered(&["api.stripe.com:443", "evil.example.net:443", "10.20.0.1:22"]);
    let names: Vec<_> = uncovered.iter().map(|u| u.endpoint.as_str()).collect();
    assert_eq!(names, ["evil.example.net:443", "10.20.0.1:22"]);
    assert_eq!(uncovered[0].reason, "not in egress allowlist payments-egress");

    // The manifest is an OCI 1.1 artifact with the allowlist's artifact type and one layer.
    let (_, kind) = env.client().fetch_parsed_manifest(&pinned).await.unwrap();
    let vouch_attest::registry::ManifestKind::Image(m) = kind else { panic!("not an image manifest") };
    assert_eq!(m.artifact_type.as_deref(), Some(EGRESS_ALLOWLIST_ARTIFACT_TYPE));
    assert_eq!(m.config.media_type, "application/vnd.oci.empty.v1+json");
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.layers[0].media_type, EGRESS_ALLOWLIST_MEDIA_TYPE);

    // Another key, or no signature at all, does not verify.
    let other = SigningKey::generate();
    let v = env
        .verifier
        .verify(&pinned, &Authority::Key(other.public_key()), &Requirement::Signature)
        .await
        .unwrap();
    assert!(!v.is_verified(), "signed by another key");
    // Another name: the same document would be the same digest, whose verdict is cached already.
    let unsigned_list = Allowlist { name: "unsigned-egress".into(), ..list.clone() };
    let unsigned = egress::push_allowlist(env.client(), &env.reference("egress/unsigned:v1"), &unsigned_list)
        .await
        .unwrap();
    assert_ne!(unsigned.digest(), pinned.digest());
    let v = env
        .verifier
        .verify(&unsigned, &Authority::Key(key.public_key()), &Requirement::Signature)
        .await
        .unwrap();
    let reason = v.outcome.unwrap_err().reason;
    assert!(reason.starts_with("nothing found"), "{reason}");
}

#[tokio::test]
async fn a_keyless_signed_allowlist_verifies_against_its_identity_only() {
    let env = Env::start().await;
    let ago = |s: u64| SystemTime::now() - Duration::from_secs(s);
    let leaf = env.sigstore.issue(&San::Email(IDENTITY.into()), ISSUER, ago(600), ago(0)).unwrap();
    let pinned = eg::push_signed_keyless(
        env.client(),
        &env.sigstore,
        &env.reference("egress/keyless:v1"),
        &payments(),
        &leaf,
        Some(unix(ago(300))),
    )
    .await
    .unwrap();
    let good = Authority::Keyless { identities: vec![CertificateIdentity::exact(IDENTITY, ISSUER)] };
    let v = env.verifier.verify(&pinned, &good, &Requirement::Signature).await.unwrap();
    assert!(v.is_verified(), "{:?}", v.outcome);
    let bad = Authority::Keyless {
        identities: vec![CertificateIdentity::exact("someone-else@vouch-test.invalid", ISSUER)],
    };
    let v = env.verifier.verify(&pinned, &bad, &Requirement::Signature).await.unwrap();
    assert!(!v.is_verified(), "another identity must not satisfy the authority");
    assert_eq!(egress::fetch_allowlist(env.client(), &pinned).await.unwrap().name, "payments-egress");
}

#[tokio::test]
async fn a_tag_reference_is_refused_before_anything_is_fetched() {
    let env = Env::start().await;
    let tagged = env.reference("egress/payments:v1");
    egress::push_allowlist(env.client(), &tagged, &payments()).await.unwrap();
    let before = env.registry.count_requests("GET", "/manifests/");
    let e = egress::fetch_allowlist(env.client(), &tagged).await.unwrap_err();
    assert!(matches!(&e, EgressError::NotPinned { reference } if reference == &tagged.to_string()), "{e}");
    assert!(e.to_string().contains("is not pinned to a digest"), "{e}");
    assert_eq!(env.registry.count_requests("GET", "/manifests/"), before, "nothing was fetched");
}

#[tokio::test]
async fn artifacts_that_are_not_allowlists_are_refused_by_artifact_type() {
    let env = Env::start().await;
    let doc = payments().to_json();
    let layer = [(EGRESS_ALLOWLIST_MEDIA_TYPE, doc.as_slice())];
    let r = env.reference("egress/other:model");
    let model =
        eg::push_artifact(env.client(), &r, Some("application/vnd.cncf.model.manifest.v1+json"), &layer)
            .await
            .unwrap();
    let e = egress::fetch_allowlist(env.client(), &model).await.unwrap_err();
    assert!(
        matches!(&e, EgressError::WrongArtifactType { found, .. } if found == "application/vnd.cncf.model.manifest.v1+json"),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("not {EGRESS_ALLOWLIST_ARTIFACT_TYPE}")), "{e}");

    let untyped =
        eg::push_artifact(env.client(), &env.reference("egress/other:untyped"), None, &layer).await.unwrap();
    let e = egress::fetch_allowlist(env.client(), &untyped).await.unwrap_err();
    assert!(matches!(&e, EgressError::WrongArtifactType { found, .. } if found == "none"), "{e}");

    // An index listing a real allowlist is still not an allowlist.
    let real =
        egress::push_allowlist(env.client(), &env.reference("egress/other:real"), &payments()).await.unwrap();
    let fetched = env.client().fetch_manifest(&real).await.unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": fetched.media_type, "digest": real.digest().unwrap().to_string(),
                       "size": fetched.bytes.len(), "artifactType": EGRESS_ALLOWLIST_ARTIFACT_TYPE}]
    });
    let index_ref = env.reference("egress/other:index");
    let d = env
        .client()
        .push_manifest(&index_ref, &serde_json::to_vec(&index).unwrap(), OCI_INDEX)
        .await
        .unwrap();
    let e = egress::fetch_allowlist(env.client(), &index_ref.with_digest(d)).await.unwrap_err();
    assert!(matches!(&e, EgressError::WrongArtifactType { found, .. } if found == "an image index"), "{e}");
}

#[tokio::test]
async fn malformed_allowlist_artifacts_are_refused_with_the_reason() {
    let env = Env::start().await;
    let doc = payments().to_json();
    let t = Some(EGRESS_ALLOWLIST_ARTIFACT_TYPE);

    let two =
        [(EGRESS_ALLOWLIST_MEDIA_TYPE, doc.as_slice()), (EGRESS_ALLOWLIST_MEDIA_TYPE, b"{}".as_slice())];
    let r = eg::push_artifact(env.client(), &env.reference("egress/bad:two"), t, &two).await.unwrap();
    let e = egress::fetch_allowlist(env.client(), &r).await.unwrap_err();
    assert!(
        matches!(&e, EgressError::Malformed { reason, .. } if reason == "it has 2 layers, not exactly one"),
        "{e}"
    );

    let none: [(&str, &[u8]); 0] = [];
    let r = eg::push_artifact(env.client(), &env.reference("egress/bad:none"), t, &none).await.unwrap();
    let e = egress::fetch_allowlist(env.client(), &r).await.unwrap_err();
    assert!(matches!(&e, EgressError::Malformed { reason, .. } if reason.contains("0 layers")), "{e}");

    let wrong_media = [("application/json", doc.as_slice())];
    let r =
        eg::push_artifact(env.client(), &env.reference("egress/bad:media"), t, &wrong_media).await.unwrap();
    let e = egress::fetch_allowlist(env.client(), &r).await.unwrap_err();
    assert!(
        matches!(&e, EgressError::Malformed { reason, .. } if reason.contains("media type application/json")),
        "{e}"
    );

    // A well-formed artifact whose document breaks the schema.
    let bad_doc = br#"{"apiVersion": "vouch.dev/egress/v1", "name": "x", "hosts": [{"host": "a.example", "ports": [0]}]}"#;
    let r = eg::push_artifact(
        env.client(),
        &env.reference("egress/bad:doc"),
        t,
        &[(EGRESS_ALLOWLIST_MEDIA_TYPE, bad_doc)],
    )
    .await
    .unwrap();
    let e = egress::fetch_allowlist(env.client(), &r).await.unwrap_err();
    let EgressError::InvalidDocument { problem, .. } = &e else { panic!("{e}") };
    assert!(matches!(**problem, EgressError::Schema { .. }), "{e}");
    assert!(e.to_string().contains("/hosts/0/ports/0"), "{e}");
}

#[tokio::test]
async fn a_tampered_layer_fails_the_digest_check_though_the_signature_still_verifies() {
    let env = Env::start().await;
    let key = SigningKey::generate();
    let list = payments();
    let pinned = eg::push_signed_with_key(env.client(), &env.reference("egress/tamper:v1"), &list, &key)
        .await
        .unwrap();
    let (_, kind) = env.client().fetch_parsed_manifest(&pinned).await.unwrap();
    let vouch_attest::registry::ManifestKind::Image(m) = kind else { panic!("not an image manifest") };
    let layer = &m.layers[0];

    // Someone with write access to the registry's storage swaps the allowed host (same length).
    let original = list.to_json();
    let text = String::from_utf8(original.clone()).unwrap();
    let evil = text.replace("api.stripe.com", "api.evilxx.com");
    assert_eq!(evil.len(), original.len());
    assert_ne!(evil, text);
    eg::tamper_blob_at_rest(&env.registry.host(), &layer.digest, evil.as_bytes()).unwrap();

    // The manifest (and so its signature) is untouched, but the content no longer hashes to its digest.
    let v = env
        .verifier
        .verify(&pinned, &Authority::Key(key.public_key()), &Requirement::Signature)
        .await
        .unwrap();
    assert!(v.is_verified());
    let e = egress::fetch_allowlist(env.client(), &pinned).await.unwrap_err();
    assert!(
        matches!(&e, EgressError::Registry(RegistryError::DigestMismatch { expected, .. }) if expected == &layer.digest.to_string()),
        "{e}"
    );
    assert!(e.to_string().starts_with("content digest mismatch"), "{e}");
}

#[tokio::test]
async fn a_manifest_that_understates_its_layer_size_is_refused() {
    let env = Env::start().await;
    let doc = payments().to_json();
    let r = env.reference("egress/size:v1");
    let real = egress::push_allowlist(env.client(), &r, &payments()).await.unwrap();
    let fetched = env.client().fetch_manifest(&real).await.unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&fetched.bytes).unwrap();
    manifest["layers"][0]["size"] = (doc.len() - 10).into();
    let d = env
        .client()
        .push_manifest(
            &r.with_tag("short").unwrap(),
            &serde_json::to_vec(&manifest).unwrap(),
            &fetched.media_type,
        )
        .await
        .unwrap();
    let e = egress::fetch_allowlist(env.client(), &r.with_digest(d)).await.unwrap_err();
    assert!(
        matches!(&e, EgressError::Registry(RegistryError::TooLarge { limit, .. }) if *limit == doc.len() - 10),
        "{e}"
    );
}

#[tokio::test]
async fn an_invalid_list_built_in_code_is_never_published() {
    let env = Env::start().await;
    let mut list = payments();
    list.hosts.push(HostRule { host: "*.com".into(), ports: None });
    let before = env.registry.count_requests("PUT", "/v2/");
    let e =
        egress::push_allowlist(env.client(), &env.reference("egress/invalid:v1"), &list).await.unwrap_err();
    assert!(matches!(&e, EgressError::InvalidEntry { pointer, .. } if pointer == "/hosts/3/host"), "{e}");
    assert_eq!(env.registry.count_requests("PUT", "/v2/"), before, "nothing was uploaded");
    assert!(env.registry.count_requests("POST", "/blobs/uploads") == 0);

    // Pushing to a digest reference works when the digest is the manifest's.
    let first =
        egress::push_allowlist(env.client(), &env.reference("egress/valid:v1"), &payments()).await.unwrap();
    let by_digest = env.reference("egress/valid").with_digest(first.digest().unwrap().clone());
    let again = egress::push_allowlist(env.client(), &by_digest, &payments()).await.unwrap();
    assert_eq!(again.digest(), first.digest(), "the same list publishes to the same digest");
}

#[tokio::test]
async fn an_allowlist_signed_by_the_independent_cosign_writer_verifies() {
    let env = Env::start().await;
    let repo = env.reference("egress/handwritten");
    let pinned =
        egress::push_allowlist(env.client(), &repo.with_tag("v1").unwrap(), &payments()).await.unwrap();
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    hw::sign(env.client(), &repo, &pinned.digest().unwrap().to_string(), &key).await.unwrap();
    let authority = Authority::Key(vouch_attest::PublicKey::from_pem(&hw::public_key_pem(&key)).unwrap());
    let v = env.verifier.verify(&pinned, &authority, &Requirement::Signature).await.unwrap();
    assert!(v.is_verified(), "{:?}", v.outcome);
    assert_eq!(egress::fetch_allowlist(env.client(), &pinned).await.unwrap(), payments());
}

/// A kars egress allowlist (kars `docs/api/policy-canonical-format.md` §1).
const KARS_DOC: &str = "apiVersion: kars.dev/v1alpha1\nkind: EgressAllowlist\nmetadata:\n  name: research-agent\n  generation: 3\nspec:\n  endpoints:\n    - host: api.github.com\n      port: 443\n    - host: telegram.org\n      port: 443\n";

#[tokio::test]
async fn a_kars_allowlist_is_read_by_its_artifact_type_with_kars_semantics() {
    let env = Env::start().await;
    let key = SigningKey::generate();
    let kars = Some(KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE);
    let layer = [(KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE, KARS_DOC.as_bytes())];
    let pinned = eg::push_artifact(
        env.client(),
        &env.reference("policy/egress-allowlist/research-agent:v3"),
        kars,
        &layer,
    )
    .await
    .unwrap();
    cosign::sign_image_with_key(env.client(), &pinned, &key, BTreeMap::new()).await.unwrap();
    let v = env
        .verifier
        .verify(&pinned, &Authority::Key(key.public_key()), &Requirement::Signature)
        .await
        .unwrap();
    assert!(v.is_verified(), "signed like any artifact");

    let list = egress::fetch_any_allowlist(env.client(), &pinned).await.unwrap();
    let AnyAllowlist::Kars(k) = &list else { panic!("{list:?}") };
    assert_eq!((k.name.as_deref(), k.generation, k.endpoints.len()), (Some("research-agent"), 3, 2));
    assert_eq!(list.name(), "research-agent");
    assert!(list.covers(&endpoint("api.telegram.org:443")), "parent-domain match");
    assert!(!list.covers(&endpoint("api.telegram.org:80")));
    let out = list.uncovered(&["telegram.org:443", "evil.example.net:443"]);
    assert_eq!(out.iter().map(|u| u.endpoint.as_str()).collect::<Vec<_>>(), ["evil.example.net:443"]);
    // vouch's own reader reads vouch's format only; a vouch allowlist is still read by both.
    let e = egress::fetch_allowlist(env.client(), &pinned).await.unwrap_err();
    assert!(
        matches!(&e, EgressError::WrongArtifactType { found, .. } if found == KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE),
        "{e}"
    );
    let vouch = egress::push_allowlist(env.client(), &env.reference("egress/payments:v9"), &payments())
        .await
        .unwrap();
    assert!(matches!(
        egress::fetch_any_allowlist(env.client(), &vouch).await.unwrap(),
        AnyAllowlist::Vouch(_)
    ));

    // The layer must be the kars document's media type; the document canonical.
    let json_layer = [(EGRESS_ALLOWLIST_MEDIA_TYPE, KARS_DOC.as_bytes())];
    let r =
        eg::push_artifact(env.client(), &env.reference("policy/bad:media"), kars, &json_layer).await.unwrap();
    let e = egress::fetch_any_allowlist(env.client(), &r).await.unwrap_err();
    assert!(
        matches!(&e, EgressError::Malformed { reason, .. } if reason.contains(&format!("not {KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE}"))),
        "{e}"
    );
    let crlf = KARS_DOC.replace('\n', "\r\n");
    let r = eg::push_artifact(
        env.client(),
        &env.reference("policy/bad:crlf"),
        kars,
        &[(KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE, crlf.as_bytes())],
    )
    .await
    .unwrap();
    let e = egress::fetch_any_allowlist(env.client(), &r).await.unwrap_err();
    let EgressError::InvalidDocument { problem, .. } = &e else { panic!("{e}") };
    assert!(
        matches!(**problem, EgressError::NonCanonical { rule: CanonicalRule::Encoding, line: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("rule §0.3 UTF-8, LF line endings, single trailing newline"), "{e}");
    // The artifact type in the config media type only (OCI 1.0 style) is not an artifact type.
    let untyped =
        eg::push_artifact(env.client(), &env.reference("policy/bad:untyped"), None, &layer).await.unwrap();
    let e = egress::fetch_any_allowlist(env.client(), &untyped).await.unwrap_err();
    assert!(matches!(&e, EgressError::WrongArtifactType { found, .. } if found == "none"), "{e}");
    assert!(e.to_string().contains(KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE), "{e}");
}
