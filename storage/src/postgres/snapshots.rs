use async_trait::async_trait;
use flipbook_model::{Result, Snapshot, SnapshotQuery, Timestamp};
use sqlx::{PgPool, Row};

use super::{PostgresConfig, Probe, sql_error};
use crate::encoding::{to_i64, to_u64};
use crate::store::SnapshotStore;

#[derive(Clone, Debug)]
pub struct PostgresSnapshotStore {
    pool: PgPool,
    probe: Probe,
}

impl PostgresSnapshotStore {
    pub async fn open(config: &PostgresConfig) -> Result<Self> {
        let pool = config.connect().await?;
        Ok(Self { probe: Probe::new(&pool), pool })
    }
}

#[async_trait]
impl SnapshotStore for PostgresSnapshotStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        self.probe.ping().await
    }

    async fn put(&self, snapshot: Snapshot) -> Result<()> {
        sqlx::query(
            "INSERT INTO flipbook_snapshots (state_id, reducer_revision, version, content_type, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (state_id, reducer_revision, version) DO UPDATE SET \
             content_type = EXCLUDED.content_type, payload = EXCLUDED.payload, created_at = EXCLUDED.created_at",
        )
        .bind(&snapshot.state_id)
        .bind(&snapshot.reducer_revision)
        .bind(to_i64(snapshot.version))
        .bind(&snapshot.content_type)
        .bind(&snapshot.payload)
        .bind(snapshot.created_at.unix_nanos())
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(sql_error)
    }

    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        let row = sqlx::query(
            "SELECT version, content_type, payload, created_at FROM flipbook_snapshots \
             WHERE state_id = $1 AND reducer_revision = $2 AND version <= $3 ORDER BY version DESC LIMIT 1",
        )
        .bind(&query.state_id)
        .bind(&query.reducer_revision)
        .bind(to_i64(query.max_version.unwrap_or(u64::MAX)))
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_error)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Snapshot {
            state_id: query.state_id.clone(),
            reducer_revision: query.reducer_revision.clone(),
            version: to_u64(row.try_get(0).map_err(sql_error)?),
            content_type: row.try_get(1).map_err(sql_error)?,
            payload: row.try_get(2).map_err(sql_error)?,
            created_at: Timestamp::from_unix_nanos(row.try_get(3).map_err(sql_error)?),
        }))
    }

    async fn delete(&self, state_id: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM flipbook_snapshots WHERE state_id = $1")
            .bind(state_id)
            .execute(&self.pool)
            .await
            .map_err(sql_error)?;
        Ok(done.rows_affected())
    }
}
