//! `vouch sigstore verify-bundle`: the verification half of the Sigstore conformance client protocol.

use std::process::ExitCode;

use vouch_attest::digest::Digest;
use vouch_attest::intoto::InTotoError;
use vouch_attest::keys::PublicKey;
use vouch_attest::sigstore_verify::{
    Artifact, ArtifactError, Bundle, CertificateIdentity, SignerFacts, VerificationPolicy, Verifier,
    VerifyError,
};
use vouch_attest::trust_root::TrustRoot;

/// Arguments, in the conformance suite's order and spelling.
#[derive(Debug, clap::Args)]
pub struct VerifyBundleArgs {
    /// Use the staging instance (accepted for protocol compatibility; needs --trusted-root offline).
    #[arg(long)]
    pub staging: bool,
    /// The Sigstore bundle (JSON).
    #[arg(long)]
    pub bundle: std::path::PathBuf,
    /// Expected certificate identity (SAN).
    #[arg(long, requires = "certificate_oidc_issuer", conflicts_with = "key")]
    pub certificate_identity: Option<String>,
    /// Expected OIDC issuer.
    #[arg(long, requires = "certificate_identity")]
    pub certificate_oidc_issuer: Option<String>,
    /// Verify with this PEM public key instead of a keyless identity.
    #[arg(long)]
    pub key: Option<std::path::PathBuf>,
    /// Trusted root JSON (default: the embedded Sigstore public-good root).
    #[arg(long)]
    pub trusted_root: Option<std::path::PathBuf>,
    /// The artifact: a file path, or its digest `sha256:<hex>` (also `sha384:`/`sha512:`). A digest can only
    /// match in-toto subjects that list that algorithm (npm provenance lists sha512 only).
    pub file_or_digest: String,
}

/// Largest bundle, key or trusted-root file read.
const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// Artifacts up to this size are read whole; larger ones are hashed as a stream (in every algorithm an
/// in-toto subject may use) and verified by digest.
const MAX_ARTIFACT_IN_MEMORY: u64 = 256 * 1024 * 1024;

/// A usage or I/O problem (exit 2), as opposed to a rejected bundle (exit 1).
struct UsageError(String);

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>, UsageError> {
    let len = std::fs::metadata(path)
        .map_err(|e| UsageError(format!("cannot read {what} {}: {e}", path.display())))?
        .len();
    if len > MAX_INPUT_BYTES {
        return Err(UsageError(format!("{what} {} is larger than {MAX_INPUT_BYTES} bytes", path.display())));
    }
    std::fs::read(path).map_err(|e| UsageError(format!("cannot read {what} {}: {e}", path.display())))
}

fn read_artifact(path: &std::path::Path) -> Result<ArtifactInput, UsageError> {
    use sha2::Digest as _;
    use std::io::Read as _;
    use vouch_attest::DigestAlgorithm;
    let io = |e: std::io::Error| UsageError(format!("cannot read artifact {}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len <= MAX_ARTIFACT_IN_MEMORY {
        return std::fs::read(path).map(ArtifactInput::Bytes).map_err(io);
    }
    // One pass, every algorithm a subject may use: SHA-256 first (the primary digest), then SHA-384, SHA-512.
    let (mut s256, mut s384, mut s512) = (sha2::Sha256::new(), sha2::Sha384::new(), sha2::Sha512::new());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        s256.update(&buf[..n]);
        s384.update(&buf[..n]);
        s512.update(&buf[..n]);
    }
    let digest = |alg, raw: &[u8]| Digest::from_bytes(alg, raw).map_err(|e| UsageError(e.to_string()));
    Ok(ArtifactInput::Digests(vec![
        digest(DigestAlgorithm::Sha256, &s256.finalize())?,
        digest(DigestAlgorithm::Sha384, &s384.finalize())?,
        digest(DigestAlgorithm::Sha512, &s512.finalize())?,
    ]))
}

/// Everything the verification needs, read and validated from the arguments.
struct Inputs {
    bundle_json: Vec<u8>,
    trust_root: TrustRoot,
    policy: VerificationPolicy,
    artifact: ArtifactInput,
}

enum ArtifactInput {
    Bytes(Vec<u8>),
    Digest(Digest),
    Digests(Vec<Digest>),
}

/// `alg:<hex>` for a digest algorithm a subject may use, else `None` (a path).
fn digest_argument(arg: &str) -> Option<Result<Digest, UsageError>> {
    let (alg, hex) = arg.split_once(':')?;
    if !vouch_attest::intoto::SUBJECT_ALGORITHMS.iter().any(|a| a.name() == alg) {
        return None;
    }
    Some(format!("{alg}:{}", hex.to_ascii_lowercase()).parse().map_err(|e| UsageError(format!("{e}"))))
}

fn inputs(args: &VerifyBundleArgs) -> Result<Inputs, UsageError> {
    let bundle_json = read_file(&args.bundle, "bundle")?;
    let trust_root = match &args.trusted_root {
        Some(p) => TrustRoot::from_json(&read_file(p, "trusted root")?)
            .map_err(|e| UsageError(format!("trusted root {}: {e}", p.display())))?,
        None if args.staging => {
            return Err(UsageError("--staging needs --trusted-root (no network access to TUF)".into()))
        }
        None => TrustRoot::public_good().map_err(|e| UsageError(format!("embedded trusted root: {e}")))?,
    };
    for entry in trust_root.ignored() {
        eprintln!("warning: {entry}");
    }
    let policy = match (&args.key, &args.certificate_identity, &args.certificate_oidc_issuer) {
        (Some(key), None, None) => {
            let pem = String::from_utf8(read_file(key, "key")?)
                .map_err(|_| UsageError(format!("key {} is not PEM text", key.display())))?;
            let key =
                PublicKey::from_pem(&pem).map_err(|e| UsageError(format!("key {}: {e}", key.display())))?;
            VerificationPolicy::key(key)
        }
        (None, Some(identity), Some(issuer)) => {
            VerificationPolicy::keyless(vec![CertificateIdentity::exact(identity, issuer)])
        }
        _ => {
            return Err(UsageError(
                "give either --key, or both --certificate-identity and --certificate-oidc-issuer".into(),
            ))
        }
    };
    let artifact = match digest_argument(&args.file_or_digest) {
        Some(digest) => ArtifactInput::Digest(digest?),
        None => read_artifact(std::path::Path::new(&args.file_or_digest))?,
    };
    Ok(Inputs { bundle_json, trust_root, policy, artifact })
}

/// Run the command: 0 verified, 1 rejected (reason on stderr), 2 usage or I/O error.
pub fn run(args: VerifyBundleArgs) -> ExitCode {
    let inputs = match inputs(&args) {
        Ok(i) => i,
        Err(UsageError(msg)) => {
            eprintln!("error: {msg}");
            return ExitCode::from(super::exit::EXIT_ERROR);
        }
    };
    let bundle = match Bundle::from_json(&inputs.bundle_json) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rejected: bundle {}: {e}", args.bundle.display());
            return ExitCode::from(super::exit::EXIT_REJECTED);
        }
    };
    let verifier = Verifier::new(inputs.trust_root);
    let artifact = match &inputs.artifact {
        ArtifactInput::Bytes(b) => Artifact::Bytes(b),
        ArtifactInput::Digest(d) => Artifact::Digest(d.clone()),
        ArtifactInput::Digests(ds) => Artifact::Digests(ds.clone()),
    };
    match verifier.verify(&bundle, artifact, &inputs.policy) {
        Ok(v) => {
            let who = match &v.signer {
                SignerFacts::Key { fingerprint } => format!("key {fingerprint}"),
                SignerFacts::Certificate { subject, issuer, .. } => format!("{subject} ({issuer})"),
            };
            eprintln!("verified: signed by {who}");
            ExitCode::from(super::exit::EXIT_OK)
        }
        Err(e) => {
            eprintln!("rejected: {e}");
            if let (
                ArtifactInput::Digest(d),
                VerifyError::Artifact(ArtifactError::Statement(InTotoError::NoCommonAlgorithm { .. })),
            ) = (&inputs.artifact, &e)
            {
                eprintln!(
                    "hint: a {} digest can only match subjects that list {0}; give the file itself (or its digest in the subjects' algorithm)",
                    d.algorithm().name()
                );
            }
            ExitCode::from(super::exit::EXIT_REJECTED)
        }
    }
}
