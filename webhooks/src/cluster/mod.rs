//! Kubernetes integration: cluster facts for admission (namespace labels, pull credentials), the policy
//! watch, the asynchronous status and report writer, and leader election for background work.
//!
//! Named `cluster` rather than `kube` so that paths such as `kube::Api` keep meaning the kube crate.
//! Nothing here is needed in file mode: [`NoCluster`] and [`StatusWriter::disabled`] stand in.
//!
//! Wiring in `vouch serve` (in-cluster):
//!
//! ```no_run
//! # async fn wire(engine: vouch_policies::Engine) -> Result<(), kube::Error> {
//! use std::sync::Arc;
//! use vouch_webhooks::cluster::{
//!     replica_name, ClusterContext, ContextCacheConfig, KubeContext, PolicyWatch, StatusConfig, StatusWriter,
//! };
//!
//! let client = kube::Client::try_default().await?;
//! let context: Arc<dyn ClusterContext> = Arc::new(KubeContext::new(client.clone(), &ContextCacheConfig::default()));
//! let (status, status_task) = StatusWriter::spawn(client.clone(), StatusConfig::default());
//! // Policy status gets this replica's counts under its pod name.
//! let watch =
//!     PolicyWatch::new(client, engine.clone()).with_counters(status.policy_counters(), replica_name()).spawn();
//! // Per request: labels and credentials before evaluating, then hand the result over (never waits).
//! # let (input, decision): (vouch_policies::AdmissionInput, vouch_policies::Decision) = todo!();
//! status.submit_admission(&input, &decision);
//! // On shutdown: stop the watch; drop every writer clone, then await the worker's final flush.
//! watch.abort();
//! drop(status);
//! let _ = tokio::time::timeout(std::time::Duration::from_secs(5), status_task).await;
//! # Ok(()) }
//! ```

pub mod context;
pub mod error;
pub mod event;
pub mod fingerprint;
pub mod leader;
pub mod object_status;
pub mod reports;
pub mod scanner;
pub mod status;
pub mod watch;

pub use context::{ClusterContext, ContextCacheConfig, KubeContext, NoCluster};
pub use error::KubeError;
pub use event::{ObjectRef, StatusEvent};
pub use leader::{spawn_leader_election, LeaderConfig, LeaderConfigError, LeaderElection};
pub use object_status::{Kept, RetryConfig, StatusSchemas, StatusTarget};
pub use status::{PolicyCounters, StatusConfig, StatusMetrics, StatusWorker, StatusWriter};
pub use watch::{replica_name, spawn_policy_watch, PolicyWatch, WatchConfig};
