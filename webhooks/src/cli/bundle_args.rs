//! `--bundle`, `--bundle-key`, `--bundle-allow-unsigned`: an offline verification bundle as the source of
//! verification (and of policies unless `--policy` is given), shared by `check` and `scan`.

use std::path::PathBuf;

/// The offline bundle flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BundleArgs {
    /// Offline verification bundle: verify from it with no network; its policies unless --policy is given.
    #[arg(long, conflicts_with_all = ["trusted_root", "tuf_mirror", "insecure_registries", "registry_auth_file"])]
    pub bundle: Option<PathBuf>,
    /// Public key (PEM) the bundle must be signed with; required with --bundle unless --bundle-allow-unsigned.
    #[arg(long, requires = "bundle")]
    pub bundle_key: Option<PathBuf>,
    /// Accept a bundle without checking who made it (no --bundle-key). Its policies are then unauthenticated.
    #[arg(long, requires = "bundle", conflicts_with = "bundle_key")]
    pub bundle_allow_unsigned: bool,
}
