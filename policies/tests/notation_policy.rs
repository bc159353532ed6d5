//! `authorities[].notation`: a Notation trust store (inline or from a secret), trusted identities and a
//! level compile into a Notation authority; every bad field is a problem naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use vouch_attest::notation::Level;
use vouch_attest::sigstore_verify::Authority;
use vouch_policies::{PolicyResources, PolicySet, Secrets};

const ROOT: &str = include_str!("../../attest/tests/data/notation/truststore/NotationTestRoot.pem");

fn indent(s: &str, n: usize) -> String {
    s.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
}

fn policy(notation: &str) -> String {
    format!(
        r#"apiVersion: vouch.dev/v1alpha1
kind: SupplyChainPolicy
metadata: {{name: notary, namespace: team-a}}
spec:
  images: ["registry.example/**"]
  authorities:
    - name: release
      notation:
{}
  requirements: {{signature: true}}
"#,
        indent(notation, 8)
    )
}

#[test]
fn inline_and_secret_trust_stores_compile_into_a_notation_authority() {
    let inline = policy(&format!(
        "trustStore:\n  pem: |\n{}trustedIdentities: [\"x509.subject: C=US, ST=WA, O=Notary, CN=Notation Test Root\"]\nlevel: permissive",
        indent(ROOT, 4)
    ));
    let set = PolicySet::from_yaml_str(&inline);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let a = &set.policies()[0].authorities[0];
    assert_eq!(a.label, "notation release");
    let Authority::Notation(n) = &a.authority else { panic!("a notation authority") };
    assert_eq!(n.level, Level::Permissive);
    assert_eq!(n.trust_store.certificates().len(), 1);

    let from_secret = policy("trustStore: {secretRef: {name: notary-ca}}\ntrustedIdentities: [\"*\"]");
    let resources = PolicyResources::from_yaml_str(&from_secret, "t.yaml");
    assert!(resources.secret_refs().contains(&("team-a".to_owned(), "notary-ca".to_owned())));
    let mut secrets = Secrets::none();
    secrets.insert("team-a", "notary-ca", BTreeMap::from([("ca.crt".to_owned(), ROOT.as_bytes().to_vec())]));
    let set = PolicySet::compile(resources, &secrets);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let Authority::Notation(n) = &set.policies()[0].authorities[0].authority else { panic!() };
    assert_eq!(n.level, Level::Strict, "strict by default");
}

#[test]
fn bad_notation_fields_are_problems_that_name_them() {
    let bad = policy(
        "trustStore: {pem: \"not a certificate\"}\ntsaTrustStore: {}\ntrustedIdentities: [\"CN=someone\", \"x509.subject: CN=x\"]",
    );
    let set = PolicySet::from_yaml_str(&bad);
    // Kept in force as broken (fail closed), never with a weakened authority.
    assert!(set.policies().iter().all(|p| p.broken.is_some() && p.authorities.is_empty()));
    let problems = set.problems_of("SupplyChainPolicy", Some("team-a"), "notary").join("\n");
    for expected in [
        "authorities[0].notation.trustStore: invalid Notation trust configuration: a trust store needs at least one certificate",
        "authorities[0].notation.tsaTrustStore: exactly one of pem or secretRef is required",
        "authorities[0].notation.trustedIdentities[0]: invalid Notation trust configuration: trusted identity \"CN=someone\"",
        "authorities[0].notation.trustedIdentities[1]:",
    ] {
        assert!(problems.contains(expected), "missing {expected:?} in:\n{problems}");
    }
    let none = policy(&format!("trustStore:\n  pem: |\n{}trustedIdentities: []", indent(ROOT, 4)));
    let problems =
        PolicySet::from_yaml_str(&none).problems_of("SupplyChainPolicy", Some("team-a"), "notary").join("\n");
    assert!(problems.contains("trustedIdentities: at least one identity"), "{problems}");
    let both = policy("trustStore: {pem: x}\ntrustedIdentities: [\"*\"]")
        .replace("    - name: release\n", "    - name: release\n      key: {pem: x}\n");
    let problems =
        PolicySet::from_yaml_str(&both).problems_of("SupplyChainPolicy", Some("team-a"), "notary").join("\n");
    assert!(problems.contains("exactly one of key, keyless or notation is required"), "{problems}");
    let bad_level = policy("trustStore: {pem: x}\ntrustedIdentities: [\"*\"]\nlevel: lenient");
    let set = PolicySet::from_yaml_str(&bad_level);
    assert!(!set.problems().is_empty(), "an unknown level is refused, not defaulted");
    assert!(set.policies().iter().all(|p| p.broken.is_some() && p.authorities.is_empty()));
}

/// A CRL from the Notation test root's name (signed by a fresh key: compiling does not check signatures,
/// verification does).
fn crl_pem() -> String {
    use vouch_attest::notation::sign::sign_crl;
    let root = vouch_attest::notation::TrustStore::from_pem(ROOT).unwrap();
    let issuer = root.certificates()[0].cert.tbs_certificate.subject.clone();
    let now = chrono::Utc::now();
    let der = sign_crl(
        &vouch_attest::SigningKey::generate(),
        &issuer,
        now,
        Some(now + chrono::Duration::days(7)),
        &[],
    )
    .unwrap();
    vouch_attest::keys::pem_encode("X509 CRL", &der)
}

#[test]
fn crls_inline_or_from_a_secret_compile_into_the_authority_and_mark_the_bundle_feature() {
    let crl = crl_pem();
    let inline = policy(&format!(
        "trustStore:\n  pem: |\n{}trustedIdentities: [\"*\"]\ncrls:\n  pem: |\n{}",
        indent(ROOT, 4),
        indent(&crl, 4)
    ));
    let set = PolicySet::from_yaml_str(&inline);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let Authority::Notation(n) = &set.policies()[0].authorities[0].authority else { panic!("notation") };
    assert_eq!(n.crls.crls().len(), 1);
    let resources = PolicyResources::from_yaml_str(&inline, "t.yaml");
    let features = resources.policies[0].spec.policy.policy_features();
    assert!(features.contains(vouch_attest::offline::policy_features::NOTATION_CRLS), "{features:?}");

    // From a secret (default key crl.pem), which may hold DER as well as PEM.
    let from_secret = policy(&format!(
        "trustStore:\n  pem: |\n{}trustedIdentities: [\"*\"]\ncrls: {{secretRef: {{name: notary-crls}}}}",
        indent(ROOT, 4)
    ));
    let resources = PolicyResources::from_yaml_str(&from_secret, "t.yaml");
    assert!(resources.secret_refs().contains(&("team-a".to_owned(), "notary-crls".to_owned())));
    let der = vouch_attest::keys::pem_decode_all(&crl).unwrap().remove(0).1;
    let mut secrets = Secrets::none();
    secrets.insert("team-a", "notary-crls", BTreeMap::from([("crl.pem".to_owned(), der)]));
    let set = PolicySet::compile(resources, &secrets);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let Authority::Notation(n) = &set.policies()[0].authorities[0].authority else { panic!("notation") };
    assert_eq!(n.crls.crls().len(), 1);

    // A bad CRL is a problem naming the field, and the policy stays in force as broken.
    for (crls, expected) in [
        (
            "crls: {pem: \"not a crl\"}",
            "authorities[0].notation.crls: invalid Notation trust configuration: CRL: not a DER CRL",
        ),
        ("crls: {}", "authorities[0].notation.crls: exactly one of pem or secretRef is required"),
    ] {
        let bad =
            policy(&format!("trustStore:\n  pem: |\n{}trustedIdentities: [\"*\"]\n{crls}", indent(ROOT, 4)));
        let set = PolicySet::from_yaml_str(&bad);
        assert!(set.policies().iter().all(|p| p.broken.is_some() && p.authorities.is_empty()));
        let problems = set.problems_of("SupplyChainPolicy", Some("team-a"), "notary").join("\n");
        assert!(problems.contains(expected), "missing {expected:?} in:\n{problems}");
    }
}
