use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Error, Metadata, ProposedEvent, RecordedEvent, Result,
    StateHead, StateKind, StateQuery, Timestamp,
};
use rusqlite::{Connection, Row, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::pool::Connections;
use super::{Db, Durability, MAX_GROUP, SqliteConfig, create_schema, names_json};
use crate::encoding::{metadata_from_json, metadata_json, to_i64, to_u64};
use crate::store::{Checked, Decision, EventStore, Page, Tip, decide, merged_metadata, plan_append, replayed};
use crate::wire::{WirePage, decode_body, proposed_body};

/// The SQLite event store. Cheap to clone; the writer thread stops when the last clone is
/// dropped or the store is closed, after finishing the appends already queued.
#[derive(Clone, Debug)]
pub struct SqliteEventStore {
    writer: Arc<Writer>,
    reads: Arc<Connections>,
    durability: Durability,
}

/// The writer thread and its queue; `None` once closed.
#[derive(Debug)]
struct Writer {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug)]
struct Job {
    parts: Vec<AppendRequest>,
    reply: oneshot::Sender<Result<Vec<AppendOutcome>>>,
}

impl SqliteEventStore {
    pub async fn open(config: &SqliteConfig) -> Result<Self> {
        let opening = config.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let connection = opening.connect(false)?;
            create_schema(&connection)?;
            Ok::<_, Error>(connection)
        })
        .await
        .map_err(|e| Error::Internal(format!("opening the SQLite file failed: {e}")))??;
        let (appends, queue) = mpsc::channel(MAX_GROUP * 4);
        let thread = std::thread::Builder::new()
            .name("flipbook-sqlite-writer".to_owned())
            .spawn(move || write_loop(writer, queue))
            .map_err(|e| Error::Internal(format!("starting the SQLite writer: {e}")))?;
        let writer = Writer { queue: Mutex::new(Some(appends)), thread: Mutex::new(Some(thread)) };
        let reads = Connections::new(config, config.read_connections.max(1), true);
        Ok(Self { writer: Arc::new(writer), reads, durability: config.durability })
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn durable(&self) -> bool {
        self.durability == Durability::Full
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Unavailable("the SQLite writer has stopped".to_owned());
        let queue = self.writer.queue.lock().map_err(|_| stopped())?.clone().ok_or_else(stopped)?;
        queue.send(Job { parts, reply }).await.map_err(|_| stopped())?;
        drop(queue);
        answer.await.map_err(|_| stopped())?
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        let state_id = state_id.to_owned();
        self.reads
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT version_neutral, last_seq, last_position, first_recorded_at, last_recorded_at, metadata \
                     FROM states WHERE state_id = ?1",
                ).db()?;
                let mut rows = statement.query([&state_id]).db()?;
                let Some(row) = rows.next().db()? else { return Ok(None) };
                Ok(Some(StateHead {
                    state_id: state_id.clone(),
                    kind: kind(row.get(0).db()?),
                    event_count: to_u64(row.get(1).db()?),
                    last_global_position: to_u64(row.get(2).db()?),
                    first_recorded_at: Timestamp::from_unix_nanos(row.get(3).db()?),
                    last_recorded_at: Timestamp::from_unix_nanos(row.get(4).db()?),
                    metadata: metadata(row, 5)?,
                }))
            })
            .await
    }

    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page> {
        let (sql, params) = state_query(query, after, max);
        self.reads.run(move |connection| page(connection, sql, params, max, 2)).await
    }

    /// Each row's stored body goes into the page as it is, behind its placing fields.
    async fn read_state_wire_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<WirePage> {
        let (sql, params) = state_query(query, after, max);
        let state_id = query.state_id.clone();
        self.reads.run(move |connection| wire_page(connection, sql, params, max, 2, Some(&state_id))).await
    }

    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page> {
        let (sql, params) = all_query(query, cursor, max);
        self.reads.run(move |connection| page(connection, sql, params, max, 0)).await
    }

    async fn read_all_wire_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<WirePage> {
        let (sql, params) = all_query(query, cursor, max);
        self.reads.run(move |connection| wire_page(connection, sql, params, max, 0, None)).await
    }

    /// One writer at a time (this process's writer thread, other processes' through SQLite's
    /// write lock) assigns positions inside its transaction, so they become visible in order.
    async fn settled_position(&self) -> Result<u64> {
        let last: i64 = self
            .reads
            .run(|connection| {
                connection.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| row.get(0)).db()
            })
            .await?;
        Ok(to_u64(last))
    }

    /// The writer finishes the appends queued (its queue ends once the appends being sent
    /// now are in it), then the read connections close.
    async fn close(&self) {
        let thread = match (self.writer.queue.lock(), self.writer.thread.lock()) {
            (Ok(mut queue), Ok(mut thread)) => {
                queue.take();
                thread.take()
            }
            _ => None,
        };
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.reads.close().await;
    }

    async fn event_count(&self, until: u64) -> Result<u64> {
        let until = to_i64(until);
        let count: i64 = self
            .reads
            .run(move |connection| {
                connection.query_row("SELECT COUNT(*) FROM events WHERE position <= ?1", [until], |row| row.get(0)).db()
            })
            .await?;
        Ok(to_u64(count))
    }
}

/// The columns [`recorded_event`] reads, in its order.
macro_rules! event_columns {
    () => {
        "position, state_id, state_seq, version, body"
    };
}

/// The filter of a page of read-all, over positions `(?1, ?5]`.
macro_rules! all_filter {
    () => {
        concat!(
            " FROM events WHERE position > ?1 AND position <= ?5 ",
            "AND (?2 = '' OR substr(state_id, 1, length(?2)) = ?2) ",
            "AND (?3 IS NULL OR name IN (SELECT value FROM json_each(?3))) "
        )
    };
}

type AllParams = (i64, String, Option<String>, i64, i64);

/// The query of a page of read-all, and its parameters.
fn all_query(query: &AllQuery, cursor: Option<u64>, max: usize) -> (&'static str, AllParams) {
    let sql = match query.direction {
        Direction::Forward => concat!("SELECT ", event_columns!(), all_filter!(), "ORDER BY position LIMIT ?4"),
        Direction::Backward => concat!("SELECT ", event_columns!(), all_filter!(), "ORDER BY position DESC LIMIT ?4"),
    };
    let (low, high) = query.window(cursor);
    (sql, (to_i64(low), query.state_id_prefix.clone(), names_json(&query.names), to_i64(max as u64), to_i64(high)))
}

type StateParams = (String, i64, i64, Option<i64>, Option<String>, i64);

/// The query of a page of a state's read, and its parameters.
fn state_query(query: &StateQuery, after: Option<u64>, max: usize) -> (&'static str, StateParams) {
    let (from, to) = crate::encoding::seq_window(query, after);
    let sql = match query.direction {
        Direction::Forward => concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE state_id = ?1 AND state_seq > ?2 AND state_seq <= ?3 ",
            "AND (?4 IS NULL OR timestamp IS NULL OR timestamp <= ?4) ",
            "AND (?5 IS NULL OR name IN (SELECT value FROM json_each(?5))) ",
            "ORDER BY state_seq LIMIT ?6"
        ),
        Direction::Backward => concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE state_id = ?1 AND state_seq < ?2 AND state_seq >= ?3 ",
            "AND (?4 IS NULL OR timestamp IS NULL OR timestamp <= ?4) ",
            "AND (?5 IS NULL OR name IN (SELECT value FROM json_each(?5))) ",
            "ORDER BY state_seq DESC LIMIT ?6"
        ),
    };
    let (as_of, names) = (query.as_of.map(Timestamp::unix_nanos), names_json(&query.names));
    (sql, (query.state_id.clone(), to_i64(from), to_i64(to), as_of, names, to_i64(max as u64)))
}

fn kind(version_neutral: bool) -> StateKind {
    if version_neutral { StateKind::VersionNeutral } else { StateKind::Versioned }
}

/// A row's version and global position.
fn placing(row: &Row<'_>) -> Result<(Option<u64>, u64)> {
    Ok((row.get::<_, Option<i64>>(3).db()?.map(to_u64), to_u64(row.get(0).db()?)))
}

/// An event from a row of `event_columns!()`.
fn recorded_event(row: &Row<'_>) -> Result<RecordedEvent> {
    let (version, position) = placing(row)?;
    let body = row.get_ref(4).db()?.as_blob().map_err(rusqlite::Error::from).db()?;
    decode_body(body, row.get(1).db()?, version, position)
}

/// The metadata map stored as JSON in column `column`.
fn metadata(row: &Row<'_>, column: usize) -> Result<Metadata> {
    metadata_from_json(row.get_ref(column).db()?.as_str().map_err(rusqlite::Error::from).db()?)
}

/// The events a query of `event_columns!()` answers, in its order.
fn events(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    cursor: usize,
) -> Result<(Vec<RecordedEvent>, i64)> {
    let mut statement = connection.prepare_cached(sql).db()?;
    let mut rows = statement.query(params).db()?;
    let (mut events, mut last) = (Vec::new(), 0);
    while let Some(row) = rows.next().db()? {
        last = row.get(cursor).db()?;
        events.push(recorded_event(row)?);
    }
    Ok((events, last))
}

/// A page from a query of `event_columns!()` ordered by its column `cursor`, with `LIMIT max`:
/// a page shorter than asked is the last one.
fn page(connection: &Connection, sql: &str, params: impl rusqlite::Params, max: usize, cursor: usize) -> Result<Page> {
    let (events, last) = events(connection, sql, params, cursor)?;
    let next = (events.len() >= max).then_some(to_u64(last));
    Ok(Page { events, next })
}

/// A page from a query of `event_columns!()` as [`page`] makes one, with each row's stored body
/// copied behind its placing fields; the state is the row's unless given.
fn wire_page(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    max: usize,
    cursor: usize,
    state_id: Option<&str>,
) -> Result<WirePage> {
    let mut statement = connection.prepare_cached(sql).db()?;
    let mut rows = statement.query(params).db()?;
    let (mut page, mut last) = (WirePage::with_capacity(max.min(4096), 0), 0);
    while let Some(row) = rows.next().db()? {
        last = row.get(cursor).db()?;
        let (version, position) = placing(row)?;
        let state_id = match state_id {
            Some(state_id) => state_id,
            None => row.get_ref(1).db()?.as_str().map_err(rusqlite::Error::from).db()?,
        };
        page.push(state_id, version, position, row.get_ref(4).db()?.as_blob().map_err(rusqlite::Error::from).db()?);
    }
    page.next = (page.len() >= max).then_some(to_u64(last));
    Ok(page)
}

/// The writer thread: group commit over the only write connection. It ends when every sender
/// is gone and the queue is drained.
fn write_loop(mut connection: Connection, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    while queue.blocking_recv_many(&mut jobs, MAX_GROUP) > 0 {
        let results = match commit_group(&mut connection, &jobs) {
            Ok(results) => results,
            Err(error) => {
                tracing::error!(%error, appends = jobs.len(), "SQLite group commit failed");
                jobs.iter().map(|_| Err(error.clone())).collect()
            }
        };
        for (job, result) in jobs.drain(..).zip(results) {
            // The caller may have gone (timeout, cancelled RPC): its append stands all the same.
            let _ = job.reply.send(result);
        }
    }
}

/// Runs every job in one transaction and commits once (one fsync for the group).
///
/// A job's parts are all checked before it writes anything (tip, expectation, stored event
/// ids), so a refused append leaves nothing to undo and needs no savepoint. Should a job fail
/// after it began writing (an I/O error), the transaction is rolled back and the group runs
/// again without it.
fn commit_group(connection: &mut Connection, jobs: &[Job]) -> Result<Vec<Result<Vec<AppendOutcome>>>> {
    let mut failed: Vec<Option<Error>> = vec![None; jobs.len()];
    loop {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        let now = Timestamp::now();
        let mut results = Vec::with_capacity(jobs.len());
        let mut dirty = None;
        for (i, job) in jobs.iter().enumerate() {
            if let Some(error) = &failed[i] {
                results.push(Err(error.clone()));
                continue;
            }
            let checks = job.parts.iter().map(|part| check(&tx, part, now)).collect::<Result<Vec<_>>>();
            let result = match checks.and_then(|checks| decide(&job.parts, checks)) {
                Ok(Decision::Replay(outcomes)) => Ok(outcomes),
                Ok(Decision::Write(plans)) => {
                    match job.parts.iter().zip(plans).map(|(part, plan)| write(&tx, part, plan, now)).collect() {
                        Ok(outcomes) => Ok(outcomes),
                        Err(error) => {
                            dirty = Some((i, error));
                            break;
                        }
                    }
                }
                Err(refused) => Err(refused),
            };
            results.push(result);
        }
        match dirty {
            None => {
                tx.commit().db()?;
                return Ok(results);
            }
            Some((i, error)) => {
                tx.rollback().db()?;
                tracing::warn!(%error, "an append failed while writing; its group runs again without it");
                failed[i] = Some(error);
            }
        }
    }
}

/// Where an append's events go, and the head it leaves.
struct Plan {
    first_seq: u64,
    first_recorded_at: Timestamp,
    metadata: Metadata,
}

/// Everything that can refuse an append, before it writes: reads the tip and where any of the
/// batch's event ids is already stored, in one query.
fn check(connection: &Connection, request: &AppendRequest, now: Timestamp) -> Result<Checked<Plan>> {
    let ids: Vec<String> = request.events.iter().map(|e| e.event_id.hyphenated().to_string()).collect();
    let ids = serde_json::to_string(&ids).map_err(|e| Error::Internal(e.to_string()))?;
    let mut statement = connection
        .prepare_cached(
            "SELECT s.version_neutral, s.last_seq, s.first_recorded_at, s.metadata, \
         (SELECT min(state_seq) FROM events WHERE state_id = ?1 AND event_id IN (SELECT value FROM json_each(?2))) \
         FROM (SELECT 1) LEFT JOIN states s ON s.state_id = ?1",
        )
        .db()?;
    let mut rows = statement.query((&request.state_id, ids)).db()?;
    let row = rows.next().db()?.ok_or_else(|| Error::Internal("the tip query answered no row".to_owned()))?;

    if let Some(seq) = row.get::<_, Option<i64>>(4).db()? {
        return replay(connection, request, seq).map(Checked::Replay);
    }
    let (tip, first_recorded_at, metadata) = match row.get::<_, Option<i64>>(1).db()? {
        Some(last_seq) => (
            Some(Tip { kind: kind(row.get(0).db()?), last_seq: to_u64(last_seq) }),
            Timestamp::from_unix_nanos(row.get(2).db()?),
            metadata(row, 3)?,
        ),
        None => (None, now, Metadata::new()),
    };
    let first_seq = plan_append(tip, request)?;
    let metadata = merged_metadata(metadata, request)?;
    Ok(Checked::Write(Plan { first_seq, first_recorded_at, metadata }))
}

/// Writes a checked append's events and moves the state's head.
fn write(connection: &Connection, request: &AppendRequest, plan: Plan, now: Timestamp) -> Result<AppendOutcome> {
    let state_id = request.state_id.as_str();
    let versioned = request.kind == StateKind::Versioned;
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO events (state_id, state_seq, version, event_id, name, timestamp, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .db()?;
    let mut positions = Vec::with_capacity(request.events.len());
    for (seq, event) in (plan.first_seq..).zip(&request.events) {
        insert
            .execute((
                state_id,
                to_i64(seq),
                versioned.then_some(to_i64(seq)),
                event.event_id.hyphenated().to_string(),
                &event.name,
                event.timestamp.map(Timestamp::unix_nanos),
                proposed_body(event, now),
            ))
            .db()?;
        positions.push(to_u64(connection.last_insert_rowid()));
    }

    let last_seq = plan.first_seq + request.events.len() as u64 - 1;
    connection
        .prepare_cached(
            "INSERT INTO states (state_id, version_neutral, last_seq, last_position, first_recorded_at, \
             last_recorded_at, metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (state_id) DO UPDATE SET \
             last_seq = excluded.last_seq, last_position = excluded.last_position, \
             last_recorded_at = excluded.last_recorded_at, metadata = excluded.metadata",
        )
        .db()?
        .execute((
            state_id,
            !versioned,
            to_i64(last_seq),
            to_i64(positions.last().copied().unwrap_or_default()),
            plan.first_recorded_at.unix_nanos(),
            now.unix_nanos(),
            metadata_json(&plan.metadata),
        ))
        .db()?;

    Ok(AppendOutcome { last_version: versioned.then_some(last_seq), global_positions: positions, recorded_at: now })
}

/// One of the batch's event ids is stored at `seq` (the earliest): the append is a re-send,
/// answered with the original outcome, or a duplicate (see [`replayed`]).
fn replay(connection: &Connection, request: &AppendRequest, seq: i64) -> Result<AppendOutcome> {
    let sql = concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE state_id = ?1 AND state_seq >= ?2 ORDER BY state_seq LIMIT ?3"
    );
    let limit = to_i64(request.events.len() as u64);
    let (stored, _) = events(connection, sql, (&request.state_id, seq, limit), 2)?;
    replayed(request, &stored)
}

/// Fills `body` for the rows of a file written before bodies were stored encoded, from the old
/// columns, and then drops those: part of opening the file, in the schema's transaction.
pub(super) fn encode_old_bodies(connection: &Connection) -> Result<()> {
    let old: bool = connection
        .query_row("SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'payload')", [], |row| {
            row.get(0)
        })
        .db()?;
    if !old {
        return Ok(());
    }
    connection.execute_batch("ALTER TABLE events ADD COLUMN body BLOB").db()?;
    let mut select = connection
        .prepare("SELECT position, event_id, name, payload, content_type, timestamp, recorded_at, metadata FROM events")
        .db()?;
    let mut update = connection.prepare("UPDATE events SET body = ?2 WHERE position = ?1").db()?;
    let mut rows = select.query([]).db()?;
    let mut encoded = 0;
    while let Some(row) = rows.next().db()? {
        let event_id = row.get_ref(1).db()?.as_str().map_err(rusqlite::Error::from).db()?;
        let event = ProposedEvent {
            event_id: Uuid::parse_str(event_id).map_err(|e| Error::Internal(format!("corrupt event id: {e}")))?,
            name: row.get(2).db()?,
            payload: row.get(3).db()?,
            content_type: row.get(4).db()?,
            timestamp: row.get::<_, Option<i64>>(5).db()?.map(Timestamp::from_unix_nanos),
            metadata: metadata(row, 7)?,
            version: None,
        };
        let body = proposed_body(&event, Timestamp::from_unix_nanos(row.get(6).db()?));
        update.execute((row.get::<_, i64>(0).db()?, body)).db()?;
        encoded += 1;
    }
    connection
        .execute_batch(
            "ALTER TABLE events DROP COLUMN payload; ALTER TABLE events DROP COLUMN content_type; \
         ALTER TABLE events DROP COLUMN recorded_at; ALTER TABLE events DROP COLUMN metadata;",
        )
        .db()?;
    tracing::info!(events = encoded, "SQLite: stored events re-encoded as bodies");
    Ok(())
}
