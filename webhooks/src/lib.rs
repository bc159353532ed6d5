//! vouch-webhooks: the `vouch` binary's library: command line, and (later) the admission webhooks.

pub mod cli;
pub mod dev_registry;
pub mod cluster;
pub mod server;
