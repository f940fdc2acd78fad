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
