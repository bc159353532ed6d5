//! One shared-cache entry on the wire: what it is bound to, the verdict, when it expires, and an HMAC over
//! all of it. Pure data and crypto, no Redis: the protocol in [`super`] only moves these bytes.
//!
//! Value = 32-byte HMAC-SHA256 tag ‖ JSON payload `{binding, expiresAtMs, verdict}`. The tag covers the
//! payload (binding included), so an entry cannot be forged without the key, nor moved to another key
//! (the binding would not match the one asked for), nor kept past its lifetime (`expiresAtMs` is signed).
//! Redis key names are keyed hashes of the binding, so Redis does not learn which digest is cached.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cache::VerdictKey;

/// Shortest HMAC key accepted (bytes).
pub const MIN_KEY_BYTES: usize = 32;
/// Largest entry read or written: a verdict with a very large attestation predicate is kept in L1 only.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

const TAG_BYTES: usize = 32;
/// Domain separation between the entry tag and the key-name hash made with the same key.
const TAG_CONTEXT: &[u8] = b"vouch shared verdict v1\0";
const NAME_CONTEXT: &[u8] = b"vouch shared verdict name v1\0";

/// Everything an entry is bound to: the L1 key (digest, authority + trust root + options, requirement)
/// and the generation of the writer (wire format and verifier version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// Writers of another generation never share entries with this one.
    pub generation: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The authority fingerprint with the verifier's scope (trust root digest, options).
    pub authority: String,
    /// The requirement.
    pub requirement: String,
}

impl Binding {
    /// The binding of `key` for writers of `generation`.
    pub fn new(generation: &str, key: &VerdictKey) -> Self {
        Self {
            generation: generation.to_owned(),
            digest: key.digest.to_string(),
            authority: key.authority.clone(),
            requirement: key.requirement.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PayloadOut<'a, V> {
    binding: &'a Binding,
    expires_at_ms: u64,
    verdict: &'a V,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadIn<V> {
    binding: Binding,
    expires_at_ms: u64,
    verdict: V,
}

/// Why a stored entry was not used (each is counted as `rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Shorter than a tag, or longer than [`MAX_ENTRY_BYTES`].
    #[error("entry has an impossible size")]
    Size,
    /// The HMAC does not match: written without the key, or altered.
    #[error("entry HMAC does not verify")]
    Tag,
    /// Authentic bytes that do not parse as this build's payload.
    #[error("entry payload does not parse")]
    Payload,
    /// Authentic, but written by another generation of vouch.
    #[error("entry belongs to another generation")]
    Generation,
    /// Authentic, but bound to another digest, authority or requirement (moved under this name).
    #[error("entry is bound to another key")]
    Binding,
    /// Authentic, but past the lifetime it was written with (replayed).
    #[error("entry has expired")]
    Expired,
}

/// Seals and opens entries with the HMAC key all replicas share.
#[derive(Clone)]
pub struct Sealer {
    key: hmac::Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    /// A sealer with this key; `None` when it is shorter than [`MIN_KEY_BYTES`].
    pub fn new(key: &[u8]) -> Option<Self> {
        (key.len() >= MIN_KEY_BYTES).then(|| Self { key: hmac::Key::new(hmac::HMAC_SHA256, key) })
    }

    /// The hex name of `binding` (a keyed hash; Redis keys are built from it).
    pub fn name(&self, binding: &Binding) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(NAME_CONTEXT);
        // serde_json writes struct fields in declaration order: a stable encoding.
        ctx.update(&serde_json::to_vec(binding).unwrap_or_default());
        hex::encode(ctx.sign().as_ref())
    }

    /// The entry for `verdict` under `binding`, valid for `ttl` from now; `None` when it would be larger
    /// than [`MAX_ENTRY_BYTES`] or does not serialise.
    pub fn seal<V: Serialize>(&self, binding: &Binding, verdict: &V, ttl: Duration) -> Option<Vec<u8>> {
        let expires_at_ms = now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let payload = serde_json::to_vec(&PayloadOut { binding, expires_at_ms, verdict }).ok()?;
        if payload.len() + TAG_BYTES > MAX_ENTRY_BYTES {
            return None;
        }
        let tag = self.tag(&payload);
        let mut out = Vec::with_capacity(TAG_BYTES + payload.len());
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(&payload);
        Some(out)
    }

    /// The verdict in `entry` with the time it has left, if the entry is authentic, bound to exactly
    /// `expected` and not expired.
    pub fn open<V: DeserializeOwned>(
        &self,
        expected: &Binding,
        entry: &[u8],
    ) -> Result<(V, Duration), Rejected> {
        if entry.len() <= TAG_BYTES || entry.len() > MAX_ENTRY_BYTES {
            return Err(Rejected::Size);
        }
        let (tag, payload) = entry.split_at(TAG_BYTES);
        let mut signed = Vec::with_capacity(TAG_CONTEXT.len() + payload.len());
        signed.extend_from_slice(TAG_CONTEXT);
        signed.extend_from_slice(payload);
        hmac::verify(&self.key, &signed, tag).map_err(|_| Rejected::Tag)?;
        let parsed: PayloadIn<V> = serde_json::from_slice(payload).map_err(|_| Rejected::Payload)?;
        if parsed.binding.generation != expected.generation {
            return Err(Rejected::Generation);
        }
        if parsed.binding != *expected {
            return Err(Rejected::Binding);
        }
        let left =
            parsed.expires_at_ms.checked_sub(now_ms()).filter(|ms| *ms > 0).ok_or(Rejected::Expired)?;
        Ok((parsed.verdict, Duration::from_millis(left)))
    }

    fn tag(&self, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(TAG_CONTEXT);
        ctx.update(payload);
        ctx.sign()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn key(n: u8) -> VerdictKey {
        VerdictKey {
            digest: Digest::sha256_of(&[n]),
            authority: "key:abc|trust-root:sha256:00".into(),
            requirement: "signature".into(),
        }
    }

    fn sealer() -> Sealer {
        Sealer::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn sealed_entries_open_under_their_own_binding_only() {
        let s = sealer();
        let b1 = Binding::new("g1", &key(1));
        let entry = s.seal(&b1, &"allowed", Duration::from_secs(60)).unwrap();
        let (v, left): (String, Duration) = s.open(&b1, &entry).unwrap();
        assert_eq!(v, "allowed");
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50), "{left:?}");
        // The same bytes asked for under another digest, authority, requirement or generation.
        assert_eq!(s.open::<String>(&Binding::new("g1", &key(2)), &entry).unwrap_err(), Rejected::Binding);
        let mut other = key(1);
        other.requirement = "sbom".into();
        assert_eq!(s.open::<String>(&Binding::new("g1", &other), &entry).unwrap_err(), Rejected::Binding);
        assert_eq!(s.open::<String>(&Binding::new("g2", &key(1)), &entry).unwrap_err(), Rejected::Generation);
    }

    #[test]
    fn altered_or_foreign_entries_are_rejected() {
        let s = sealer();
        let b = Binding::new("g1", &key(1));
        let mut entry = s.seal(&b, &"denied", Duration::from_secs(60)).unwrap();
        // Flip "denied" into something else in the payload: the tag no longer verifies.
        let last = entry.len() - 3;
        entry[last] ^= 0x01;
        assert_eq!(s.open::<String>(&b, &entry).unwrap_err(), Rejected::Tag);
        // Sealed with another key.
        let other = Sealer::new(&[8u8; 32]).unwrap().seal(&b, &"allowed", Duration::from_secs(60)).unwrap();
        assert_eq!(s.open::<String>(&b, &other).unwrap_err(), Rejected::Tag);
        assert_eq!(s.open::<String>(&b, b"short").unwrap_err(), Rejected::Size);
        assert_eq!(s.open::<String>(&b, &[0u8; MAX_ENTRY_BYTES + 1]).unwrap_err(), Rejected::Size);
    }

    #[test]
    fn an_expired_entry_is_rejected_even_when_authentic() {
        let s = sealer();
        let b = Binding::new("g1", &key(1));
        let entry = s.seal(&b, &"allowed", Duration::ZERO).unwrap();
        assert_eq!(s.open::<String>(&b, &entry).unwrap_err(), Rejected::Expired);
    }

    #[test]
    fn names_are_keyed_and_distinct() {
        let b1 = Binding::new("g1", &key(1));
        let b2 = Binding::new("g2", &key(1));
        assert_eq!(sealer().name(&b1), sealer().name(&b1));
        assert_ne!(sealer().name(&b1), sealer().name(&b2));
        assert_ne!(sealer().name(&b1), Sealer::new(&[8u8; 32]).unwrap().name(&b1));
        assert_eq!(sealer().name(&b1).len(), 64);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Sealer::new(&[1u8; MIN_KEY_BYTES - 1]).is_none());
    }
}
