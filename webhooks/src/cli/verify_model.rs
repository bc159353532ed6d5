//! `vouch verify-model DIR`: verify an OpenSSF model signature (as `model_signing sign` writes it) over a
//! model directory on disk — the same check the webhook makes of a model in a registry, before the model
//! is pushed or after it is pulled.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vouch_attest::model::signing::{verify_model_directory, VerifiedModelSignature, MAX_BUNDLE_BYTES};
use vouch_attest::sigstore_verify::{Authority, VerificationPolicy, Verifier};
use vouch_attest::verify::Signer;

use super::exit::{EXIT_ERROR, EXIT_OK, EXIT_REJECTED};
use super::verify::{authority, signer, trust_root, AuthorityArgs, UsageError};

/// The name `model_signing sign` gives the signature by default.
const DEFAULT_SIGNATURE: &str = "model.sig";

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct VerifyModelArgs {
    /// The model directory: every regular file under it must be signed, with the signed content.
    pub model: PathBuf,
    /// The signature (a Sigstore bundle). Default: `model.sig` in the model directory, which is then not
    /// counted as a model file.
    #[arg(long)]
    pub signature: Option<PathBuf>,
    /// Who must have signed.
    #[command(flatten)]
    pub authority: AuthorityArgs,
    /// Sigstore trusted_root.json for keyless signatures (default: the embedded public-good root).
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
}

/// What the check needs, read and validated from the arguments.
struct ModelCheck {
    model: PathBuf,
    signature: PathBuf,
    bundle_json: Vec<u8>,
    verifier: Verifier,
    policy: VerificationPolicy,
}

fn prepare(args: &VerifyModelArgs) -> Result<ModelCheck, UsageError> {
    let is_dir = std::fs::metadata(&args.model)
        .map_err(|source| UsageError::Read { path: args.model.clone(), source })?
        .is_dir();
    if !is_dir {
        return Err(UsageError::Invalid(format!("{}: not a directory", args.model.display())));
    }
    let policy =
        match authority(&args.authority)? {
            Authority::Key(key) => VerificationPolicy::key(key).without_tlog(),
            Authority::Keyless { identities } => VerificationPolicy::keyless(identities),
            Authority::Notation(_) => return Err(UsageError::Invalid(
                "model signatures are Sigstore bundles: use --key or a keyless identity, not --notation-*"
                    .into(),
            )),
        };
    let signature = args.signature.clone().unwrap_or_else(|| args.model.join(DEFAULT_SIGNATURE));
    let bundle_json = read_signature(&signature)?;
    let verifier = Verifier::new(trust_root(args.trusted_root.as_ref())?);
    Ok(ModelCheck { model: args.model.clone(), signature, bundle_json, verifier, policy })
}

/// The signature file, refused unread when it is larger than a signature may be.
fn read_signature(path: &Path) -> Result<Vec<u8>, UsageError> {
    let io = |source| UsageError::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let limit = MAX_BUNDLE_BYTES as u64;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(UsageError::Invalid(format!(
            "{}: larger than the {MAX_BUNDLE_BYTES} bytes a model signature may have",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Run the command: 0 verified, 1 not verified (the failed check on stderr), 2 usage or I/O error.
pub fn run(args: VerifyModelArgs) -> ExitCode {
    let check = match prepare(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match verify_model_directory(&check.model, &check.bundle_json, &check.verifier, &check.policy) {
        Ok(verified) => {
            println!("verified: {}", check.model.display());
            for line in summary_lines(&verified, &check.signature) {
                println!("  {line}");
            }
            ExitCode::from(EXIT_OK)
        }
        // The model could not be read: no verdict either way.
        Err(e) if e.is_io() => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
        Err(e) => {
            eprintln!("not verified: {}: {e}", check.model.display());
            ExitCode::from(EXIT_REJECTED)
        }
    }
}

/// One line per verified fact, for people.
fn summary_lines(verified: &VerifiedModelSignature, signature: &Path) -> Vec<String> {
    let mut lines = vec![format!(
        "model signature by {} (signature {})",
        signer(&Signer::from(&verified.verified.signer)),
        signature.display()
    )];
    lines.push(format!("{} files, subject digest {}", verified.files, verified.subject_digest));
    if let Some(entry) = verified.verified.tlog_entries.first() {
        lines.push(format!("rekor log index {}", entry.log_index));
    }
    if let Some(t) = verified.verified.signing_time {
        lines.push(format!("signed {}", t.to_rfc3339()));
    }
    lines
}
