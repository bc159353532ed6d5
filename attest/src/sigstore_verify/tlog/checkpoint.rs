//! Checkpoints (c2sp.org/tlog-checkpoint) in signed-note form (c2sp.org/signed-note), as Rekor v1 and
//! Rekor v2 sign them.
//!
//! Which signature counts is decided as sigstore-go (with rekor and rekor-tiles) does: a Rekor v1
//! checkpoint has the origin `<name> - <tree id>`, is signed under `<name>`, and its key hint is the
//! first 4 bytes of SHA-256 of the log key's DER. A Rekor v2 checkpoint's origin is the host of the log's
//! base URL, signed under that name; the key hint is the c2sp key id for Ed25519 keys (SHA-256 of
//! `name || "\n" || 0x01 || raw key`) and the DER hash for ECDSA keys. Signatures with another name or key
//! hint (witness cosignatures) are ignored; one with the log's name and hint that fails is an error.

use sha2::{Digest as _, Sha256};

use super::entry::{b64_decode, MAX_CHECKPOINT_BYTES};
use super::TlogError;
use crate::keys::KeyAlgorithm;
use crate::trust_root::TransparencyLog;

/// Most signature lines accepted on one note (as golang.org/x/mod/sumdb/note).
pub const MAX_NOTE_SIGNATURES: usize = 100;

/// The signature-line prefix: an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// One signature line of a signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Signer name.
    pub name: String,
    /// First four bytes of the signature blob: the key hint.
    pub key_hint: [u8; 4],
    /// The signature proper.
    pub signature: Vec<u8>,
}

/// A parsed checkpoint (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin (first line).
    pub origin: String,
    /// Tree size.
    pub tree_size: u64,
    /// Root hash.
    pub root_hash: Vec<u8>,
    /// Extension lines (e.g. Rekor v1's `Timestamp: ...`).
    pub extensions: Vec<String>,
    /// The signed note text: the body lines, each ending in a newline.
    pub signed_text: String,
    /// Signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

fn malformed(reason: impl Into<String>) -> TlogError {
    TlogError::MalformedCheckpoint(reason.into())
}

impl Checkpoint {
    /// Parse a signed-note checkpoint.
    pub fn parse(note: &str) -> Result<Self, TlogError> {
        if note.len() > MAX_CHECKPOINT_BYTES {
            return Err(malformed(format!("larger than {MAX_CHECKPOINT_BYTES} bytes")));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("contains control characters"));
        }
        // The text ends at the last blank line; signatures follow.
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line between the text and the signatures"))?;
        let signed_text = &note[..split + 1];
        let sig_block = &note[split + 2..];

        let mut lines = signed_text[..signed_text.len() - 1].split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(malformed("empty origin line"));
        }
        let size = lines.next().ok_or_else(|| malformed("no tree size line"))?;
        let tree_size = parse_decimal(size)
            .ok_or_else(|| malformed(format!("tree size {size:?} is not a decimal number")))?;
        let root_line = lines.next().ok_or_else(|| malformed("no root hash line"))?;
        let root_hash = b64_decode(root_line).map_err(|_| malformed("root hash is not base64"))?;
        if root_hash.len() != 32 {
            return Err(malformed(format!("root hash is {} bytes, not 32", root_hash.len())));
        }
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed("empty line inside the checkpoint text"));
        }

        let mut signatures = Vec::new();
        if !sig_block.is_empty() {
            let body = sig_block
                .strip_suffix('\n')
                .ok_or_else(|| malformed("signature block does not end with a newline"))?;
            for line in body.split('\n') {
                if signatures.len() == MAX_NOTE_SIGNATURES {
                    return Err(malformed(format!("more than {MAX_NOTE_SIGNATURES} signatures")));
                }
                signatures.push(parse_signature_line(line)?);
            }
        }
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            extensions,
            signed_text: signed_text.to_owned(),
            signatures,
        })
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, TlogError> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed("signature line does not start with an em dash"))?;
    let (name, b64) =
        rest.split_once(' ').ok_or_else(|| malformed("signature line has no name and signature"))?;
    if name.is_empty() || b64.contains(' ') {
        return Err(malformed("malformed signature line"));
    }
    let blob = b64_decode(b64).map_err(|_| malformed("signature is not base64"))?;
    if blob.len() < 5 {
        return Err(malformed("signature too short"));
    }
    let (hint, sig) = blob.split_at(4);
    let mut key_hint = [0u8; 4];
    key_hint.copy_from_slice(hint);
    Ok(NoteSignature { name: name.to_owned(), key_hint, signature: sig.to_vec() })
}

/// Rekor v1 origins are `<name> - <tree id>`; returns `<name>` for those.
fn rekor_v1_name(origin: &str) -> Option<&str> {
    let (name, tree_id) = origin.rsplit_once(" - ")?;
    (!name.is_empty() && !tree_id.is_empty() && tree_id.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// The host of a base URL such as `https://log2025-1.rekor.sigstore.dev` (no port, no path).
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

fn sha256_prefix(parts: &[&[u8]]) -> [u8; 4] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The key hint a log's signature carries.
fn key_hint(log: &TransparencyLog, name: &str, rekor_v1: bool) -> [u8; 4] {
    if rekor_v1 {
        return sha256_prefix(&[&log.public_key_der]);
    }
    match log.public_key.algorithm() {
        KeyAlgorithm::Ed25519 => {
            sha256_prefix(&[name.as_bytes(), b"\n", &[0x01], log.public_key.raw_bytes()])
        }
        KeyAlgorithm::Rsa => {
            sha256_prefix(&[name.as_bytes(), b"\n", &[0xff], b"PKIX-RSA-PKCS#1v1.5", &log.public_key_der])
        }
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => sha256_prefix(&[&log.public_key_der]),
    }
}

/// Parse a checkpoint and verify the transparency log's signature on it.
pub(crate) fn verify_checkpoint(note: &str, log: &TransparencyLog) -> Result<Checkpoint, TlogError> {
    let cp = Checkpoint::parse(note)?;
    let (name, rekor_v1) = match rekor_v1_name(&cp.origin) {
        Some(name) => (name.to_owned(), true),
        None => {
            let host = url_host(&log.base_url).ok_or_else(|| {
                malformed(format!(
                    "the trust root gives no base URL host for the log, so its origin {:?} cannot be checked",
                    cp.origin
                ))
            })?;
            if cp.origin != host {
                return Err(TlogError::CheckpointOrigin {
                    expected: host.to_owned(),
                    found: cp.origin.clone(),
                });
            }
            (host.to_owned(), false)
        }
    };
    let hint = key_hint(log, &name, rekor_v1);
    let mut verified = 0usize;
    for sig in cp.signatures.iter().filter(|s| s.name == name && s.key_hint == hint) {
        log.public_key
            .verify(cp.signed_text.as_bytes(), &sig.signature)
            .map_err(|_| TlogError::BadCheckpointSignature { name: sig.name.clone() })?;
        verified += 1;
    }
    if verified == 0 {
        return Err(TlogError::CheckpointNotSignedByLog { name, key_hint: hex::encode(hint) });
    }
    Ok(cp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rekor_v1_checkpoint_with_extension() {
        let note = "rekor.sigstore.dev - 2605736670972794746\n23083062\ndauhleYK4YyAdxwwDtR0l0KnSOWZdG2bwqHftlanvcI=\nTimestamp: 1689177396617352539\n\n\u{2014} rekor.sigstore.dev wNI9ajBFAiBxaGyEtxkzFLkaCSEJqFuSS3dJjEZCNiyByVs1CNVQ8gIhAOoNnXtmMtTctV2oRnSRUZAo4EWUYPK/vBsqOzAU6TMs\n";
        let cp = Checkpoint::parse(note).unwrap();
        assert_eq!(cp.origin, "rekor.sigstore.dev - 2605736670972794746");
        assert_eq!(cp.tree_size, 23083062);
        assert_eq!(cp.extensions, vec!["Timestamp: 1689177396617352539".to_owned()]);
        assert!(cp.signed_text.ends_with("539\n"));
        assert_eq!(cp.signatures.len(), 1);
        assert_eq!(hex::encode(cp.signatures[0].key_hint), "c0d23d6a");
        assert_eq!(rekor_v1_name(&cp.origin), Some("rekor.sigstore.dev"));
    }

    #[test]
    fn rejects_malformed_notes() {
        let root = "dauhleYK4YyAdxwwDtR0l0KnSOWZdG2bwqHftlanvcI=";
        for bad in [
            String::new(),
            format!("o\n1\n{root}\n"),                      // no blank line
            "o\n1\n\n\u{2014} o AAAAAAAA\n".to_owned(),     // no root hash
            format!("o\n01\n{root}\n\n"),                   // leading zero
            "o\n1\nAAAA\n\n".to_owned(),                    // short root
            format!("o\n1\n{root}\n\n- o AAAAAAAA\n"),      // not an em dash
            format!("o\n1\n{root}\n\n\u{2014} o AAAA\n"),   // signature too short
            format!("o\n1\n{root}\n\n\u{2014} o AAAAAAAA"), // no final newline
            format!("o\n1\n{root}\r\n\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        // No signatures parses, but carries none.
        assert!(Checkpoint::parse(&format!("o\n1\n{root}\n\n")).unwrap().signatures.is_empty());
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://log2025-1.rekor.sigstore.dev"), Some("log2025-1.rekor.sigstore.dev"));
        assert_eq!(url_host("http://localhost:8000/api"), Some("localhost"));
        assert_eq!(url_host("https://[::1]:8080"), Some("::1"));
        assert_eq!(url_host(""), None);
    }
}
