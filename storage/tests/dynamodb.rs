//! The storage contract on DynamoDB: events and snapshots in one table. Needs
//! FLIPBOOK_TEST_DYNAMODB_URL (scripts/test starts moto and sets it, with dummy credentials);
//! FLIPBOOK_TEST_DYNAMODB_TABLE (one table for every case, instead of a fresh one per case) and
//! FLIPBOOK_TEST_DYNAMODB_REGION are optional, so the same tests run against AWS itself (URL
//! `aws`: the SDK's own endpoint and credential chain).

use std::sync::Arc;

use flipbook_storage::dynamodb::{DynamoConfig, DynamoEventStore, DynamoSnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

fn config() -> DynamoConfig {
    let url = std::env::var("FLIPBOOK_TEST_DYNAMODB_URL")
        .unwrap_or_else(|_| panic!("FLIPBOOK_TEST_DYNAMODB_URL must be set (scripts/test starts moto)"));
    // A table per case on the emulator, where tables cost nothing: cases then neither share
    // global positions (a subscription from "now" sees only its own case's appends) nor scan
    // each other's events when they read everything from the beginning.
    let table = std::env::var("FLIPBOOK_TEST_DYNAMODB_TABLE")
        .unwrap_or_else(|_| format!("flipbook-test-{}", uuid::Uuid::new_v4().simple()));
    let mut config = DynamoConfig::new(table);
    config.endpoint_url = (url != "aws").then_some(url);
    config.region = Some(std::env::var("FLIPBOOK_TEST_DYNAMODB_REGION").unwrap_or_else(|_| "us-east-1".to_owned()));
    config
}

async fn events() -> Arc<dyn EventStore> {
    let store = DynamoEventStore::open(&config()).await.expect("open DynamoDB");
    assert_eq!(store.limits().max_events_per_append, Some(64));
    Arc::new(store)
}

async fn snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(DynamoSnapshotStore::open(&config()).await.expect("open DynamoDB"))
}

flipbook_storage::event_store_contract!(events());

mod dynamodb_snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(snapshots());
}

mod bus {
    use super::*;
    flipbook_storage::event_bus_contract!(events());
}
