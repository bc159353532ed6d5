//! The `vouch` command line. Exit codes: 0 ok, 1 not verified / violations, 2 usage, configuration or I/O error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bundle;
pub mod bundle_args;
pub mod check;
pub mod demo;
pub mod demo_webhook;
pub mod exit;
pub mod mcp;
pub mod registry_args;
pub mod scan;
pub mod serve;
pub mod sign;
pub mod sigstore;
pub mod verify;
pub mod verify_model;

use exit::{EXIT_ERROR, EXIT_OK};

/// vouch: supply-chain admission for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "vouch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The local demo: a loopback registry, a signed image, and what vouch decides.
    Demo(demo::DemoArgs),
    /// Verify an image's signature, attestation or SBOM, by digest, as cosign would.
    Verify(verify::VerifyArgs),
    /// Verify an OpenSSF model signature over a model directory on disk.
    ///
    /// The files under the directory must be exactly the signed ones, with the signed content. With
    /// `--key` the signature alone decides, as `model_signing verify key` does (model-signing logs no key
    /// signatures); a keyless signature needs its Fulcio chain, SCT and transparency-log entry.
    VerifyModel(verify_model::VerifyModelArgs),
    /// Serve the validating and mutating admission webhooks.
    Serve(Box<serve::ServeArgs>),
    /// Check manifests against policies before they reach a cluster (GitOps pre-sync, CI).
    Check(Box<check::CheckArgs>),
    /// Re-verify what is already running: live objects or the cluster's Pods, at the digest they run.
    Scan(Box<scan::ScanArgs>),
    /// Serve read-only tools to AI agents and other MCP clients over stdio (Model Context Protocol).
    Mcp(Box<mcp::McpArgs>),
    /// Sign an image with a key, as `cosign sign --key` does (no transparency log entry).
    Sign(Box<sign::SignArgs>),
    /// Attest a predicate (SLSA provenance, CycloneDX, ...) about an image with a key, as `cosign attest`.
    Attest(Box<sign::AttestArgs>),
    /// Attach material to an image, as `cosign attach` does.
    #[command(subcommand)]
    Attach(sign::AttachCommand),
    /// Offline verification bundles for air-gapped sites.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Sigstore tooling (the conformance suite's client protocol).
    #[command(subcommand)]
    Sigstore(SigstoreCommand),
}

#[derive(Debug, Subcommand)]
enum SigstoreCommand {
    /// Verify a Sigstore bundle for a file or a `sha256:<hex>` digest.
    VerifyBundle(sigstore::VerifyBundleArgs),
}

/// Parse arguments and run; clap's own usage errors exit 2.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Verify(args) => verify::run(args),
        Command::VerifyModel(args) => verify_model::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Check(args) => check::run(*args),
        Command::Scan(args) => scan::run(*args),
        Command::Mcp(args) => mcp::run(*args),
        Command::Sign(args) => sign::run_sign(*args),
        Command::Attest(args) => sign::run_attest(*args),
        Command::Attach(command) => sign::run_attach(command),
        Command::Bundle(command) => bundle::run(command),
        Command::Sigstore(SigstoreCommand::VerifyBundle(args)) => sigstore::run(args),
    }
}
