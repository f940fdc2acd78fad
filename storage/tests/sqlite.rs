//! The storage contract on the SQLite backend (through the trait) and on the memory snapshot store.

use std::sync::Arc;

use flipbook_storage::memory::MemorySnapshotStore;
use flipbook_storage::sqlite::{SqliteConfig, SqliteEventStore, SqliteSnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

/// A fresh database file per case; the directory outlives the case's runtime on purpose.
fn config() -> SqliteConfig {
    let dir = tempfile::Builder::new().prefix("flipbook-sqlite-").tempdir().expect("temp dir").keep();
    SqliteConfig::new(dir.join("flipbook.db"))
}

async fn events() -> Arc<dyn EventStore> {
    Arc::new(SqliteEventStore::open(&config()).await.expect("open SQLite"))
}

async fn snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(SqliteSnapshotStore::open(&config()).await.expect("open SQLite"))
}

flipbook_storage::event_store_contract!(events());

mod sqlite_snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(snapshots());
}

mod memory_snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(async {
        Arc::new(MemorySnapshotStore::new()) as Arc<dyn SnapshotStore>
    });
}

mod bus {
    use super::*;
    flipbook_storage::event_bus_contract!(events());
}

/// A file from before events were stored as encoded bodies: opening it encodes every event from
/// the old columns and drops them; reads, re-sends and new appends then work on it.
#[tokio::test]
async fn events_stored_before_bodies_are_migrated() {
    use flipbook_storage::testkit::old_layout::{FIRST_ID, SECOND_ID, STATE, events_read_as_they_were};

    let config = config();
    let old = rusqlite::Connection::open(&config.path).expect("create the file");
    old.execute_batch(&format!(
        "CREATE TABLE states (state_id TEXT PRIMARY KEY, version_neutral INTEGER NOT NULL, \
             last_seq INTEGER NOT NULL, last_position INTEGER NOT NULL, first_recorded_at INTEGER NOT NULL, \
             last_recorded_at INTEGER NOT NULL, metadata TEXT NOT NULL) WITHOUT ROWID; \
         CREATE TABLE events (position INTEGER PRIMARY KEY, state_id TEXT NOT NULL, state_seq INTEGER NOT NULL, \
             version INTEGER, event_id TEXT NOT NULL, name TEXT NOT NULL, payload BLOB NOT NULL, \
             content_type TEXT NOT NULL, timestamp INTEGER, recorded_at INTEGER NOT NULL, metadata TEXT NOT NULL); \
         CREATE UNIQUE INDEX events_by_state ON events (state_id, state_seq); \
         CREATE UNIQUE INDEX events_by_event_id ON events (state_id, event_id); \
         INSERT INTO states VALUES ('{STATE}', 0, 2, 131074, 1000, 2000, '{{}}'); \
         INSERT INTO events VALUES \
             (131073, '{STATE}', 1, 1, '{FIRST_ID}', 'Opened', CAST('{{\"owner\":\"ana\"}}' AS BLOB), \
              'application/json', NULL, 1000, '{{}}'), \
             (131074, '{STATE}', 2, 2, '{SECOND_ID}', 'Deposited', x'0102', 'application/octet-stream', 1500, 2000, \
              '{{\"user\":\"ana\"}}');"
    ))
    .expect("the old tables");
    drop(old);

    let store = SqliteEventStore::open(&config).await.expect("open and migrate");
    let reopened = rusqlite::Connection::open(&config.path).expect("open");
    let mut statement = reopened.prepare("SELECT name FROM pragma_table_info('events')").expect("columns");
    let columns: Vec<String> =
        statement.query_map([], |row| row.get(0)).expect("columns").map(|c| c.expect("a column")).collect();
    assert_eq!(columns, ["position", "state_id", "state_seq", "version", "event_id", "name", "timestamp", "body"]);
    events_read_as_they_were(Arc::new(store)).await;
}
