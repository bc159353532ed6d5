//! `vouch verify IMAGE`: cosign-style verification of one image, by digest, from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use vouch_attest::keys::pem_encode;
use vouch_attest::notation::verify::CheckResult;
use vouch_attest::notation::{
    CrlStore, Level, NotationAuthority, TrustStore, TrustStoreKind, TrustedIdentity,
};
use vouch_attest::sigstore_verify::{Authority, CertificateIdentity, Claim, Matcher};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{
    ArtifactVerifier, Facts, Requirement, Signer, Verdict, VerifierConfig, VerifyOptions,
};
use vouch_attest::{ArtifactRef, PublicKey};

use super::exit::{EXIT_ERROR, EXIT_OK, EXIT_REJECTED};
use super::registry_args::{positive_duration, FlagFileError, RegistryArgs};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per fact, for people.
    Text,
    /// The verdict as JSON, for programs.
    Json,
}

/// Who must have signed, named as cosign names it: `--key`, or a keyless identity and issuer.
#[derive(Debug, clap::Args)]
pub struct AuthorityArgs {
    /// Verify with this PEM public key (ECDSA P-256/P-384, Ed25519, RSA).
    #[arg(long, conflicts_with_all = ["certificate_identity", "certificate_identity_regexp"])]
    pub key: Option<PathBuf>,
    /// Keyless: the certificate's identity (SAN), exactly.
    #[arg(long, conflicts_with = "certificate_identity_regexp")]
    pub certificate_identity: Option<String>,
    /// Keyless: the certificate's identity (SAN), as a regular expression matching the whole SAN.
    #[arg(long)]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer, exactly.
    #[arg(long, conflicts_with = "certificate_oidc_issuer_regexp")]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: the OIDC issuer, as a regular expression matching the whole issuer.
    #[arg(long)]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Keyless: the GitHub Workflow Trigger extension (1.3.6.1.4.1.57264.1.2, the token's `event_name`),
    /// exactly, as cosign checks it. Empty: not checked.
    #[arg(long, conflicts_with = "key")]
    pub certificate_github_workflow_trigger: Option<String>,
    /// Keyless: the GitHub Workflow SHA extension (1.3.6.1.4.1.57264.1.3, the token's `sha`), exactly.
    #[arg(long, conflicts_with = "key")]
    pub certificate_github_workflow_sha: Option<String>,
    /// Keyless: the GitHub Workflow Name extension (1.3.6.1.4.1.57264.1.4, the token's `workflow`), exactly.
    #[arg(long, conflicts_with = "key")]
    pub certificate_github_workflow_name: Option<String>,
    /// Keyless: the GitHub Workflow Repository extension (1.3.6.1.4.1.57264.1.5, the token's `repository`,
    /// `owner/name`), exactly.
    #[arg(long, conflicts_with = "key")]
    pub certificate_github_workflow_repository: Option<String>,
    /// Keyless: the GitHub Workflow Ref extension (1.3.6.1.4.1.57264.1.6, the token's `ref`), exactly.
    #[arg(long, conflicts_with = "key")]
    pub certificate_github_workflow_ref: Option<String>,
    /// Notation: the trust store, a PEM file of certificates or a directory of PEM/DER certificate files
    /// (Notation's `~/.config/notation/truststore/x509/ca/NAME` layout works as it is).
    #[arg(long, conflicts_with_all = ["key", "certificate_identity", "certificate_identity_regexp"])]
    pub notation_trust_store: Option<PathBuf>,
    /// Notation: the trust store's type, `ca` (signatures of scheme notary.x509) or `signingAuthority`.
    #[arg(long, default_value = "ca", requires = "notation_trust_store")]
    pub notation_trust_store_type: String,
    /// Notation: a `tsa` trust store for RFC 3161 countersignatures (file or directory, as above).
    #[arg(long, requires = "notation_trust_store")]
    pub notation_tsa_trust_store: Option<PathBuf>,
    /// Notation: a trusted identity, `x509.subject: C=…, ST=…, O=…, CN=…` or `*`; repeat for several.
    #[arg(long, requires = "notation_trust_store")]
    pub notation_identity: Vec<String>,
    /// Notation: the verification level, `strict`, `permissive`, `audit` or `skip`.
    #[arg(long, default_value = "strict", requires = "notation_trust_store")]
    pub notation_level: String,
    /// Notation: a CRL file (PEM with one or more `X509 CRL` blocks, or one DER CRL) of a CA in the signing
    /// or TSA chain, for the revocation check; repeat for several. Without any, revocation is not checked.
    #[arg(long, value_name = "FILE", requires = "notation_trust_store")]
    pub notation_crl: Vec<PathBuf>,
}

impl AuthorityArgs {
    /// The claims cosign's `--certificate-github-workflow-*` flags name: the deprecated GitHub Workflow
    /// extensions (.2–.6), each matched exactly; an empty value is no constraint, as in cosign.
    pub fn github_workflow_claims(&self) -> BTreeMap<Claim, Matcher> {
        [
            (Claim::GithubWorkflowTrigger, &self.certificate_github_workflow_trigger),
            (Claim::GithubWorkflowSha, &self.certificate_github_workflow_sha),
            (Claim::GithubWorkflowName, &self.certificate_github_workflow_name),
            (Claim::GithubWorkflowRepository, &self.certificate_github_workflow_repository),
            (Claim::GithubWorkflowRef, &self.certificate_github_workflow_ref),
        ]
        .into_iter()
        .filter_map(|(claim, value)| {
            value.as_ref().filter(|v| !v.is_empty()).map(|v| (claim, Matcher::Exact(v.clone())))
        })
        .collect()
    }
}

/// Arguments, named as cosign names them.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The image: `registry/repository[:tag][@digest]`. A tag is resolved once; the digest is verified.
    pub image: String,
    /// Who must have signed.
    #[command(flatten)]
    pub authority: AuthorityArgs,
    /// What to require: `signature` (default), `sbom`, or `attestation:<predicate type>`.
    #[arg(long, default_value = "signature")]
    pub require: String,
    /// Registries, credentials and trust root.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Per registry call timeout: `10s`, `500ms`, `2m` (a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Key-based signatures need no Rekor entry (cosign's `--insecure-ignore-tlog`). Keyless always does.
    #[arg(long)]
    pub insecure_ignore_tlog: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// A usage or I/O problem: exit 2.
#[derive(Debug, thiserror::Error)]
pub(super) enum UsageError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

fn read(path: &PathBuf) -> Result<Vec<u8>, UsageError> {
    std::fs::read(path).map_err(|source| UsageError::Read { path: path.clone(), source })
}

fn matcher(exact: &Option<String>, regexp: &Option<String>, what: &str) -> Result<Matcher, UsageError> {
    match (exact, regexp) {
        (Some(e), None) => Ok(Matcher::Exact(e.clone())),
        (None, Some(r)) => {
            Matcher::regex(r).map_err(|e| UsageError::Invalid(format!("--{what}-regexp: {e}")))
        }
        _ => Err(UsageError::Invalid(format!("keyless verification needs --{what} or --{what}-regexp"))),
    }
}

/// A trust store of `kind` from a PEM file, or from every regular file (PEM or DER) of a directory.
fn notation_store(path: &PathBuf, kind: TrustStoreKind) -> Result<TrustStore, UsageError> {
    let invalid = |e: String| UsageError::Invalid(format!("{}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(|source| UsageError::Read { path: path.clone(), source })?;
    let files = if meta.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(|source| UsageError::Read { path: path.clone(), source })?;
        let mut files: Vec<PathBuf> =
            entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        files
    } else {
        vec![path.clone()]
    };
    let mut pem = String::new();
    for file in &files {
        let bytes = read(file)?;
        match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains("-----BEGIN") => pem.push_str(text),
            _ => pem.push_str(&pem_encode("CERTIFICATE", &bytes)),
        }
        pem.push('\n');
    }
    TrustStore::from_pem_as(kind, &pem).map_err(|e| invalid(e.to_string()))
}

/// The Notation authority the `--notation-*` flags name.
fn notation_authority(args: &AuthorityArgs, store: &PathBuf) -> Result<Authority, UsageError> {
    let invalid = |e: vouch_attest::notation::NotationError| UsageError::Invalid(e.to_string());
    let kind: TrustStoreKind = args.notation_trust_store_type.parse().map_err(invalid)?;
    if kind == TrustStoreKind::Tsa {
        return Err(UsageError::Invalid(
            "--notation-trust-store-type tsa: a tsa store goes in --notation-tsa-trust-store".into(),
        ));
    }
    if args.notation_identity.is_empty() {
        return Err(UsageError::Invalid(
            "Notation verification needs --notation-identity ('x509.subject: C=…, ST=…, O=…' or '*')".into(),
        ));
    }
    Ok(Authority::Notation(Arc::new(NotationAuthority {
        trust_store: notation_store(store, kind)?,
        tsa_trust_store: args
            .notation_tsa_trust_store
            .as_ref()
            .map(|p| notation_store(p, TrustStoreKind::Tsa))
            .transpose()?,
        identities: args
            .notation_identity
            .iter()
            .map(|i| i.parse::<TrustedIdentity>())
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        level: args.notation_level.parse::<Level>().map_err(invalid)?,
        crls: notation_crls(&args.notation_crl)?,
    })))
}

/// The CRLs of `--notation-crl` files.
fn notation_crls(paths: &[PathBuf]) -> Result<CrlStore, UsageError> {
    let mut crls = CrlStore::default();
    for path in paths {
        crls.add_bytes(&read(path)?).map_err(|e| UsageError::Invalid(format!("{}: {e}", path.display())))?;
    }
    Ok(crls)
}

/// The authority the flags name: a key, a Notation trust store, or one keyless identity.
pub(super) fn authority(args: &AuthorityArgs) -> Result<Authority, UsageError> {
    if let Some(store) = &args.notation_trust_store {
        return notation_authority(args, store);
    }
    if let Some(path) = &args.key {
        let pem = String::from_utf8(read(path)?)
            .map_err(|_| UsageError::Invalid(format!("{}: not a PEM file", path.display())))?;
        let key =
            PublicKey::from_pem(&pem).map_err(|e| UsageError::Invalid(format!("{}: {e}", path.display())))?;
        return Ok(Authority::Key(key));
    }
    let subject =
        matcher(&args.certificate_identity, &args.certificate_identity_regexp, "certificate-identity")?;
    let issuer = matcher(
        &args.certificate_oidc_issuer,
        &args.certificate_oidc_issuer_regexp,
        "certificate-oidc-issuer",
    )?;
    let mut identity = CertificateIdentity::new(subject, issuer);
    identity.claims = args.github_workflow_claims();
    Ok(Authority::Keyless { identities: vec![identity] })
}

fn requirement(s: &str) -> Result<Requirement, UsageError> {
    match s {
        "signature" => Ok(Requirement::Signature),
        "sbom" => Ok(Requirement::Sbom),
        _ => match s.strip_prefix("attestation:") {
            Some(t) if !t.is_empty() => Ok(Requirement::Attestation { predicate_type: t.to_owned() }),
            _ => Err(UsageError::Invalid(format!(
                "--require {s:?}: expected signature, sbom or attestation:<predicate type>"
            ))),
        },
    }
}

/// The trust root in `path`, or the embedded public-good root (read as `--trusted-root` everywhere).
pub(super) fn trust_root(path: Option<&PathBuf>) -> Result<TrustRoot, UsageError> {
    let args = RegistryArgs { trusted_root: path.cloned(), ..RegistryArgs::default() };
    args.trust_root().map_err(|e| UsageError::Invalid(e.to_string()))
}

/// Whether verifying needs Sigstore trust material (Fulcio, Rekor, CT logs): keyless always does, a key
/// unless its tlog entry is not checked. Only then does `vouch verify` follow public-good TUF by default.
fn needs_sigstore(authority: &Authority, args: &VerifyArgs) -> bool {
    match authority {
        Authority::Keyless { .. } => true,
        Authority::Key(_) => !args.insecure_ignore_tlog,
        Authority::Notation(_) => false,
    }
}

fn config(args: &VerifyArgs, authority: &Authority) -> Result<VerifierConfig, UsageError> {
    let invalid = |e: FlagFileError| UsageError::Invalid(e.to_string());
    Ok(VerifierConfig {
        registry: args.registry.registry_config(args.timeout).map_err(invalid)?,
        trust_root: args.registry.trust_root_for(needs_sigstore(authority, args)).map_err(invalid)?,
        cache: Default::default(),
        options: VerifyOptions {
            require_tlog_for_keys: !args.insecure_ignore_tlog,
            ..VerifyOptions::default()
        },
    })
}

/// Verify as the command does: the verdict (verified or not), or why none could be had (bad arguments, an
/// unreadable key, a registry that cannot be reached).
pub async fn verdict(args: &VerifyArgs) -> Result<Verdict, String> {
    let image: ArtifactRef = args.image.parse().map_err(|e| format!("{e}"))?;
    let authority = authority(&args.authority).map_err(|e| e.to_string())?;
    let requirement = requirement(&args.require).map_err(|e| e.to_string())?;
    let config = config(args, &authority).map_err(|e| e.to_string())?;
    let verifier = ArtifactVerifier::new(config).map_err(|e| e.to_string())?;
    verifier.verify(&image, &authority, &requirement).await.map_err(|e| format!("{image}: {e}"))
}

/// Run the command.
pub fn run(args: VerifyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(verdict(&args)) {
        Ok(verdict) => report(&verdict, args.output),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn report(verdict: &Verdict, output: OutputFormat) -> ExitCode {
    let code = if verdict.outcome.is_ok() { EXIT_OK } else { EXIT_REJECTED };
    match output {
        OutputFormat::Json => match serde_json::to_string_pretty(verdict) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot print the verdict: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        },
        OutputFormat::Text => match &verdict.outcome {
            Ok(facts) => {
                println!("verified: {}", verdict.reference);
                for line in summary_lines(facts) {
                    println!("  {line}");
                }
            }
            Err(rejection) => {
                eprintln!("not verified: {}: {rejection}", verdict.reference);
            }
        },
    }
    ExitCode::from(code)
}

/// Who signed, for people: `key <fingerprint>`, `<identity> (issuer <issuer>)` or
/// `<subject DN> (certificate <fingerprint>)`.
pub(super) fn signer(s: &Signer) -> String {
    s.to_string()
}

/// One line per verified fact, for people.
pub fn summary_lines(facts: &Facts) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &facts.signatures {
        let mut line = format!("signature by {} ({})", signer(&s.signer), s.source);
        if let Some(i) = s.rekor_log_index {
            line.push_str(&format!(", rekor log index {i}"));
        }
        if let Some(t) = s.signing_time {
            line.push_str(&format!(", signed {}", t.to_rfc3339()));
        }
        if let Some(t) = s.valid_until {
            // The first moment a check could end otherwise by time alone (expiry, a CRL's nextUpdate).
            line.push_str(&format!(", holds until {}", t.to_rfc3339()));
        }
        if !s.annotations.is_empty() {
            // What a policy's `requirements.signature.annotations` is checked against.
            let annotations = serde_json::to_string(&s.annotations).unwrap_or_default();
            line.push_str(&format!(", signed annotations {annotations}"));
        }
        lines.push(line);
        // Checks that did not pass, and passed ones that say what they were checked against (revocation).
        for c in s.checks.iter().filter(|c| c.result != CheckResult::Passed || c.reason.is_some()) {
            let result = match c.result {
                CheckResult::FailedLogged => "failed (logged only)",
                CheckResult::Skipped => "not checked",
                CheckResult::Passed => "passed",
            };
            lines.push(format!("  {}: {result}: {}", c.check.as_str(), c.reason.as_deref().unwrap_or("")));
        }
    }
    for a in &facts.attestations {
        lines.push(format!("attestation {} by {} ({})", a.predicate_type, signer(&a.signer), a.source));
    }
    if let Some(sbom) = &facts.sbom {
        lines.push(format!(
            "sbom CycloneDX {} with {} components, digest {}",
            sbom.spec_version, sbom.component_count, sbom.digest
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn summary_lines_show_signed_annotations() {
        let fingerprint = vouch_attest::Digest::sha256_of(b"key");
        let signature =
            |annotations: BTreeMap<String, serde_json::Value>| vouch_attest::verify::SignatureFacts {
                signer: Signer::Key { fingerprint: fingerprint.clone() },
                source: vouch_attest::verify::Source::ModelFile { path: "x".into() },
                rekor_log_index: None,
                signing_time: None,
                annotations,
                checks: Vec::new(),
                valid_until: None,
            };
        let facts = Facts {
            signatures: vec![
                signature(BTreeMap::from([("team".to_owned(), serde_json::json!("payments"))])),
                signature(BTreeMap::new()),
            ],
            ..Facts::default()
        };
        let lines = summary_lines(&facts);
        assert!(lines[0].ends_with(r#", signed annotations {"team":"payments"}"#), "{lines:?}");
        assert!(!lines[1].contains("annotations"), "{lines:?}");
    }

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        authority: AuthorityArgs,
    }

    fn parse(extra: &[&str]) -> Result<AuthorityArgs, clap::Error> {
        let base = ["vouch", "--certificate-identity", "id", "--certificate-oidc-issuer", "https://iss"];
        Args::try_parse_from(base.iter().chain(extra)).map(|a| a.authority)
    }

    #[test]
    fn github_workflow_flags_map_to_the_deprecated_extensions_exactly() {
        let args = parse(&[
            "--certificate-github-workflow-trigger",
            "push",
            "--certificate-github-workflow-sha",
            "c7b3dfb335f051e1c86bda4c716fac97df62ad81",
            "--certificate-github-workflow-name",
            "Release",
            "--certificate-github-workflow-repository",
            "acme/app",
            "--certificate-github-workflow-ref",
            "refs/tags/v1.0.0",
        ])
        .unwrap();
        let Authority::Keyless { identities } = authority(&args).unwrap() else { panic!("keyless") };
        let claims: Vec<(String, String)> =
            identities[0].claims.iter().map(|(c, m)| (c.oid().to_string(), m.to_string())).collect();
        // cosign (pkg/cosign/verify.go, validateCertExtensions) compares each flag with the raw value of
        // 1.3.6.1.4.1.57264.1.2-.6, for equality.
        assert_eq!(
            claims,
            [
                ("1.3.6.1.4.1.57264.1.2".to_owned(), "\"push\"".to_owned()),
                (
                    "1.3.6.1.4.1.57264.1.3".to_owned(),
                    "\"c7b3dfb335f051e1c86bda4c716fac97df62ad81\"".to_owned()
                ),
                ("1.3.6.1.4.1.57264.1.4".to_owned(), "\"Release\"".to_owned()),
                ("1.3.6.1.4.1.57264.1.5".to_owned(), "\"acme/app\"".to_owned()),
                ("1.3.6.1.4.1.57264.1.6".to_owned(), "\"refs/tags/v1.0.0\"".to_owned()),
            ]
        );
        assert!(identities[0].claims.values().all(|m| matches!(m, Matcher::Exact(_))));
    }

    #[test]
    fn notation_flags_name_a_notation_authority_and_bad_ones_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("ca.pem");
        let root = include_str!("../../../attest/tests/data/notation/truststore/NotationTestRoot.pem");
        std::fs::write(&store, root).unwrap();
        let store = store.to_str().unwrap();
        let notation = |extra: &[&str]| {
            let base = ["vouch", "--notation-trust-store", store];
            Args::try_parse_from(base.iter().chain(extra)).map(|a| a.authority)
        };
        let args = notation(&["--notation-identity", "*", "--notation-level", "audit"]).unwrap();
        let Authority::Notation(n) = authority(&args).unwrap() else { panic!("notation") };
        assert_eq!(n.level, Level::Audit);
        assert_eq!(n.trust_store.kind, TrustStoreKind::Ca);
        let no_identity = authority(&notation(&[]).unwrap()).unwrap_err().to_string();
        assert!(no_identity.contains("needs --notation-identity"), "{no_identity}");
        let tsa = notation(&["--notation-identity", "*", "--notation-trust-store-type", "tsa"]).unwrap();
        let err = authority(&tsa).unwrap_err().to_string();
        assert!(err.contains("--notation-tsa-trust-store"), "{err}");
        // Notation flags without a trust store, or beside a keyless identity, are refused by clap.
        assert!(Args::try_parse_from(["vouch", "--notation-identity", "*"]).is_err());
        assert!(notation(&["--notation-identity", "*", "--certificate-identity", "x"]).is_err());
    }

    #[test]
    fn github_workflow_flags_are_optional_empty_means_unchecked_and_they_need_keyless() {
        let Authority::Keyless { identities } = authority(&parse(&[]).unwrap()).unwrap() else { panic!() };
        assert!(identities[0].claims.is_empty(), "no flags: no claims");
        let args = parse(&["--certificate-github-workflow-ref", ""]).unwrap();
        assert!(args.github_workflow_claims().is_empty(), "cosign: the empty string means not checked");
        let err = Args::try_parse_from([
            "vouch",
            "--key",
            "k.pub",
            "--certificate-github-workflow-ref",
            "refs/heads/main",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
