//! Where the DynamoDB table is and how long a call may take: the `[events.dynamodb]` (or
//! `[snapshots.dynamodb]`) section of a server's configuration. Credentials come from the
//! standard AWS chain, never from here.

use std::time::Duration;

use serde::Deserialize;

/// Where the table is and how long a call may take.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamoConfig {
    /// An endpoint other than AWS's (an emulator such as moto); `None` for AWS itself.
    #[serde(rename = "endpoint", alias = "url")]
    pub endpoint_url: Option<String>,
    /// The AWS region; `None` takes it from the environment (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// The table; created when missing (if `create_table`).
    pub table: String,
    /// Seconds one attempt of a call may take before it is retried; a call, its retries
    /// included, answers `Unavailable` after twice that.
    #[serde(rename = "timeout", with = "crate::seconds")]
    pub attempt_timeout: Duration,
    #[serde(with = "crate::seconds")]
    pub connect_timeout: Duration,
    /// Create the table when it is missing (on-demand capacity).
    pub create_table: bool,
}

impl DynamoConfig {
    pub fn new(table: impl Into<String>) -> Self {
        Self { table: table.into(), ..Self::default() }
    }

    /// How long a call may take, its retries included.
    pub fn operation_timeout(&self) -> Duration {
        self.attempt_timeout * 2
    }
}

impl Default for DynamoConfig {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            table: "flipbook".to_owned(),
            attempt_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            create_table: true,
        }
    }
}
