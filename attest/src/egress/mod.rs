//! Signed egress allowlists: which destinations workloads may reach.
//!
//! An allowlist is a JSON document (`schemas/egress-allowlist.v1.schema.json`) published as an OCI artifact
//! and signed like an image (a cosign signature on its manifest digest). Azure kars's signed allowlists
//! (canonical YAML, artifactType [`KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE`]) are read too ([`KarsAllowlist`],
//! [`fetch_any_allowlist`], which chooses the format by artifactType). Workloads declare endpoints
//! (`api.example.com:443`, `10.0.0.0/8:5432`, ...); an endpoint is allowed only when a verified allowlist
//! [covers](Allowlist::covers) it. This module reads, checks, publishes and fetches allowlists; which
//! allowlist applies to whom and who must have signed it is policy, decided elsewhere.
//!
//! ```
//! use vouch_attest::egress::{Allowlist, Endpoint};
//! let list = Allowlist::parse(br#"{"apiVersion": "vouch.dev/egress/v1", "name": "payments",
//!     "hosts": [{"host": "*.stripe.com", "ports": [443]}], "cidrs": [{"cidr": "10.20.0.0/16"}]}"#).unwrap();
//! assert!(list.covers(&"api.stripe.com:443".parse::<Endpoint>().unwrap()));
//! assert!(!list.covers(&"api.stripe.com:80".parse::<Endpoint>().unwrap()));
//! assert!(list.covers(&"10.20.3.0/24:5432".parse::<Endpoint>().unwrap()));
//! assert!(!list.covers(&"10.0.0.0/8".parse::<Endpoint>().unwrap()));
//! ```

mod allowlist;
mod endpoint;
mod error;
mod kars;
mod oci;

pub use allowlist::{
    Allowlist, CidrRule, HostRule, Uncovered, API_VERSION, MAX_DOCUMENT_BYTES, MAX_ENTRIES, SCHEMA,
};
pub use endpoint::{Endpoint, EndpointError};
pub use error::EgressError;
pub use kars::{
    CanonicalRule, KarsAllowlist, KarsEndpoint, KARS_API_VERSION, KARS_EGRESS_ALLOWLIST_ARTIFACT_TYPE,
    KARS_KIND,
};
pub use oci::{fetch_allowlist, fetch_any_allowlist, push_allowlist};

/// artifactType of an egress allowlist's OCI manifest.
pub const EGRESS_ALLOWLIST_ARTIFACT_TYPE: &str = "application/vnd.vouch.egress-allowlist.v1+json";
/// Media type of the one layer holding the allowlist document.
pub const EGRESS_ALLOWLIST_MEDIA_TYPE: &str = "application/vnd.vouch.egress-allowlist.layer.v1+json";

/// A verified allowlist in either format: vouch's ([`Allowlist`]) or kars's ([`KarsAllowlist`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyAllowlist {
    /// `application/vnd.vouch.egress-allowlist.v1+json`.
    Vouch(Allowlist),
    /// `application/vnd.kars.egress-allowlist.v1+yaml`.
    Kars(KarsAllowlist),
}

impl AnyAllowlist {
    /// The name used in messages.
    pub fn name(&self) -> String {
        match self {
            Self::Vouch(l) => l.name.clone(),
            Self::Kars(l) => l.label(),
        }
    }

    /// Whether the list allows `endpoint`, by its format's rules.
    pub fn covers(&self, endpoint: &Endpoint) -> bool {
        match self {
            Self::Vouch(l) => l.covers(endpoint),
            Self::Kars(l) => l.covers(endpoint),
        }
    }

    /// The endpoints, as written, that the list does not cover, with why.
    pub fn uncovered<S: AsRef<str>>(&self, written: &[S]) -> Vec<Uncovered> {
        match self {
            Self::Vouch(l) => l.uncovered(written),
            Self::Kars(l) => l.uncovered(written),
        }
    }
}
