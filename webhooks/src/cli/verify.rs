//! `vouch verify IMAGE`: cosign-style verification of one image, by digest, from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vouch_attest::sigstore_verify::{Authority, CertificateIdentity, Matcher};
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

/// The authority the flags name: a key, or one keyless identity.
pub(super) fn authority(args: &AuthorityArgs) -> Result<Authority, UsageError> {
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
    Ok(Authority::Keyless { identities: vec![CertificateIdentity::new(subject, issuer)] })
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

fn config(args: &VerifyArgs) -> Result<VerifierConfig, UsageError> {
    let invalid = |e: FlagFileError| UsageError::Invalid(e.to_string());
    Ok(VerifierConfig {
        registry: args.registry.registry_config(args.timeout).map_err(invalid)?,
        trust_root: args.registry.trust_root().map_err(invalid)?,
        cache: Default::default(),
        options: VerifyOptions {
            require_tlog_for_keys: !args.insecure_ignore_tlog,
            ..VerifyOptions::default()
        },
    })
}

/// Run the command.
pub fn run(args: VerifyArgs) -> ExitCode {
    let prepared = (|| {
        let image: ArtifactRef = args.image.parse().map_err(|e| UsageError::Invalid(format!("{e}")))?;
        Ok::<_, UsageError>((image, authority(&args.authority)?, requirement(&args.require)?, config(&args)?))
    })();
    let (image, authority, requirement, config) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    runtime.block_on(async move {
        let verifier = match ArtifactVerifier::new(config) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        };
        match verifier.verify(&image, &authority, &requirement).await {
            Ok(verdict) => report(&verdict, args.output),
            Err(e) => {
                eprintln!("error: {image}: {e}");
                ExitCode::from(EXIT_ERROR)
            }
        }
    })
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

/// Who signed, for people: `key <fingerprint>` or `<identity> (issuer <issuer>)`.
pub(super) fn signer(s: &Signer) -> String {
    match s {
        Signer::Key { fingerprint } => format!("key {fingerprint}"),
        Signer::Certificate { subject, issuer } => format!("{subject} (issuer {issuer})"),
    }
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
        lines.push(line);
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
