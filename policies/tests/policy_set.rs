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
