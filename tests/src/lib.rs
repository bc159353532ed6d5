//! Test harness for the workspace integration tests: a fake Sigstore (CA, log, trusted root) and an
//! independent, hand-written cosign signature writer.

pub mod egress;
pub mod fake_sigstore;
pub mod fault_proxy;
pub mod handwritten_cosign;
pub mod models;
