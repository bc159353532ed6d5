//! Verification levels and what each does with each check, as the Notary Project trust policy specifies:
//!
//! | level      | integrity | authenticity | authenticTimestamp | expiry | revocation |
//! |------------|-----------|--------------|--------------------|--------|------------|
//! | strict     | enforce   | enforce      | enforce            | enforce| enforce*   |
//! | permissive | enforce   | enforce      | log                | log    | log        |
//! | audit      | enforce   | log          | log                | log    | log        |
//! | skip       | skip      | skip         | skip               | skip   | skip       |
//!
//! *Revocation is checked only against CRLs the authority carries ([`super::revocation`]); a certificate
//! without one is recorded as not checked (skipped) at every level, never as passed.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::NotationError;

/// A verification level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    /// Every check enforced.
    #[default]
    Strict,
    /// Integrity and authenticity enforced; the rest recorded.
    Permissive,
    /// Integrity enforced; the rest recorded.
    Audit,
    /// Nothing verified: the authority is satisfied without a signature.
    Skip,
}

/// One of the checks a level assigns an action to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    /// The signature verifies and the payload names the artifact.
    Integrity,
    /// The chain leads to the trust store and the signer is a trusted identity.
    Authenticity,
    /// The certificates were valid when the signature was made (timestamp, authentic signing time or now).
    AuthenticTimestamp,
    /// The signature's own expiry has not passed.
    Expiry,
    /// No certificate is revoked.
    Revocation,
}

impl Check {
    /// The trust policy's name for the check.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Integrity => "integrity",
            Self::Authenticity => "authenticity",
            Self::AuthenticTimestamp => "authenticTimestamp",
            Self::Expiry => "expiry",
            Self::Revocation => "revocation",
        }
    }
}

/// What a level does with a check's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckAction {
    /// A failure rejects the signature.
    Enforce,
    /// A failure is recorded in the facts; the signature still counts.
    Log,
    /// The check is not run.
    Skip,
}

impl Level {
    /// The action for `check`.
    pub fn action(self, check: Check) -> CheckAction {
        use CheckAction::{Enforce, Log, Skip};
        match (self, check) {
            (Self::Skip, _) => Skip,
            (_, Check::Integrity) => Enforce,
            (Self::Strict, _) => Enforce,
            (Self::Permissive, Check::Authenticity) => Enforce,
            (Self::Permissive | Self::Audit, _) => Log,
        }
    }

    /// The trust policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Permissive => "permissive",
            Self::Audit => "audit",
            Self::Skip => "skip",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = NotationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "permissive" => Ok(Self::Permissive),
            "audit" => Ok(Self::Audit),
            "skip" => Ok(Self::Skip),
            other => Err(NotationError::Config(format!(
                "verification level {other:?} is not one of strict, permissive, audit, skip"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_assign_the_documented_actions() {
        use CheckAction::{Enforce, Log, Skip};
        let row = |l: Level| {
            [
                Check::Integrity,
                Check::Authenticity,
                Check::AuthenticTimestamp,
                Check::Expiry,
                Check::Revocation,
            ]
            .map(|c| l.action(c))
        };
        assert_eq!(row(Level::Strict), [Enforce; 5]);
        assert_eq!(row(Level::Permissive), [Enforce, Enforce, Log, Log, Log]);
        assert_eq!(row(Level::Audit), [Enforce, Log, Log, Log, Log]);
        assert_eq!(row(Level::Skip), [Skip; 5]);
        assert_eq!("permissive".parse::<Level>().unwrap(), Level::Permissive);
        assert!("lenient".parse::<Level>().unwrap_err().to_string().contains("\"lenient\""));
    }
}
