//! Fixed material shared by the fuzz targets: trust roots, keys, a fixed "now", compiled configurations.
//! Everything here is built once per process; a target only feeds the fuzzer's bytes through the parser
//! (and the checks that follow it) as the webhook, `vouch check` and `vouch bundle` do.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use vouch_attest::sigstore_verify::{CertificateIdentity, VerificationPolicy, Verifier};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::{ArtifactRef, PublicKey, SigningKey};
use vouch_policies::compliance::CompiledProfile;
use vouch_policies::extract::{CompiledExtraction, ExtractionConfig};
use vouch_policies::rego::RegoCondition;
use vouch_policies::PolicySet;

/// The conformance suite's signed artifact (`bundle-verify/a.txt`).
pub const ARTIFACT: &[u8] = include_bytes!("../fixtures/a.txt");
/// Key and trust root of the conformance case `managed-key-and-trusted-root`.
const MANAGED_KEY_PEM: &str = include_str!("../fixtures/managed-key.pub");
const MANAGED_ROOT_JSON: &[u8] = include_bytes!("../fixtures/managed-key.trusted_root.json");
/// The OpenSSF model-signing test key (`model-signing/ms-key.pub`).
const MODEL_KEY_PEM: &str = include_str!("../fixtures/ms-key.pub");
/// The conformance suite's default keyless identity.
const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The extraction configuration of docs/extractors.md (a CRD with JSONPath fields, fetcher profiles).
pub const EXTRACTION_YAML: &str = r#"
extractors:
  - apiVersion: ml.example.com/v1alpha1
    kind: ModelDeployment
    paths: ["$.spec.model.uri", "$.spec.adapters[*].ref"]
    prefix: "oci://"
    egressAllowlistPaths: ["$.spec.egress.allowlist"]
    egressEndpointPaths: ["$.spec.allowedEndpoints", "$.spec.tools[*].endpoint"]
fetchers:
  - name: puller
    image: registry.example.com/tools/puller
    flag: --from
    prefix: "oci://"
  - name: model-loader
    image: "**/model-loader"
    env: MODEL_REF
  - name: fetch-tool
    image: ghcr.io/acme/fetch
    arg: 1
"#;

/// A fixed "now" (after every test bundle was signed), so that runs are reproducible.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().unwrap_or_else(Utc::now)
}

fn once<T>(cell: &'static OnceLock<T>, init: impl FnOnce() -> T) -> &'static T {
    cell.get_or_init(init)
}

/// The built-in extraction (no configuration) and the documented one, compiled.
pub fn extractions() -> &'static [CompiledExtraction; 2] {
    static CELL: OnceLock<[CompiledExtraction; 2]> = OnceLock::new();
    once(&CELL, || {
        let default = ExtractionConfig::default().compile().expect("default extraction compiles");
        let docs = ExtractionConfig::from_yaml_str(EXTRACTION_YAML)
            .expect("documented extraction reads")
            .compile()
            .expect("documented extraction compiles");
        [default, docs]
    })
}

/// The Sigstore public-good trust root (embedded in vouch-attest).
pub fn public_good() -> &'static Verifier {
    static CELL: OnceLock<Verifier> = OnceLock::new();
    once(&CELL, || Verifier::new(TrustRoot::public_good().expect("public-good root reads")))
}

/// The conformance suite's private trust root for its managed key.
pub fn managed_root() -> &'static Verifier {
    static CELL: OnceLock<Verifier> = OnceLock::new();
    once(&CELL, || Verifier::new(TrustRoot::from_json(MANAGED_ROOT_JSON).expect("managed root reads")))
}

/// The managed key.
pub fn managed_key() -> &'static PublicKey {
    static CELL: OnceLock<PublicKey> = OnceLock::new();
    once(&CELL, || PublicKey::from_pem(MANAGED_KEY_PEM).expect("managed key reads"))
}

/// The model-signing key.
pub fn model_key() -> &'static PublicKey {
    static CELL: OnceLock<PublicKey> = OnceLock::new();
    once(&CELL, || PublicKey::from_pem(MODEL_KEY_PEM).expect("model key reads"))
}

/// Keyless with the conformance identity; key-based with the managed key (tlog required); key-based with
/// the model key (no tlog, as model signatures are made).
pub fn policies() -> &'static [(&'static Verifier, VerificationPolicy); 3] {
    static CELL: OnceLock<[(&'static Verifier, VerificationPolicy); 3]> = OnceLock::new();
    once(&CELL, || {
        [
            (public_good(), VerificationPolicy::keyless(vec![CertificateIdentity::exact(IDENTITY, ISSUER)])),
            (managed_root(), VerificationPolicy::key(managed_key().clone())),
            (public_good(), VerificationPolicy::key(model_key().clone()).without_tlog()),
        ]
    })
}

/// The shipped SLSA builder condition (with one trusted builder) and the documented compliance profiles.
pub fn rego() -> &'static (ArtifactRef, Vec<RegoCondition>, Vec<Arc<CompiledProfile>>) {
    static CELL: OnceLock<(ArtifactRef, Vec<RegoCondition>, Vec<Arc<CompiledProfile>>)> = OnceLock::new();
    once(&CELL, || {
        let pinned: ArtifactRef =
            "ghcr.io/acme/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .parse()
                .expect("reference reads");
        let module = SLSA_BUILDER_REGO.replace("{{BUILDERS}}", "\"https://github.com/actions/runner\"");
        let conditions =
            vec![RegoCondition::compile("slsa-builder.rego", &module).expect("condition compiles")];
        let set = PolicySet::from_yaml_str(PROFILES_YAML);
        let profiles: Vec<_> = set.profiles().values().filter_map(|p| p.compiled.clone().ok()).collect();
        assert_eq!(profiles.len(), 2, "both documented profiles compile: {:?}", set.problems());
        (pinned, conditions, profiles)
    })
}

const SLSA_BUILDER_REGO: &str = include_str!("../../policies/rego/slsa-builder.rego");

/// The profiles of docs/compliance.md.
const PROFILES_YAML: &str = r#"
apiVersion: vouch.dev/v1alpha1
kind: ComplianceProfile
metadata:
  name: regulated-v1
spec:
  annotations:
    - key: org.opencontainers.image.source
      pattern: "https://github.com/acme/.+"
    - key: org.opencontainers.image.licenses
      in: manifest
      values: [Apache-2.0, MIT]
  attestations:
    - predicateType: https://slsa.dev/provenance/v1
      builderIdPattern: "https://github.com/actions/runner(/.*)?"
  sbom:
    minSpecVersion: "1.5"
---
apiVersion: vouch.dev/v1alpha1
kind: ComplianceProfile
metadata:
  name: models-v1
spec:
  annotations:
    - key: org.cncf.model.openness
      in: manifest
      values: [open, open-weights]
  model:
    required: true
    allowedLicenses: [Apache-2.0, MIT, BSD-3-Clause]
    deniedFormats: [pickle]
    requireSourceUrl: true
"#;

/// The GitOps example policy (docs/examples/gitops/policies).
const EXAMPLE_POLICY_YAML: &str = include_str!("../../docs/examples/gitops/policies/shop-signed.yaml");

/// Test-only key that signs the offline bundle seeds (fixtures/bundle-key.pem; never used elsewhere).
const BUNDLE_KEY_PEM: &str = include_str!("../fixtures/bundle-key.pem");

/// The offline bundle key.
pub fn bundle_signing_key() -> &'static SigningKey {
    static CELL: OnceLock<SigningKey> = OnceLock::new();
    once(&CELL, || SigningKey::from_pkcs8_pem(BUNDLE_KEY_PEM).expect("bundle key reads"))
}

/// Its public half.
pub fn bundle_key() -> &'static PublicKey {
    static CELL: OnceLock<PublicKey> = OnceLock::new();
    once(&CELL, || bundle_signing_key().public_key())
}

/// Write seed bundles for the `offline_bundle` target into `dir` (made with vouch's own bundle writer,
/// created at [`now`] minus a day, expiring a year later): one signed with [`bundle_signing_key`], one
/// unsigned.
pub fn write_offline_seeds(dir: &std::path::Path) -> Result<(), String> {
    use vouch_attest::offline::{bundle_entries, write_tar, BundleSpec, CoveredArtifact, Recorder};
    use vouch_attest::registry::OCI_MANIFEST;
    use vouch_attest::Digest;

    let config = br#"{"architecture":"amd64","os":"linux","config":{"Labels":{"org.opencontainers.image.source":"https://github.com/acme/app"}}}"#;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[],"annotations":{{"org.opencontainers.image.licenses":"MIT"}}}}"#,
        Digest::sha256_of(config),
        config.len()
    );
    let digest = Digest::sha256_of(manifest.as_bytes());
    let recorder = Recorder::new(1 << 20);
    let reference: ArtifactRef = "reg.example/app:1".parse().map_err(|e| format!("{e}"))?;
    recorder.tag(&reference, Some(&digest));
    let sig_tag =
        reference.with_tag(&format!("{}.sig", digest.cosign_tag_stem())).map_err(|e| format!("{e}"))?;
    recorder.tag(&sig_tag, None);
    recorder.manifest(&digest, OCI_MANIFEST, manifest.as_bytes());
    recorder.blob(&Digest::sha256_of(config), config);
    let created = now() - chrono::Duration::days(1);
    let spec = BundleSpec {
        recording: recorder.snapshot().map_err(|e| format!("{e}"))?,
        artifacts: vec![CoveredArtifact {
            reference: reference.to_string(),
            digest,
            media_type: OCI_MANIFEST.into(),
        }],
        policies: vec![("shop-signed.yaml".into(), EXAMPLE_POLICY_YAML.into())],
        policy_features: vec![],
        trusted_root_json: Some(MANAGED_ROOT_JSON.to_vec()),
        keys: vec![("managed".into(), MANAGED_KEY_PEM.into())],
        created,
        expires: created + chrono::Duration::days(365),
    };
    for (name, key) in [("signed.tar", Some(bundle_signing_key())), ("unsigned.tar", None)] {
        let (_, entries) = bundle_entries(&spec, key).map_err(|e| format!("{e}"))?;
        write_tar(&dir.join(name), &entries, 0).map_err(|e| format!("{e}"))?;
    }
    Ok(())
}

/// The Notary Project trust material of attest/tests/data/notation (notation-go's test vectors).
const NOTATION_CA_PEM: &str = include_str!("../../attest/tests/data/notation/truststore/NotationTestRoot.pem");
const NOTATION_ALPINE_PEM: &str = include_str!("../../attest/tests/data/notation/truststore/TestTimestamp.crt");
const NOTATION_TSA_PEM: &str = include_str!("../../attest/tests/data/notation/truststore/tsa-globalsignRoot.pem");

/// Notation authorities the envelope targets verify against: strict with a TSA store and no CRL; audit
/// (every check runs, failures logged) with a CRL for the test root that its key did not sign, so the
/// revocation path runs to its end.
pub fn notation_authorities() -> &'static [vouch_attest::notation::NotationAuthority] {
    use vouch_attest::notation::{CrlStore, Level, NotationAuthority, TrustStore, TrustStoreKind, TrustedIdentity};
    static CELL: OnceLock<Vec<NotationAuthority>> = OnceLock::new();
    once::<Vec<NotationAuthority>>(&CELL, || {
        let Ok(store) = TrustStore::from_pem_as(TrustStoreKind::Ca, &format!("{NOTATION_CA_PEM}{NOTATION_ALPINE_PEM}"))
        else {
            return Vec::new();
        };
        let tsa = TrustStore::from_pem_as(TrustStoreKind::Tsa, NOTATION_TSA_PEM).ok();
        let crls = store
            .certificates()
            .first()
            .and_then(|root| {
                let name = root.cert.tbs_certificate.subject.clone();
                let crl = vouch_attest::notation::sign::sign_crl(
                    bundle_signing_key(),
                    &name,
                    now() - chrono::Duration::days(1),
                    Some(now() + chrono::Duration::days(1)),
                    &[],
                )
                .ok()?;
                CrlStore::from_bytes(&crl).ok()
            })
            .unwrap_or_default();
        let strict = NotationAuthority {
            trust_store: store,
            tsa_trust_store: tsa,
            crls: CrlStore::default(),
            identities: vec![TrustedIdentity::Any],
            level: Level::Strict,
        };
        let audit = NotationAuthority { crls, level: Level::Audit, ..strict.clone() };
        vec![strict, audit]
    })
}

/// The manifests the Notation test vectors sign (docker v2 `60043c…`, `c0669e…`; OCI `19dbd2…`).
pub fn notation_targets() -> &'static [vouch_attest::notation::ExpectedTarget] {
    use vouch_attest::notation::ExpectedTarget;
    static CELL: OnceLock<Vec<ExpectedTarget>> = OnceLock::new();
    once::<Vec<ExpectedTarget>>(&CELL, || {
        let docker = "application/vnd.docker.distribution.manifest.v2+json";
        let oci = "application/vnd.oci.image.manifest.v1+json";
        [
            (docker, "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e", 528),
            (docker, "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda", 528),
            (oci, "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0", 481),
        ]
        .into_iter()
        .filter_map(|(media_type, digest, size)| {
            Some(ExpectedTarget { media_type: media_type.into(), digest: digest.parse().ok()?, size })
        })
        .collect()
    })
}
