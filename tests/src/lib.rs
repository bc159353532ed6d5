//! Test harness for the workspace integration tests: a fake Sigstore (CA, log, trusted root), an
//! independent, hand-written cosign signature writer, and the set-up the test files share (`fixture`).

pub mod egress;
pub mod fake_sigstore;
pub mod fault_proxy;
pub mod fixture;
pub mod handwritten_cosign;
pub mod models;
pub mod notation;
pub mod redis_server;
