//! vouch-webhooks: the `vouch` binary: command line, admission webhook server, Kubernetes integration.

pub mod cli;
pub mod cloudevents;
pub mod cluster;
pub mod dev_registry;
pub mod scan;
pub mod server;
pub mod telemetry;
