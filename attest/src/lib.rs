//! vouch-attest: facts about OCI artifacts.
//!
//! Turns an OCI reference into verified facts: which digest it names, who signed it (cosign keys, keyless
//! Sigstore identities, Notary Project trust stores, OpenSSF model signatures), which attestations and SBOMs
//! it carries. No policy, no HTTP server, no Kubernetes client: policies and webhooks build on it.

pub mod cache;
pub mod cosign;
pub mod digest;
pub mod dsse;
pub mod egress;
pub mod intoto;
pub mod keys;
pub mod model;
pub mod notation;
pub mod offline;
pub mod reference;
pub mod registry;
pub mod sbom;
pub mod shared_cache;
pub mod sigstore_verify;
#[doc(hidden)]
pub mod testdata;
pub mod trust_root;
pub mod tuf;
pub mod verdict;
pub mod verify;

pub use digest::{Digest, DigestAlgorithm};
pub use keys::{KeyError, PublicKey, SigningKey};
pub use reference::ArtifactRef;
