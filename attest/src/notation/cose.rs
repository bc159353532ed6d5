//! COSE_Sign1 as the Notary Project envelope (`application/cose`).

use super::envelope::Envelope;
use super::NotationError;

/// Media type of a COSE envelope.
pub const MEDIA_TYPE: &str = "application/cose";

/// Parse a COSE_Sign1 envelope.
pub fn parse(_bytes: &[u8]) -> Result<Envelope, NotationError> {
    Err(NotationError::UnsupportedMediaType(MEDIA_TYPE.into()))
}
