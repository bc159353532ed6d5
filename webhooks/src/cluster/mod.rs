//! Kubernetes integration: cluster facts for admission (namespace labels, pull credentials), the policy
//! watch, and the asynchronous status and report writer.
//!
//! Named `cluster` rather than `kube` so that paths such as `kube::Api` keep meaning the kube crate.
//! Nothing here is needed in file mode: [`NoCluster`] and a disabled [`StatusWriter`] stand in.

pub mod context;
pub mod error;
pub mod reports;
pub mod status;
pub mod watch;

pub use context::{ClusterContext, ContextCacheConfig, KubeContext, NoCluster};
pub use error::KubeError;
pub use status::{
    ObjectRef, PolicyCounters, RetryConfig, StatusConfig, StatusEvent, StatusMetrics, StatusTarget,
    StatusWorker, StatusWriter,
};
pub use watch::{spawn_policy_watch, PolicyWatch, WatchConfig};
