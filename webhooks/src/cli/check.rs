//! `vouch check`: GitOps pre-sync checks of manifests against policies (being written, issue #5).

use std::process::ExitCode;

use super::EXIT_ERROR;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files or directories of manifests; `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

/// Run the check.
pub fn run(_args: CheckArgs) -> ExitCode {
    eprintln!("vouch check: not available in this build");
    ExitCode::from(EXIT_ERROR)
}
