//! The event store's reads, on rusqlite connections in blocking threads. sqlx runs each SQLite
//! connection on a worker thread and hands every row over a channel to the async side; for
//! page reads that cost about three times what SQLite itself does (benches/README.md). Writes
//! stay on sqlx's connection in the writer task; both drivers link the same SQLite.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::SqliteConfig;
use crate::encoding::{metadata_from_json, to_u64};
use crate::error::{Error, Result};
use crate::model::{Metadata, RecordedEvent, Timestamp};
use crate::store::Page;

/// Read-only connections, at most `read_connections` in use at once, kept open between reads.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(config: &SqliteConfig) -> Arc<Self> {
        Arc::new(Self {
            path: config.path.clone(),
            busy_timeout: config.busy_timeout,
            permits: Semaphore::new(config.read_connections.max(1) as usize),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `read` on a connection of the pool, in a blocking thread.
    pub(super) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Unavailable("the store is closed".to_owned()))?;
        let readers = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || {
            let connection = match readers.idle.lock().map_err(|_| poisoned())?.pop() {
                Some(connection) => connection,
                None => readers.open().map_err(read_error)?,
            };
            let result = read(&connection).map_err(read_error);
            readers.idle.lock().map_err(|_| poisoned())?.push(connection);
            result
        });
        done.await.map_err(|e| Error::Internal(format!("a SQLite read failed: {e}")))?
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags)?;
        connection.busy_timeout(self.busy_timeout)?;
        connection.set_prepared_statement_cache_capacity(16);
        Ok(connection)
    }
}

fn poisoned() -> Error {
    Error::Internal("the SQLite readers' lock is poisoned".to_owned())
}

/// As `sql_error` does for sqlx: a busy or locked file can pass, the rest are bugs or corruption.
fn read_error(error: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match error.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => Error::Unavailable(error.to_string()),
        _ => Error::Internal(error.to_string()),
    }
}

/// An event from a row of `event_columns!()`.
pub(super) fn recorded_event(row: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let event_id: String = row.get(4)?;
    Ok(RecordedEvent {
        global_position: to_u64(row.get(0)?),
        state_id: row.get(1)?,
        version: row.get::<_, Option<i64>>(3)?.map(to_u64),
        event_id: Uuid::parse_str(&event_id).map_err(|e| corrupt(4, e))?,
        name: row.get(5)?,
        payload: row.get(6)?,
        content_type: row.get(7)?,
        timestamp: row.get::<_, Option<i64>>(8)?.map(Timestamp::from_unix_nanos),
        recorded_at: Timestamp::from_unix_nanos(row.get(9)?),
        metadata: metadata(row, 10)?,
    })
}

/// The metadata map stored as JSON in column `column`.
pub(super) fn metadata(row: &Row<'_>, column: usize) -> rusqlite::Result<Metadata> {
    metadata_from_json(row.get_ref(column)?.as_str()?).map_err(|e| corrupt(column, e))
}

fn corrupt(column: usize, error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(error))
}

/// A page from a query of `event_columns!()` ordered by its column `cursor`, with `LIMIT max`:
/// a page shorter than asked is the last one.
pub(super) fn page(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    max: usize,
    cursor: usize,
) -> rusqlite::Result<Page> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let (mut events, mut last) = (Vec::with_capacity(max.min(4096)), 0);
    while let Some(row) = rows.next()? {
        last = row.get(cursor)?;
        events.push(recorded_event(row)?);
    }
    let next = (events.len() >= max).then_some(to_u64(last));
    Ok(Page { events, next })
}
