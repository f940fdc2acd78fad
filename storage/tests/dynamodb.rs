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

mod common;

use common::config;
use flipbook_storage::dynamodb::{DynamoEventStore, DynamoSnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

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
    use flipbook_model::Error;
    use flipbook_model::{AllQuery, AppendRequest, Direction, Expectation, ProposedEvent, StateQuery};
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

/// Appends waiting in one process are written together: fewer transactions than appends, and
/// still each caller gets its own outcome (conflicts, replays, duplicates), versions without
/// gaps, positions unique and contiguous.
mod dynamodb_group_commit {
    use std::collections::HashMap;

    use flipbook_model::Error;
    use flipbook_model::{AllQuery, AppendOutcome, AppendRequest, Expectation, StateQuery};
    use flipbook_storage::testkit::{event, events as some_events, read, read_all, unique_state};
    use futures::future::join_all;

    use super::*;

    /// Every event of the table in global order: positions 1, 2, 3 … up to the settled one,
    /// and each state's versions 1, 2, 3 … in that order.
    async fn assert_gapless(store: &Arc<dyn EventStore>) -> Vec<flipbook_model::RecordedEvent> {
        let all = read_all(store, AllQuery::default()).await;
        let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
        assert_eq!(positions, (1..=all.len() as u64).collect::<Vec<_>>(), "positions unique and contiguous");
        assert_eq!(store.settled_position().await.expect("settled"), all.len() as u64);
        let mut last: HashMap<&str, u64> = HashMap::new();
        for e in &all {
            let version = last.entry(&e.state_id).or_default();
            *version += 1;
            assert_eq!(e.version, Some(*version), "{} has no gaps", e.state_id);
        }
        all
    }

    fn positions_of(outcome: &AppendOutcome) -> &[u64] {
        &outcome.global_positions
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_appends_share_transactions_and_keep_their_own_outcomes() {
        let store = DynamoEventStore::open(&config()).await.expect("open DynamoDB");
        let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
        // Before: a contested state at version 1, and a batch stored once.
        let contested = unique_state("contested");
        dyn_store.append(AppendRequest::new(&contested, Expectation::NoState, some_events("C", 1))).await.expect("c");
        let stored_state = unique_state("stored");
        let stored_batch = some_events("S", 2);
        let original = dyn_store
            .append(AppendRequest::new(&stored_state, Expectation::NoState, stored_batch.clone()))
            .await
            .expect("stored");
        let before = store.transactions();

        // At once: 20 fresh states, 8 appends expecting the contested state at version 1, the
        // stored batch re-sent 4 times, the stored ids with other content, and a new batch sent
        // twice (one of the two is a replay of the other).
        let fresh: Vec<String> = (0..20).map(|i| unique_state(&format!("fresh{i}"))).collect();
        let twice = unique_state("twice");
        let twice_batch = some_events("T", 3);
        let mut requests = Vec::new();
        requests.extend(fresh.iter().map(|s| AppendRequest::new(s, Expectation::NoState, some_events("F", 2))));
        requests.extend((0..8).map(|w| AppendRequest::new(&contested, Expectation::Exactly(1), vec![event("W", w)])));
        requests.extend((0..4).map(|_| AppendRequest::new(&stored_state, Expectation::NoState, stored_batch.clone())));
        let mut other = stored_batch.clone();
        other[1].payload = b"{\"other\":true}".to_vec();
        requests.push(AppendRequest::new(&stored_state, Expectation::Any, other));
        requests.extend((0..2).map(|_| AppendRequest::new(&twice, Expectation::Exactly(0), twice_batch.clone())));
        let count = requests.len() as u64;
        let outcomes = join_all(requests.into_iter().map(|r| dyn_store.append(r))).await;
        let transactions = store.transactions() - before;
        assert!(transactions < count, "{transactions} transactions for {count} appends");

        let (fresh_outcomes, rest) = outcomes.split_at(20);
        let (contested_outcomes, rest) = rest.split_at(8);
        let (resent, rest) = rest.split_at(4);
        let (duplicate, twice_outcomes) = rest.split_at(1);
        for outcome in fresh_outcomes {
            assert_eq!(outcome.as_ref().expect("a fresh state").last_version, Some(2));
        }
        let winners: Vec<_> = contested_outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{contested_outcomes:?}");
        assert_eq!(winners[0].last_version, Some(2));
        for outcome in contested_outcomes.iter().filter(|o| o.is_err()) {
            assert!(matches!(outcome, Err(Error::VersionConflict { actual_version: 2, .. })), "{outcome:?}");
        }
        for outcome in resent {
            assert_eq!(outcome.as_ref().expect("a replay"), &original);
        }
        assert!(
            matches!(&duplicate[0], Err(Error::Duplicate { event_id, .. }) if *event_id == stored_batch[1].event_id)
        );
        let (a, b) = (twice_outcomes[0].as_ref().expect("twice"), twice_outcomes[1].as_ref().expect("twice"));
        assert_eq!(a, b, "the second is a replay of the first");

        let all = assert_gapless(&dyn_store).await;
        assert_eq!(all.len(), 1 + 2 + 20 * 2 + 1 + 3);
        // Each outcome names the positions its own events are stored at.
        let position_of: HashMap<_, _> = all.iter().map(|e| (e.event_id, e.global_position)).collect();
        for (state, outcome) in fresh.iter().zip(fresh_outcomes) {
            let stored = read(&dyn_store, StateQuery::all(state)).await;
            let positions: Vec<u64> = stored.iter().map(|e| position_of[&e.event_id]).collect();
            assert_eq!(positions, positions_of(outcome.as_ref().expect("fresh")));
        }
        let twice_stored = read(&dyn_store, StateQuery::all(&twice)).await;
        assert_eq!(
            twice_stored.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            twice_batch.iter().map(|e| e.event_id).collect::<Vec<_>>()
        );
        assert_eq!(twice_stored.iter().map(|e| e.global_position).collect::<Vec<_>>(), a.global_positions);
    }

    /// Two stores on one table (two servers), each grouping its own appends, race for the
    /// counter and for shared states: every append lands once, positions stay contiguous.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_table_race_safely() {
        const TASKS: u64 = 8;
        const EACH: u64 = 6;
        let config = config();
        let stores: Vec<Arc<dyn EventStore>> = vec![
            Arc::new(DynamoEventStore::open(&config).await.expect("open")),
            Arc::new(DynamoEventStore::open(&config).await.expect("open")),
        ];
        let shared = unique_state("shared");
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            for (i, store) in stores.iter().enumerate() {
                let store = Arc::clone(store);
                // Half the tasks share one state and expect the version they last saw; the
                // others append to a state of their own.
                let (state, exact) = match task % 2 {
                    0 => (shared.clone(), true),
                    _ => (unique_state(&format!("own{i}-{task}")), false),
                };
                tasks.push(tokio::spawn(async move {
                    let mut seen = 0;
                    let mut won = Vec::new();
                    while (won.len() as u64) < EACH {
                        let expected = if exact { Expectation::Exactly(seen) } else { Expectation::Any };
                        let batch = some_events("R", 1 + task % 3);
                        match store.append(AppendRequest::new(&state, expected, batch)).await {
                            Ok(outcome) => {
                                seen = outcome.last_version.expect("versioned");
                                won.push(outcome);
                            }
                            Err(Error::VersionConflict { actual_version, .. }) if exact => {
                                assert!(actual_version > seen);
                                seen = actual_version;
                            }
                            Err(other) => panic!("{other}"),
                        }
                    }
                    won
                }));
            }
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.extend(task.await.expect("task"));
        }
        let all = assert_gapless(&stores[0]).await;
        let mut told: Vec<u64> = outcomes.iter().flat_map(|o| o.global_positions.clone()).collect();
        told.sort_unstable();
        assert_eq!(told, (1..=all.len() as u64).collect::<Vec<_>>(), "each position told once");
        assert_eq!(assert_gapless(&stores[1]).await.len(), all.len());
    }
}
