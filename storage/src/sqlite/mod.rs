//! The embedded default backend: events and snapshots in one SQLite file, in WAL mode.
//!
//! - One writer thread owns the only write connection. Appends queue for it; it takes every
//!   append waiting (up to [`MAX_GROUP`]) into one transaction and commits them together: one
//!   fsync for many clients (group commit). Single writer also means global positions become
//!   visible in order.
//! - Reads use a pool of read-only connections on blocking threads (`pool.rs`); WAL lets them
//!   run beside the writer.
//! - `synchronous=FULL` by default: an acknowledged append survives power loss.
//!   `NORMAL` survives a process crash only; `OFF` neither.

mod events;
mod pool;
mod snapshots;

use rusqlite::{Connection, OpenFlags};

pub use crate::{Durability, SqliteConfig};
pub use events::SqliteEventStore;
pub use snapshots::SqliteSnapshotStore;

use flipbook_model::Error;

/// How many queued appends one transaction may take.
pub const MAX_GROUP: usize = 256;

impl Durability {
    fn synchronous(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Off => "OFF",
        }
    }
}

impl SqliteConfig {
    /// A connection; a writing one creates the file when missing and puts it in WAL mode.
    fn connect(&self, read_only: bool) -> Result<Connection, Error> {
        let access = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        };
        let open = || {
            // Each connection is used by one thread at a time: SQLite's own mutexes are not needed.
            let connection = Connection::open_with_flags(&self.path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            connection.busy_timeout(self.busy_timeout)?;
            connection.set_prepared_statement_cache_capacity(32);
            if !read_only {
                connection.pragma_update(None, "journal_mode", "WAL")?;
                connection.pragma_update(None, "synchronous", self.durability.synchronous())?;
            }
            Ok(connection)
        };
        open().map_err(|error| self.cannot_open(error))
    }

    /// Why the file did not open, said as the operator can act on it: SQLite says only "unable
    /// to open database file" for a missing directory, a file it may not write and a read-only
    /// file system alike (a WAL database needs its `-shm` file beside it).
    fn cannot_open(&self, error: rusqlite::Error) -> Error {
        let writable = std::fs::OpenOptions::new().append(true).open(&self.path);
        match writable.map_err(|e| e.kind()) {
            Err(std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied) => {
                Error::ReadOnly(format!("{}: {error} (the file or its file system is read-only)", self.path.display()))
            }
            _ => sqlite_error(error),
        }
    }
}

/// The schema of both stores. `state_seq` numbers a state's events 1, 2, 3 …; `version` repeats
/// it for versioned states and is NULL for version-neutral ones. `position` (the rowid) is the
/// global position: one writer assigns it, so it becomes visible in order. `body` holds the rest
/// of the event as the API encodes it ([`crate::wire`]), so a read copies it; `event_id`, `name`
/// and `timestamp` are columns too, for the unique index and the read filters.
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
    timestamp    INTEGER,
    body         BLOB    NOT NULL
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

/// Creates what is missing and migrates what is old, in one transaction that takes the write
/// lock first: the event and snapshot stores may open the same file at once.
fn create_schema(connection: &Connection) -> Result<(), Error> {
    let tx = rusqlite::Transaction::new_unchecked(connection, rusqlite::TransactionBehavior::Immediate).db()?;
    tx.execute_batch(SCHEMA).db()?;
    events::encode_old_bodies(&tx)?;
    tx.commit().db()
}

/// A busy or locked file (another writer holds it past `busy_timeout`) can pass; a full disk
/// and a read-only file are the operator's to fix, not bugs; the rest are bugs or corruption.
fn sqlite_error(error: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull, ReadOnly};
    match error.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => Error::Unavailable(error.to_string()),
        Some(DiskFull) => Error::StorageFull(error.to_string()),
        Some(ReadOnly) => Error::ReadOnly(error.to_string()),
        _ => Error::Internal(error.to_string()),
    }
}

/// `.db()?` turns a SQLite failure into the model's [`Error`] (which, defined in another crate,
/// cannot implement `From<rusqlite::Error>` here).
trait Db<T> {
    fn db(self) -> Result<T, Error>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, Error> {
        self.map_err(sqlite_error)
    }
}

/// A JSON array of names for `IN (SELECT value FROM json_each(?))`; `None` for "all names".
fn names_json(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| serde_json::to_string(names).unwrap_or_default())
}
