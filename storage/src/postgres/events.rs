use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Error, Expectation, Metadata, ProposedEvent, RecordedEvent,
    Result, StateHead, StateKind, StateQuery, Timestamp,
};
use futures::stream::BoxStream;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::rows::{Columns, decode_rows, each_row, next_cursor};
use super::{POSITION_SHIFT, PostgresConfig, Probe, is_unique_violation, position_of, sql_error};
use crate::encoding::{metadata_from_json, metadata_json, to_i64, to_u64};
use crate::store::{
    BackendLimits, Checked, Decision, EventStore, Page, Tip, decide, merged_metadata, plan_append, replayed,
};
use crate::wire::{WirePage, decode_body, proposed_body};

/// How often an append is tried again after losing a race for a sequence number before the
/// server gives up with `Unavailable` (only an `any` append to a very hot state gets there).
const MAX_ATTEMPTS: usize = 16;

#[derive(Clone, Debug)]
pub struct PostgresEventStore {
    pool: PgPool,
    probe: Probe,
}

impl PostgresEventStore {
    /// A page of read-all's rows: the position (the cursor), version, body and state.
    fn all_rows<'q>(
        &'q self,
        query: &'q AllQuery,
        cursor: Option<u64>,
        max: usize,
    ) -> BoxStream<'q, std::result::Result<PgRow, sqlx::Error>> {
        macro_rules! all_rows {
            ($order:literal) => {
                concat!(
                    "SELECT position, version, body, state_id FROM flipbook_events \
                     WHERE position > $1 AND position <= $5 \
                     AND ($2 = '' OR starts_with(state_id, $2)) AND (cardinality($3::text[]) = 0 OR name = ANY($3)) \
                     ORDER BY position ",
                    $order,
                    " LIMIT $4"
                )
            };
        }
        let sql = match query.direction {
            Direction::Forward => all_rows!("ASC"),
            Direction::Backward => all_rows!("DESC"),
        };
        let (low, high) = query.window(cursor);
        sqlx::query(sql)
            .bind(to_i64(low))
            .bind(&query.state_id_prefix)
            .bind(&query.names)
            .bind(to_i64(max as u64))
            .bind(to_i64(high))
            .fetch(&self.pool)
    }

    pub async fn open(config: &PostgresConfig) -> Result<Self> {
        let pool = config.connect().await?;
        Ok(Self { probe: Probe::new(&pool), pool })
    }
}

/// How one attempt at an append ended, when it did not succeed.
enum Lost {
    /// Another append took a sequence number or event id first: try again from the tip.
    Race,
    Failed(Error),
}

impl From<Error> for Lost {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

/// A unique violation is a lost race; so is a deadlock, which PostgreSQL breaks by aborting
/// one side (appends to several states take their locks in one order, so none is expected).
fn lost(error: sqlx::Error) -> Lost {
    let deadlock = matches!(&error, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"));
    if is_unique_violation(&error) || deadlock { Lost::Race } else { Lost::Failed(sql_error(error)) }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn durable(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<()> {
        self.probe.ping().await
    }

    /// An event's place in its append has 16 bits of its global position.
    fn limits(&self) -> BackendLimits {
        BackendLimits { max_events_per_append: Some((1 << POSITION_SHIFT) - 1), ..BackendLimits::default() }
    }

    /// Runs in a task of its own, so a caller that goes away (a cut connection, a timeout)
    /// never stops an append halfway: a transaction whose BEGIN was sent but whose caller was
    /// dropped would go back to the pool still open, and the next statement on that connection
    /// would run inside it.
    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        let pool = self.pool.clone();
        tokio::spawn(async move { append_with_retries(&pool, &parts).await })
            .await
            .map_err(|e| Error::Internal(format!("the append task failed: {e}")))?
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        let row = sqlx::query(
            "SELECT version_neutral, last_seq, last_position, first_recorded_at, last_recorded_at, metadata \
             FROM flipbook_states WHERE state_id = $1",
        )
        .bind(state_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_error)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StateHead {
            state_id: state_id.to_owned(),
            kind: kind(row.try_get(0).map_err(sql_error)?),
            event_count: to_u64(row.try_get(1).map_err(sql_error)?),
            last_global_position: to_u64(row.try_get(2).map_err(sql_error)?),
            first_recorded_at: Timestamp::from_unix_nanos(row.try_get(3).map_err(sql_error)?),
            last_recorded_at: Timestamp::from_unix_nanos(row.try_get(4).map_err(sql_error)?),
            metadata: metadata_from_json(row.try_get(5).map_err(sql_error)?)?,
        }))
    }

    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page> {
        let mut events = Vec::with_capacity(max.min(4096));
        let rows = self.state_rows(query, after, max);
        let (count, last) = each_row(rows, |row| {
            events.push(event(query.state_id.clone(), &row, STATE_ROW_POSITION)?);
            Ok(())
        })
        .await?;
        Ok(Page { events, next: next_cursor(count, max, last) })
    }

    /// Each row's stored body goes into the page as it is, behind its placing fields.
    async fn read_state_wire_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<WirePage> {
        let mut page = WirePage::with_capacity(max.min(4096), 0);
        let rows = self.state_rows(query, after, max);
        let (count, last) = each_row(rows, |row| {
            let (version, position) = placing(&row, STATE_ROW_POSITION)?;
            page.push(&query.state_id, version, position, row.get(BODY).map_err(sql_error)?);
            Ok(())
        })
        .await?;
        page.next = next_cursor(count, max, last);
        Ok(page)
    }

    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page> {
        let mut events = Vec::with_capacity(max.min(4096));
        let (count, last) = each_row(self.all_rows(query, cursor, max), |row| {
            events.push(event(row.get(ALL_ROW_STATE).map_err(sql_error)?, &row, ALL_ROW_POSITION)?);
            Ok(())
        })
        .await?;
        Ok(Page { events, next: next_cursor(count, max, last) })
    }

    async fn read_all_wire_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<WirePage> {
        let mut page = WirePage::with_capacity(max.min(4096), 0);
        let (count, last) = each_row(self.all_rows(query, cursor, max), |row| {
            let (version, position) = placing(&row, ALL_ROW_POSITION)?;
            let state_id = row.get(ALL_ROW_STATE).map_err(sql_error)?;
            page.push(state_id, version, position, row.get(BODY).map_err(sql_error)?);
            Ok(())
        })
        .await?;
        page.next = next_cursor(count, max, last);
        Ok(page)
    }

    /// Every transaction with an id below the snapshot's `xmin` has ended, and positions start
    /// with their transaction's id (see the module's notes).
    async fn settled_position(&self) -> Result<u64> {
        let settled: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(position), 0) FROM flipbook_events \
             WHERE position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(sql_error)?;
        Ok(to_u64(settled))
    }

    /// Positions are sparse (transaction ids): the rows are counted.
    async fn event_count(&self, until: u64) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM flipbook_events WHERE position <= $1")
            .bind(to_i64(until))
            .fetch_one(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(to_u64(count))
    }
}

impl PostgresEventStore {
    /// A page of a state's rows: the sequence number (the cursor), version, body and position.
    fn state_rows<'q>(
        &'q self,
        query: &'q StateQuery,
        after: Option<u64>,
        max: usize,
    ) -> BoxStream<'q, std::result::Result<PgRow, sqlx::Error>> {
        let (from, to) = crate::encoding::seq_window(query, after);
        let sql = match query.direction {
            Direction::Forward => concat!(
                "SELECT state_seq, version, body, position FROM flipbook_events ",
                "WHERE state_id = $1 AND state_seq > $2 AND state_seq <= $3 ",
                "AND ($4::bigint IS NULL OR timestamp IS NULL OR timestamp <= $4) ",
                "AND (cardinality($5::text[]) = 0 OR name = ANY($5)) ",
                "ORDER BY state_seq LIMIT $6"
            ),
            Direction::Backward => concat!(
                "SELECT state_seq, version, body, position FROM flipbook_events ",
                "WHERE state_id = $1 AND state_seq < $2 AND state_seq >= $3 ",
                "AND ($4::bigint IS NULL OR timestamp IS NULL OR timestamp <= $4) ",
                "AND (cardinality($5::text[]) = 0 OR name = ANY($5)) ",
                "ORDER BY state_seq DESC LIMIT $6"
            ),
        };
        sqlx::query(sql)
            .bind(&query.state_id)
            .bind(to_i64(from))
            .bind(to_i64(to))
            .bind(query.as_of.map(Timestamp::unix_nanos))
            .bind(&query.names)
            .bind(to_i64(max as u64))
            .fetch(&self.pool)
    }
}

fn kind(version_neutral: bool) -> StateKind {
    if version_neutral { StateKind::VersionNeutral } else { StateKind::Versioned }
}

// Where an event query's columns are: its cursor first (a state's sequence number, or the
// position in read-all), then the version and the body; then a state's rows have their
// position, read-all's rows their state (their position is the cursor, sent once).
const VERSION: usize = 1;
const BODY: usize = 2;
const STATE_ROW_POSITION: usize = 3;
const ALL_ROW_POSITION: usize = 0;
const ALL_ROW_STATE: usize = 3;

/// A row's version and global position (in column `position_column`).
fn placing(row: &Columns<'_>, position_column: usize) -> Result<(Option<u64>, u64)> {
    let version = row.get::<Option<i64>>(VERSION).map_err(sql_error)?.map(to_u64);
    Ok((version, to_u64(row.get(position_column).map_err(sql_error)?)))
}

/// The event of a row whose position is in column `position_column`.
fn event(state_id: String, row: &Columns<'_>, position_column: usize) -> Result<RecordedEvent> {
    let (version, position) = placing(row, position_column)?;
    decode_body(row.get(BODY).map_err(sql_error)?, state_id, version, position)
}

/// An append's events as the arrays its insert binds, one per column.
struct EventColumns<'a> {
    ids: Vec<Uuid>,
    names: Vec<&'a str>,
    timestamps: Vec<Option<i64>>,
    /// Encoded as the API sends them ([`Body`]).
    bodies: Vec<Vec<u8>>,
}

impl<'a> EventColumns<'a> {
    fn of(events: &'a [ProposedEvent], recorded_at: Timestamp) -> Self {
        Self {
            ids: events.iter().map(|e| e.event_id).collect(),
            names: events.iter().map(|e| e.name.as_str()).collect(),
            timestamps: events.iter().map(|e| e.timestamp.map(Timestamp::unix_nanos)).collect(),
            bodies: events.iter().map(|e| proposed_body(e, recorded_at)).collect(),
        }
    }
}

/// Fills `body` for the rows stored before bodies were encoded, from the old columns, and then
/// drops those: part of the migration, in its transaction and under its lock.
pub(super) async fn encode_old_bodies(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
    let old: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = 'flipbook_events' AND column_name = 'payload')",
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(sql_error)?;
    if !old {
        return Ok(());
    }
    let (mut after, mut encoded) = (i64::MIN, 0);
    loop {
        let rows = sqlx::query(
            "SELECT position, event_id, name, payload, content_type, timestamp, recorded_at, metadata \
             FROM flipbook_events WHERE position > $1 ORDER BY position LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&mut **tx)
        .await
        .map_err(sql_error)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0).map_err(sql_error)?;
        let (mut positions, mut bodies) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for row in &rows {
            let event = ProposedEvent {
                event_id: row.try_get(1).map_err(sql_error)?,
                name: row.try_get(2).map_err(sql_error)?,
                payload: row.try_get(3).map_err(sql_error)?,
                content_type: row.try_get(4).map_err(sql_error)?,
                timestamp: row.try_get::<Option<i64>, _>(5).map_err(sql_error)?.map(Timestamp::from_unix_nanos),
                metadata: metadata_from_json(row.try_get(7).map_err(sql_error)?)?,
                version: None,
            };
            let recorded_at = Timestamp::from_unix_nanos(row.try_get(6).map_err(sql_error)?);
            positions.push(row.try_get::<i64, _>(0).map_err(sql_error)?);
            bodies.push(proposed_body(&event, recorded_at));
        }
        sqlx::query(
            "UPDATE flipbook_events e SET body = b.body FROM UNNEST($1::bigint[], $2::bytea[]) AS b(position, body) \
             WHERE e.position = b.position",
        )
        .bind(&positions)
        .bind(&bodies)
        .execute(&mut **tx)
        .await
        .map_err(sql_error)?;
        encoded += rows.len();
    }
    sqlx::raw_sql(
        "ALTER TABLE flipbook_events DROP COLUMN payload, DROP COLUMN content_type, DROP COLUMN recorded_at, \
         DROP COLUMN metadata, ALTER COLUMN body SET NOT NULL",
    )
    .execute(&mut **tx)
    .await
    .map_err(sql_error)?;
    tracing::info!(events = encoded, "PostgreSQL: stored events re-encoded as bodies");
    Ok(())
}

/// The append: in one statement when it has one part and nothing stands in the way, else
/// checked in two steps and tried again after a lost race.
async fn append_with_retries(pool: &PgPool, parts: &[AppendRequest]) -> Result<Vec<AppendOutcome>> {
    // An append that sets state metadata takes two steps: the merged map's bound is checked in
    // Rust ([`merged_metadata`]). Such appends are rare (a state's metadata is mostly set once).
    if let [request] = parts
        && request.state_metadata.is_empty()
    {
        match append_in_one_statement(pool, request).await {
            Ok(Some(outcome)) => return Ok(vec![outcome]),
            Ok(None) | Err(Lost::Race) => {}
            Err(Lost::Failed(error)) => return Err(error),
        }
    }
    for _ in 0..MAX_ATTEMPTS {
        match try_append(pool, parts).await {
            Ok(outcomes) => return Ok(outcomes),
            Err(Lost::Race) => tokio::task::yield_now().await,
            Err(Lost::Failed(error)) => return Err(error),
        }
    }
    let states: Vec<&str> = parts.iter().map(|p| p.state_id.as_str()).collect();
    Err(Error::Unavailable(format!(
        "contended: {MAX_ATTEMPTS} attempts lost the race for the next version of {states:?}"
    )))
}

/// The common case in one round trip: one statement (its own transaction) that checks the
/// state's tip against the request as [`plan_append`] would, and only then inserts the events
/// and moves the head. It answers `None` when a check fails: the two-step path ([`try_append`])
/// then reads the tip and decides with the shared rules (the conflict to report, a replay, a
/// duplicate, a kind mismatch), so the rules keep one home. A batch with an event id already
/// stored (a re-send, or a duplicate) fails on `UNIQUE (state_id, event_id)`, and a concurrent
/// append that took the same sequence numbers on `UNIQUE (state_id, state_seq)`: both are a
/// `Lost::Race`, which the two-step path sorts out. (Looking the ids up first cost a probe per
/// event that the unique index makes again.)
async fn append_in_one_statement(pool: &PgPool, request: &AppendRequest) -> Result<Option<AppendOutcome>, Lost> {
    let (expectation, expected_version) = match request.expected {
        Expectation::Any => (0i16, 0i64),
        Expectation::NoState => (1, 0),
        Expectation::Exactly(n) => (2, to_i64(n)),
    };
    let versioned = request.kind == StateKind::Versioned;
    let now = Timestamp::now();
    let EventColumns { ids, names, timestamps, bodies } = EventColumns::of(&request.events, now);
    let rows = sqlx::query(concat!(
        "WITH tip AS ( \
             SELECT version_neutral, last_seq, first_recorded_at, metadata FROM flipbook_states WHERE state_id = $1 \
         ), checked AS ( \
             SELECT COALESCE((SELECT last_seq FROM tip), 0) AS last, \
                 COALESCE((SELECT first_recorded_at FROM tip), $3) AS first_recorded_at, \
                 COALESCE((SELECT metadata FROM tip), '{}') AS metadata \
             WHERE COALESCE((SELECT version_neutral FROM tip) = NOT $2, true) \
               AND CASE $8 WHEN 0 THEN true WHEN 1 THEN NOT EXISTS (SELECT 1 FROM tip) \
                   ELSE COALESCE((SELECT last_seq FROM tip), 0) = $9 END \
               AND ($10::bigint IS NULL OR $10 = COALESCE((SELECT last_seq FROM tip), 0) + 1) \
         ), new AS ( \
             INSERT INTO flipbook_events (position, state_id, state_seq, version, event_id, name, timestamp, body) \
             SELECT ",
        position_of!("e.i"),
        ", $1, c.last + e.i, CASE WHEN $2 THEN c.last + e.i END, e.id, e.name, e.ts, e.body \
             FROM checked c, UNNEST($4::uuid[], $5::text[], $6::bigint[], $7::bytea[]) \
                 WITH ORDINALITY AS e(id, name, ts, body, i) \
             RETURNING position, state_seq \
         ), head AS ( \
             INSERT INTO flipbook_states (state_id, version_neutral, last_seq, last_position, first_recorded_at, \
                 last_recorded_at, metadata) \
             SELECT $1, NOT $2, max(n.state_seq), max(n.position), min(c.first_recorded_at), $3, min(c.metadata) \
             FROM new n, checked c HAVING count(*) > 0 \
             ON CONFLICT (state_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, \
                 last_position = EXCLUDED.last_position, last_recorded_at = EXCLUDED.last_recorded_at \
         ) \
         SELECT position, state_seq FROM new ORDER BY state_seq"
    ))
    .bind(&request.state_id)
    .bind(versioned)
    .bind(now.unix_nanos())
    .bind(&ids)
    .bind(&names)
    .bind(&timestamps)
    .bind(&bodies)
    .bind(expectation)
    .bind(expected_version)
    .bind(request.events.first().and_then(|e| e.version).map(to_i64))
    .fetch_all(pool)
    .await
    .map_err(lost)?;
    let Some(last) = rows.last() else { return Ok(None) };
    let last_seq: i64 = last.try_get(1).map_err(sql_error)?;
    let positions = rows.iter().map(|row| row.try_get::<i64, _>(0).map(to_u64)).collect::<Result<_, _>>();
    Ok(Some(AppendOutcome {
        last_version: versioned.then_some(to_u64(last_seq)),
        global_positions: positions.map_err(sql_error)?,
        recorded_at: now,
    }))
}

/// Where a checked part's events go, and the head it leaves.
struct Plan {
    first_seq: u64,
    first_recorded_at: Timestamp,
    metadata: Metadata,
}

/// One attempt: read every part's tip (and where any of its event ids is stored) in one query,
/// decide with the shared rules, then insert every part's events and move their heads in one
/// statement, in one transaction. Rows go in in state-id order, so two appends to overlapping
/// states take their row locks in the same order and never deadlock; positions follow the
/// request's order all the same (`place`).
async fn try_append(pool: &PgPool, parts: &[AppendRequest]) -> Result<Vec<AppendOutcome>, Lost> {
    let mut tx = pool.begin().await.map_err(sql_error)?;
    let state_ids: Vec<&str> = parts.iter().map(|p| p.state_id.as_str()).collect();
    let (mut ids, mut id_parts) = (Vec::new(), Vec::new());
    for (i, part) in parts.iter().enumerate() {
        ids.extend(part.events.iter().map(|e| e.event_id));
        id_parts.extend(part.events.iter().map(|_| i as i64 + 1));
    }
    let rows = sqlx::query(
        "SELECT s.version_neutral, s.last_seq, s.first_recorded_at, s.metadata, \
         (SELECT min(e.state_seq) FROM flipbook_events e JOIN UNNEST($2::uuid[], $3::bigint[]) AS x(id, part) \
             ON e.event_id = x.id WHERE x.part = p.i AND e.state_id = p.state_id) \
         FROM UNNEST($1::text[]) WITH ORDINALITY AS p(state_id, i) \
         LEFT JOIN LATERAL (SELECT * FROM flipbook_states WHERE state_id = p.state_id) s ON true ORDER BY p.i",
    )
    .bind(&state_ids)
    .bind(&ids)
    .bind(&id_parts)
    .fetch_all(&mut *tx)
    .await
    .map_err(sql_error)?;

    let now = Timestamp::now();
    let mut checks = Vec::with_capacity(parts.len());
    for (part, row) in parts.iter().zip(&rows) {
        if let Some(seq) = row.try_get::<Option<i64>, _>(4).map_err(sql_error)? {
            checks.push(Checked::Replay(replay(&mut tx, part, seq).await?));
            continue;
        }
        let (tip, first_recorded_at, metadata) = match row.try_get::<Option<i64>, _>(1).map_err(sql_error)? {
            Some(last_seq) => (
                Some(Tip { kind: kind(row.try_get(0).map_err(sql_error)?), last_seq: to_u64(last_seq) }),
                Timestamp::from_unix_nanos(row.try_get(2).map_err(sql_error)?),
                metadata_from_json(row.try_get(3).map_err(sql_error)?)?,
            ),
            None => (None, now, Metadata::new()),
        };
        let first_seq = plan_append(tip, part)?;
        let metadata = merged_metadata(metadata, part)?;
        checks.push(Checked::Write(Plan { first_seq, first_recorded_at, metadata }));
    }
    let plans = match decide(parts, checks)? {
        Decision::Replay(outcomes) => return Ok(outcomes),
        Decision::Write(plans) => plans,
    };

    // Each event's row, and each part's head, in state-id order; `place` is an event's place
    // in the request (from 1), which its position ends with.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].state_id.as_str());
    let mut first_place = Vec::with_capacity(parts.len());
    let mut placed = 0i64;
    for part in parts {
        first_place.push(placed + 1);
        placed += part.events.len() as i64;
    }
    let mut rows = InsertColumns::default();
    for &i in &order {
        let (part, plan) = (&parts[i], &plans[i]);
        let versioned = part.kind == StateKind::Versioned;
        for (j, event) in part.events.iter().enumerate() {
            let seq = to_i64(plan.first_seq + j as u64);
            rows.state_ids.push(part.state_id.as_str());
            rows.seqs.push(seq);
            rows.versions.push(versioned.then_some(seq));
            rows.ids.push(event.event_id);
            rows.names.push(event.name.as_str());
            rows.timestamps.push(event.timestamp.map(Timestamp::unix_nanos));
            rows.bodies.push(proposed_body(event, now));
            rows.places.push(first_place[i] + j as i64);
        }
        rows.head_states.push(part.state_id.as_str());
        rows.head_neutral.push(!versioned);
        rows.head_first_at.push(plan.first_recorded_at.unix_nanos());
        rows.head_metadata.push(metadata_json(&plan.metadata));
    }
    let positions: Vec<i64> = sqlx::query_scalar(concat!(
        "WITH new AS ( \
             INSERT INTO flipbook_events (position, state_id, state_seq, version, event_id, name, timestamp, body) \
             SELECT ",
        position_of!("e.place"),
        ", e.state_id, e.seq, e.version, e.id, e.name, e.ts, e.body \
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::uuid[], $5::text[], $6::bigint[], \
                 $7::bytea[], $8::bigint[]) AS e(state_id, seq, version, id, name, ts, body, place) \
             RETURNING position, state_id, state_seq \
         ), head AS ( \
             INSERT INTO flipbook_states (state_id, version_neutral, last_seq, last_position, first_recorded_at, \
                 last_recorded_at, metadata) \
             SELECT h.state_id, h.neutral, max(n.state_seq), max(n.position), h.first_at, $13, h.metadata \
             FROM UNNEST($9::text[], $10::boolean[], $11::bigint[], $12::text[]) AS h(state_id, neutral, first_at, metadata) \
             JOIN new n ON n.state_id = h.state_id GROUP BY h.state_id, h.neutral, h.first_at, h.metadata \
             ORDER BY h.state_id \
             ON CONFLICT (state_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, \
                 last_position = EXCLUDED.last_position, last_recorded_at = EXCLUDED.last_recorded_at, \
                 metadata = EXCLUDED.metadata \
         ) \
         SELECT position FROM new ORDER BY position"
    ))
    .bind(&rows.state_ids)
    .bind(&rows.seqs)
    .bind(&rows.versions)
    .bind(&rows.ids)
    .bind(&rows.names)
    .bind(&rows.timestamps)
    .bind(&rows.bodies)
    .bind(&rows.places)
    .bind(&rows.head_states)
    .bind(&rows.head_neutral)
    .bind(&rows.head_first_at)
    .bind(&rows.head_metadata)
    .bind(now.unix_nanos())
    .fetch_all(&mut *tx)
    .await
    .map_err(lost)?;
    tx.commit().await.map_err(lost)?;

    // Positions in request order: each part takes the next as many as it has events.
    let mut positions = positions.into_iter().map(to_u64);
    Ok(parts
        .iter()
        .zip(&plans)
        .map(|(part, plan)| AppendOutcome {
            last_version: (part.kind == StateKind::Versioned).then_some(plan.first_seq + part.events.len() as u64 - 1),
            global_positions: positions.by_ref().take(part.events.len()).collect(),
            recorded_at: now,
        })
        .collect())
}

/// The rows [`try_append`] inserts, as the arrays it binds: one entry per event, then one per
/// part's head.
#[derive(Default)]
struct InsertColumns<'a> {
    state_ids: Vec<&'a str>,
    seqs: Vec<i64>,
    versions: Vec<Option<i64>>,
    ids: Vec<Uuid>,
    names: Vec<&'a str>,
    timestamps: Vec<Option<i64>>,
    /// Encoded as the API sends them ([`crate::wire`]).
    bodies: Vec<Vec<u8>>,
    places: Vec<i64>,
    head_states: Vec<&'a str>,
    head_neutral: Vec<bool>,
    head_first_at: Vec<i64>,
    head_metadata: Vec<String>,
}

/// One of the batch's event ids is stored at `seq` (the earliest): a re-send, answered with the
/// original outcome, or a duplicate (see [`replayed`]).
async fn replay(tx: &mut Transaction<'_, Postgres>, request: &AppendRequest, seq: i64) -> Result<AppendOutcome> {
    let rows = sqlx::query(
        "SELECT state_seq, version, body, position FROM flipbook_events \
         WHERE state_id = $1 AND state_seq >= $2 ORDER BY state_seq LIMIT $3",
    )
    .bind(&request.state_id)
    .bind(seq)
    .bind(to_i64(request.events.len() as u64))
    .fetch_all(&mut **tx)
    .await
    .map_err(sql_error)?;
    let stored = decode_rows(&rows, |row| event(request.state_id.clone(), &row, STATE_ROW_POSITION))?;
    replayed(request, &stored)
}
