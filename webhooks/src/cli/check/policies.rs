//! The policies of `vouch check --policy` (files and directories), and the compile step they share with
//! the policies of an offline bundle: every problem of every resource reported, any problem fails the check.

use std::path::{Path, PathBuf};

use vouch_policies::policy_set::{PolicyResources, Secrets};
use vouch_policies::{PolicySet, TufRoots};

use super::error::CheckError;
use crate::cli::registry_args;

/// Largest policy file read.
const MAX_POLICY_FILE_BYTES: u64 = vouch_policies::policy_set::MAX_FILE_BYTES;

/// Read the policies from files and directories (TrustRoots with `spec.tuf` obtained through `tuf`); any
/// resource with problems is an error.
pub fn load_policies(paths: &[PathBuf], tuf: &TufRoots) -> Result<PolicySet, CheckError> {
    let mut all = PolicyResources::default();
    for path in paths {
        let resources = if path.is_dir() {
            PolicyResources::load_dir(path)
                .map_err(|e| CheckError::File { path: path.clone(), reason: e.to_string() })?
        } else {
            let text = registry_args::read_capped(path, MAX_POLICY_FILE_BYTES)?;
            let text = String::from_utf8(text)
                .map_err(|_| CheckError::File { path: path.clone(), reason: "not UTF-8 text".into() })?;
            let mut r = PolicyResources::from_yaml_str(&text, &path.to_string_lossy());
            r.base_dir = path.parent().map(Path::to_path_buf);
            r
        };
        // Relative `credentials.path` values resolve against the first policy location.
        if all.base_dir.is_none() {
            all.base_dir = resources.base_dir;
        }
        all.cluster_policies.extend(resources.cluster_policies);
        all.policies.extend(resources.policies);
        all.trust_roots.extend(resources.trust_roots);
        all.problems.extend(resources.problems);
    }
    resolve_tuf(&mut all, tuf)?;
    compile_policies(all)
}

/// Obtain the trusted roots of TrustRoots with `spec.tuf` ([`registry_args::block_on_own_thread`]). Nothing is started when no TrustRoot names a TUF repository.
fn resolve_tuf(resources: &mut PolicyResources, tuf: &TufRoots) -> Result<(), CheckError> {
    if !resources.trust_roots.iter().any(|t| t.spec.tuf.is_some()) {
        return Ok(());
    }
    registry_args::block_on_own_thread(tuf.resolve(resources, &Secrets::none()))
        .map_err(|e| CheckError::Usage { flag: "--policy", reason: format!("TUF resolution: {e}") })
}

/// Compile; every problem of every resource is reported, and any problem fails the check.
pub fn compile_policies(resources: PolicyResources) -> Result<PolicySet, CheckError> {
    let set = PolicySet::compile(resources, &Secrets::none());
    if !set.problems().is_empty() {
        return Err(CheckError::Policies {
            problems: set.problems().iter().map(ToString::to_string).collect(),
        });
    }
    Ok(set)
}
