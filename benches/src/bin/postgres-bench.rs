//! Flipbook on PostgreSQL against PostgreSQL itself (sqlx), measured in the same run.
//!
//! `cargo run --release -p flipbook-benches --bin postgres-bench -- --url postgres://…`
//! (default: $FLIPBOOK_TEST_POSTGRES_URL; `--smoke` for a quick run that only proves it works).
//! The raw baseline does the same work with sqlx over its own pool, on tables of its own with a
//! column per field (`RAW_SCHEMA`, Flipbook's own layout until it stored events encoded): per
//! append one transaction that reads the state's version, inserts the events (one statement,
//! positions from the transaction id as Flipbook's) and moves the head; and reads a state's rows
//! in order.
//!
//! At 32 clients it also measures the design the event bus did not take: positions from a
//! counter row updated in each append's transaction (serialised assignment: a subscriber could
//! then trust a plain `MAX(position)`), against the same raw appends.
//! `multi`: appends to two states at once (`AppendStates`) against two appends, 16 clients.
//! `--only appends|multi|reads|serialised` runs one part.

use flipbook_benches::{
    Args, BackendSizes as Sizes, ChildServer, Fold, PAYLOAD, Target, child_main, client, fill_state, grpc_appends,
    grpc_reads, median, rate, report, report_transfers,
};
use flipbook_storage::postgres::{PostgresConfig, PostgresEventStore};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(child) = child_main().await {
        return child;
    }
    let args = Args::from_env(&["appends", "multi", "reads", "serialised"], &["--url URL"]);
    let smoke = args.smoke();
    let url = args.url("FLIPBOOK_TEST_POSTGRES_URL")?;
    let sizes = if smoke {
        Sizes { appends_per_client: 8, read_events: 1_000, read_rounds: 2, repeats: 1 }
    } else {
        Sizes { appends_per_client: 100, read_events: 10_000, read_rounds: 10, repeats: 3 }
    };
    println!("PostgreSQL benchmark ({} mode)", if smoke { "smoke" } else { "full" });
    // The schemas, and a raw pool as large as the server's.
    PostgresEventStore::open(&PostgresConfig::new(&url)).await?;
    let raw = PgPoolOptions::new().max_connections(32).connect(&url).await?;
    sqlx::raw_sql(RAW_SCHEMA).execute(&raw).await?;
    let server = ChildServer::postgres(&url).await?;

    let mut met = true;
    if args.runs("appends") {
        for (clients, batch) in [(1, 1), (1, 10), (16, 1), (16, 10), (32, 1), (32, 10)] {
            let total = sizes.appends_per_client * clients * if clients == 1 { 5 } else { 1 };
            let (mut baseline, mut flipbook) = (Vec::new(), Vec::new());
            for _ in 0..sizes.repeats {
                baseline.push(raw_appends(&raw, clients, batch, total, Positions::FromTransactionId).await?);
                flipbook.push(grpc_appends(server.addr, clients, batch, total).await?);
            }
            // Issue 24 asks a single writer's batches for 0.8 too.
            let target = if clients == 32 || (clients, batch) == (1, 10) { Target::AtLeast(0.8) } else { Target::None };
            met &= report(
                &format!("append {batch} event(s), {clients} client(s)"),
                "appends/s",
                median(flipbook),
                "postgres",
                median(baseline),
                target,
            );
        }
    }
    if args.runs("multi") {
        report_transfers(server.addr, 16, sizes.appends_per_client * 16, sizes.repeats).await?;
    }
    if args.runs("serialised") {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS bench_position_counter (id INT PRIMARY KEY, last BIGINT NOT NULL); \
             INSERT INTO bench_position_counter VALUES (1, 0) ON CONFLICT DO NOTHING",
        )
        .execute(&raw)
        .await?;
        for batch in [1, 10] {
            let total = sizes.appends_per_client * 32;
            let (mut txid, mut counter) = (Vec::new(), Vec::new());
            for _ in 0..sizes.repeats {
                txid.push(raw_appends(&raw, 32, batch, total, Positions::FromTransactionId).await?);
                counter.push(raw_appends(&raw, 32, batch, total, Positions::FromCounterRow).await?);
            }
            report(
                &format!("serialised positions, {batch} event(s), 32 clients"),
                "appends/s",
                median(counter),
                "txid positions",
                median(txid),
                Target::None,
            );
        }
    }
    if args.runs("reads") {
        let state = format!("bench-read-{}", uuid::Uuid::new_v4().simple());
        let store = PostgresEventStore::open(&PostgresConfig::new(&url)).await?;
        fill_state(&store, &state, sizes.read_events).await?;
        for n in (0..sizes.read_events).step_by(1000) {
            raw_append(&raw, &state, n, 1000.min(sizes.read_events - n), Positions::FromTransactionId).await?;
        }
        let (mut baseline, mut flipbook) = (Vec::new(), Vec::new());
        let mut grpc = client(server.addr).await?;
        // One read from each side at a time, alternating: this machine's speed swings by a
        // third from one second to the next, and both sides then see the swings alike.
        for _ in 0..sizes.repeats as u64 * sizes.read_rounds {
            baseline.push(raw_reads(&raw, &state, sizes.read_events, 1).await?);
            flipbook.push(grpc_reads(&mut grpc, &state, sizes.read_events, 1).await?);
        }
        met &= report(
            &format!("read a {}-event state", sizes.read_events),
            "events/s",
            median(flipbook),
            "postgres",
            median(baseline),
            Target::AtLeast(0.9),
        );
    }
    server.stop().await?;
    if !met && !smoke {
        println!("some targets were missed");
    }
    Ok(())
}

/// The raw baseline's tables: an event store's usual relational layout, a column per field.
const RAW_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bench_states (
    state_id TEXT PRIMARY KEY, version_neutral BOOLEAN NOT NULL, last_seq BIGINT NOT NULL,
    last_position BIGINT NOT NULL, first_recorded_at BIGINT NOT NULL, last_recorded_at BIGINT NOT NULL,
    metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bench_events (
    position BIGINT PRIMARY KEY, state_id TEXT NOT NULL, state_seq BIGINT NOT NULL, version BIGINT,
    event_id UUID NOT NULL, name TEXT NOT NULL, payload BYTEA NOT NULL, content_type TEXT NOT NULL,
    timestamp BIGINT, recorded_at BIGINT NOT NULL, metadata TEXT NOT NULL,
    UNIQUE (state_id, state_seq), UNIQUE (state_id, event_id));
";

/// Where a raw append's global positions come from.
#[derive(Clone, Copy, Debug)]
enum Positions {
    /// As Flipbook's: the transaction id shifted left 16 bits, plus the event's place.
    FromTransactionId,
    /// A counter row incremented in the append's transaction: assignment serialised until commit.
    FromCounterRow,
}

/// `clients` tasks, each appending `batch` events at a time to a state of its own.
async fn raw_appends(pool: &PgPool, clients: u64, batch: u64, total: u64, positions: Positions) -> anyhow::Result<f64> {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    rate(total, || async {
        let mut tasks = Vec::new();
        for client in 0..clients {
            let (pool, state) = (pool.clone(), format!("raw-{prefix}-{client}"));
            tasks.push(tokio::spawn(async move {
                for n in 0..total / clients {
                    raw_append(&pool, &state, n * batch, batch, positions).await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    })
    .await
}

/// One append the raw way: read the version, insert the events, move the head, in one transaction.
async fn raw_append(pool: &PgPool, state: &str, expected: u64, batch: u64, positions: Positions) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let last: Option<i64> = sqlx::query("SELECT last_seq FROM bench_states WHERE state_id = $1")
        .bind(state)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.get(0));
    anyhow::ensure!(last.unwrap_or(0) as u64 == expected, "version conflict");
    let seqs: Vec<i64> = (expected as i64 + 1..=(expected + batch) as i64).collect();
    let ids: Vec<uuid::Uuid> = seqs.iter().map(|_| uuid::Uuid::new_v4()).collect();
    // One statement either way; the counter's row lock is held until the commit.
    let insert = match positions {
        Positions::FromTransactionId => {
            "INSERT INTO bench_events (position, state_id, state_seq, version, event_id, name, payload, \
             content_type, recorded_at, metadata) SELECT (pg_current_xact_id()::text::bigint << 16) + i, $1, s, s, \
             id, 'Deposited', $4, 'application/json', 0, '{}' \
             FROM UNNEST($2::bigint[], $3::uuid[]) WITH ORDINALITY AS e(s, id, i) RETURNING position"
        }
        Positions::FromCounterRow => {
            "WITH c AS (UPDATE bench_position_counter SET last = last + cardinality($2::bigint[]) WHERE id = 1 \
             RETURNING last - cardinality($2::bigint[]) AS first) \
             INSERT INTO bench_events (position, state_id, state_seq, version, event_id, name, payload, \
             content_type, recorded_at, metadata) SELECT c.first + i, $1, s, s, id, 'Deposited', $4, \
             'application/json', 0, '{}' \
             FROM c, UNNEST($2::bigint[], $3::uuid[]) WITH ORDINALITY AS e(s, id, i) RETURNING position"
        }
    };
    let positions: Vec<i64> =
        sqlx::query_scalar(insert).bind(state).bind(&seqs).bind(&ids).bind(PAYLOAD).fetch_all(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO bench_states (state_id, version_neutral, last_seq, last_position, first_recorded_at, \
         last_recorded_at, metadata) VALUES ($1, false, $2, $3, 0, 0, '{}') ON CONFLICT (state_id) DO UPDATE SET \
         last_seq = EXCLUDED.last_seq, last_position = EXCLUDED.last_position",
    )
    .bind(state)
    .bind((expected + batch) as i64)
    .bind(positions.iter().max().copied().unwrap_or_default())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn raw_reads(pool: &PgPool, state: &str, count: u64, rounds: u64) -> anyhow::Result<f64> {
    rate(count * rounds, || async {
        for _ in 0..rounds {
            let rows = sqlx::query(
                "SELECT position, state_id, state_seq, version, event_id, name, payload, content_type, timestamp, \
                 recorded_at, metadata FROM bench_events WHERE state_id = $1 ORDER BY state_seq",
            )
            .bind(state)
            .fetch(pool);
            let mut fold = Fold::default();
            // Rows decoded as they arrive, as the server does: faster than collecting them first.
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await? {
                let payload: Vec<u8> = row.try_get(6)?;
                let _: uuid::Uuid = row.try_get(4)?;
                let _: String = row.try_get(5)?;
                let _: String = row.try_get(10)?;
                fold.add(&payload, row.try_get::<i64, _>(3)? as u64);
            }
            anyhow::ensure!(fold.events == count, "read {} of {count}", fold.events);
        }
        Ok(())
    })
    .await
}
