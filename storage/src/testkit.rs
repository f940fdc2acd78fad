//! The contract every backend keeps, as tests any backend runs unchanged.
//!
//! A backend's test file names a factory and calls the macros:
//!
//! ```text
//! async fn events() -> Arc<dyn EventStore> { /* open the backend */ }
//! async fn snapshots() -> Arc<dyn SnapshotStore> { /* open the backend */ }
//! flipbook_storage::event_store_contract!(events());
//! flipbook_storage::snapshot_store_contract!(snapshots());
//! ```
//!
//! Every case uses state ids of its own (a random prefix), so cases may share one database and
//! run in parallel; read-all cases filter by that prefix. Cases assert on [`Error`] variants,
//! so a backend that maps a conflict to some other error fails here.

use std::collections::HashSet;
use std::sync::Arc;

use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Error, Expectation, Metadata, ProposedEvent, RecordedEvent,
    Snapshot, SnapshotQuery, StateKind, StateQuery, Timestamp,
};
use futures::StreamExt;
use uuid::Uuid;

use crate::read::{all_pages, state_pages};
use crate::store::{EventStore, SnapshotStore};

/// Generates one `#[tokio::test]` per event-store case, each calling `$factory` (an expression
/// evaluating to a future of `Arc<dyn EventStore>`).
#[macro_export]
macro_rules! event_store_contract {
    ($factory:expr) => {
        $crate::event_store_contract!(@cases $factory;
            append_any_assigns_versions_and_positions,
            append_no_state,
            append_exactly,
            explicit_versions_continue_the_state,
            idempotent_reappend_returns_the_original_result,
            same_event_id_with_other_content_is_a_duplicate,
            refused_batch_stores_nothing,
            a_large_batch_is_one_append,
            version_neutral_states,
            mixing_kinds_is_refused,
            read_forward_backward_bounds_and_limits,
            read_pages_a_large_state,
            read_filters_by_name,
            read_as_of_time,
            read_unknown_state_is_empty,
            head_of_unknown_state_is_none,
            head_tracks_counts_times_and_metadata,
            state_metadata_is_bounded,
            read_all_in_global_order_with_filters,
            read_all_backward_newest_first,
            concurrent_writers_with_exact_expectations,
            append_states_stores_every_part_or_none,
            append_states_replays_a_resend,
            append_states_of_overlapping_writers_never_commit_in_part);
    };
    (@cases $factory:expr; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::testkit::events::$case($factory.await).await;
            }
        )+
    };
}

/// Generates one `#[tokio::test]` per event-bus case (subscriptions over the backend's store);
/// see [`event_store_contract`].
#[macro_export]
macro_rules! event_bus_contract {
    ($factory:expr) => {
        $crate::event_bus_contract!(@cases $factory;
            bus_catches_up_then_goes_live_without_a_seam,
            bus_starts_after_a_position_or_now,
            bus_filters_and_checkpoints_what_it_filtered_out,
            bus_ends_a_subscriber_that_falls_behind,
            bus_delivers_appends_to_several_states_whole);
    };
    (@cases $factory:expr; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::testkit::bus::$case($factory.await).await;
            }
        )+
    };
}

/// Generates one `#[tokio::test]` per snapshot-store case; see [`event_store_contract`].
#[macro_export]
macro_rules! snapshot_store_contract {
    ($factory:expr) => {
        $crate::snapshot_store_contract!(@cases $factory;
            snapshot_newest_per_revision,
            snapshot_of_another_revision_is_never_used,
            snapshot_delete_removes_every_revision);
    };
    (@cases $factory:expr; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testkit::snapshots::$case($factory.await).await;
            }
        )+
    };
}

/// A state id no other case uses.
pub fn unique_state(label: &str) -> String {
    format!("{}/{label}", Uuid::new_v4().simple())
}

/// An event named `name` whose payload is `{"n": n}`.
pub fn event(name: &str, n: u64) -> ProposedEvent {
    ProposedEvent::new(name, format!("{{\"n\":{n}}}").into_bytes())
}

pub fn events(name: &str, count: u64) -> Vec<ProposedEvent> {
    (1..=count).map(|n| event(name, n)).collect()
}

pub async fn read(store: &Arc<dyn EventStore>, query: StateQuery) -> Vec<RecordedEvent> {
    read_paged(store, query, crate::read::DEFAULT_PAGE_SIZE).await
}

pub async fn read_paged(store: &Arc<dyn EventStore>, query: StateQuery, page: usize) -> Vec<RecordedEvent> {
    let pages: Vec<_> = state_pages(Arc::clone(store), query, page).collect().await;
    pages.into_iter().flat_map(|p| p.expect("read a page")).collect()
}

pub async fn read_all(store: &Arc<dyn EventStore>, query: AllQuery) -> Vec<RecordedEvent> {
    let pages: Vec<_> = all_pages(Arc::clone(store), query, 7).collect().await;
    pages.into_iter().flat_map(|p| p.expect("read a page")).collect()
}

/// Waits until the store's settled position reaches `position`, so a read bounded by it
/// (read-all through a server) sees every event up to there. On PostgreSQL a transaction in
/// flight anywhere in the cluster (a concurrent test's append) holds it back for a moment.
async fn until_settled(store: &Arc<dyn EventStore>, position: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.settled_position().await.expect("the settled position") < position {
        assert!(std::time::Instant::now() < deadline, "position {position} never settled");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.global_position).collect()
}

fn versions(events: &[RecordedEvent]) -> Vec<Option<u64>> {
    events.iter().map(|e| e.version).collect()
}

fn payload_numbers(events: &[RecordedEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| {
            let text = String::from_utf8_lossy(&e.payload);
            text.trim_start_matches("{\"n\":").trim_end_matches('}').parse().expect("a test payload")
        })
        .collect()
}

async fn append(store: &Arc<dyn EventStore>, request: AppendRequest) -> AppendOutcome {
    let state = request.state_id.clone();
    store.append(request).await.unwrap_or_else(|e| panic!("append to {state}: {e}"))
}

fn assert_conflict(result: Result<AppendOutcome, Error>, actual: u64) {
    match result {
        Err(Error::VersionConflict { actual_version, .. }) => assert_eq!(actual_version, actual, "actual version"),
        other => panic!("expected a version conflict naming version {actual}, got {other:?}"),
    }
}

/// Stored events from before bodies were encoded, as the upgrade tests of the SQL backends
/// write them in the old layout: state `old-1`, positions 131073 and 131074.
pub mod old_layout {
    use super::*;
    use flipbook_model::Timestamp;

    pub const STATE: &str = "old-1";
    pub const FIRST_ID: &str = "00000000-0000-4000-8000-000000000001";
    pub const SECOND_ID: &str = "00000000-0000-4000-8000-000000000002";

    /// The store, opened on the old layout (and so migrated), answers the two events as they
    /// were written, recognises a re-send of the first, and takes a new event after them.
    pub async fn events_read_as_they_were(store: Arc<dyn EventStore>) {
        let events = read(&store, StateQuery::all(STATE)).await;
        let summary: Vec<_> = events
            .iter()
            .map(|e| {
                let metadata: Vec<_> = e.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let id = e.event_id.to_string();
                let (name, content_type) = (e.name.as_str(), e.content_type.as_str());
                (
                    id,
                    e.version,
                    e.global_position,
                    name,
                    e.payload.clone(),
                    content_type,
                    e.timestamp,
                    e.recorded_at,
                    metadata,
                )
            })
            .collect();
        let at = Timestamp::from_unix_nanos;
        assert_eq!(
            summary,
            vec![
                (
                    FIRST_ID.to_owned(),
                    Some(1),
                    131073,
                    "Opened",
                    br#"{"owner":"ana"}"#.to_vec(),
                    "application/json",
                    None,
                    at(1000),
                    vec![]
                ),
                (
                    SECOND_ID.to_owned(),
                    Some(2),
                    131074,
                    "Deposited",
                    vec![1, 2],
                    "application/octet-stream",
                    Some(at(1500)),
                    at(2000),
                    vec!["user=ana".to_owned()]
                ),
            ]
        );
        let mut first = ProposedEvent::new("Opened", br#"{"owner":"ana"}"#.to_vec());
        first.event_id = events[0].event_id;
        let resent = append(&store, AppendRequest::new(STATE, Expectation::NoState, vec![first])).await;
        assert_eq!(resent.global_positions, vec![131073], "a re-send is answered from the migrated event");
        let next = ProposedEvent::new("Withdrawn", b"{}".to_vec());
        append(&store, AppendRequest::new(STATE, Expectation::Exactly(2), vec![next])).await;
        assert_eq!(versions(&read(&store, StateQuery::all(STATE)).await), [Some(1), Some(2), Some(3)]);
    }
}

pub mod events {
    use super::*;

    pub use super::multi::*;

    pub async fn append_any_assigns_versions_and_positions(store: Arc<dyn EventStore>) {
        let state = unique_state("any");
        let first = append(&store, AppendRequest::new(&state, Expectation::Any, events("Deposited", 2))).await;
        assert_eq!(first.last_version, Some(2));
        assert_eq!(first.global_positions.len(), 2);
        assert!(first.global_positions[0] < first.global_positions[1]);
        let second = append(&store, AppendRequest::new(&state, Expectation::Any, events("Withdrawn", 1))).await;
        assert_eq!(second.last_version, Some(3));
        assert!(second.global_positions[0] > first.global_positions[1]);

        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(versions(&stored), vec![Some(1), Some(2), Some(3)]);
        let positions: Vec<u64> = stored.iter().map(|e| e.global_position).collect();
        assert_eq!(positions, [first.global_positions.clone(), second.global_positions].concat());
        assert!(stored.iter().all(|e| e.state_id == state));
        assert_eq!(stored[2].name, "Withdrawn");
        // An outcome carries the recorded_at of the events it stored.
        assert!(stored[..2].iter().all(|e| e.recorded_at == first.recorded_at), "first append's recorded_at");
        assert_eq!(stored[2].recorded_at, second.recorded_at);
    }

    pub async fn append_no_state(store: Arc<dyn EventStore>) {
        let state = unique_state("no-state");
        let outcome = append(&store, AppendRequest::new(&state, Expectation::NoState, events("Opened", 2))).await;
        assert_eq!(outcome.last_version, Some(2));
        assert_conflict(store.append(AppendRequest::new(&state, Expectation::NoState, events("Opened", 1))).await, 2);
        assert_eq!(read(&store, StateQuery::all(&state)).await.len(), 2);
    }

    pub async fn append_exactly(store: Arc<dyn EventStore>) {
        let state = unique_state("exactly");
        let outcome = append(&store, AppendRequest::new(&state, Expectation::Exactly(0), events("A", 1))).await;
        assert_eq!(outcome.last_version, Some(1));
        assert_conflict(store.append(AppendRequest::new(&state, Expectation::Exactly(0), events("A", 1))).await, 1);
        assert_conflict(store.append(AppendRequest::new(&state, Expectation::Exactly(5), events("A", 1))).await, 1);
        let outcome = append(&store, AppendRequest::new(&state, Expectation::Exactly(1), events("B", 3))).await;
        assert_eq!(outcome.last_version, Some(4));
        // On a state with no events, only 0 is right.
        let fresh = unique_state("exactly-fresh");
        assert_conflict(store.append(AppendRequest::new(&fresh, Expectation::Exactly(3), events("A", 1))).await, 0);
        assert!(store.head(&fresh).await.expect("head").is_none());
    }

    pub async fn explicit_versions_continue_the_state(store: Arc<dyn EventStore>) {
        let state = unique_state("explicit");
        let versioned = |from: u64, count: u64| -> Vec<ProposedEvent> {
            (from..from + count).map(|v| ProposedEvent { version: Some(v), ..event("V", v) }).collect()
        };
        let outcome = append(&store, AppendRequest::new(&state, Expectation::Any, versioned(1, 2))).await;
        assert_eq!(outcome.last_version, Some(2));
        let outcome = append(&store, AppendRequest::new(&state, Expectation::Any, versioned(3, 2))).await;
        assert_eq!(outcome.last_version, Some(4));
        // A gap after the state's last version, or a version already taken, is refused.
        assert_conflict(store.append(AppendRequest::new(&state, Expectation::Any, versioned(6, 1))).await, 4);
        assert_conflict(store.append(AppendRequest::new(&state, Expectation::Any, versioned(4, 1))).await, 4);
        assert_eq!(versions(&read(&store, StateQuery::all(&state)).await), (1..=4).map(Some).collect::<Vec<_>>());
    }

    pub async fn idempotent_reappend_returns_the_original_result(store: Arc<dyn EventStore>) {
        let state = unique_state("idempotent");
        append(&store, AppendRequest::new(&state, Expectation::Any, events("Before", 1))).await;
        let request = AppendRequest::new(&state, Expectation::Exactly(1), events("Paid", 2));
        let original = append(&store, request.clone()).await;
        append(&store, AppendRequest::new(&state, Expectation::Any, events("After", 1))).await;

        // The same batch again, though its expectation no longer holds: the original result,
        // recorded_at included.
        let again = append(&store, request.clone()).await;
        assert_eq!(again, original);
        assert_eq!(again.recorded_at, original.recorded_at);
        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(stored.len(), 4, "nothing stored twice");
        let ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(store.head(&state).await.expect("head").expect("a head").event_count, 4);

        // Version-neutral states are idempotent too.
        let neutral = unique_state("idempotent-neutral");
        let request = AppendRequest::neutral(&neutral, Expectation::Any, events("Seen", 3));
        let original = append(&store, request.clone()).await;
        assert_eq!(append(&store, request).await, original);
        assert_eq!(read(&store, StateQuery::all(&neutral)).await.len(), 3);
    }

    pub async fn same_event_id_with_other_content_is_a_duplicate(store: Arc<dyn EventStore>) {
        let state = unique_state("duplicate");
        let stored = event("Paid", 1);
        append(&store, AppendRequest::new(&state, Expectation::Any, vec![stored.clone()])).await;

        let other_content = ProposedEvent { payload: b"{\"n\":2}".to_vec(), ..stored.clone() };
        let result = store.append(AppendRequest::new(&state, Expectation::Any, vec![other_content])).await;
        assert!(
            matches!(result, Err(Error::Duplicate { ref event_id, .. }) if *event_id == stored.event_id),
            "{result:?}"
        );

        let other_name = ProposedEvent { name: "Refunded".into(), ..stored.clone() };
        let result = store.append(AppendRequest::new(&state, Expectation::Any, vec![other_name])).await;
        assert!(matches!(result, Err(Error::Duplicate { .. })), "{result:?}");

        // The stored id at another place in a batch: a duplicate, and nothing of the batch stored.
        let moved = vec![event("Paid", 3), stored.clone()];
        let result = store.append(AppendRequest::new(&state, Expectation::Any, moved)).await;
        assert!(matches!(result, Err(Error::Duplicate { .. })), "{result:?}");
        let moved = vec![stored.clone(), event("Paid", 4)];
        let result = store.append(AppendRequest::new(&state, Expectation::Any, moved)).await;
        assert!(matches!(result, Err(Error::Duplicate { .. })), "{result:?}");

        assert_eq!(read(&store, StateQuery::all(&state)).await.len(), 1);
    }

    pub async fn refused_batch_stores_nothing(store: Arc<dyn EventStore>) {
        let state = unique_state("atomic");
        let kept = event("Kept", 1);
        append(&store, AppendRequest::new(&state, Expectation::Any, vec![kept.clone()])).await;
        let head_before = store.head(&state).await.expect("head");

        // The third event of five repeats a stored id: none of the five may be stored.
        let mut batch = events("Lost", 5);
        batch[2].event_id = kept.event_id;
        assert!(store.append(AppendRequest::new(&state, Expectation::Any, batch)).await.is_err());
        // A conflicting batch of many events.
        assert_conflict(store.append(AppendRequest::new(&state, Expectation::Exactly(0), events("Lost", 5))).await, 1);

        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].event_id, kept.event_id);
        assert_eq!(store.head(&state).await.expect("head"), head_before);
        // The state goes on at the next version, with no hole.
        let outcome = append(&store, AppendRequest::new(&state, Expectation::Exactly(1), events("Next", 1))).await;
        assert_eq!(outcome.last_version, Some(2));
    }

    pub async fn a_large_batch_is_one_append(store: Arc<dyn EventStore>) {
        let state = unique_state("large-batch");
        // Thousands of events: more than one command of Redis's append script takes (it writes
        // in slices of 4,000 arguments), or the most the backend takes in one append.
        let count = store.limits().max_events_per_append.map_or(4500, |max| u64::from(max).min(4500));
        let request = AppendRequest::new(&state, Expectation::NoState, events("Big", count));
        let original = append(&store, request.clone()).await;
        assert_eq!(original.last_version, Some(count));
        assert_eq!(append(&store, request.clone()).await, original, "the same batch again replays");

        // A batch whose last event repeats a stored id is refused whole.
        let mut batch = events("Lost", count);
        if let Some(last) = batch.last_mut() {
            last.event_id = request.events[0].event_id;
        }
        let result = store.append(AppendRequest::new(&state, Expectation::Exactly(count), batch)).await;
        assert!(matches!(result, Err(Error::Duplicate { .. })), "{result:?}");

        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(versions(&stored), (1..=count).map(Some).collect::<Vec<_>>());
        let sent: Vec<_> = request.events.iter().map(|e| e.event_id).collect();
        assert_eq!(stored.iter().map(|e| e.event_id).collect::<Vec<_>>(), sent);
    }

    pub async fn version_neutral_states(store: Arc<dyn EventStore>) {
        let state = unique_state("neutral");
        let first = append(&store, AppendRequest::neutral(&state, Expectation::NoState, events("Seen", 2))).await;
        assert_eq!(first.last_version, None);
        let second = append(&store, AppendRequest::neutral(&state, Expectation::Any, events("Seen", 3))).await;
        assert_eq!(second.last_version, None);
        assert!(second.global_positions[0] > first.global_positions[1]);
        assert_conflict(store.append(AppendRequest::neutral(&state, Expectation::NoState, events("Seen", 1))).await, 5);

        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(versions(&stored), vec![None; 5]);
        assert_eq!(payload_numbers(&stored), vec![1, 2, 1, 2, 3]);
        assert!(stored.windows(2).all(|w| w[0].global_position < w[1].global_position));
        let head = store.head(&state).await.expect("head").expect("a head");
        assert_eq!(head.kind, StateKind::VersionNeutral);
        assert_eq!(head.last_version(), None);
        assert_eq!(head.event_count, 5);
    }

    pub async fn mixing_kinds_is_refused(store: Arc<dyn EventStore>) {
        let versioned = unique_state("mix-versioned");
        append(&store, AppendRequest::new(&versioned, Expectation::Any, events("A", 1))).await;
        let result = store.append(AppendRequest::neutral(&versioned, Expectation::Any, events("B", 1))).await;
        assert!(matches!(result, Err(Error::StateKindMismatch { stored: StateKind::Versioned, .. })), "{result:?}");
        let neutral = unique_state("mix-neutral");
        append(&store, AppendRequest::neutral(&neutral, Expectation::Any, events("A", 1))).await;
        let result = store.append(AppendRequest::new(&neutral, Expectation::Any, events("B", 1))).await;
        assert!(
            matches!(result, Err(Error::StateKindMismatch { stored: StateKind::VersionNeutral, .. })),
            "{result:?}"
        );
        assert_eq!(read(&store, StateQuery::all(&versioned)).await.len(), 1);
        assert_eq!(read(&store, StateQuery::all(&neutral)).await.len(), 1);
    }

    pub async fn read_forward_backward_bounds_and_limits(store: Arc<dyn EventStore>) {
        let state = unique_state("read");
        append(&store, AppendRequest::new(&state, Expectation::Any, events("E", 10))).await;
        let numbers = |events: Vec<RecordedEvent>| versions(&events).into_iter().flatten().collect::<Vec<u64>>();
        let query = |direction, min, max, limit| StateQuery {
            state_id: state.clone(),
            direction,
            min_version: min,
            max_version: max,
            limit,
            ..StateQuery::default()
        };
        use Direction::{Backward, Forward};
        assert_eq!(numbers(read(&store, query(Forward, None, None, None)).await), (1..=10).collect::<Vec<_>>());
        assert_eq!(numbers(read(&store, query(Backward, None, None, None)).await), (1..=10).rev().collect::<Vec<_>>());
        assert_eq!(numbers(read(&store, query(Forward, Some(4), Some(6), None)).await), vec![4, 5, 6]);
        assert_eq!(numbers(read(&store, query(Backward, Some(4), Some(6), None)).await), vec![6, 5, 4]);
        assert_eq!(numbers(read(&store, query(Forward, Some(8), None, Some(10))).await), vec![8, 9, 10]);
        assert_eq!(numbers(read(&store, query(Forward, None, None, Some(3))).await), vec![1, 2, 3]);
        assert_eq!(numbers(read(&store, query(Backward, None, None, Some(3))).await), vec![10, 9, 8]);
        assert_eq!(numbers(read(&store, query(Forward, Some(11), None, None)).await), Vec::<u64>::new());
        assert_eq!(numbers(read(&store, query(Backward, None, Some(2), Some(5))).await), vec![2, 1]);
        // Across page boundaries, with a limit that ends inside a page.
        assert_eq!(
            numbers(read_paged(&store, query(Forward, Some(2), None, Some(7)), 3).await),
            (2..=8).collect::<Vec<_>>()
        );
        assert_eq!(
            numbers(read_paged(&store, query(Backward, None, Some(9), None), 4).await),
            (1..=9).rev().collect::<Vec<_>>()
        );
    }

    pub async fn read_pages_a_large_state(store: Arc<dyn EventStore>) {
        let state = unique_state("large");
        // 1,200 events in appends of 200, or of the most the backend takes in one (DynamoDB).
        let batch = store.limits().max_events_per_append.map_or(200, |max| u64::from(max).min(200));
        let mut stored = 0;
        while stored < 1200 {
            let count = batch.min(1200 - stored);
            append(&store, AppendRequest::new(&state, Expectation::Any, events("E", count))).await;
            stored += count;
        }
        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(versions(&stored), (1..=1200).map(Some).collect::<Vec<_>>());
        let backward =
            read_paged(&store, StateQuery { direction: Direction::Backward, ..StateQuery::all(&state) }, 100).await;
        assert_eq!(versions(&backward), (1..=1200).rev().map(Some).collect::<Vec<_>>());
    }

    pub async fn read_filters_by_name(store: Arc<dyn EventStore>) {
        let state = unique_state("names");
        let batch: Vec<_> = (1..=9).map(|n| event(["Deposited", "Withdrawn", "Frozen"][(n % 3) as usize], n)).collect();
        append(&store, AppendRequest::new(&state, Expectation::Any, batch)).await;
        let query = StateQuery { names: vec!["Deposited".into(), "Frozen".into()], ..StateQuery::all(&state) };
        let stored = read_paged(&store, query.clone(), 2).await;
        assert_eq!(payload_numbers(&stored), vec![2, 3, 5, 6, 8, 9]);
        let limited = read(&store, StateQuery { limit: Some(2), direction: Direction::Backward, ..query }).await;
        assert_eq!(payload_numbers(&limited), vec![9, 8]);
        let none = read(&store, StateQuery { names: vec!["Closed".into()], ..StateQuery::all(&state) }).await;
        assert!(none.is_empty());
    }

    pub async fn read_as_of_time(store: Arc<dyn EventStore>) {
        let state = unique_state("as-of");
        let at = |seconds: i64| Some(Timestamp::from_unix_nanos(seconds * 1_000_000_000));
        let now = Timestamp::now().unix_nanos() / 1_000_000_000;
        // In version order: past, time-neutral, future-dated, past again (timestamps may repeat
        // and need not increase), far future.
        let stamps = [at(1_000), None, at(now + 86_400), at(1_000), at(now + 10 * 86_400)];
        let batch: Vec<_> = stamps
            .iter()
            .enumerate()
            .map(|(i, t)| ProposedEvent { timestamp: *t, ..event("E", i as u64 + 1) })
            .collect();
        append(&store, AppendRequest::new(&state, Expectation::Any, batch)).await;

        let as_of = |t: Option<Timestamp>| StateQuery { as_of: t, ..StateQuery::all(&state) };
        assert_eq!(payload_numbers(&read(&store, as_of(at(999))).await), vec![2]);
        assert_eq!(payload_numbers(&read(&store, as_of(at(1_000))).await), vec![1, 2, 4]);
        assert_eq!(payload_numbers(&read(&store, as_of(at(now))).await), vec![1, 2, 4]);
        assert_eq!(payload_numbers(&read(&store, as_of(at(now + 86_400))).await), vec![1, 2, 3, 4]);
        assert_eq!(payload_numbers(&read(&store, as_of(None)).await), vec![1, 2, 3, 4, 5]);
        let backward = StateQuery { direction: Direction::Backward, ..as_of(at(now + 86_400)) };
        assert_eq!(payload_numbers(&read(&store, backward).await), vec![4, 3, 2, 1]);
        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(stored.iter().map(|e| e.timestamp).collect::<Vec<_>>(), stamps.to_vec(), "timestamps round-trip");
    }

    pub async fn read_unknown_state_is_empty(store: Arc<dyn EventStore>) {
        assert!(read(&store, StateQuery::all(unique_state("unknown"))).await.is_empty());
    }

    pub async fn head_of_unknown_state_is_none(store: Arc<dyn EventStore>) {
        assert_eq!(store.head(&unique_state("unknown")).await.expect("head"), None);
    }

    pub async fn head_tracks_counts_times_and_metadata(store: Arc<dyn EventStore>) {
        let state = unique_state("head");
        let before = Timestamp::now();
        let mut request = AppendRequest::new(&state, Expectation::Any, events("A", 2));
        request.state_metadata = Metadata::from([("owner".into(), "ada".into()), ("tier".into(), "gold".into())]);
        let first = append(&store, request).await;
        let mut request = AppendRequest::new(&state, Expectation::Any, events("B", 1));
        request.state_metadata = Metadata::from([("tier".into(), "platinum".into())]);
        let second = append(&store, request).await;
        // An append without metadata keeps the state's.
        let third = append(&store, AppendRequest::new(&state, Expectation::Exactly(3), events("C", 1))).await;

        let head = store.head(&state).await.expect("head").expect("a head");
        assert_eq!(head.state_id, state);
        assert_eq!(head.kind, StateKind::Versioned);
        assert_eq!(head.last_version(), Some(4));
        assert_eq!(head.event_count, 4);
        assert_eq!(head.last_global_position, third.global_positions[0]);
        assert!(second.global_positions[0] < third.global_positions[0]);
        assert_eq!(head.metadata, Metadata::from([("owner".into(), "ada".into()), ("tier".into(), "platinum".into())]));
        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(head.first_recorded_at, stored[0].recorded_at);
        assert_eq!(head.last_recorded_at, stored[3].recorded_at);
        assert!(head.first_recorded_at >= Timestamp::from_unix_nanos(before.unix_nanos() - 5_000_000_000));
        assert!(head.first_recorded_at <= head.last_recorded_at);
        assert!(first.global_positions[1] < head.last_global_position);
    }

    pub async fn state_metadata_is_bounded(store: Arc<dyn EventStore>) {
        let state = unique_state("metadata");
        // Keys and values of 1,004 bytes: 40 of them are 40,160 bytes, 66 would pass 64 KiB.
        let entries = |prefix: &str, range: std::ops::Range<u32>, fill: char| -> Metadata {
            range.map(|i| (format!("{prefix}{i:03}"), fill.to_string().repeat(1000))).collect()
        };
        let mut first = AppendRequest::new(&state, Expectation::NoState, events("Opened", 1));
        first.state_metadata = entries("a", 0..40, 'x');
        let opened = append(&store, first.clone()).await;
        let head_before = store.head(&state).await.expect("head");

        // 26 new keys would make 66: refused, and nothing changes.
        let mut growing = AppendRequest::new(&state, Expectation::Exactly(1), events("Grown", 2));
        growing.state_metadata = entries("b", 0..26, 'y');
        match store.append(growing).await {
            Err(Error::TooLarge { field, .. }) => assert_eq!(field, "state_metadata"),
            other => panic!("expected too large on state_metadata, got {other:?}"),
        }
        assert_eq!(store.head(&state).await.expect("head"), head_before);
        assert_eq!(read(&store, StateQuery::all(&state)).await.len(), 1);

        // A re-send of the first append is still answered as it was.
        assert_eq!(store.append(first).await.expect("replay"), opened);
        // Entries that replace stored ones (the size stays), and 25 new keys (65 in all), fit.
        let mut within = AppendRequest::new(&state, Expectation::Exactly(1), events("Changed", 1));
        within.state_metadata = entries("a", 0..10, 'z');
        within.state_metadata.extend(entries("b", 0..25, 'y'));
        assert_eq!(append(&store, within).await.last_version, Some(2));
        let head = store.head(&state).await.expect("head").expect("a head");
        assert_eq!(head.metadata.len(), 65);
        assert_eq!(head.metadata["a000"], "z".repeat(1000));
        assert_eq!(head.metadata["a039"], "x".repeat(1000));
    }

    pub async fn read_all_in_global_order_with_filters(store: Arc<dyn EventStore>) {
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let (a, b, c) = (format!("{prefix}a"), format!("{prefix}b"), format!("{prefix}c"));
        let mut expected = Vec::new();
        for (i, state) in [&a, &b, &a, &c, &b, &a].into_iter().enumerate() {
            let batch =
                vec![event(if i % 2 == 0 { "Even" } else { "Odd" }, i as u64 * 10), event("Tail", i as u64 * 10 + 1)];
            let outcome = append(&store, AppendRequest::new(state, Expectation::Any, batch)).await;
            expected.extend(outcome.global_positions.into_iter().map(|p| (p, state.clone())));
        }
        until_settled(&store, expected.last().expect("appended").0).await;
        let everything = read_all(&store, AllQuery { state_id_prefix: prefix.clone(), ..AllQuery::default() }).await;
        let got: Vec<(u64, String)> = everything.iter().map(|e| (e.global_position, e.state_id.clone())).collect();
        assert_eq!(got, expected, "every event once, in global-position order");
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));

        let after = expected[5].0;
        let rest = read_all(
            &store,
            AllQuery { after_position: after, state_id_prefix: prefix.clone(), ..AllQuery::default() },
        )
        .await;
        assert_eq!(
            rest.iter().map(|e| e.global_position).collect::<Vec<_>>(),
            expected[6..].iter().map(|p| p.0).collect::<Vec<_>>()
        );

        let only_b = read_all(&store, AllQuery { state_id_prefix: b.clone(), ..AllQuery::default() }).await;
        assert_eq!(only_b.len(), 4);
        assert!(only_b.iter().all(|e| e.state_id == b));

        let odd = read_all(
            &store,
            AllQuery { state_id_prefix: prefix.clone(), names: vec!["Odd".into()], ..AllQuery::default() },
        )
        .await;
        assert_eq!(payload_numbers(&odd), vec![10, 30, 50]);

        let limited =
            read_all(&store, AllQuery { state_id_prefix: prefix.clone(), limit: Some(9), ..AllQuery::default() }).await;
        assert_eq!(limited.len(), 9);
        assert_eq!(limited[8].global_position, expected[8].0);

        // An upper bound inside an append's events cuts the append there.
        let until = expected[8].0;
        let upto =
            read_all(&store, AllQuery { until_position: Some(until), state_id_prefix: prefix, ..AllQuery::default() })
                .await;
        assert_eq!(positions(&upto), expected[..=8].iter().map(|p| p.0).collect::<Vec<_>>());
    }

    /// Backward: newest first, between the bounds, with the same filters and limit, over
    /// several pages (the kit reads pages of 7).
    pub async fn read_all_backward_newest_first(store: Arc<dyn EventStore>) {
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
        let mut expected = Vec::new();
        for (i, state) in [&a, &b, &a, &b, &b, &a].into_iter().enumerate() {
            let batch =
                vec![event(if i % 2 == 0 { "Even" } else { "Odd" }, i as u64 * 10), event("Tail", i as u64 * 10 + 1)];
            let outcome = append(&store, AppendRequest::new(state, Expectation::Any, batch)).await;
            expected.extend(outcome.global_positions);
        }
        until_settled(&store, *expected.last().expect("appended")).await;
        let newest_first: Vec<u64> = expected.iter().rev().copied().collect();
        let backward = |query: AllQuery| AllQuery { direction: Direction::Backward, ..query };
        let read = |query: AllQuery| read_all(&store, backward(query));
        let everything = read(AllQuery { state_id_prefix: prefix.clone(), ..AllQuery::default() }).await;
        assert_eq!(positions(&everything), newest_first, "every event once, newest first");

        // Both bounds, the upper one inside an append: (expected[2], expected[8]], descending.
        let between = read(AllQuery {
            after_position: expected[2],
            until_position: Some(expected[8]),
            state_id_prefix: prefix.clone(),
            ..AllQuery::default()
        })
        .await;
        assert_eq!(positions(&between), expected[3..=8].iter().rev().copied().collect::<Vec<_>>());

        let last_three =
            read(AllQuery { state_id_prefix: prefix.clone(), limit: Some(3), ..AllQuery::default() }).await;
        assert_eq!(positions(&last_three), newest_first[..3]);

        let odd =
            read(AllQuery { state_id_prefix: prefix.clone(), names: vec!["Odd".into()], ..AllQuery::default() }).await;
        assert_eq!(payload_numbers(&odd), vec![50, 30, 10]);

        let only_b = read(AllQuery { state_id_prefix: b.clone(), ..AllQuery::default() }).await;
        assert_eq!(payload_numbers(&only_b), vec![41, 40, 31, 30, 11, 10]);
        assert!(only_b.iter().all(|e| e.state_id == b));

        let nothing_below =
            read(AllQuery { until_position: Some(expected[0] - 1), state_id_prefix: prefix, ..AllQuery::default() })
                .await;
        assert!(nothing_below.is_empty());
    }

    /// 16 writers append one event at a time to one state, each with `exactly <the version it
    /// last saw>`. Exactly one append wins each version; every loser is told the actual version.
    pub async fn concurrent_writers_with_exact_expectations(store: Arc<dyn EventStore>) {
        const WRITERS: u64 = 16;
        const EACH: u64 = 8;
        let state = unique_state("contended");
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let (store, state) = (Arc::clone(&store), state.clone());
            tasks.push(tokio::spawn(async move {
                let mut won = Vec::new();
                let mut seen = 0;
                let mut conflicts = 0u64;
                while (won.len() as u64) < EACH {
                    let request = AppendRequest::new(&state, Expectation::Exactly(seen), vec![event("W", writer)]);
                    match store.append(request).await {
                        Ok(outcome) => {
                            let version = outcome.last_version.expect("a version");
                            assert_eq!(version, seen + 1);
                            won.push(version);
                            seen = version;
                        }
                        Err(Error::VersionConflict { actual_version, .. }) => {
                            assert!(
                                actual_version > seen,
                                "a conflict names a newer version ({actual_version} > {seen})"
                            );
                            seen = actual_version;
                            conflicts += 1;
                        }
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                }
                (won, conflicts)
            }));
        }
        let mut won = Vec::new();
        for task in tasks {
            won.extend(task.await.expect("writer task").0);
        }
        won.sort_unstable();
        assert_eq!(won, (1..=WRITERS * EACH).collect::<Vec<_>>(), "exactly one winner per version");

        let stored = read(&store, StateQuery::all(&state)).await;
        assert_eq!(versions(&stored), (1..=WRITERS * EACH).map(Some).collect::<Vec<_>>(), "no gaps");
        let ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len() as u64, WRITERS * EACH, "no duplicates");
        for writer in 0..WRITERS {
            assert_eq!(payload_numbers(&stored).iter().filter(|&&n| n == writer).count() as u64, EACH);
        }
    }
}

/// Cases of appends to several states at once.
pub mod multi {
    use super::*;

    async fn append_states(store: &Arc<dyn EventStore>, parts: Vec<AppendRequest>) -> Vec<AppendOutcome> {
        store.append_states(parts).await.unwrap_or_else(|e| panic!("append to several states: {e}"))
    }

    /// A conflict, a kind mismatch or a duplicate on any part stores nothing of any part and
    /// names that part's state; a request that passes stores every part, with one outcome per
    /// part and contiguous positions in part order.
    pub async fn append_states_stores_every_part_or_none(store: Arc<dyn EventStore>) {
        let (a, b, c) = (unique_state("multi-a"), unique_state("multi-b"), unique_state("multi-c"));
        append(&store, AppendRequest::new(&a, Expectation::Any, events("A", 2))).await;
        append(&store, AppendRequest::neutral(&c, Expectation::Any, events("C", 1))).await;
        let heads = |store: Arc<dyn EventStore>, a: String, b: String| async move {
            (store.head(&a).await.expect("head"), store.head(&b).await.expect("head"))
        };
        let before = heads(Arc::clone(&store), a.clone(), c.clone()).await;

        // The last part conflicts: the first is not stored either.
        let result = store
            .append_states(vec![
                AppendRequest::new(&a, Expectation::Exactly(2), events("A", 1)),
                AppendRequest::new(&b, Expectation::Exactly(4), events("B", 1)),
            ])
            .await;
        match result {
            Err(Error::VersionConflict { state_id, actual_version: 0 }) => assert_eq!(state_id, b),
            other => panic!("expected a conflict on {b} at 0, got {other:?}"),
        }
        // A kind mismatch on the first part, a stored id on the second.
        let result = store
            .append_states(vec![
                AppendRequest::new(&c, Expectation::Any, events("C", 1)),
                AppendRequest::new(&b, Expectation::Any, events("B", 1)),
            ])
            .await;
        assert!(matches!(result, Err(Error::StateKindMismatch { ref state_id, .. }) if *state_id == c), "{result:?}");
        let stored_id = read(&store, StateQuery::all(&a)).await[0].event_id;
        let result = store
            .append_states(vec![
                AppendRequest::new(&b, Expectation::NoState, events("B", 1)),
                AppendRequest::new(&a, Expectation::Any, vec![ProposedEvent { event_id: stored_id, ..event("X", 9) }]),
            ])
            .await;
        assert!(matches!(result, Err(Error::Duplicate { ref state_id, .. }) if *state_id == a), "{result:?}");
        assert!(store.head(&b).await.expect("head").is_none(), "no part of a refused request is stored");
        assert_eq!(heads(Arc::clone(&store), a.clone(), c.clone()).await, before);

        // Three parts of 2, 1 and 3 events, with state metadata on one.
        let mut second = AppendRequest::new(&b, Expectation::NoState, events("B", 1));
        second.state_metadata.insert("owner".into(), "ana".into());
        let outcomes = append_states(
            &store,
            vec![
                AppendRequest::new(&a, Expectation::Exactly(2), events("A", 2)),
                second,
                AppendRequest::neutral(&c, Expectation::Any, events("C", 3)),
            ],
        )
        .await;
        let last_versions: Vec<_> = outcomes.iter().map(|o| o.last_version).collect();
        assert_eq!(last_versions, [Some(4), Some(1), None]);
        let positions: Vec<u64> = outcomes.iter().flat_map(|o| o.global_positions.clone()).collect();
        let first = positions[0];
        assert_eq!(positions, (first..first + 6).collect::<Vec<_>>(), "contiguous, in part order");
        assert!(outcomes.iter().all(|o| o.recorded_at == outcomes[0].recorded_at), "one commit");
        for (state, outcome) in [(&a, &outcomes[0]), (&b, &outcomes[1]), (&c, &outcomes[2])] {
            let stored = read(&store, StateQuery::all(state)).await;
            let tail: Vec<u64> =
                stored.iter().rev().take(outcome.global_positions.len()).rev().map(|e| e.global_position).collect();
            assert_eq!(tail, outcome.global_positions, "{state}'s events where its outcome says");
        }
        let head = store.head(&b).await.expect("head").expect("a head");
        assert_eq!((head.event_count, head.metadata.get("owner").map(String::as_str)), (1, Some("ana")));
        assert_eq!(store.head(&a).await.expect("head").expect("a head").last_global_position, positions[1]);
        until_settled(&store, positions[5]).await;
        let all = read_all(&store, AllQuery { after_position: first - 1, limit: Some(6), ..AllQuery::default() }).await;
        let states: Vec<&str> = all.iter().map(|e| e.state_id.as_str()).collect();
        assert_eq!(states, [&a, &a, &b, &c, &c, &c].map(String::as_str), "read-all shows the parts in order");
    }

    /// The same request again is answered with the original outcomes, though its expectations
    /// no longer hold; a request with some parts stored and others not is a duplicate.
    pub async fn append_states_replays_a_resend(store: Arc<dyn EventStore>) {
        let (a, b, c) = (unique_state("resend-a"), unique_state("resend-b"), unique_state("resend-c"));
        let request = vec![
            AppendRequest::new(&a, Expectation::NoState, events("A", 2)),
            AppendRequest::neutral(&b, Expectation::Any, events("B", 1)),
        ];
        let original = append_states(&store, request.clone()).await;
        append(&store, AppendRequest::new(&a, Expectation::Any, events("Later", 1))).await;
        assert_eq!(append_states(&store, request.clone()).await, original);
        assert_eq!(store.append(request[0].clone()).await.expect("one part alone replays"), original[0]);

        let mixed = vec![request[1].clone(), AppendRequest::new(&c, Expectation::Any, events("C", 1))];
        let result = store.append_states(mixed).await;
        match result {
            Err(Error::Duplicate { state_id, event_id }) => {
                assert_eq!((state_id, event_id), (b.clone(), request[1].events[0].event_id));
            }
            other => panic!("expected a duplicate on {b}, got {other:?}"),
        }
        assert!(store.head(&c).await.expect("head").is_none());
        assert_eq!(read(&store, StateQuery::all(&a)).await.len(), 3, "nothing stored twice");
    }

    /// Writers append to two of three states at once with exact expectations, in both orders,
    /// while readers read everything: every request is whole or absent in every read, and each
    /// state ends at exactly the number of requests that won it.
    pub async fn append_states_of_overlapping_writers_never_commit_in_part(store: Arc<dyn EventStore>) {
        const WRITERS: u64 = 8;
        const EACH: u64 = 6;
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let states: Vec<String> = (0..3).map(|i| format!("{prefix}{i}")).collect();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, prefix, done) = (Arc::clone(&store), prefix.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    let all =
                        read_all(&store, AllQuery { state_id_prefix: prefix.clone(), ..AllQuery::default() }).await;
                    // Each request's two events carry its number; both or neither are visible.
                    let mut seen = std::collections::HashMap::<u64, u32>::new();
                    payload_numbers(&all).into_iter().for_each(|n| *seen.entry(n).or_default() += 1);
                    assert!(seen.values().all(|&count| count == 2), "a request seen in part: {seen:?}");
                    reads += 1;
                }
                reads
            })
        };
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let (store, states) = (Arc::clone(&store), states.clone());
            writers.push(tokio::spawn(async move {
                let mut won = Vec::new();
                let mut attempt = 0;
                while (won.len() as u64) < EACH {
                    attempt += 1;
                    let pair = match (writer + attempt) % 3 {
                        0 => [0, 1],
                        1 => [2, 1],
                        _ => [2, 0],
                    };
                    let mut parts = Vec::new();
                    for &i in &pair {
                        let version = store.head(&states[i]).await.expect("head").map_or(0, |h| h.event_count);
                        let tag = writer * 1000 + attempt;
                        parts.push(AppendRequest::new(
                            &states[i],
                            Expectation::Exactly(version),
                            vec![event("W", tag)],
                        ));
                    }
                    match store.append_states(parts).await {
                        Ok(outcomes) => won.push((pair, outcomes)),
                        Err(Error::VersionConflict { .. }) => {}
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                }
                won
            }));
        }
        let mut wins = [0u64; 3];
        for writer in writers {
            for (pair, outcomes) in writer.await.expect("a writer") {
                pair.iter().for_each(|&i| wins[i] += 1);
                assert_eq!(outcomes[1].global_positions[0], outcomes[0].global_positions[0] + 1);
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.await.expect("the reader") > 0);
        for (i, state) in states.iter().enumerate() {
            let stored = read(&store, StateQuery::all(state)).await;
            assert_eq!(versions(&stored), (1..=wins[i]).map(Some).collect::<Vec<_>>(), "{state}: one event per win");
        }
        assert_eq!(wins.iter().sum::<u64>(), 2 * WRITERS * EACH);
    }
}

pub mod snapshots {
    use super::*;

    fn snapshot(state: &str, revision: &str, version: u64) -> Snapshot {
        Snapshot {
            state_id: state.to_owned(),
            version,
            reducer_revision: revision.to_owned(),
            payload: format!("{{\"balance\":{version}}}").into_bytes(),
            content_type: "application/json".to_owned(),
            created_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + version as i64),
        }
    }

    fn query(state: &str, revision: &str, max_version: Option<u64>) -> SnapshotQuery {
        SnapshotQuery { state_id: state.to_owned(), reducer_revision: revision.to_owned(), max_version }
    }

    pub async fn snapshot_newest_per_revision(store: Arc<dyn SnapshotStore>) {
        let state = unique_state("snap");
        assert_eq!(store.get(&query(&state, "r1", None)).await.expect("get"), None);
        for version in [10, 30, 20] {
            store.put(snapshot(&state, "r1", version)).await.expect("put");
        }
        assert_eq!(store.get(&query(&state, "r1", None)).await.expect("get"), Some(snapshot(&state, "r1", 30)));
        assert_eq!(store.get(&query(&state, "r1", Some(29))).await.expect("get"), Some(snapshot(&state, "r1", 20)));
        assert_eq!(store.get(&query(&state, "r1", Some(10))).await.expect("get"), Some(snapshot(&state, "r1", 10)));
        assert_eq!(store.get(&query(&state, "r1", Some(9))).await.expect("get"), None);
        // The same version again replaces it.
        let replaced = Snapshot { payload: b"{\"balance\":-1}".to_vec(), ..snapshot(&state, "r1", 30) };
        store.put(replaced.clone()).await.expect("put");
        assert_eq!(store.get(&query(&state, "r1", None)).await.expect("get"), Some(replaced));
        // A large payload round-trips.
        let large = Snapshot { payload: vec![7; 300_000], ..snapshot(&state, "r1", 40) };
        store.put(large.clone()).await.expect("put");
        assert_eq!(store.get(&query(&state, "r1", None)).await.expect("get"), Some(large));
    }

    pub async fn snapshot_of_another_revision_is_never_used(store: Arc<dyn SnapshotStore>) {
        let state = unique_state("snap-rev");
        store.put(snapshot(&state, "r1", 50)).await.expect("put");
        store.put(snapshot(&state, "r2", 5)).await.expect("put");
        assert_eq!(store.get(&query(&state, "r2", None)).await.expect("get"), Some(snapshot(&state, "r2", 5)));
        assert_eq!(store.get(&query(&state, "r3", None)).await.expect("get"), None);
        assert_eq!(store.get(&query(&state, "r", None)).await.expect("get"), None, "no prefix match");
        assert_eq!(store.get(&query(&state, "r1", None)).await.expect("get"), Some(snapshot(&state, "r1", 50)));
    }

    pub async fn snapshot_delete_removes_every_revision(store: Arc<dyn SnapshotStore>) {
        let (state, other) = (unique_state("snap-del"), unique_state("snap-keep"));
        store.put(snapshot(&state, "r1", 1)).await.expect("put");
        store.put(snapshot(&state, "r1", 2)).await.expect("put");
        store.put(snapshot(&state, "r2", 1)).await.expect("put");
        store.put(snapshot(&other, "r1", 1)).await.expect("put");
        assert_eq!(store.delete(&state).await.expect("delete"), 3);
        assert_eq!(store.get(&query(&state, "r1", None)).await.expect("get"), None);
        assert_eq!(store.get(&query(&state, "r2", None)).await.expect("get"), None);
        assert_eq!(store.delete(&state).await.expect("delete"), 0);
        assert_eq!(store.get(&query(&other, "r1", None)).await.expect("get"), Some(snapshot(&other, "r1", 1)));
    }
}

pub mod bus {
    use std::time::Duration;

    use futures::stream::BoxStream;

    use super::*;
    use crate::bus::{Bus, BusOptions};
    use flipbook_model::{Delivery, SubscriptionQuery, SubscriptionStart};

    type Subscription = BoxStream<'static, Result<Delivery, Error>>;

    fn bus(store: &Arc<dyn EventStore>) -> Bus {
        let options = BusOptions { checkpoint_interval: Duration::from_millis(50), ..BusOptions::default() };
        Bus::new(Arc::clone(store), options)
    }

    fn subscribe(bus: &Bus, start: SubscriptionStart, prefix: &str) -> Subscription {
        bus.subscribe(SubscriptionQuery { start, state_id_prefix: prefix.to_owned(), names: Vec::new() })
    }

    /// Takes messages until one reaches `position` (an event at it, or a checkpoint at or past
    /// it); answers the events and the checkpoints seen.
    async fn receive_until(subscription: &mut Subscription, position: u64) -> (Vec<RecordedEvent>, Vec<u64>) {
        let (mut events, mut checkpoints) = (Vec::<RecordedEvent>::new(), Vec::new());
        let receiving = async {
            while let Some(message) = subscription.next().await {
                match message.expect("a subscription message") {
                    Delivery::Events(page) => {
                        assert!(!page.is_empty(), "no empty pages");
                        events.extend(page);
                        if events.last().is_some_and(|e| e.global_position >= position) {
                            return;
                        }
                    }
                    Delivery::Checkpoint(at) => {
                        checkpoints.push(at);
                        if at >= position {
                            return;
                        }
                    }
                }
            }
            panic!("the subscription ended before position {position}");
        };
        tokio::time::timeout(Duration::from_secs(30), receiving).await.expect("reached the position in time");
        (events, checkpoints)
    }

    async fn append_positions(store: &Arc<dyn EventStore>, state: &str, batch: Vec<ProposedEvent>) -> Vec<u64> {
        append(store, AppendRequest::new(state, Expectation::Any, batch)).await.global_positions
    }

    /// Stored events first, then live ones appended by 4 writers while the subscriber catches
    /// up: every event once, in strictly increasing position, nothing else.
    pub async fn bus_catches_up_then_goes_live_without_a_seam(store: Arc<dyn EventStore>) {
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let mut expected = Vec::new();
        for i in 0..10 {
            expected.extend(append_positions(&store, &format!("{prefix}{}", i % 3), events("Stored", 3)).await);
        }
        let bus = bus(&store);
        let mut subscription = subscribe(&bus, SubscriptionStart::Beginning, &prefix);
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let (store, prefix) = (Arc::clone(&store), prefix.clone());
                tokio::spawn(async move {
                    let mut written = Vec::new();
                    for i in 0..25u64 {
                        let state = format!("{prefix}{}", (writer + i) % 5);
                        written.extend(append_positions(&store, &state, vec![event("Live", i)]).await);
                    }
                    written
                })
            })
            .collect();
        for writer in writers {
            expected.extend(writer.await.expect("a writer"));
        }
        expected.sort_unstable();
        let (events, _) = receive_until(&mut subscription, *expected.last().expect("events")).await;
        assert_eq!(positions(&events), expected, "every event once, in order");
        assert!(events.iter().all(|e| e.state_id.starts_with(&prefix)));
    }

    /// `After(p)` delivers from just after `p`; `Now` first tells where it starts, then delivers
    /// exactly what comes after that.
    pub async fn bus_starts_after_a_position_or_now(store: Arc<dyn EventStore>) {
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let state = format!("{prefix}s");
        let stored = append_positions(&store, &state, events("E", 5)).await;
        let bus = bus(&store);
        let mut after = subscribe(&bus, SubscriptionStart::After(stored[1]), &prefix);
        let mut now = subscribe(&bus, SubscriptionStart::Now, &prefix);
        let start = match now.next().await.expect("a first message").expect("no error") {
            Delivery::Checkpoint(start) => start,
            other => panic!("a subscription from now first tells where it starts, got {other:?}"),
        };
        let live = append_positions(&store, &state, events("F", 3)).await;
        let last = *live.last().expect("events");

        let (events, _) = receive_until(&mut after, last).await;
        assert_eq!(positions(&events), [&stored[2..], &live[..]].concat());
        let (events, _) = receive_until(&mut now, last).await;
        let expected: Vec<u64> = stored.iter().chain(&live).copied().filter(|&p| p > start).collect();
        assert_eq!(positions(&events), expected, "from now: what settled after its start");
        assert!(live.iter().all(|p| expected.contains(p)), "events appended after the start all arrive");

        bus.close();
        // What was already handed to the stream comes first (a checkpoint, when other cases
        // share the store), then the end.
        let ending = async {
            loop {
                match now.next().await {
                    Some(Ok(Delivery::Checkpoint(_))) => {}
                    other => return other,
                }
            }
        };
        let ended = tokio::time::timeout(Duration::from_secs(10), ending).await.expect("ends when closed");
        assert!(matches!(ended, Some(Err(Error::Unavailable(_)))), "got {ended:?}");
    }

    /// A subscriber whose filter matches nothing still learns how far the bus got; a name
    /// filter delivers only those names.
    pub async fn bus_filters_and_checkpoints_what_it_filtered_out(store: Arc<dyn EventStore>) {
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let bus = bus(&store);
        let mut nothing = subscribe(&bus, SubscriptionStart::Beginning, &format!("{prefix}nobody"));
        let mut odd = bus.subscribe(SubscriptionQuery {
            start: SubscriptionStart::Beginning,
            state_id_prefix: prefix.clone(),
            names: vec!["Odd".into()],
        });
        let mut written = Vec::new();
        for i in 0..6u64 {
            let name = if i % 2 == 1 { "Odd" } else { "Even" };
            written.extend(append_positions(&store, &format!("{prefix}s"), vec![event(name, i)]).await);
        }
        let last = *written.last().expect("events");
        let (events, checkpoints) = receive_until(&mut nothing, last).await;
        assert!(events.is_empty(), "nothing matches");
        assert!(checkpoints.last().is_some_and(|&c| c >= last), "checkpoints reach past the filtered events");
        assert!(checkpoints.windows(2).all(|w| w[0] < w[1]), "checkpoints only move forward: {checkpoints:?}");

        let (events, _) = receive_until(&mut odd, written[5]).await;
        assert_eq!(payload_numbers(&events), vec![1, 3, 5]);
    }

    /// Appends to several states, made by 4 writers while a subscriber follows: it receives
    /// each request's events together, contiguous, once and in order.
    pub async fn bus_delivers_appends_to_several_states_whole(store: Arc<dyn EventStore>) {
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let bus = bus(&store);
        let mut subscription = subscribe(&bus, SubscriptionStart::Beginning, &prefix);
        let writers: Vec<_> = (0..4u64)
            .map(|writer| {
                let (store, prefix) = (Arc::clone(&store), prefix.clone());
                tokio::spawn(async move {
                    let mut written = Vec::new();
                    for i in 0..10u64 {
                        let tag = writer * 100 + i;
                        let parts = vec![
                            AppendRequest::new(format!("{prefix}{writer}/a"), Expectation::Any, vec![event("A", tag)]),
                            AppendRequest::new(format!("{prefix}{writer}/b"), Expectation::Any, vec![event("B", tag)]),
                        ];
                        let outcomes = store.append_states(parts).await.expect("an append to two states");
                        written.extend(outcomes.into_iter().flat_map(|o| o.global_positions));
                    }
                    written
                })
            })
            .collect();
        let mut expected = Vec::new();
        for writer in writers {
            expected.extend(writer.await.expect("a writer"));
        }
        expected.sort_unstable();
        let (events, _) = receive_until(&mut subscription, *expected.last().expect("events")).await;
        assert_eq!(positions(&events), expected, "every event once, in order");
        let numbers = payload_numbers(&events);
        assert!(numbers.chunks(2).all(|pair| pair[0] == pair[1]), "each request's events side by side: {numbers:?}");
    }

    /// A subscriber that takes nothing is dropped after the stall timeout with the position to
    /// resume after, which is the last event it received; the server never buffers more than a
    /// few pages for it.
    pub async fn bus_ends_a_subscriber_that_falls_behind(store: Arc<dyn EventStore>) {
        let prefix = format!("{}/", Uuid::new_v4().simple());
        let written = append_positions(&store, &format!("{prefix}s"), events("E", 40)).await;
        let options = BusOptions { stall_timeout: Duration::from_millis(200), page_size: 5, ..BusOptions::default() };
        let bus = Bus::new(Arc::clone(&store), options);
        // From just before its events: a shared store may hold many others before them.
        let mut subscription = subscribe(&bus, SubscriptionStart::After(written[0] - 1), &prefix);
        tokio::time::sleep(Duration::from_millis(800)).await;
        let mut received = Vec::new();
        let ending = loop {
            match tokio::time::timeout(Duration::from_secs(10), subscription.next()).await.expect("in time") {
                Some(Ok(Delivery::Events(page))) => received.extend(page),
                Some(Ok(Delivery::Checkpoint(_))) => {}
                Some(Err(error)) => break error,
                None => panic!("ended without an error"),
            }
        };
        assert!(received.len() < 40, "a stalled subscriber is not fed everything");
        assert_eq!(positions(&received), written[..received.len()].to_vec());
        let last = received.last().map_or(0, |e| e.global_position);
        assert_eq!(ending, Error::FellBehind { position: last, waited_ms: 200 });
        // Resuming from there delivers the rest, once.
        let mut resumed = subscribe(&bus, SubscriptionStart::After(last), &prefix);
        let (rest, _) = receive_until(&mut resumed, written[39]).await;
        assert_eq!(positions(&rest), written[received.len()..].to_vec());
    }
}
