use std::sync::Arc;

use async_trait::async_trait;
use flipbook_model::{Result, Snapshot, SnapshotQuery, Timestamp};
use rusqlite::OptionalExtension;

use super::pool::Connections;
use super::{Db, SqliteConfig};
use crate::encoding::{to_i64, to_u64};
use crate::store::SnapshotStore;

/// Snapshots in a SQLite file (by default the event store's own file).
#[derive(Clone, Debug)]
pub struct SqliteSnapshotStore {
    connections: Arc<Connections>,
}

impl SqliteSnapshotStore {
    pub async fn open(config: &SqliteConfig) -> Result<Self> {
        let connections = Connections::new(config, config.read_connections.max(1), false);
        connections.run(super::create_schema).await?;
        Ok(Self { connections })
    }
}

#[async_trait]
impl SnapshotStore for SqliteSnapshotStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn close(&self) {
        self.connections.close().await;
    }

    async fn put(&self, snapshot: Snapshot) -> Result<()> {
        self.connections
            .run(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT OR REPLACE INTO snapshots \
                         (state_id, reducer_revision, version, content_type, payload, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .db()?
                    .execute((
                        &snapshot.state_id,
                        &snapshot.reducer_revision,
                        to_i64(snapshot.version),
                        &snapshot.content_type,
                        &snapshot.payload,
                        snapshot.created_at.unix_nanos(),
                    ))
                    .db()?;
                Ok(())
            })
            .await
    }

    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        let query = query.clone();
        self.connections
            .run(move |connection| {
                let found = connection
                    .prepare_cached(
                        "SELECT version, content_type, payload, created_at FROM snapshots \
                         WHERE state_id = ?1 AND reducer_revision = ?2 AND version <= ?3 \
                         ORDER BY version DESC LIMIT 1",
                    )
                    .db()?
                    .query_row(
                        (&query.state_id, &query.reducer_revision, to_i64(query.max_version.unwrap_or(u64::MAX))),
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                    )
                    .optional()
                    .db()?;
                Ok(found.map(|(version, content_type, payload, created_at)| Snapshot {
                    state_id: query.state_id,
                    reducer_revision: query.reducer_revision,
                    version: to_u64(version),
                    content_type,
                    payload,
                    created_at: Timestamp::from_unix_nanos(created_at),
                }))
            })
            .await
    }

    async fn delete(&self, state_id: &str) -> Result<u64> {
        let state_id = state_id.to_owned();
        self.connections
            .run(move |connection| {
                let deleted = connection
                    .prepare_cached("DELETE FROM snapshots WHERE state_id = ?1")
                    .db()?
                    .execute([&state_id])
                    .db()?;
                Ok(deleted as u64)
            })
            .await
    }
}
