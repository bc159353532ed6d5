//! Where the independently produced test material lives: `$VOUCH_TESTDATA`, else `shared/testdata` beside
//! the repository. For tests and benchmarks.

use std::path::PathBuf;

/// The environment variable that overrides the location.
pub const ENV: &str = "VOUCH_TESTDATA";

/// The test material directory, or `Ok(None)` when it is absent (the caller skips). Under CI (`CI=true`)
/// absent material is an `Err`, which the caller turns into a failing test, never a skip.
pub fn locate() -> Result<Option<PathBuf>, String> {
    let dir = std::env::var_os(ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    if dir.join("README.md").is_file() {
        return Ok(Some(dir));
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        return Err(format!("test material missing at {} (required under CI; set {ENV})", dir.display()));
    }
    eprintln!("skipping: no test material at {} (set {ENV})", dir.display());
    Ok(None)
}
