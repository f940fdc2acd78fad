//! Where and how to connect to PostgreSQL: the `[events.postgres]` (or `[snapshots.postgres]`)
//! section of a server's configuration.

use std::time::Duration;

use serde::Deserialize;

/// Where and how to connect.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`
    pub url: String,
    pub max_connections: u32,
    /// Seconds a call waits for a connection before it answers `Unavailable`.
    #[serde(with = "crate::seconds")]
    pub acquire_timeout: Duration,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            max_connections: 32,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}
