//! `vouch bundle create|verify`: offline verification bundles (being written, issue #5).

use std::process::ExitCode;

use clap::Subcommand;

use super::EXIT_ERROR;

/// Bundle commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Check a bundle's integrity and signature and list what it covers.
    Verify {
        /// The bundle file.
        bundle: std::path::PathBuf,
    },
}

/// Run a bundle command.
pub fn run(_command: BundleCommand) -> ExitCode {
    eprintln!("vouch bundle: not available in this build");
    ExitCode::from(EXIT_ERROR)
}
