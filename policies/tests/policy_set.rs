//! Loading and validating policies: every problem of a bad policy at once, with its name; good policies
//! stay in force; List kinds, multi-document files, secrets, trust roots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use vouch_attest::SigningKey;
use vouch_policies::crd::{FailurePolicy, Mode};
use vouch_policies::{PolicyResources, PolicySet, Secrets};

fn pem() -> String {
    SigningKey::generate().public_key().to_pem()
}

fn indent(s: &str, n: usize) -> String {
    s.lines().map(|l| format!("{}{l}\n", " ".repeat(n))).collect()
}

fn good(name: &str) -> String {
    format!(
        r#"apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: {name}
spec:
  images: ["ghcr.io/acme/**"]
  authorities:
    - name: cosign-prod
      key:
        pem: |
{}
  requirements:
    signature: true
"#,
        indent(&pem(), 10)
    )
}

#[test]
fn a_good_policy_compiles_with_defaults() {
    let set = PolicySet::from_yaml_str(&good("prod-signed"));
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let p = &set.policies()[0];
    assert_eq!(p.name, "prod-signed");
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.failure_policy, FailurePolicy::Fail);
    assert!(p.authorities[0].require_tlog, "requireTlog defaults to true");
    assert_eq!(p.authorities[0].label, "key cosign-prod");
}

#[test]
fn every_problem_is_reported_at_once_and_good_policies_survive() {
    let bad = r#"
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: broken
spec:
  images: ["ghcr.io/***", "nginx"]
  match:
    namespaceSelector:
      matchExpressions: [{key: env, operator: In}]
  authorities:
    - name: k
      key: {pem: "not a key"}
    - name: id
      keyless:
        identities: [{subjectRegExp: "(", issuer: "https://issuer"}, {issuer: "x"}]
        trustRootRef: missing-root
  requirements:
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        condition: "package p\nallow if {"
"#;
    let text = format!("{}---\n{bad}---\n{}", good("first"), good("second"));
    let set = PolicySet::from_yaml_str(&text);
    let names: Vec<&str> = set.policies().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(set.problems().len(), 1);
    let p = &set.problems()[0];
    assert_eq!((p.kind.as_str(), p.name.as_str()), ("ClusterSupplyChainPolicy", "broken"));
    let all = p.problems.join("\n");
    for expected in [
        "images[0]: invalid glob \"ghcr.io/***\"",
        "images[1]: \"nginx\" does not name a registry",
        "match.namespaceSelector: matchExpressions[0] (In) needs values",
        "authorities[0].key: not a usable public key",
        "authorities[1].keyless.identities[0].subjectRegExp",
        "authorities[1].keyless.identities[1]: exactly one of subject or subjectRegExp is required",
        "authorities[1].keyless.trustRootRef: unknown trust root \"missing-root\"",
        "requirements.attestations[0].condition: rego condition broken/attestations[0].rego does not compile",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert_eq!(p.problems.len(), 8, "{all}");
    assert!(p.to_string().starts_with("ClusterSupplyChainPolicy broken: "));
}

#[test]
fn structural_problems() {
    let text = r#"
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {name: empty}
spec:
  images: []
  authorities: [{name: both, key: {pem: x}, keyless: {identities: []}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
---
apiVersion: vouch.dev/v1alpha1
kind: SupplyChainPolicy
metadata: {name: nons}
spec: {images: ["ghcr.io/a/*"], authorities: [], requirements: {signature: true}}
"#;
    let set = PolicySet::from_yaml_str(text);
    assert!(set.policies().is_empty());
    let empty = set.problems_of("ClusterSupplyChainPolicy", None, "empty").join("\n");
    assert!(empty.contains("images: at least one glob is required"), "{empty}");
    assert!(empty.contains("authorities[0]: exactly one of key, keyless or notation is required"), "{empty}");
    assert!(empty.contains("requirements: nothing is required"), "{empty}");
    let doc = set.problems().iter().find(|p| p.kind == "document").unwrap();
    assert!(doc.problems[0].contains("apiVersion \"v1\" is not vouch.dev/v1alpha1"), "{doc}");
    let nons = set.problems().iter().find(|p| p.kind == "SupplyChainPolicy").unwrap();
    assert!(nons.problems.iter().any(|p| p == "metadata.namespace is missing"), "{nons}");
}

#[test]
fn list_kinds_and_json_are_read() {
    let list = serde_json::json!({
        "apiVersion": "v1", "kind": "List",
        "items": [serde_yaml::from_str::<serde_json::Value>(&good("a")).unwrap(),
                  serde_yaml::from_str::<serde_json::Value>(&good("b")).unwrap()]
    });
    let set = PolicySet::from_yaml_str(&list.to_string());
    assert_eq!(set.policies().len(), 2, "{:?}", set.problems());
}

#[test]
fn duplicates_are_rejected() {
    let set = PolicySet::from_yaml_str(&format!("{}---\n{}", good("same"), good("same")));
    assert_eq!(set.problems()[0].problems, vec!["defined more than once"]);
    // The second definition may name other images: it stays in force as broken (fails closed).
    let broken: Vec<_> = set.policies().iter().map(|p| p.broken.as_deref()).collect();
    assert_eq!(broken, [None, Some("defined more than once")]);
}

#[test]
fn secret_refs_resolve_only_in_the_policys_namespace() {
    let text = r#"
apiVersion: vouch.dev/v1alpha1
kind: SupplyChainPolicy
metadata: {name: team, namespace: team-a}
spec:
  images: ["ghcr.io/team-a/**"]
  authorities:
    - {name: own, key: {secretRef: {name: cosign}}}
    - {name: other, key: {secretRef: {name: cosign, namespace: kube-system}}}
  requirements: {signature: true}
"#;
    let resources = PolicyResources::from_yaml_str(text, "t.yaml");
    let refs: Vec<_> = resources.secret_refs().into_iter().collect();
    assert!(refs.contains(&("team-a".to_owned(), "cosign".to_owned())));
    let mut secrets = Secrets::none();
    secrets.insert("team-a", "cosign", BTreeMap::from([("cosign.pub".to_owned(), pem().into_bytes())]));
    secrets.insert("kube-system", "cosign", BTreeMap::from([("cosign.pub".to_owned(), pem().into_bytes())]));
    let set = PolicySet::compile(resources, &secrets);
    let problems = set.problems_of("SupplyChainPolicy", Some("team-a"), "team");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("namespace \"kube-system\" is not the policy's namespace"), "{problems:?}");
}

#[test]
fn trust_roots_and_credentials_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = vouch_attest::trust_root::PUBLIC_GOOD_JSON;
    let trust_root = serde_json::json!({
        "apiVersion": "vouch.dev/v1alpha1", "kind": "TrustRoot", "metadata": {"name": "private"},
        "spec": {"trustedRootJSON": root}
    });
    std::fs::write(dir.path().join("root.json"), trust_root.to_string()).unwrap();
    std::fs::write(dir.path().join("creds.conf"), r#"{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"}}}"#)
        .unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        r#"
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {name: keyless}
spec:
  images: ["ghcr.io/acme/**"]
  credentials: {path: creds.conf}
  authorities:
    - name: ci
      keyless:
        identities: [{subjectRegExp: "https://github.com/acme/.*", issuer: "https://token.actions.githubusercontent.com"}]
        trustRootRef: private
  requirements: {signature: true, sbom: {required: true}}
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join(".hidden.yaml"), "garbage: [").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let set = PolicySet::load_dir(dir.path()).unwrap();
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    assert!(set.trust_roots().contains_key("private"));
    let p = &set.policies()[0];
    assert_eq!(p.authorities[0].trust_root.as_deref(), Some("private"));
    assert!(p.credentials.as_ref().unwrap().for_registry("ghcr.io").is_some());
    assert_eq!(p.requirements.len(), 2);
}

#[test]
fn a_bad_trust_root_disables_only_its_users() {
    let text = format!(
        r#"
apiVersion: vouch.dev/v1alpha1
kind: TrustRoot
metadata: {{name: broken}}
spec: {{trustedRootJSON: "{{}}x"}}
---
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {{name: uses-broken}}
spec:
  images: ["ghcr.io/**"]
  authorities: [{{name: ci, keyless: {{identities: [{{subject: a, issuer: b}}], trustRootRef: broken}}}}]
  requirements: {{signature: true}}
---
{}"#,
        good("independent")
    );
    let set = PolicySet::from_yaml_str(&text);
    let in_force: Vec<_> = set.policies().iter().map(|p| (p.name.as_str(), p.broken.is_some())).collect();
    assert_eq!(in_force, [("uses-broken", true), ("independent", false)]);
    assert!(!set.problems_of("TrustRoot", None, "broken").is_empty());
    let uses = set.problems_of("ClusterSupplyChainPolicy", None, "uses-broken");
    assert!(uses[0].contains("trust root \"broken\" is invalid"), "{uses:?}");
}

#[test]
fn yaml_syntax_errors_name_the_document() {
    let set = PolicySet::from_yaml_str("a: [\n");
    assert_eq!(set.problems()[0].kind, "document");
    assert!(set.problems()[0].problems[0].starts_with("not valid YAML"));
}

fn keyless_policy(identity: &str) -> String {
    format!(
        r#"
apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {{name: claims}}
spec:
  images: ["ghcr.io/acme/**"]
  authorities:
    - name: release
      keyless:
        identities:
          - {identity}
  requirements: {{signature: true}}
"#
    )
}

#[test]
fn keyless_claims_compile_into_the_authority() {
    use vouch_attest::sigstore_verify::{Authority, Claim};
    let set = PolicySet::from_yaml_str(&keyless_policy(
        r#"subjectRegExp: "https://github.com/acme/.*"
            issuer: https://token.actions.githubusercontent.com
            claims: {sourceRepositoryRef: refs/heads/main, githubWorkflowRepository: acme/app}
            claimsRegExp: {buildSignerURI: "https://github\\.com/acme/workflows/.*@refs/tags/v.*"}"#,
    ));
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let Authority::Keyless { identities } = &set.policies()[0].authorities[0].authority else { panic!() };
    let claims: Vec<(Claim, String)> =
        identities[0].claims.iter().map(|(c, m)| (*c, m.to_string())).collect();
    assert_eq!(
        claims,
        [
            (Claim::GithubWorkflowRepository, "\"acme/app\"".to_owned()),
            (Claim::BuildSignerUri, "/https://github\\.com/acme/workflows/.*@refs/tags/v.*/".to_owned()),
            (Claim::SourceRepositoryRef, "\"refs/heads/main\"".to_owned()),
        ]
    );
    // No claims: an identity as before.
    let set = PolicySet::from_yaml_str(&keyless_policy("{subject: a@b.c, issuer: https://i.example}"));
    let Authority::Keyless { identities } = &set.policies()[0].authorities[0].authority else { panic!() };
    assert!(identities[0].claims.is_empty());
}

#[test]
fn unknown_or_contradictory_claims_are_compile_problems() {
    let set = PolicySet::from_yaml_str(&keyless_policy(
        r#"subject: a@b.c
            issuer: https://i.example
            claims: {sourceRepoRef: refs/heads/main, sourceRepositoryURI: "", runnerEnvironment: github-hosted}
            claimsRegExp: {runnerEnvironment: ".*", buildTriger: ".*", sourceRepositoryOwnerURI: "("}"#,
    ));
    assert!(set.policies().is_empty() || set.policies()[0].broken.is_some());
    let problems = set.problems_of("ClusterSupplyChainPolicy", None, "claims");
    let all = problems.join("\n");
    for expected in [
        // A typo names itself and the claims that exist.
        "authorities[0].keyless.identities[0].claims: unknown claim \"sourceRepoRef\" (known: githubWorkflowTrigger,",
        "authorities[0].keyless.identities[0].claimsRegExp: unknown claim \"buildTriger\"",
        "authorities[0].keyless.identities[0].claims.sourceRepositoryURI: empty value",
        "authorities[0].keyless.identities[0]: claim runnerEnvironment is named in both claims and claimsRegExp",
        "authorities[0].keyless.identities[0].claimsRegExp.sourceRepositoryOwnerURI: invalid identity regular expression",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert_eq!(problems.len(), 5, "{all}");
}

/// A policy `who` with authorities `a` and `b` and these spec lines (requirements included).
fn signer_rules(spec: &str) -> String {
    format!(
        r#"apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: who
spec:
  images: ["ghcr.io/acme/**"]
  authorities:
    - name: a
      key:
        pem: |
{}    - name: b
      key:
        pem: |
{}{spec}"#,
        indent(&pem(), 10),
        indent(&pem(), 10)
    )
}

fn problems_of_who(spec: &str) -> String {
    let set = PolicySet::from_yaml_str(&signer_rules(spec));
    set.problems_of("ClusterSupplyChainPolicy", None, "who").join("; ")
}

#[test]
fn signer_rules_compile_into_the_requirements() {
    let set = PolicySet::from_yaml_str(&signer_rules(
        "  excludeImages: [\"ghcr.io/acme/vendor/**\"]\n  requireDigest: true\n  requirements:\n    signature: {authorities: [a, b], minAuthorities: 2, annotations: {team: payments, build: \"^ci-.*$\"}}\n    attestations: [{predicateType: \"https://slsa.dev/provenance/v1\", authorities: [b]}]\n",
    ));
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let p = &set.policies()[0];
    assert!(p.require_digest);
    assert!(p.exclude_images[0].is_match("ghcr.io/acme/vendor/sidecar"));
    let vouch_policies::policy_set::CompiledRequirement::Signature {
        authorities,
        min_authorities,
        annotations,
    } = &p.requirements[0]
    else {
        panic!("{:?}", p.requirements[0])
    };
    assert_eq!(authorities.as_ref().map(|a| a.len()), Some(2));
    assert_eq!(*min_authorities, 2);
    let signed = |team: &str, build: &str| {
        BTreeMap::from([
            ("team".to_owned(), serde_json::json!(team)),
            ("build".to_owned(), serde_json::json!(build)),
        ])
    };
    assert!(annotations.iter().all(|a| a.is_met_by(&signed("payments", "ci-1"))));
    assert!(!annotations.iter().all(|a| a.is_met_by(&signed("payments", "release-1"))), "regexp");
    assert!(!annotations.iter().all(|a| a.is_met_by(&signed("payments-eu", "ci-1"))), "exact");
    assert!(p.requirements[1].admits(&p.authorities[1]) && !p.requirements[1].admits(&p.authorities[0]));
    // `signature: true` still means: any authority, one of them.
    let set = PolicySet::from_yaml_str(&good("plain"));
    assert!(matches!(
        &set.policies()[0].requirements[0],
        vouch_policies::policy_set::CompiledRequirement::Signature { authorities: None, min_authorities: 1, annotations }
            if annotations.is_empty()
    ));
}

#[test]
fn every_bad_signer_rule_is_a_named_problem_and_the_policy_stays_broken() {
    let unknown = problems_of_who("  requirements:\n    signature: {authorities: [a, c]}\n");
    assert_eq!(
        unknown,
        r#"requirements.signature.authorities[1]: policy who has no authority named "c" (it has "a", "b")"#
    );
    let attestation = problems_of_who(
        "  requirements:\n    attestations: [{predicateType: \"https://slsa.dev/provenance/v1\", authorities: [ci]}]\n",
    );
    assert_eq!(
        attestation,
        r#"requirements.attestations[0].authorities[0]: policy who has no authority named "ci" (it has "a", "b")"#
    );
    for (n, eligible) in [(0, "2"), (3, "2")] {
        let p = problems_of_who(&format!("  requirements:\n    signature: {{minAuthorities: {n}}}\n"));
        assert_eq!(
            p,
            format!("requirements.signature.minAuthorities: {n} is not between 1 and the {eligible} eligible authorities")
        );
    }
    let narrowed = problems_of_who("  requirements:\n    signature: {authorities: [a], minAuthorities: 2}\n");
    assert_eq!(
        narrowed,
        "requirements.signature.minAuthorities: 2 is not between 1 and the 1 eligible authorities"
    );
    let regexp = problems_of_who("  requirements:\n    signature: {annotations: {build: \"^ci-($\"}}\n");
    assert!(regexp.starts_with("requirements.signature.annotations.build: "), "{regexp}");
    let typo = problems_of_who("  requirements:\n    signature: {authoritiez: [a]}\n");
    assert!(typo.starts_with("requirements.signature: unknown field `authoritiez`"), "{typo}");
    let shape = problems_of_who("  requirements:\n    signature: \"yes\"\n");
    assert_eq!(
        shape,
        "requirements.signature: must be true, false, or an object with authorities, minAuthorities and annotations"
    );
    let exclude = problems_of_who("  excludeImages: [\"sidecar\"]\n  requirements: {signature: true}\n");
    assert!(exclude.starts_with(r#"excludeImages[0]: "sidecar" does not name a registry"#), "{exclude}");
    // Each of them keeps the policy in force as broken: the images it names are denied, not let through.
    let set = PolicySet::from_yaml_str(&signer_rules("  requirements:\n    signature: \"yes\"\n"));
    assert!(set.policies()[0].broken.is_some());
}

#[test]
fn policy_features_name_every_new_field_a_bundle_reader_must_know() {
    let spec = "  excludeImages: [\"ghcr.io/acme/vendor/**\"]\n  requireDigest: true\n  requirements:\n    signature: {minAuthorities: 2}\n    attestations: [{predicateType: \"https://slsa.dev/provenance/v1\", authorities: [b]}]\n";
    let features = PolicyResources::from_yaml_str(&signer_rules(spec), "p.yaml").policy_features();
    assert_eq!(
        features.into_iter().collect::<Vec<_>>(),
        ["attestationAuthorities", "excludeImages", "requireDigest", "signatureRules"]
    );
    assert!(features_known(&["attestationAuthorities", "excludeImages", "requireDigest", "signatureRules"]));
    // The first policy format uses none: its bundles stay readable by older vouch.
    assert!(PolicyResources::from_yaml_str(&good("plain"), "p.yaml").policy_features().is_empty());
}

fn features_known(names: &[&str]) -> bool {
    names.iter().all(|n| vouch_attest::offline::policy_features::KNOWN.contains(n))
}
