//! `vouch check --bundle`: policies and a zero-network verifier from an offline verification bundle
//! ([`vouch_attest::offline`]). Nothing of a bundle that fails any check is used: `OfflineBundle::open`
//! checks integrity, signature (with `--bundle-key`) and expiry before anything is read from it.

use std::path::{Path, PathBuf};

use vouch_attest::offline::OfflineBundle;
use vouch_attest::verify::{ArtifactVerifier, VerifyOptions};
use vouch_attest::PublicKey;
use vouch_policies::policy_set::PolicyResources;
use vouch_policies::PolicySet;

use super::error::CheckError;
use super::policies::compile_policies;
use crate::cli::registry_args;

/// Largest bundle key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;

/// An opened, checked bundle.
pub(super) struct BundleSource {
    path: PathBuf,
    bundle: OfflineBundle,
}

fn bundle_err(path: &Path, reason: impl std::fmt::Display) -> CheckError {
    CheckError::Bundle { path: path.to_owned(), reason: reason.to_string() }
}

/// Open and check the bundle at `path`, signed by the key in `key_pem` when given.
pub(super) fn open(path: &Path, key_pem: Option<&Path>) -> Result<BundleSource, CheckError> {
    let key = match key_pem {
        Some(p) => {
            let bytes = registry_args::read_capped(p, MAX_KEY_BYTES)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| CheckError::File { path: p.to_owned(), reason: "not UTF-8 text".into() })?;
            Some(
                PublicKey::from_pem(&text)
                    .map_err(|e| CheckError::File { path: p.to_owned(), reason: e.to_string() })?,
            )
        }
        None => None,
    };
    let bundle = OfflineBundle::open(path, key.as_ref()).map_err(|e| bundle_err(path, e))?;
    Ok(BundleSource { path: path.to_owned(), bundle })
}

impl BundleSource {
    /// The policies the bundle carries; every one must compile.
    pub(super) fn policies(&self) -> Result<PolicySet, CheckError> {
        let mut resources = PolicyResources::default();
        for (name, yaml) in self.bundle.policies_yaml() {
            resources.add_yaml_str(&yaml, &format!("{}:{name}", self.path.display()));
        }
        if resources.is_empty() && resources.problems.is_empty() {
            return Err(bundle_err(&self.path, "carries no policies: give --policy"));
        }
        compile_policies(resources)
    }

    /// A verifier that reads only from the bundle; an artifact it does not cover is a transient-class
    /// error ("not in the offline bundle"), so the policy's failurePolicy decides.
    pub(super) fn verifier(&self) -> Result<ArtifactVerifier, CheckError> {
        self.bundle
            .verifier(Default::default(), VerifyOptions::default())
            .map_err(|e| bundle_err(&self.path, e))
    }
}
