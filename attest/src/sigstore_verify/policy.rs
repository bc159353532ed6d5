//! What a bundle must satisfy: who signed it (key or keyless identity) and which evidence is required.

use std::sync::Arc;

use super::identity::CertificateIdentity;
use crate::keys::PublicKey;
use crate::notation::NotationAuthority;

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Authority {
    /// A Fulcio certificate whose identity matches any of these.
    Keyless {
        /// Accepted identities (any may match).
        identities: Vec<CertificateIdentity>,
    },
    /// A long-lived key (the bundle's key hint is ignored).
    Key(PublicKey),
    /// A Notary Project trust store and trusted identities (Notation signatures only: it never verifies a
    /// Sigstore bundle).
    Notation(Arc<NotationAuthority>),
}

/// The requirements for one verification.
#[derive(Debug, Clone)]
pub struct VerificationPolicy {
    /// Who must have signed.
    pub authority: Authority,
    /// Whether transparency log entries are required (only key-based verification may turn this off).
    pub require_tlog: bool,
    /// Whether the Fulcio certificate must carry a verified SCT (keyless only).
    pub require_sct: bool,
    /// How many log entries must verify.
    pub tlog_threshold: usize,
}

impl VerificationPolicy {
    /// Keyless: tlog and SCT required, one entry.
    pub fn keyless(identities: Vec<CertificateIdentity>) -> Self {
        Self {
            authority: Authority::Keyless { identities },
            require_tlog: true,
            require_sct: true,
            tlog_threshold: 1,
        }
    }

    /// Key-based: tlog required by default (turn off with [`Self::without_tlog`]).
    pub fn key(key: PublicKey) -> Self {
        Self { authority: Authority::Key(key), require_tlog: true, require_sct: false, tlog_threshold: 1 }
    }

    /// The same policy without the transparency log requirement (key-based signatures only).
    #[must_use]
    pub fn without_tlog(mut self) -> Self {
        self.require_tlog = false;
        self
    }
}
