//! The storage contract on PostgreSQL, through the trait. Needs a server: FLIPBOOK_TEST_POSTGRES_URL
//! (scripts/test starts one). Every case shares the database; the kit's state ids keep them apart.

use std::sync::Arc;

use flipbook_storage::postgres::{PostgresConfig, PostgresEventStore, PostgresSnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

fn config() -> PostgresConfig {
    let url = std::env::var("FLIPBOOK_TEST_POSTGRES_URL")
        .expect("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test starts one)");
    PostgresConfig::new(url)
}

async fn events() -> Arc<dyn EventStore> {
    Arc::new(PostgresEventStore::open(&config()).await.expect("open PostgreSQL"))
}

async fn snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(PostgresSnapshotStore::open(&config()).await.expect("open PostgreSQL"))
}

flipbook_storage::event_store_contract!(events());

mod postgres_snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(snapshots());
}

mod bus {
    use super::*;
    flipbook_storage::event_bus_contract!(events());
}
