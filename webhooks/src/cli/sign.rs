//! `vouch sign`, `vouch attest` and `vouch attach sbom`: cosign's key-based publishing commands, written by
//! vouch's own cosign-compatible signer (what `scripts/image.sh` signs vouch's image with). The material
//! lands where cosign puts it (`sha256-<hex>.sig`, `.att`, `.sbom` and a CycloneDX referrer), so
//! `cosign verify --key` and `vouch verify --key` both read it. Nothing is written to a transparency log:
//! verify with `--insecure-ignore-tlog` (cosign: `--insecure-ignore-tlog`, `--tlog-upload=false` to sign).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use vouch_attest::cosign::{attach_sbom, attest_with_key, sign_image_with_key};
use vouch_attest::intoto::{CYCLONEDX_BOM, SLSA_PROVENANCE_V0_2, SLSA_PROVENANCE_V1, STATEMENT_V1};
use vouch_attest::registry::RegistryClient;
use vouch_attest::{ArtifactRef, SigningKey};

use super::exit::{EXIT_ERROR, EXIT_OK};
use super::registry_args::{positive_duration, read_capped, RegistryArgs};

/// cosign's predicate type for `--type custom`.
const COSIGN_CUSTOM_PREDICATE: &str = "https://cosign.sigstore.dev/attestation/v1";
/// Largest private key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Largest predicate or SBOM file read (the verifier's SBOM limit).
const MAX_DOCUMENT_BYTES: u64 = vouch_attest::sbom::MAX_SBOM_BYTES as u64;

/// What every publishing command shares: the image, and how the registry is reached.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The image: `registry/repository[:tag][@digest]`. A tag is resolved once; the digest is what is
    /// signed.
    pub image: String,
    /// A registry (host[:port]) reached over plain HTTP. Repeatable. Never use for hosts you do not run.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Docker config JSON with registry credentials (push access to the image's repository).
    #[arg(long, env = "VOUCH_REGISTRY_AUTH_FILE")]
    pub registry_auth_file: Option<PathBuf>,
    /// Per registry call timeout: `10s`, `500ms`, `2m` (a bare number is seconds).
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub timeout: Duration,
}

/// `vouch sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The signing key: an unencrypted PKCS#8 `PRIVATE KEY` PEM, ECDSA P-256 (e.g. `openssl genpkey
    /// -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    #[arg(long)]
    pub key: PathBuf,
    /// `key=value` put into the signed payload's `optional` section (cosign's `-a`). Repeatable.
    #[arg(long = "annotation", short = 'a')]
    pub annotations: Vec<String>,
    /// The image and the registry.
    #[command(flatten)]
    pub target: Target,
}

/// `vouch attest`.
#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// The signing key (as for `vouch sign`).
    #[arg(long)]
    pub key: PathBuf,
    /// The predicate: a JSON file.
    #[arg(long)]
    pub predicate: PathBuf,
    /// The predicate type: `cyclonedx`, `slsaprovenance` (v0.2), `slsaprovenance1`, `custom`, or a URI (as
    /// cosign).
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    /// The image and the registry.
    #[command(flatten)]
    pub target: Target,
}

/// `vouch attach`.
#[derive(Debug, clap::Subcommand)]
pub enum AttachCommand {
    /// Attach a CycloneDX JSON SBOM: the `sha256-<hex>.sbom` tag (cosign) and an OCI referrer (ORAS).
    /// Unsigned, as cosign's; sign it with `vouch attest --type cyclonedx`.
    Sbom(AttachSbomArgs),
}

/// `vouch attach sbom`.
#[derive(Debug, clap::Args)]
pub struct AttachSbomArgs {
    /// The SBOM: a CycloneDX JSON file, validated against the official schema before it is attached.
    #[arg(long)]
    pub sbom: PathBuf,
    /// The image and the registry.
    #[command(flatten)]
    pub target: Target,
}

/// A usage, I/O or registry problem: printed, exit 2.
type Failure = String;

/// Run `vouch sign`.
pub fn run_sign(args: SignArgs) -> ExitCode {
    finish(publish(&args.target, |client, image| async move {
        let key = signing_key(&args.key)?;
        let annotations = annotations(&args.annotations)?;
        let digest = sign_image_with_key(&client, &image, &key, annotations)
            .await
            .map_err(|e| format!("signing {image}: {e}"))?;
        Ok(format!("signed {image} with key {} (signature manifest {digest})", key_fingerprint(&key)))
    }))
}

/// Run `vouch attest`.
pub fn run_attest(args: AttestArgs) -> ExitCode {
    finish(publish(&args.target, |client, image| async move {
        let key = signing_key(&args.key)?;
        let predicate_type = predicate_type(&args.predicate_type)?;
        let predicate = json_file(&args.predicate)?;
        if predicate_type == CYCLONEDX_BOM {
            vouch_attest::sbom::from_predicate(&predicate)
                .map_err(|e| format!("{}: {e}", args.predicate.display()))?;
        }
        let statement = statement(&image, predicate_type, predicate)?;
        let digest = attest_with_key(&client, &image, &key, &statement)
            .await
            .map_err(|e| format!("attesting {image}: {e}"))?;
        Ok(format!(
            "attested {predicate_type} about {image} with key {} (attestation manifest {digest})",
            key_fingerprint(&key)
        ))
    }))
}

/// Run `vouch attach …`.
pub fn run_attach(command: AttachCommand) -> ExitCode {
    let AttachCommand::Sbom(args) = command;
    finish(publish(&args.target, |client, image| async move {
        let sbom = read_capped(&args.sbom, MAX_DOCUMENT_BYTES).map_err(|e| e.to_string())?;
        let facts = vouch_attest::sbom::parse_cyclonedx(&sbom)
            .map_err(|e| format!("{}: {e}", args.sbom.display()))?;
        let (tagged, referrer) =
            attach_sbom(&client, &image, &sbom).await.map_err(|e| format!("attaching to {image}: {e}"))?;
        Ok(format!(
            "attached CycloneDX {} SBOM ({} components, {}) to {image}: .sbom manifest {tagged}, referrer {referrer}",
            facts.spec_version, facts.component_count, facts.digest
        ))
    }))
}

/// Parse the image, build the client, resolve a tag to its digest, then run `write` with the pinned image.
fn publish<F, Fut>(target: &Target, write: F) -> Result<String, Failure>
where
    F: FnOnce(RegistryClient, ArtifactRef) -> Fut,
    Fut: std::future::Future<Output = Result<String, Failure>>,
{
    let image: ArtifactRef = target.image.parse().map_err(|e| format!("{}: {e}", target.image))?;
    let registry = RegistryArgs {
        insecure_registries: target.insecure_registries.clone(),
        registry_auth_file: target.registry_auth_file.clone(),
        ..RegistryArgs::default()
    };
    let config = registry.registry_config(target.timeout).map_err(|e| e.to_string())?;
    let client = RegistryClient::new(config).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let digest = client.resolve(&image).await.map_err(|e| format!("resolving {image}: {e}"))?;
        let pinned = image.with_digest(digest);
        write(client, pinned).await
    })
}

fn finish(result: Result<String, Failure>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn signing_key(path: &Path) -> Result<SigningKey, Failure> {
    let bytes = read_capped(path, MAX_KEY_BYTES).map_err(|e| e.to_string())?;
    let pem = String::from_utf8(bytes).map_err(|_| format!("{}: not a PEM file", path.display()))?;
    if pem.contains("ENCRYPTED") {
        return Err(format!(
            "{}: an encrypted key (cosign's own format) is not read; give an unencrypted PKCS#8 P-256 key",
            path.display()
        ));
    }
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| format!("{}: not a PKCS#8 ECDSA P-256 private key: {e}", path.display()))
}

fn key_fingerprint(key: &SigningKey) -> String {
    key.public_key().fingerprint().to_string()
}

fn annotations(pairs: &[String]) -> Result<BTreeMap<String, serde_json::Value>, Failure> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), serde_json::Value::String(v.to_owned()))),
            _ => Err(format!("--annotation {pair:?}: expected key=value")),
        })
        .collect()
}

/// cosign's `--type` shorthands, or a URI as given.
fn predicate_type(name: &str) -> Result<&str, Failure> {
    match name {
        "cyclonedx" => Ok(CYCLONEDX_BOM),
        "slsaprovenance" | "slsaprovenance02" => Ok(SLSA_PROVENANCE_V0_2),
        "slsaprovenance1" => Ok(SLSA_PROVENANCE_V1),
        "custom" => Ok(COSIGN_CUSTOM_PREDICATE),
        uri if uri.contains("://") => Ok(uri),
        other => Err(format!(
            "--type {other:?}: expected cyclonedx, slsaprovenance, slsaprovenance1, custom or a predicate type URI"
        )),
    }
}

fn json_file(path: &Path) -> Result<serde_json::Value, Failure> {
    let bytes = read_capped(path, MAX_DOCUMENT_BYTES).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// The in-toto v1 statement about the pinned image, as cosign writes it (subject name: the repository).
fn statement(
    image: &ArtifactRef,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Result<serde_json::Value, Failure> {
    let digest = image.digest().ok_or_else(|| format!("{image} is not pinned to a digest"))?;
    Ok(serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": image.repository_name(), "digest": {digest.algorithm().name(): digest.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_type_shorthands_are_cosigns() {
        assert_eq!(predicate_type("cyclonedx").unwrap(), "https://cyclonedx.org/bom");
        assert_eq!(predicate_type("slsaprovenance").unwrap(), "https://slsa.dev/provenance/v0.2");
        assert_eq!(predicate_type("slsaprovenance1").unwrap(), "https://slsa.dev/provenance/v1");
        assert_eq!(predicate_type("https://example.com/p/v1").unwrap(), "https://example.com/p/v1");
        assert_eq!(predicate_type("custom").unwrap(), "https://cosign.sigstore.dev/attestation/v1");
        assert!(predicate_type("spdx").unwrap_err().contains("expected cyclonedx"));
    }

    #[test]
    fn annotations_need_key_equals_value() {
        let a = annotations(&["release=v1".into(), "empty=".into()]).unwrap();
        assert_eq!(a["release"], "v1");
        assert_eq!(a["empty"], "");
        assert!(annotations(&["novalue".into()]).unwrap_err().contains("key=value"));
        assert!(annotations(&["=v".into()]).is_err());
    }

    #[test]
    fn statement_names_the_repository_and_the_digest() {
        let d = vouch_attest::Digest::sha256_of(b"img");
        let image: ArtifactRef = format!("reg.example/team/app@{d}").parse().unwrap();
        let st = statement(&image, SLSA_PROVENANCE_V1, serde_json::json!({"x": 1})).unwrap();
        let parsed = vouch_attest::intoto::Statement::from_json(&serde_json::to_vec(&st).unwrap()).unwrap();
        assert!(parsed.covers(&d));
        assert_eq!(st["subject"][0]["name"], "reg.example/team/app");
        let unpinned: ArtifactRef = "reg.example/team/app:v1".parse().unwrap();
        assert!(statement(&unpinned, SLSA_PROVENANCE_V1, serde_json::json!({})).is_err());
    }

    #[test]
    fn keys_must_be_unencrypted_p256_pkcs8() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("k.pem");
        let key = SigningKey::generate();
        std::fs::write(&good, key.to_pkcs8_pem()).unwrap();
        assert_eq!(key_fingerprint(&signing_key(&good).unwrap()), key_fingerprint(&key));
        let encrypted = dir.path().join("cosign.key");
        std::fs::write(&encrypted, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n").unwrap();
        assert!(signing_key(&encrypted).unwrap_err().contains("encrypted"));
        let public = dir.path().join("k.pub");
        std::fs::write(&public, key.public_key().to_pem()).unwrap();
        assert!(signing_key(&public).unwrap_err().contains("not a PKCS#8"));
        assert!(signing_key(&dir.path().join("missing")).unwrap_err().contains("cannot read"));
    }
}
