//! AdmissionReview in and out, in three steps that know nothing of each other but the types passed on:
//!
//! - reading: [`parse_review`] reads a body as an `admission.k8s.io/v1` AdmissionReview exactly as
//!   kube-apiserver sends it, bounded, into a [`Review`] (a hostile or malformed body is a [`ReviewError`],
//!   answered with HTTP 400); [`Review::into_input`] adds the [`ClusterFacts`] the engine needs;
//! - patching: [`pin_patch`] is the mutating webhook's JSON patch (RFC 6902) pinning verified images to
//!   their digests, with the [`VERIFIED_ANNOTATION`] summary;
//! - answering: [`validate_response`] and [`mutate_response`] turn a [`Decision`](vouch_policies::Decision)
//!   into the AdmissionReview to send, through kube's `AdmissionResponse`.

mod patch;
mod response;
mod review;

pub use patch::{pin_patch, verified_summary, PinScope, MAX_SUMMARY_BYTES, VERIFIED_ANNOTATION};
pub use response::{
    audit_annotations, mutate_response, validate_response, ResponseReview, AUDIT_ANNOTATION_PREFIX,
    MAX_AUDIT_ANNOTATIONS, MAX_AUDIT_VALUE_BYTES, MAX_WARNINGS, MAX_WARNING_BYTES,
};
pub use review::{operation_name, parse_review, ClusterFacts, ReadSeparately, Review, ReviewError};

/// The only AdmissionReview version served (kube's `META_API_VERSION_V1`).
pub const API_VERSION: &str = kube::core::admission::META_API_VERSION_V1;
