//! Where and how to open the SQLite file: the `[events.sqlite]` section of a server's
//! configuration, and what embedded mode opens.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// How much an acknowledged append survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Durability {
    /// `synchronous=FULL`: power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a process crash, not power loss. Faster.
    Normal,
    /// `synchronous=OFF`: nothing beyond the OS's page cache. For throwaway data.
    Off,
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            "off" => Ok(Self::Off),
            other => Err(format!("unknown durability {other:?}: expected full, normal or off")),
        }
    }
}

impl TryFrom<String> for Durability {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// Where and how to open the database.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    pub path: PathBuf,
    /// `full` (the default: survives power loss), `normal` (survives a process crash), `off`.
    pub durability: Durability,
    /// Read-only connections beside the one writer (at least one is opened).
    pub read_connections: u32,
    /// Seconds a write waits for SQLite's lock held by another process or connection.
    #[serde(with = "crate::seconds")]
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), ..Self::default() }
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("flipbook.db"),
            durability: Durability::Full,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}
