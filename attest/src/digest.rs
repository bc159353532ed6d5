//! Content digests (`sha256:<hex>`), the only thing vouch ever verifies.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// A digest algorithm vouch accepts in references and descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256 (the OCI default).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The name used in `algorithm:hex` strings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha384 => 96,
            Self::Sha512 => 128,
        }
    }

    /// Hash `bytes` with this algorithm.
    pub fn hash(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(bytes).to_vec(),
            Self::Sha384 => Sha384::digest(bytes).to_vec(),
            Self::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {input:?}: {reason}")]
pub struct DigestError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A content digest such as `sha256:9f86d0…`; the hex is always lower case and of the right length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::of(DigestAlgorithm::Sha256, bytes)
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: DigestAlgorithm, bytes: &[u8]) -> Self {
        Self { algorithm, hex: hex::encode(algorithm.hash(bytes)) }
    }

    /// Build from raw digest bytes.
    pub fn from_bytes(algorithm: DigestAlgorithm, raw: &[u8]) -> Result<Self, DigestError> {
        let hex = hex::encode(raw);
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError {
                input: format!("{}:{hex}", algorithm.name()),
                reason: "wrong length for the algorithm",
            });
        }
        Ok(Self { algorithm, hex })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The lower-case hex value without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The raw digest bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // The hex was validated at construction.
        hex::decode(&self.hex).unwrap_or_default()
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Self::of(self.algorithm, bytes) == *self
    }

    /// cosign's tag for things attached to this digest: `sha256-<hex>` (suffix added by callers).
    pub fn cosign_tag_stem(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DigestError { input: s.chars().take(200).collect(), reason };
        let (alg, hex) = s.split_once(':').ok_or_else(|| err("missing ':'"))?;
        let algorithm = match alg {
            "sha256" => DigestAlgorithm::Sha256,
            "sha384" => DigestAlgorithm::Sha384,
            "sha512" => DigestAlgorithm::Sha512,
            _ => return Err(err("unsupported algorithm")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(err("wrong length for the algorithm"));
        }
        if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(err("not lower-case hex"));
        }
        Ok(Self { algorithm, hex: hex.to_owned() })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_sha256() {
        let d: Digest =
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".parse().unwrap();
        assert_eq!(d, Digest::sha256_of(b"test"));
        assert!(d.matches(b"test"));
        assert!(!d.matches(b"tesT"));
        assert_eq!(d.cosign_tag_stem().len(), 71);
    }

    #[test]
    fn rejects_bad_digests_with_reason() {
        for (input, reason) in [
            ("sha256", "missing ':'"),
            ("md5:abcd", "unsupported algorithm"),
            ("sha256:abcd", "wrong length for the algorithm"),
            ("sha256:9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", "not lower-case hex"),
        ] {
            let err = input.parse::<Digest>().unwrap_err();
            assert_eq!(err.reason, reason, "{input}");
        }
    }
}
