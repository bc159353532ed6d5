//! cosign's "simple signing" payload: the JSON document a cosign image signature signs.
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"reg/repo"},
//!              "image":{"docker-manifest-digest":"sha256:…"},
//!              "type":"cosign container image signature"},
//!  "optional":{…}}
//! ```
//! Only `critical` is trusted; the manifest digest in it must equal the digest being verified, which is
//! what stops a signature from being copied to another image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CosignError;
use crate::digest::Digest;
use crate::reference::ArtifactRef;

/// `critical.type` of a cosign image signature.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// Largest payload accepted (cosign's are a few hundred bytes; annotations can add some).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// A parsed simple-signing payload.
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleSigningPayload {
    /// `critical.identity.docker-reference`: the repository the signer named (informational).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: the manifest the signature is for.
    pub manifest_digest: Digest,
    /// `optional`: signer-supplied annotations (not part of any check).
    pub optional: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct Raw {
    critical: RawCritical,
    #[serde(default)]
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
struct RawCritical {
    identity: RawIdentity,
    image: RawImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct RawIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct RawImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

impl SimpleSigningPayload {
    /// The payload cosign writes for `artifact` (which must carry a digest): the repository name as
    /// identity, the digest as the signed manifest.
    pub fn for_artifact(
        artifact: &ArtifactRef,
        optional: BTreeMap<String, serde_json::Value>,
    ) -> Result<Self, CosignError> {
        let digest =
            artifact.digest().ok_or_else(|| CosignError::NotPinned { reference: artifact.to_string() })?;
        Ok(Self { docker_reference: artifact.repository_name(), manifest_digest: digest.clone(), optional })
    }

    /// Serialise as cosign does (`optional` is `null` when empty).
    pub fn to_json(&self) -> Vec<u8> {
        let raw = Raw {
            critical: RawCritical {
                identity: RawIdentity { docker_reference: self.docker_reference.clone() },
                image: RawImage { docker_manifest_digest: self.manifest_digest.to_string() },
                kind: SIMPLE_SIGNING_TYPE.to_owned(),
            },
            optional: if self.optional.is_empty() { None } else { Some(self.optional.clone()) },
        };
        serde_json::to_vec(&raw).unwrap_or_default()
    }

    /// Parse a payload, insisting on cosign's `critical.type` and a well-formed digest.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CosignError> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(CosignError::TooLarge { what: "simple signing payload", limit: MAX_PAYLOAD_BYTES });
        }
        let bad = |reason: String| CosignError::BadPayload { reason };
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if raw.critical.kind != SIMPLE_SIGNING_TYPE {
            return Err(bad(format!(
                "critical.type is {:?}, not {SIMPLE_SIGNING_TYPE:?}",
                raw.critical.kind.chars().take(100).collect::<String>()
            )));
        }
        let manifest_digest = raw
            .critical
            .image
            .docker_manifest_digest
            .parse::<Digest>()
            .map_err(|e| bad(format!("critical.image.docker-manifest-digest: {e}")))?;
        Ok(Self {
            docker_reference: raw.critical.identity.docker_reference,
            manifest_digest,
            optional: raw.optional.unwrap_or_default(),
        })
    }

    /// Fail unless the payload names `expected` (a signature made for another image names another digest).
    pub fn require_digest(&self, expected: &Digest) -> Result<(), CosignError> {
        if &self.manifest_digest == expected {
            Ok(())
        } else {
            Err(CosignError::PayloadDigestMismatch {
                signed: self.manifest_digest.clone(),
                expected: expected.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> ArtifactRef {
        let d = Digest::sha256_of(b"manifest");
        format!("reg.example/app:v1@{d}").parse().unwrap()
    }

    #[test]
    fn round_trips_and_matches_cosign_shape() {
        let p = SimpleSigningPayload::for_artifact(&artifact(), BTreeMap::new()).unwrap();
        let json = p.to_json();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["critical"]["type"], SIMPLE_SIGNING_TYPE);
        assert_eq!(v["critical"]["identity"]["docker-reference"], "reg.example/app");
        assert_eq!(
            v["critical"]["image"]["docker-manifest-digest"],
            Digest::sha256_of(b"manifest").to_string()
        );
        assert!(v["optional"].is_null());
        assert_eq!(SimpleSigningPayload::from_json(&json).unwrap(), p);
    }

    #[test]
    fn names_only_its_own_digest() {
        let p = SimpleSigningPayload::for_artifact(&artifact(), BTreeMap::new()).unwrap();
        p.require_digest(&Digest::sha256_of(b"manifest")).unwrap();
        let err = p.require_digest(&Digest::sha256_of(b"other")).unwrap_err();
        assert!(matches!(err, CosignError::PayloadDigestMismatch { .. }), "{err}");
    }

    #[test]
    fn rejects_wrong_type_bad_digest_and_junk() {
        let d = Digest::sha256_of(b"m");
        let wrong_type = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r/a"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"something else"}}}}"#
        );
        assert!(SimpleSigningPayload::from_json(wrong_type.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("critical.type"));
        let bad_digest = r#"{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:zz"},"type":"cosign container image signature"}}"#;
        assert!(SimpleSigningPayload::from_json(bad_digest.as_bytes()).is_err());
        assert!(SimpleSigningPayload::from_json(b"not json").is_err());
        assert!(SimpleSigningPayload::from_json(&vec![b' '; MAX_PAYLOAD_BYTES + 1]).is_err());
        let unpinned: ArtifactRef = "reg.example/app:v1".parse().unwrap();
        assert!(SimpleSigningPayload::for_artifact(&unpinned, BTreeMap::new()).is_err());
    }
}
