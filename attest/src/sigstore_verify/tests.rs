use super::*;
use crate::intoto::InTotoError;
use crate::sigstore_verify::testutil::{conformance, testdata, Conformance};

const ID: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GH: &str = "https://token.actions.githubusercontent.com";

fn load(suite: &Conformance, name: &str) -> (Bundle, Vec<u8>) {
    let dir = suite.case(name);
    let bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
    let artifact = std::fs::read(suite.dir().join("a.txt")).unwrap();
    (bundle, artifact)
}

fn public_good() -> Verifier {
    Verifier::new(TrustRoot::public_good().unwrap())
}

/// Real npm provenance (`attest/tests/data/npm-provenance/`): the subject is the tarball's sha512 only.
#[test]
fn npm_provenance_with_a_sha512_subject_verifies_for_its_signer_only() {
    const NPM_ID: &str =
        "https://github.com/microsoft/playwright-cli/.github/workflows/publish.yml@refs/tags/v0.1.1";
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/npm-provenance");
    let bundle =
        Bundle::from_json(&std::fs::read(dir.join("playwright-cli-0.1.1-provenance.sigstore.json")).unwrap())
            .unwrap();
    let tarball = std::fs::read(dir.join("playwright-cli-0.1.1.tgz")).unwrap();
    let v = public_good();
    let signer = VerificationPolicy::keyless(vec![CertificateIdentity::exact(NPM_ID, GH)]);
    let got = v.verify(&bundle, Artifact::Bytes(&tarball), &signer).unwrap();
    assert!(matches!(&got.signer, SignerFacts::Certificate { subject, .. } if subject == NPM_ID));
    // The tarball's sha512 given as a digest, alone or beside its sha256, matches too.
    let sha512 = Digest::of(DigestAlgorithm::Sha512, &tarball);
    v.verify(&bundle, Artifact::Digest(sha512.clone()), &signer).unwrap();
    v.verify(&bundle, Artifact::Digests(vec![Digest::sha256_of(&tarball), sha512]), &signer).unwrap();
    let err = v.verify(&bundle, Artifact::Digests(Vec::new()), &signer).unwrap_err();
    assert!(matches!(err, VerifyError::Artifact(ArtifactError::NoDigest)), "{err}");
    // Another signer is refused.
    let other = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let err = v.verify(&bundle, Artifact::Bytes(&tarball), &other).unwrap_err();
    assert!(!matches!(err, VerifyError::Artifact(_)), "{err}");
    // Other bytes are refused, and so is the tarball known only by sha256 (the subject has none).
    let mut changed = tarball.clone();
    changed[100] ^= 1;
    let err = v.verify(&bundle, Artifact::Bytes(&changed), &signer).unwrap_err();
    assert!(
        matches!(err, VerifyError::Artifact(ArtifactError::Statement(InTotoError::SubjectMismatch { .. }))),
        "{err}"
    );
    let err = v.verify(&bundle, Artifact::Digest(Digest::sha256_of(&tarball)), &signer).unwrap_err();
    assert!(
        matches!(err, VerifyError::Artifact(ArtifactError::Statement(InTotoError::NoCommonAlgorithm { .. }))),
        "{err}"
    );
}

/// A trust-root entry left out for breaking a rule (here: a log key validity without start) trusts
/// nothing: the bundle its log vouches for no longer verifies, and the entry is named.
#[test]
fn a_log_left_out_of_the_trust_root_verifies_nothing() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact) = load(&suite, "happy-path-v0.3");
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let mut doc: serde_json::Value = serde_json::from_str(crate::trust_root::PUBLIC_GOOD_JSON).unwrap();
    for log in doc["tlogs"].as_array_mut().unwrap() {
        log["publicKey"]["validFor"].as_object_mut().unwrap().remove("start");
    }
    let root = TrustRoot::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_eq!(root.ignored().len(), 2, "{:?}", root.ignored());
    assert!(root.tlogs.is_empty());
    let err = Verifier::new(root).verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Tlog { .. } | VerifyError::TlogThreshold { .. }), "{err}");
    public_good().verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap();
}

/// A large file hashed as a stream is given as several digests: a message signature is checked over
/// the digest the bundle names (sha256 here), whatever the order.
#[test]
fn message_signatures_verify_against_a_set_of_digests() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact) = load(&suite, "happy-path-v0.3");
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let sha512 = Digest::of(DigestAlgorithm::Sha512, &artifact);
    let both = Artifact::Digests(vec![sha512.clone(), Digest::sha256_of(&artifact)]);
    public_good().verify(&bundle, both, &policy).unwrap();
    let wrong = Artifact::Digests(vec![Digest::sha256_of(b"other"), sha512]);
    let err = public_good().verify(&bundle, wrong, &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Artifact(ArtifactError::DigestMismatch { .. })), "{err}");
}

#[test]
fn keyless_happy_path_reports_signer_and_time() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact) = load(&suite, "happy-path-v0.3");
    let v = public_good();
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let got = v.verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap();
    let SignerFacts::Certificate { subject, issuer, not_before, not_after } = &got.signer else { panic!() };
    assert_eq!((subject.as_str(), issuer.as_str()), (ID, GH));
    let t = got.signing_time.unwrap();
    assert!(*not_before <= t && t <= *not_after);
    assert_eq!(got.tlog_entries.len(), 1);
    assert!(got.dsse_payload.is_none());
    // The same by digest.
    v.verify(&bundle, Artifact::Digest(Digest::sha256_of(&artifact)), &policy).unwrap();
}

#[test]
fn wrong_identity_issuer_or_regex_is_an_identity_error() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact) = load(&suite, "happy-path-v0.3");
    let v = public_good();
    let check = |id: CertificateIdentity| {
        v.verify(&bundle, Artifact::Bytes(&artifact), &VerificationPolicy::keyless(vec![id]))
    };
    assert!(matches!(
        check(CertificateIdentity::exact("https://github.com/other", GH)),
        Err(VerifyError::Identity(_))
    ));
    assert!(matches!(
        check(CertificateIdentity::exact(ID, "https://accounts.google.com")),
        Err(VerifyError::Identity(_))
    ));
    let re = |s: &str| CertificateIdentity::new(Matcher::regex(s).unwrap(), Matcher::Exact(GH.into()));
    check(re(r"https://github\.com/sigstore-conformance/.*")).unwrap();
    // Anchored: a prefix alone does not match.
    assert!(matches!(check(re(r"https://github\.com/sigstore-conformance/")), Err(VerifyError::Identity(_))));
}

#[test]
fn real_github_actions_claims_admit_and_another_ref_is_denied_naming_the_claim() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact) = load(&suite, "happy-path-v0.3");
    let v = public_good();
    let exact = |s: &str| Matcher::Exact(s.to_owned());
    let repo = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon";
    let with = |claim: Claim, m: Matcher| {
        CertificateIdentity::exact(ID, GH)
            .with_claim(Claim::SourceRepositoryUri, exact(repo))
            .with_claim(
                Claim::GithubWorkflowRepository,
                exact("sigstore-conformance/extremely-dangerous-public-oidc-beacon"),
            )
            .with_claim(Claim::RunnerEnvironment, exact("github-hosted"))
            .with_claim(claim, m)
    };
    let check = |id: CertificateIdentity| {
        v.verify(&bundle, Artifact::Bytes(&artifact), &VerificationPolicy::keyless(vec![id]))
    };
    // The certificate's actual claims, in both encodings (.5 raw, .12/.11/.14 DER).
    check(with(Claim::SourceRepositoryRef, exact("refs/heads/main"))).unwrap();
    check(with(Claim::GithubWorkflowRef, Matcher::regex("refs/heads/(main|master)").unwrap())).unwrap();
    // Another ref: denied, naming the claim and the certificate's value.
    let err = check(with(Claim::SourceRepositoryRef, exact("refs/heads/release"))).unwrap_err();
    assert!(matches!(err, VerifyError::Identity(IdentityError::ClaimMismatch { .. })), "{err}");
    assert!(
        err.to_string()
            .ends_with(r#"claim sourceRepositoryRef: "refs/heads/main" does not match "refs/heads/release""#),
        "{err}"
    );
    // The older v0.1 certificate (2023) predates the visibility extension: absent, and said so.
    let (old, artifact) = load(&suite, "happy-path-v0.1");
    let err = v
        .verify(
            &old,
            Artifact::Bytes(&artifact),
            &VerificationPolicy::keyless(vec![with(
                Claim::SourceRepositoryVisibilityAtSigning,
                exact("public"),
            )]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("claim sourceRepositoryVisibilityAtSigning is absent"), "{err}");
}

#[test]
fn artifact_must_be_the_signed_one() {
    let Some(suite) = conformance() else { return };
    let (bundle, _) = load(&suite, "happy-path-v0.3");
    let v = public_good();
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let err = v.verify(&bundle, Artifact::Bytes(b"other"), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Artifact(ArtifactError::DigestMismatch { .. })), "{err}");
    let err = v.verify(&bundle, Artifact::Digest(Digest::sha256_of(b"other")), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Artifact(_)), "{err}");
    // Without the messageDigest hint the signature itself must fail.
    let mut no_hint = bundle.clone();
    if let BundleContent::MessageSignature { digest, .. } = &mut no_hint.content {
        *digest = None;
    }
    let err = v.verify(&no_hint, Artifact::Bytes(b"other"), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Signature(_)), "{err}");
}

#[test]
fn signing_time_in_the_future_and_threshold_and_policy_rules() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact) = load(&suite, "happy-path-v0.3");
    let v = public_good();
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let before = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let err = v.verify_at(&bundle, Artifact::Bytes(&artifact), &policy, before).unwrap_err();
    assert!(err.to_string().contains("lies in the future"), "{err}");
    let mut two = policy.clone();
    two.tlog_threshold = 2;
    assert!(matches!(
        v.verify(&bundle, Artifact::Bytes(&artifact), &two),
        Err(VerifyError::TlogThreshold { verified: 1, required: 2 })
    ));
    let mut no_tlog = policy.clone();
    no_tlog.require_tlog = false;
    assert!(matches!(v.verify(&bundle, Artifact::Bytes(&artifact), &no_tlog), Err(VerifyError::Policy(_))));
    // A key policy does not accept a certificate-signed bundle.
    let key = crate::keys::SigningKey::generate().public_key();
    assert!(matches!(
        v.verify(&bundle, Artifact::Bytes(&artifact), &VerificationPolicy::key(key)),
        Err(VerifyError::Signer(_))
    ));
    // Without the SET the entry still verifies by its proof, but nothing vouches for a signing time.
    let mut no_set = bundle.clone();
    no_set.verification_material.tlog_entries[0].inclusion_promise = None;
    let err = v.verify(&no_set, Artifact::Bytes(&artifact), &policy).unwrap_err();
    assert!(err.to_string().contains("no verified signing time"), "{err}");
    // An entry from a log the trust root does not hold.
    let mut root = TrustRoot::public_good().unwrap();
    root.tlogs.clear();
    let err = Verifier::new(root).verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Tlog { index: 0, .. }), "{err}");
}

#[test]
fn certificate_must_chain_to_the_trust_root() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact) = load(&suite, "happy-path-v0.3");
    let mut root = TrustRoot::public_good().unwrap();
    root.certificate_authorities.clear();
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let err = Verifier::new(root).verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap_err();
    assert!(err.to_string().contains("does not lead to a trusted Fulcio CA"), "{err}");
}

#[test]
fn model_signing_bundle_verifies_with_key_and_no_tlog() {
    let Some(data) = testdata() else { return };
    let dir = data.join("model-signing");
    let bundle = Bundle::from_json(&std::fs::read(dir.join("model.sig")).unwrap()).unwrap();
    let key = PublicKey::from_pem(&std::fs::read_to_string(dir.join("ms-key.pub")).unwrap()).unwrap();
    let payload = match &bundle.content {
        BundleContent::Dsse(env) => env.payload_bytes().unwrap(),
        BundleContent::MessageSignature { .. } => panic!("expected DSSE"),
    };
    let statement = crate::intoto::Statement::from_json(&payload).unwrap();
    let subject: Digest = format!("sha256:{}", statement.subjects[0].digest["sha256"]).parse().unwrap();
    let v = public_good();
    let policy = VerificationPolicy::key(key.clone()).without_tlog();
    let got = v.verify(&bundle, Artifact::Digest(subject.clone()), &policy).unwrap();
    assert_eq!(got.signer, SignerFacts::Key { fingerprint: key.fingerprint() });
    assert_eq!(got.dsse_payload.unwrap().1, payload);
    assert_eq!(got.signing_time, None);
    // Another model digest is not the subject.
    let err = v.verify(&bundle, Artifact::Digest(Digest::sha256_of(b"x")), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Artifact(ArtifactError::Statement(_))), "{err}");
    // The tlog is required unless turned off.
    assert!(matches!(
        v.verify(&bundle, Artifact::Digest(subject.clone()), &VerificationPolicy::key(key)),
        Err(VerifyError::TlogThreshold { verified: 0, .. })
    ));
    // Another key does not verify the envelope.
    let other = VerificationPolicy::key(crate::keys::SigningKey::generate().public_key()).without_tlog();
    assert!(matches!(v.verify(&bundle, Artifact::Digest(subject), &other), Err(VerifyError::Signature(_))));
}

fn load_with_root(suite: &Conformance, name: &str) -> (Bundle, Vec<u8>, TrustRoot) {
    let dir = suite.case(name);
    let bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
    let artifact_path =
        if dir.join("artifact").is_file() { dir.join("artifact") } else { suite.dir().join("a.txt") };
    let root = TrustRoot::from_json(&std::fs::read(dir.join("trusted_root.json")).unwrap()).unwrap();
    (bundle, std::fs::read(artifact_path).unwrap(), root)
}

#[test]
fn rekor_v2_log_key_must_be_valid_at_the_timestamp() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact, mut root) = load_with_root(&suite, "rekor2-timestamp-without-embedded-cert");
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let got = Verifier::new(root.clone()).verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap();
    assert!(got.tlog_entries[0].rekor_v2);
    assert_eq!(got.timestamps.len(), 1);
    assert_eq!(got.signing_time, got.timestamps.first().copied());
    let log_id = &bundle.verification_material.tlog_entries[0].log_id;
    let log = root.tlogs.iter_mut().find(|l| &l.log_id == log_id).unwrap();
    log.valid_for.end = Some(DateTime::from_timestamp(1_600_000_000, 0).unwrap());
    let err = Verifier::new(root).verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap_err();
    assert!(err.to_string().contains("outside the validity of the key of the rekor v2 log"), "{err}");
    // Without its timestamp a Rekor v2 entry gives no signing time.
    let mut no_ts = bundle.clone();
    no_ts.verification_material.timestamps.clear();
    let (_, _, root) = load_with_root(&suite, "rekor2-timestamp-without-embedded-cert");
    let err = Verifier::new(root).verify(&no_ts, Artifact::Bytes(&artifact), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Time(_)), "{err}");
}

#[test]
fn sct_check_is_what_rejects_an_unknown_ct_log() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact, root) = load_with_root(&suite, "invalid-ct-key_fail");
    let mut policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let v = Verifier::new(root);
    assert!(matches!(v.verify(&bundle, Artifact::Bytes(&artifact), &policy), Err(VerifyError::Sct(_))));
    policy.require_sct = false;
    v.verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap();
}

#[test]
fn dsse_statement_must_name_the_artifact() {
    let Some(suite) = conformance() else { return };
    let (bundle, artifact, root) = load_with_root(&suite, "intoto-with-custom-trust-root");
    let policy = VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)]);
    let v = Verifier::new(root);
    let got = v.verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap();
    assert_eq!(got.dsse_payload.unwrap().0, crate::dsse::IN_TOTO_PAYLOAD_TYPE);
    v.verify(&bundle, Artifact::Digest(Digest::sha256_of(&artifact)), &policy).unwrap();
    let err = v.verify(&bundle, Artifact::Bytes(b"not the subject"), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::Artifact(ArtifactError::Statement(_))), "{err}");
}

#[test]
fn verifier_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Verifier>();
}
