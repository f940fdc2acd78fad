//! The storage contract on the in-memory stores (through the traits). Needs no services.

use std::sync::Arc;

use flipbook_storage::memory::{MemoryEventStore, MemorySnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

flipbook_storage::event_store_contract!(async { Arc::new(MemoryEventStore::new()) as Arc<dyn EventStore> });

mod snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(async {
        Arc::new(MemorySnapshotStore::new()) as Arc<dyn SnapshotStore>
    });
}

mod bus {
    use super::*;
    flipbook_storage::event_bus_contract!(async { Arc::new(MemoryEventStore::new()) as Arc<dyn EventStore> });
}
