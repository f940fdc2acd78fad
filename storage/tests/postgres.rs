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
    use flipbook_storage::testkit::old_layout::{FIRST_ID, SECOND_ID, STATE, events_read_as_they_were};

    let url = config().url;
    let schema = format!("flipbook_migration_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&url).await.expect("connect");
    // The tables as they were, in a schema of the test's own.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}; \
         CREATE TABLE flipbook_states (state_id TEXT PRIMARY KEY, version_neutral BOOLEAN NOT NULL, \
             last_seq BIGINT NOT NULL, last_position BIGINT NOT NULL, first_recorded_at BIGINT NOT NULL, \
             last_recorded_at BIGINT NOT NULL, metadata TEXT NOT NULL); \
         CREATE TABLE flipbook_events (position BIGINT PRIMARY KEY, state_id TEXT NOT NULL, \
             state_seq BIGINT NOT NULL, version BIGINT, event_id UUID NOT NULL, name TEXT NOT NULL, \
             payload BYTEA NOT NULL, content_type TEXT NOT NULL, timestamp BIGINT, recorded_at BIGINT NOT NULL, \
             metadata TEXT NOT NULL, UNIQUE (state_id, state_seq), UNIQUE (state_id, event_id)); \
         INSERT INTO flipbook_states VALUES ('{STATE}', false, 2, 131074, 1000, 2000, '{{}}'); \
         INSERT INTO flipbook_events VALUES \
             (131073, '{STATE}', 1, 1, '{FIRST_ID}', 'Opened', '{{\"owner\":\"ana\"}}', 'application/json', NULL, \
              1000, '{{}}'), \
             (131074, '{STATE}', 2, 2, '{SECOND_ID}', 'Deposited', '\\x0102', 'application/octet-stream', 1500, \
              2000, '{{\"user\":\"ana\"}}');"
    )))
    .execute(&admin)
    .await
    .expect("the old tables");

    let separator = if url.contains('?') { '&' } else { '?' };
    let migrated = PostgresConfig::new(format!("{url}{separator}options=-c%20search_path%3D{schema}"));
    let store = PostgresEventStore::open(&migrated).await.expect("open and migrate");
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 \
         AND table_name = 'flipbook_events' ORDER BY ordinal_position",
    )
    .bind(&schema)
    .fetch_all(&admin)
    .await
    .expect("columns");
    assert_eq!(columns, ["position", "state_id", "state_seq", "version", "event_id", "name", "timestamp", "body"]);
    events_read_as_they_were(Arc::new(store)).await;

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.expect("drop");
}
