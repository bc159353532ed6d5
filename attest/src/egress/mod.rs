//! Signed egress allowlists: which destinations workloads may reach.
//!
//! An allowlist is a JSON document (`schemas/egress-allowlist.v1.schema.json`) published as an OCI artifact
//! and signed like an image (a cosign signature on its manifest digest). Workloads declare endpoints
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
mod oci;

pub use allowlist::{
    Allowlist, CidrRule, HostRule, Uncovered, API_VERSION, MAX_DOCUMENT_BYTES, MAX_ENTRIES, SCHEMA,
};
pub use endpoint::{Endpoint, EndpointError};
pub use error::EgressError;
pub use oci::{fetch_allowlist, push_allowlist};

/// artifactType of an egress allowlist's OCI manifest.
pub const EGRESS_ALLOWLIST_ARTIFACT_TYPE: &str = "application/vnd.vouch.egress-allowlist.v1+json";
/// Media type of the one layer holding the allowlist document.
pub const EGRESS_ALLOWLIST_MEDIA_TYPE: &str = "application/vnd.vouch.egress-allowlist.layer.v1+json";
