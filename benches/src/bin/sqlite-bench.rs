//! Flipbook on SQLite against SQLite itself, measured in the same run.
//!
//! `cargo run --release -p flipbook-benches --bin sqlite-bench` (add `--smoke` for a quick run
//! that only proves it works). The baseline does the same work directly with sqlx in the same
//! file with the same durability (WAL, synchronous=FULL), on tables of its own with a column per
//! field (`RAW_SCHEMA`: Flipbook's layout until it stored events encoded): read the state's tip,
//! insert the event, update the tip, one transaction per append; and read a state's rows in
//! order. Reads
//! are also measured against rusqlite, the faster driver that Flipbook's own reads use, so the
//! ratio against sqlx cannot flatter a server that merely avoids sqlx's cost.

use std::path::Path;
use std::sync::Arc;

use flipbook_benches::{
    Args, ChildServer, Fold, PAYLOAD, Target, child_main, client, grpc_appends, median, rate, read_through, report,
    report_transfers,
};
use flipbook_model::{AppendRequest, Expectation, ProposedEvent};
use flipbook_storage::EventStore;
use flipbook_storage::read::DEFAULT_PAGE_SIZE;
use flipbook_storage::sqlite::{SqliteConfig, SqliteEventStore};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::Mutex;

struct Sizes {
    appends: u64,
    read_events: u64,
    read_rounds: u64,
    /// Each figure is the median of this many runs, Flipbook and baseline alternating, so a
    /// noisy neighbour (fsync latency varies a lot on shared disks) skews both alike.
    repeats: usize,
    large_state: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(child) = child_main().await {
        return child;
    }
    let args = Args::from_env(&["appends", "multi", "reads", "memory"], &[]);
    let smoke = args.smoke();
    // `--only appends|multi|reads|memory` runs one part; `multi`: appends to two states at
    // once (`AppendStates`) against two appends, 16 clients.
    let sizes = if smoke {
        Sizes { appends: 64, read_events: 1_000, read_rounds: 2, large_state: 20_000, repeats: 1 }
    } else {
        Sizes { appends: 1_000, read_events: 10_000, read_rounds: 10, large_state: 1_000_000, repeats: 5 }
    };
    if cfg!(debug_assertions) && !smoke {
        eprintln!("warning: a debug build; run with --release for figures");
    }
    let dir = tempfile::Builder::new().prefix("flipbook-bench-").tempdir()?;
    println!("SQLite benchmark ({} mode), data in {}", if smoke { "smoke" } else { "full" }, dir.path().display());

    let mut met = true;
    for clients in [1, 16].into_iter().filter(|_| args.runs("appends")) {
        let (mut baseline, mut flipbook) = (Vec::new(), Vec::new());
        for run in 0..sizes.repeats {
            let db = |who: &str| dir.path().join(format!("{who}-{clients}-{run}.db"));
            baseline.push(direct_appends(&db("direct"), clients, sizes.appends).await?);
            flipbook.push(flipbook_appends(&db("flipbook"), clients, sizes.appends).await?);
        }
        let (baseline, flipbook) = (median(baseline), median(flipbook));
        let target = if clients == 1 { Target::AtLeast(0.6) } else { Target::Above(1.0) };
        met &=
            report(&format!("append 1 event, {clients} client(s)"), "appends/s", flipbook, "sqlite", baseline, target);
    }

    if args.runs("multi") {
        let db = dir.path().join("multi.db");
        SqliteEventStore::open(&SqliteConfig::new(&db)).await?;
        let server = ChildServer::sqlite(&db).await?;
        report_transfers(server.addr, 16, sizes.appends, sizes.repeats).await?;
        server.stop().await?;
    }
    if args.runs("reads") {
        met &= reads(dir.path(), &sizes).await?;
    }
    if args.runs("memory") {
        met &= memory(dir.path(), &sizes).await?;
    }
    if !met && !smoke {
        println!("some targets were missed");
    }
    Ok(())
}

async fn reads(dir: &Path, sizes: &Sizes) -> anyhow::Result<bool> {
    let db = dir.join("read.db");
    load_state(&db, "read-me", sizes.read_events).await?;
    load_raw_state(&db, "read-me", sizes.read_events).await?;
    let (mut baseline, mut flipbook, mut in_process, mut rusqlite) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.repeats {
        baseline.push(direct_reads(&db, "read-me", sizes.read_events, sizes.read_rounds).await?);
        rusqlite.push(rusqlite_reads(&db, "read-me", sizes.read_events, sizes.read_rounds).await?);
        flipbook.push(flipbook_reads(&db, "read-me", sizes.read_events, sizes.read_rounds).await?);
        // Where the time goes: the storage layer alone, in-process, without gRPC.
        in_process.push(storage_reads(&db, "read-me", sizes.read_events, sizes.read_rounds).await?);
    }
    let (baseline, flipbook, in_process) = (median(baseline), median(flipbook), median(in_process));
    report("  (storage trait in-process, no gRPC)", "events/s", in_process, "sqlite", baseline, Target::None);
    report("  (the same gRPC read against rusqlite)", "events/s", flipbook, "rusqlite", median(rusqlite), Target::None);
    Ok(report(
        &format!("read a {}-event state", sizes.read_events),
        "events/s",
        flipbook,
        "sqlite",
        baseline,
        // The production-backends issue asks 0.9 of raw on every backend (the first asked 0.8).
        Target::AtLeast(0.9),
    ))
}

async fn memory(dir: &Path, sizes: &Sizes) -> anyhow::Result<bool> {
    let db = dir.join("large.db");
    load_state(&db, "large", sizes.large_state).await?;
    let (peak, events_per_second) = large_read(&db, "large", sizes.large_state).await?;
    let bounded = peak < 100.0;
    println!(
        "{:<44} server peak RSS {peak:.1} MiB while streaming {} events at {events_per_second:.0} events/s (target < 100 MiB) {}",
        format!("read a {}-event state", sizes.large_state),
        sizes.large_state,
        if bounded { "met" } else { "MISSED" }
    );
    Ok(bounded)
}

fn event(n: u64) -> ProposedEvent {
    let mut event = ProposedEvent::new("Deposited", PAYLOAD.to_vec());
    event.metadata.insert("n".into(), n.to_string());
    event
}

/// Creates the schema by opening the store once, then appends `count` events in big batches.
async fn load_state(db: &Path, state: &str, count: u64) -> anyhow::Result<()> {
    let store = SqliteEventStore::open(&SqliteConfig::new(db)).await?;
    let mut done = 0;
    while done < count {
        let batch = (count - done).min(1000);
        let events = (done..done + batch).map(event).collect();
        store.append(AppendRequest::new(state, Expectation::Exactly(done), events)).await?;
        done += batch;
    }
    Ok(())
}

async fn direct_connection(db: &Path) -> anyhow::Result<SqliteConnection> {
    SqliteEventStore::open(&SqliteConfig::new(db)).await?; // the same schema
    let options = SqliteConnectOptions::new()
        .filename(db)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut connection = SqliteConnection::connect_with(&options).await?;
    sqlx::raw_sql(RAW_SCHEMA).execute(&mut connection).await?;
    Ok(connection)
}

/// The baseline's tables: an event store's usual relational layout, a column per field.
const RAW_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS raw_states (
    state_id TEXT PRIMARY KEY, version_neutral INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    last_position INTEGER NOT NULL, first_recorded_at INTEGER NOT NULL, last_recorded_at INTEGER NOT NULL,
    metadata TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS raw_events (
    position INTEGER PRIMARY KEY, state_id TEXT NOT NULL, state_seq INTEGER NOT NULL, version INTEGER,
    event_id TEXT NOT NULL, name TEXT NOT NULL, payload BLOB NOT NULL, content_type TEXT NOT NULL,
    timestamp INTEGER, recorded_at INTEGER NOT NULL, metadata TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS raw_events_by_state ON raw_events (state_id, state_seq);
CREATE UNIQUE INDEX IF NOT EXISTS raw_events_by_event_id ON raw_events (state_id, event_id);
";

/// The same state as [`load_state`] writes, in the baseline's tables, in one transaction.
async fn load_raw_state(db: &Path, state: &str, count: u64) -> anyhow::Result<()> {
    let mut conn = direct_connection(db).await?;
    let mut tx = conn.begin().await?;
    for n in 0..count {
        let seq = n as i64 + 1;
        sqlx::query(
            "INSERT INTO raw_events (state_id, state_seq, version, event_id, name, payload, content_type, \
             timestamp, recorded_at, metadata) VALUES (?1, ?2, ?2, ?3, 'Deposited', ?4, 'application/json', NULL, 0, ?5)",
        )
        .bind(state)
        .bind(seq)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(PAYLOAD)
        .bind(format!(r#"{{"n":"{n}"}}"#))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One append the direct way: one transaction that checks the version, inserts, moves the tip.
async fn direct_append(conn: &mut SqliteConnection, state: &str, expected: u64) -> anyhow::Result<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let last: Option<i64> = sqlx::query("SELECT last_seq FROM raw_states WHERE state_id = ?1")
        .bind(state)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.get(0));
    anyhow::ensure!(last.unwrap_or(0) as u64 == expected, "version conflict");
    let seq = expected as i64 + 1;
    let position = sqlx::query(
        "INSERT INTO raw_events (state_id, state_seq, version, event_id, name, payload, content_type, timestamp, \
         recorded_at, metadata) VALUES (?1, ?2, ?2, ?3, 'Deposited', ?4, 'application/json', NULL, ?5, '{}')",
    )
    .bind(state)
    .bind(seq)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(PAYLOAD)
    .bind(0_i64)
    .execute(&mut *tx)
    .await?
    .last_insert_rowid();
    sqlx::query(
        "INSERT INTO raw_states (state_id, version_neutral, last_seq, last_position, first_recorded_at, last_recorded_at, \
         metadata) VALUES (?1, 0, ?2, ?3, 0, 0, '{}') ON CONFLICT (state_id) DO UPDATE SET last_seq = excluded.last_seq, \
         last_position = excluded.last_position",
    )
    .bind(state)
    .bind(seq)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `clients` tasks, each appending to its own state, through one connection (SQLite has one
/// writer; a mutex serialises without the busy-handler sleeps of competing connections).
async fn direct_appends(db: &Path, clients: u64, total: u64) -> anyhow::Result<f64> {
    let conn = Arc::new(Mutex::new(direct_connection(db).await?));
    rate(total, || async {
        let mut tasks = Vec::new();
        for client in 0..clients {
            let conn = Arc::clone(&conn);
            tasks.push(tokio::spawn(async move {
                for n in 0..total / clients {
                    direct_append(&mut *conn.lock().await, &format!("direct-{client}"), n).await?;
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

async fn flipbook_appends(db: &Path, clients: u64, total: u64) -> anyhow::Result<f64> {
    SqliteEventStore::open(&SqliteConfig::new(db)).await?; // create the file before the server
    let server = ChildServer::sqlite(db).await?;
    let result = grpc_appends(server.addr, clients, 1, total).await;
    server.stop().await?;
    result
}

async fn direct_reads(db: &Path, state: &str, count: u64, rounds: u64) -> anyhow::Result<f64> {
    let mut conn = direct_connection(db).await?;
    rate(count * rounds, || async {
        for _ in 0..rounds {
            let rows = sqlx::query(
                "SELECT position, state_id, state_seq, version, event_id, name, payload, content_type, timestamp, \
                 recorded_at, metadata FROM raw_events WHERE state_id = ?1 ORDER BY state_seq",
            )
            .bind(state)
            .fetch_all(&mut conn)
            .await?;
            let mut fold = Fold::default();
            for row in rows {
                let payload: Vec<u8> = row.try_get(6)?;
                let _: String = row.try_get(4)?;
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

/// The same read with rusqlite: SQLite's own speed, without an async driver between.
async fn rusqlite_reads(db: &Path, state: &str, count: u64, rounds: u64) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    rate(count * rounds, || async {
        for _ in 0..rounds {
            let mut statement = conn.prepare_cached(
                "SELECT position, state_id, state_seq, version, event_id, name, payload, content_type, timestamp, \
                 recorded_at, metadata FROM raw_events WHERE state_id = ?1 ORDER BY state_seq",
            )?;
            let mut rows = statement.query([state])?;
            let mut fold = Fold::default();
            while let Some(row) = rows.next()? {
                let payload: Vec<u8> = row.get(6)?;
                let _: String = row.get(4)?;
                let _: String = row.get(5)?;
                let _: String = row.get(10)?;
                fold.add(&payload, row.get::<_, i64>(3)? as u64);
            }
            anyhow::ensure!(fold.events == count, "read {} of {count}", fold.events);
        }
        Ok(())
    })
    .await
}

async fn storage_reads(db: &Path, state: &str, count: u64, rounds: u64) -> anyhow::Result<f64> {
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(&SqliteConfig::new(db)).await?);
    rate(count * rounds, || async {
        for _ in 0..rounds {
            let query = flipbook_model::StateQuery::all(state);
            let mut pages = flipbook_storage::read::state_pages(Arc::clone(&store), query, DEFAULT_PAGE_SIZE);
            let mut fold = Fold::default();
            while let Some(page) = futures::StreamExt::next(&mut pages).await {
                for event in page? {
                    fold.add(&event.payload, event.version.unwrap_or_default());
                }
            }
            anyhow::ensure!(fold.events == count, "read {} of {count}", fold.events);
        }
        Ok(())
    })
    .await
}

async fn flipbook_reads(db: &Path, state: &str, count: u64, rounds: u64) -> anyhow::Result<f64> {
    let server = ChildServer::sqlite(db).await?;
    let mut client = client(server.addr).await?;
    let result = rate(count * rounds, || async {
        for _ in 0..rounds {
            let fold = read_through(&mut client, state).await?;
            anyhow::ensure!(fold.events == count, "read {} of {count}", fold.events);
        }
        Ok(())
    })
    .await;
    server.stop().await?;
    result
}

async fn large_read(db: &Path, state: &str, count: u64) -> anyhow::Result<(f64, f64)> {
    let server = ChildServer::sqlite(db).await?;
    let mut client = client(server.addr).await?;
    let events_per_second = rate(count, || async {
        let fold = read_through(&mut client, state).await?;
        anyhow::ensure!(fold.events == count && fold.last_version == count, "read {} of {count}", fold.events);
        Ok(())
    })
    .await?;
    let peak = server.peak_rss_mib()?;
    server.stop().await?;
    Ok((peak, events_per_second))
}
