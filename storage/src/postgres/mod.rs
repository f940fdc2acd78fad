//! PostgreSQL: events, heads and snapshots in three tables, shared by any number of stateless
//! `flipbook` servers.
//!
//! - **Conflicts come from constraints.** An append reads the state's tip without locking and
//!   inserts its events at the next sequence numbers. `UNIQUE (state_id, state_seq)` lets only
//!   one of two racing appends insert a given number: the other blocks on the index until the
//!   first commits, fails with a unique violation, and is retried from the start; the retry
//!   reads the new tip, so an `exactly N` append then gets a version conflict naming the actual
//!   version, and an `any` append goes in after the winner. No read-then-write race can pass.
//! - **Idempotency**: `UNIQUE (state_id, event_id)`; a re-sent batch is answered from what is
//!   stored (the shared `replayed` rule), also when it races with its own first attempt.
//! - **Global positions follow transaction ids**: an event's position is its transaction's id
//!   shifted left by 16 bits plus its place in the batch (1, 2, …). A sequence would not do: a
//!   transaction can commit a lower sequence value after a higher one became visible, and a
//!   subscriber that read the higher one would skip it. With positions ordered by transaction
//!   id, every position below `pg_snapshot_xmin(pg_current_snapshot()) << 16` belongs to a
//!   transaction that has ended, so it is settled: the event bus reads up to there and cannot
//!   skip. It costs nothing on the append path (no lock, no counter row). Positions are sparse
//!   and large (about 2^16 times the transaction count; below 2^53 until 2^37 transactions), and
//!   one append holds at most 65,535 events. A long-running write transaction anywhere in the
//!   cluster holds the settled position back (delays delivery, loses nothing).
//! - **Events are stored as the API sends them.** An event's body (id, name, payload, content
//!   type, timestamp, recorded-at, metadata) is one `BYTEA` in its wire encoding
//!   ([`crate::wire`]); `event_id`, `name` and `timestamp` are columns too, for the unique index
//!   and the read filters. Reading a state sends PostgreSQL four columns a row instead of
//!   eleven, and the server copies each body into its response instead of decoding a row and
//!   encoding an event: on two cores that was most of a read's cost (`benches/README.md`).

mod events;
mod rows;
mod snapshots;

use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub use crate::PostgresConfig;
pub use events::PostgresEventStore;
pub use snapshots::PostgresSnapshotStore;

use flipbook_model::Error;

/// Bits of a global position below the transaction id: the event's place in its append.
const POSITION_SHIFT: u32 = 16;

/// The position of the `i`-th event (from 1) of the current transaction's append, in SQL.
macro_rules! position_of {
    ($i:literal) => {
        concat!("((pg_current_xact_id()::text::bigint << 16) + ", $i, ")")
    };
}
use position_of;

impl PostgresConfig {
    /// A pool; creates the schema if it is missing (safe when several servers start at once).
    pub async fn connect(&self) -> Result<PgPool, Error> {
        let options: PgConnectOptions =
            self.url.parse().map_err(|e| Error::Internal(format!("bad PostgreSQL URL: {e}")))?;
        // Each statement is planned once per connection. PostgreSQL otherwise plans arrays of
        // unknown length (an append's events) anew on every execution, which cost more than the
        // insert: 10-event appends from one client ran at 567/s, 1,257/s with generic plans
        // (`postgres-bench --only appends`). The statements are written so that the generic plan
        // uses the indexes (`LATERAL` lookups by key, never a join the planner could hash).
        let options = options.options([("plan_cache_mode", "force_generic_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections.max(1))
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(options);
        migrate(&pool).await?;
        Ok(pool)
    }
}

/// What a store's `ping` asks: one connection of its own, outside the pool, kept open between
/// probes and opened again after a failure. A pool busy with appends makes a caller wait, but
/// the database is reachable: only a refused or broken connection makes the probe fail.
#[derive(Clone, Debug)]
struct Probe {
    options: PgConnectOptions,
    connection: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
}

impl Probe {
    fn new(pool: &PgPool) -> Self {
        Self { options: (*pool.connect_options()).clone(), connection: Arc::default() }
    }

    async fn ping(&self) -> Result<(), Error> {
        let mut held = self.connection.lock().await;
        let connection = match held.as_mut() {
            Some(connection) => connection,
            None => held.insert(PgConnection::connect_with(&self.options).await.map_err(sql_error)?),
        };
        if let Err(error) = connection.ping().await {
            *held = None;
            return Err(sql_error(error));
        }
        Ok(())
    }
}

/// The schema, created under an advisory lock so concurrent starts do not race.
const SCHEMA: &str = r#"
SELECT pg_advisory_xact_lock(7420);

CREATE TABLE IF NOT EXISTS flipbook_states (
    state_id          TEXT    PRIMARY KEY,
    version_neutral   BOOLEAN NOT NULL,
    last_seq          BIGINT  NOT NULL,
    last_position     BIGINT  NOT NULL,
    first_recorded_at BIGINT  NOT NULL,
    last_recorded_at  BIGINT  NOT NULL,
    metadata          TEXT    NOT NULL
);

CREATE TABLE IF NOT EXISTS flipbook_events (
    position     BIGINT  PRIMARY KEY,
    state_id     TEXT    NOT NULL,
    state_seq    BIGINT  NOT NULL,
    version      BIGINT,
    event_id     UUID    NOT NULL,
    name         TEXT    NOT NULL,
    timestamp    BIGINT,
    body         BYTEA   NOT NULL,
    UNIQUE (state_id, state_seq),
    UNIQUE (state_id, event_id)
);

-- Tables from before positions followed transaction ids: their sequence values are all below
-- the new positions, so the order holds across the change.
ALTER TABLE flipbook_events ALTER COLUMN position DROP IDENTITY IF EXISTS;
ALTER TABLE flipbook_events DROP COLUMN IF EXISTS txid;

-- Tables from before bodies were stored encoded: `body` is filled from the old columns
-- (`encode_old_bodies`), which are then dropped.
ALTER TABLE flipbook_events ADD COLUMN IF NOT EXISTS body BYTEA;

CREATE TABLE IF NOT EXISTS flipbook_snapshots (
    state_id         TEXT   NOT NULL,
    reducer_revision TEXT   NOT NULL,
    version          BIGINT NOT NULL,
    content_type     TEXT   NOT NULL,
    payload          BYTEA  NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (state_id, reducer_revision, version)
);
"#;

async fn migrate(pool: &PgPool) -> Result<(), Error> {
    let mut tx = pool.begin().await.map_err(sql_error)?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await.map_err(sql_error)?;
    events::encode_old_bodies(&mut tx).await?;
    tx.commit().await.map_err(sql_error)
}

/// Maps sqlx's errors: connection trouble and the server's transient states can pass; the rest
/// are bugs. (Unique violations are handled where they mean something.)
fn sql_error(error: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match &error {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::Protocol(_) => {
            Error::Unavailable(error.to_string())
        }
        E::Database(db) => match db.code().as_deref() {
            // disk_full: the operator must make room; read_only_sql_transaction: a standby, or
            // a database set read-only (a failover ends it).
            Some("53100") => Error::StorageFull(error.to_string()),
            Some("25006") => Error::ReadOnly(error.to_string()),
            // connection exception, insufficient resources, operator intervention (shutdown),
            // serialization failure, deadlock: all pass.
            Some(code) if code.starts_with("08") || code.starts_with("53") || code.starts_with("57") => {
                Error::Unavailable(error.to_string())
            }
            Some("40001" | "40P01") => Error::Unavailable(error.to_string()),
            _ => Error::Internal(error.to_string()),
        },
        _ => Error::Internal(error.to_string()),
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}
