//! The embedded default backend: events and snapshots in one SQLite file, in WAL mode.
//!
//! - One writer task owns the only write connection. Appends queue for it; it takes every append
//!   waiting (up to [`MAX_GROUP`]) into one transaction, each inside its own savepoint so one
//!   refused append rolls back alone, and commits them together: one fsync for many clients
//!   (group commit). Single writer also means global positions become visible in order.
//! - Reads use a pool of read-only connections; WAL lets them run beside the writer. They go
//!   through rusqlite in blocking threads (`reads.rs`): sqlx hands every row from its worker
//!   thread to the async side, which made a read cost three times what SQLite does.
//! - `synchronous=FULL` by default: an acknowledged append survives power loss.
//!   `NORMAL` survives a process crash only; `OFF` neither.

mod events;
mod reads;
mod snapshots;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

pub use events::SqliteEventStore;
pub use snapshots::SqliteSnapshotStore;

use crate::error::Error;

/// How many queued appends one transaction may take.
pub const MAX_GROUP: usize = 256;

/// How much an acknowledged append survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
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

impl Durability {
    fn synchronous(self) -> SqliteSynchronous {
        match self {
            Self::Full => SqliteSynchronous::Full,
            Self::Normal => SqliteSynchronous::Normal,
            Self::Off => SqliteSynchronous::Off,
        }
    }
}

/// Where and how to open the database.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    pub path: PathBuf,
    pub durability: Durability,
    pub read_connections: u32,
    /// How long a write waits for SQLite's lock held by another process or connection.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::Full,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }

    fn options(&self) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(self.durability.synchronous())
            .busy_timeout(self.busy_timeout)
            .statement_cache_capacity(64)
            // sqlx hands rows from its worker thread over a channel; room for a whole page
            // spares a thread wake-up every few rows.
            .row_buffer_size(crate::read::DEFAULT_PAGE_SIZE)
            .disable_statement_logging()
    }

    /// A pool of `size` connections; creates the file and the schema.
    async fn pool(&self, size: u32, read_only: bool) -> Result<SqlitePool, Error> {
        let options = self.options();
        let options = if read_only { options.read_only(true) } else { options };
        SqlitePoolOptions::new().min_connections(1).max_connections(size).connect_with(options).await.map_err(sql_error)
    }
}

/// The schema of both stores. `state_seq` numbers a state's events 1, 2, 3 …; `version` repeats
/// it for versioned states and is NULL for version-neutral ones. `position` (the rowid) is the
/// global position: one writer assigns it, so it becomes visible in order.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS states (
    state_id          TEXT    PRIMARY KEY,
    version_neutral   INTEGER NOT NULL,
    last_seq          INTEGER NOT NULL,
    last_position     INTEGER NOT NULL,
    first_recorded_at INTEGER NOT NULL,
    last_recorded_at  INTEGER NOT NULL,
    metadata          TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    position     INTEGER PRIMARY KEY,
    state_id     TEXT    NOT NULL,
    state_seq    INTEGER NOT NULL,
    version      INTEGER,
    event_id     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    content_type TEXT    NOT NULL,
    timestamp    INTEGER,
    recorded_at  INTEGER NOT NULL,
    metadata     TEXT    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_state ON events (state_id, state_seq);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_event_id ON events (state_id, event_id);

CREATE TABLE IF NOT EXISTS snapshots (
    state_id         TEXT    NOT NULL,
    reducer_revision TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    content_type     TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (state_id, reducer_revision, version)
) WITHOUT ROWID;
"#;

async fn create_schema(pool: &SqlitePool) -> Result<(), Error> {
    sqlx::raw_sql(SCHEMA).execute(pool).await.map(drop).map_err(sql_error)
}

/// Maps sqlx's errors to the storage error: I/O, pool and busy failures can pass, the rest are
/// bugs or corruption.
fn sql_error(error: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match &error {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => Error::Unavailable(error.to_string()),
        E::Database(db) if matches!(db.code().as_deref(), Some("5" | "6" | "517")) => {
            // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT: another writer holds the file.
            Error::Unavailable(error.to_string())
        }
        _ => Error::Internal(error.to_string()),
    }
}

/// A JSON array of names for `IN (SELECT value FROM json_each(?))`; `None` for "all names".
fn names_json(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| serde_json::to_string(names).unwrap_or_default())
}
