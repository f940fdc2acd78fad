use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::{PostgresConfig, is_unique_violation, sql_error};
use crate::encoding::{metadata_from_json, metadata_json, page, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Metadata, RecordedEvent, StateHead, StateKind, StateQuery,
    Timestamp,
};
use crate::store::{EventStore, Page, Tip, plan_append, replayed};

/// How often an append is tried again after losing a race for a sequence number before the
/// server gives up with `Unavailable` (only an `any` append to a very hot state gets there).
const MAX_ATTEMPTS: usize = 16;

#[derive(Clone, Debug)]
pub struct PostgresEventStore {
    pool: PgPool,
}

impl PostgresEventStore {
    pub async fn open(config: &PostgresConfig) -> Result<Self> {
        Ok(Self { pool: config.connect().await? })
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

fn lost(error: sqlx::Error) -> Lost {
    if is_unique_violation(&error) { Lost::Race } else { Lost::Failed(sql_error(error)) }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn durable(&self) -> bool {
        true
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        for _ in 0..MAX_ATTEMPTS {
            match try_append(&self.pool, &request).await {
                Ok(outcome) => return Ok(outcome),
                Err(Lost::Race) => tokio::task::yield_now().await,
                Err(Lost::Failed(error)) => return Err(error),
            }
        }
        Err(Error::Unavailable(format!(
            "state {:?} is contended: {MAX_ATTEMPTS} attempts lost the race for the next version",
            request.state_id
        )))
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
        let (from, to) = crate::encoding::seq_window(query, after);
        let sql = match query.direction {
            Direction::Forward => concat!(
                "SELECT ",
                event_columns!(),
                " FROM flipbook_events WHERE state_id = $1 AND state_seq > $2 AND state_seq <= $3 ",
                "AND ($4::bigint IS NULL OR timestamp IS NULL OR timestamp <= $4) ",
                "AND (cardinality($5::text[]) = 0 OR name = ANY($5)) ",
                "ORDER BY state_seq LIMIT $6"
            ),
            Direction::Backward => concat!(
                "SELECT ",
                event_columns!(),
                " FROM flipbook_events WHERE state_id = $1 AND state_seq < $2 AND state_seq >= $3 ",
                "AND ($4::bigint IS NULL OR timestamp IS NULL OR timestamp <= $4) ",
                "AND (cardinality($5::text[]) = 0 OR name = ANY($5)) ",
                "ORDER BY state_seq DESC LIMIT $6"
            ),
        };
        let rows = sqlx::query(sql)
            .bind(&query.state_id)
            .bind(to_i64(from))
            .bind(to_i64(to))
            .bind(query.as_of.map(Timestamp::unix_nanos))
            .bind(&query.names)
            .bind(to_i64(max as u64))
            .fetch_all(&self.pool)
            .await
            .map_err(sql_error)?;
        page(&rows, max, |row| row.try_get("state_seq").map_err(sql_error), recorded_event)
    }

    async fn read_all_page(&self, query: &AllQuery, after: u64, max: usize) -> Result<Page> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM flipbook_events WHERE position > $1 ",
            "AND ($2 = '' OR starts_with(state_id, $2)) ",
            "AND (cardinality($3::text[]) = 0 OR name = ANY($3)) ",
            "ORDER BY position LIMIT $4"
        ))
        .bind(to_i64(after))
        .bind(&query.state_id_prefix)
        .bind(&query.names)
        .bind(to_i64(max as u64))
        .fetch_all(&self.pool)
        .await
        .map_err(sql_error)?;
        page(&rows, max, |row| row.try_get("position").map_err(sql_error), recorded_event)
    }
}

/// The columns [`recorded_event`] reads, in its order.
macro_rules! event_columns {
    () => {
        "position, state_id, state_seq, version, event_id, name, payload, content_type, timestamp, recorded_at, metadata"
    };
}
use event_columns;

fn kind(version_neutral: bool) -> StateKind {
    if version_neutral { StateKind::VersionNeutral } else { StateKind::Versioned }
}

fn recorded_event(row: &PgRow) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        global_position: to_u64(row.try_get(0).map_err(sql_error)?),
        state_id: row.try_get(1).map_err(sql_error)?,
        version: row.try_get::<Option<i64>, _>(3).map_err(sql_error)?.map(to_u64),
        event_id: row.try_get(4).map_err(sql_error)?,
        name: row.try_get(5).map_err(sql_error)?,
        payload: row.try_get(6).map_err(sql_error)?,
        content_type: row.try_get(7).map_err(sql_error)?,
        timestamp: row.try_get::<Option<i64>, _>(8).map_err(sql_error)?.map(Timestamp::from_unix_nanos),
        recorded_at: Timestamp::from_unix_nanos(row.try_get(9).map_err(sql_error)?),
        metadata: metadata_from_json(row.try_get(10).map_err(sql_error)?)?,
    })
}

/// One attempt: read the tip (and any stored event id of the batch), decide with the shared
/// rules, then insert the events and move the head in one statement.
async fn try_append(pool: &PgPool, request: &AppendRequest) -> Result<AppendOutcome, Lost> {
    let mut tx = pool.begin().await.map_err(sql_error)?;
    let ids: Vec<Uuid> = request.events.iter().map(|e| e.event_id).collect();
    let row = sqlx::query(
        "SELECT s.version_neutral, s.last_seq, s.first_recorded_at, s.metadata, \
         (SELECT min(state_seq) FROM flipbook_events WHERE state_id = $1 AND event_id = ANY($2)) \
         FROM (SELECT 1) AS one LEFT JOIN flipbook_states s ON s.state_id = $1",
    )
    .bind(&request.state_id)
    .bind(&ids)
    .fetch_one(&mut *tx)
    .await
    .map_err(sql_error)?;

    if let Some(seq) = row.try_get::<Option<i64>, _>(4).map_err(sql_error)? {
        return Ok(replay(&mut tx, request, seq).await?);
    }
    let now = Timestamp::now();
    let (tip, first_recorded_at, mut metadata) = match row.try_get::<Option<i64>, _>(1).map_err(sql_error)? {
        Some(last_seq) => (
            Some(Tip { kind: kind(row.try_get(0).map_err(sql_error)?), last_seq: to_u64(last_seq) }),
            Timestamp::from_unix_nanos(row.try_get(2).map_err(sql_error)?),
            metadata_from_json(row.try_get(3).map_err(sql_error)?)?,
        ),
        None => (None, now, Metadata::new()),
    };
    let first_seq = plan_append(tip, request)?;
    metadata.extend(request.state_metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    let versioned = request.kind == StateKind::Versioned;

    let events = &request.events;
    let seqs: Vec<i64> = (first_seq..).take(events.len()).map(to_i64).collect();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    let content_types: Vec<&str> = events.iter().map(|e| e.content_type.as_str()).collect();
    let timestamps: Vec<Option<i64>> = events.iter().map(|e| e.timestamp.map(Timestamp::unix_nanos)).collect();
    let metadatas: Vec<String> = events.iter().map(|e| metadata_json(&e.metadata)).collect();
    let positions: Vec<i64> = sqlx::query_scalar(
        "WITH new AS ( \
             INSERT INTO flipbook_events (state_id, state_seq, version, event_id, name, payload, content_type, \
                 timestamp, recorded_at, metadata) \
             SELECT $1, e.seq, CASE WHEN $2 THEN e.seq END, e.id, e.name, e.payload, e.content_type, e.ts, $3, e.md \
             FROM UNNEST($4::bigint[], $5::uuid[], $6::text[], $7::bytea[], $8::text[], $9::bigint[], $10::text[]) \
                 AS e(seq, id, name, payload, content_type, ts, md) \
             RETURNING position, state_seq \
         ), head AS ( \
             INSERT INTO flipbook_states (state_id, version_neutral, last_seq, last_position, first_recorded_at, \
                 last_recorded_at, metadata) \
             SELECT $1, NOT $2, max(state_seq), max(position), $11, $3, $12 FROM new \
             ON CONFLICT (state_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, \
                 last_position = EXCLUDED.last_position, last_recorded_at = EXCLUDED.last_recorded_at, \
                 metadata = EXCLUDED.metadata \
         ) \
         SELECT position FROM new ORDER BY state_seq",
    )
    .bind(&request.state_id)
    .bind(versioned)
    .bind(now.unix_nanos())
    .bind(&seqs)
    .bind(&ids)
    .bind(&names)
    .bind(&payloads)
    .bind(&content_types)
    .bind(&timestamps)
    .bind(&metadatas)
    .bind(first_recorded_at.unix_nanos())
    .bind(metadata_json(&metadata))
    .fetch_all(&mut *tx)
    .await
    .map_err(lost)?;
    tx.commit().await.map_err(lost)?;
    Ok(AppendOutcome {
        last_version: versioned.then_some(first_seq + events.len() as u64 - 1),
        global_positions: positions.into_iter().map(to_u64).collect(),
        recorded_at: now,
    })
}

/// One of the batch's event ids is stored at `seq` (the earliest): a re-send, answered with the
/// original outcome, or a duplicate (see [`replayed`]).
async fn replay(tx: &mut Transaction<'_, Postgres>, request: &AppendRequest, seq: i64) -> Result<AppendOutcome> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM flipbook_events WHERE state_id = $1 AND state_seq >= $2 ORDER BY state_seq LIMIT $3"
    ))
    .bind(&request.state_id)
    .bind(seq)
    .bind(to_i64(request.events.len() as u64))
    .fetch_all(&mut **tx)
    .await
    .map_err(sql_error)?;
    let stored = rows.iter().map(recorded_event).collect::<Result<Vec<_>>>()?;
    replayed(request, &stored)
}
