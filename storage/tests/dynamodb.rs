//! The storage contract on DynamoDB: events and snapshots in one table. Needs
//! FLIPBOOK_TEST_DYNAMODB_URL (scripts/test starts moto and sets it, with dummy credentials);
//! FLIPBOOK_TEST_DYNAMODB_TABLE (one table for every case, instead of a fresh one per case) and
//! FLIPBOOK_TEST_DYNAMODB_REGION are optional, so the same tests run against AWS itself (URL
//! `aws`: the SDK's own endpoint and credential chain; set a table there, or every case creates
//! one and leaves it).
//!
//! Known: with one table for every case, `bus::bus_starts_after_a_position_or_now` fails (two
//! runs out of two on moto). The other cases' appends move the settled position past the
//! subscription's own events, so the bus queues a checkpoint for it while the case is still
//! waiting on its other subscription, and after `Bus::close` the stream hands out that queued
//! checkpoint before the UNAVAILABLE the case expects next (the bus delivers queued messages,
//! then the error). A question for the bus (drop queued messages on close?) or the case, not
//! the backend; with a table per case nothing else moves the position and it passes.

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

/// What one transaction cannot hold is refused whole, with the limit named; large events are
/// split over several chunks and read back whole, in order, forward and backward.
mod dynamodb_limits {
    use flipbook_storage::Error;
    use flipbook_storage::model::{AllQuery, AppendRequest, Direction, Expectation, ProposedEvent, StateQuery};
    use flipbook_storage::testkit::{events as some_events, read, read_all, unique_state};

    use super::*;

    #[tokio::test]
    async fn batches_beyond_a_transaction_are_refused_and_large_events_split_into_chunks() {
        let store = events().await;
        let state = unique_state("limits");
        let too_many = store.append(AppendRequest::new(&state, Expectation::Any, some_events("E", 65))).await;
        assert!(matches!(&too_many, Err(Error::TooLarge { limit, .. }) if limit.contains("64")), "{too_many:?}");
        let huge = vec![ProposedEvent::new("Huge", vec![b'x'; 360_000])];
        let huge = store.append(AppendRequest::new(&state, Expectation::Any, huge)).await;
        assert!(matches!(&huge, Err(Error::TooLarge { field, .. }) if field == "events[0]"), "{huge:?}");
        let heavy: Vec<_> = (0..10).map(|_| ProposedEvent::new("Heavy", vec![b'y'; 200_000])).collect();
        let heavy = store.append(AppendRequest::new(&state, Expectation::Any, heavy)).await;
        assert!(matches!(heavy, Err(Error::TooLarge { .. })), "2 MB in one append: {heavy:?}");
        assert!(store.head(&state).await.expect("head").is_none(), "nothing stored");

        // Five events of 200 kB: five chunks, between small events.
        let mut batch = some_events("Small", 2);
        batch.extend((0..5u8).map(|i| ProposedEvent::new("Large", vec![i; 200_000])));
        batch.extend(some_events("Small", 2));
        let ids: Vec<_> = batch.iter().map(|e| e.event_id).collect();
        let outcome = store.append(AppendRequest::new(&state, Expectation::NoState, batch.clone())).await;
        assert_eq!(outcome.expect("stored").last_version, Some(9));
        let forward = read(&store, StateQuery::all(&state)).await;
        assert_eq!(forward.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
        assert!(forward.iter().zip(&batch).all(|(stored, sent)| sent.is_recorded_as(stored)));
        let backward = read(&store, StateQuery { direction: Direction::Backward, ..StateQuery::all(&state) }).await;
        assert_eq!(backward.iter().rev().map(|e| e.event_id).collect::<Vec<_>>(), ids);
        let all = read_all(&store, AllQuery { state_id_prefix: state.clone(), ..AllQuery::default() }).await;
        assert_eq!(all.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
        // A re-send of the split batch is a replay.
        let again = store.append(AppendRequest::new(&state, Expectation::NoState, batch)).await;
        assert_eq!(again.expect("replayed").last_version, Some(9));
    }
}
