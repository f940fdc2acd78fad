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

/// A database from before events were stored as encoded bodies: opening it encodes every event
/// from the old columns and drops them; reads, re-sends and new appends then work on it.
#[tokio::test]
async fn events_stored_before_bodies_are_migrated() {
    use flipbook_storage::model::{AppendRequest, Expectation, ProposedEvent, StateQuery, Timestamp};
    use flipbook_storage::read::collect_state;

    let url = config().url;
    let schema = format!("flipbook_migration_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&url).await.expect("connect");
    // The tables as they were, in a schema of the test's own, with two events of one state.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}; \
         CREATE TABLE flipbook_states (state_id TEXT PRIMARY KEY, version_neutral BOOLEAN NOT NULL, \
             last_seq BIGINT NOT NULL, last_position BIGINT NOT NULL, first_recorded_at BIGINT NOT NULL, \
             last_recorded_at BIGINT NOT NULL, metadata TEXT NOT NULL); \
         CREATE TABLE flipbook_events (position BIGINT PRIMARY KEY, state_id TEXT NOT NULL, \
             state_seq BIGINT NOT NULL, version BIGINT, event_id UUID NOT NULL, name TEXT NOT NULL, \
             payload BYTEA NOT NULL, content_type TEXT NOT NULL, timestamp BIGINT, recorded_at BIGINT NOT NULL, \
             metadata TEXT NOT NULL, UNIQUE (state_id, state_seq), UNIQUE (state_id, event_id)); \
         INSERT INTO flipbook_states VALUES ('old-1', false, 2, 131074, 1000, 2000, '{{}}'); \
         INSERT INTO flipbook_events VALUES \
             (131073, 'old-1', 1, 1, '00000000-0000-4000-8000-000000000001', 'Opened', '{{\"owner\":\"ana\"}}', \
              'application/json', NULL, 1000, '{{}}'), \
             (131074, 'old-1', 2, 2, '00000000-0000-4000-8000-000000000002', 'Deposited', '\\x0102', \
              'application/octet-stream', 1500, 2000, '{{\"user\":\"ana\"}}');"
    )))
    .execute(&admin)
    .await
    .expect("the old tables");

    let separator = if url.contains('?') { '&' } else { '?' };
    let migrated = PostgresConfig::new(format!("{url}{separator}options=-c%20search_path%3D{schema}"));
    let store: Arc<dyn EventStore> = Arc::new(PostgresEventStore::open(&migrated).await.expect("open and migrate"));
    let events = collect_state(Arc::clone(&store), StateQuery::all("old-1")).await.expect("read");
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            let metadata: Vec<_> = e.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (
                e.version,
                e.global_position,
                e.name.as_str(),
                e.payload.clone(),
                e.content_type.as_str(),
                e.timestamp,
                e.recorded_at,
                metadata,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                Some(1),
                131073,
                "Opened",
                br#"{"owner":"ana"}"#.to_vec(),
                "application/json",
                None,
                Timestamp::from_unix_nanos(1000),
                vec![]
            ),
            (
                Some(2),
                131074,
                "Deposited",
                vec![1, 2],
                "application/octet-stream",
                Some(Timestamp::from_unix_nanos(1500)),
                Timestamp::from_unix_nanos(2000),
                vec!["user=ana".to_owned()]
            ),
        ]
    );
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 \
         AND table_name = 'flipbook_events' ORDER BY ordinal_position",
    )
    .bind(&schema)
    .fetch_all(&admin)
    .await
    .expect("columns");
    assert_eq!(columns, ["position", "state_id", "state_seq", "version", "event_id", "name", "timestamp", "body"]);

    // A re-send of the first event is answered from what was migrated; a new event goes on.
    let mut first = ProposedEvent::new("Opened", br#"{"owner":"ana"}"#.to_vec());
    first.event_id = events[0].event_id;
    let resent = store.append(AppendRequest::new("old-1", Expectation::NoState, vec![first])).await.expect("replay");
    assert_eq!(resent.global_positions, vec![131073]);
    let next = ProposedEvent::new("Withdrawn", b"{}".to_vec());
    store.append(AppendRequest::new("old-1", Expectation::Exactly(2), vec![next])).await.expect("append");
    assert_eq!(collect_state(store, StateQuery::all("old-1")).await.expect("read").len(), 3);

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.expect("drop");
}
