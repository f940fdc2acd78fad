//! Where and how to connect to Redis: the `[events.redis]` (or `[snapshots.redis]`) section of a
//! server's configuration.

use std::time::Duration;

use serde::Deserialize;

/// Where and how to connect.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db`; for a cluster, any of its nodes (see `RedisSnapshotStore::open_cluster`).
    pub url: String,
    /// Seconds one command may take before it answers `Unavailable`.
    #[serde(with = "crate::seconds")]
    pub response_timeout: Duration,
    /// Seconds connecting may take.
    #[serde(with = "crate::seconds")]
    pub connection_timeout: Duration,
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".to_owned(),
            response_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(2),
        }
    }
}
