//! Chooses the configured stores and opens them. Each backend opens from its own settings
//! (`flipbook_storage::{SqliteConfig, PostgresConfig, RedisConfig, DynamoConfig}`, the
//! configuration's sections as they are), beside its code in the stores crate; a backend whose
//! cargo feature is off is refused at start with the feature's name.

use std::sync::Arc;

use anyhow::Context;
use flipbook_storage::memory::MemorySnapshotStore;
use flipbook_storage::sqlite::{SqliteEventStore, SqliteSnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

use crate::config::{Config, EventBackend, SnapshotBackend};

/// The error for a backend this binary was built without.
#[cfg(not(all(feature = "postgres", feature = "redis", feature = "dynamodb")))]
fn missing(feature: &str) -> anyhow::Error {
    anyhow::anyhow!("this flipbook was built without the `{feature}` cargo feature")
}

pub async fn open(config: &Config) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn SnapshotStore>)> {
    let events = open_events(config).await?;
    let snapshots = open_snapshots(config).await?;
    if !events.durable() {
        tracing::warn!(
            backend = events.backend(),
            "the event store is not durable as configured: an acknowledged append may be lost"
        );
    }
    Ok((events, snapshots))
}

async fn open_events(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    let events = &config.events;
    Ok(match events.backend {
        EventBackend::Sqlite => Arc::new(
            SqliteEventStore::open(&events.sqlite)
                .await
                .with_context(|| format!("opening the SQLite event store {}", events.sqlite.path.display()))?,
        ),
        #[cfg(feature = "postgres")]
        EventBackend::Postgres => Arc::new(
            flipbook_storage::postgres::PostgresEventStore::open(&events.postgres)
                .await
                .context("opening the PostgreSQL event store")?,
        ),
        #[cfg(feature = "redis")]
        EventBackend::Redis => Arc::new(
            flipbook_storage::redis::RedisEventStore::open(&events.redis)
                .await
                .context("opening the Redis event store")?,
        ),
        #[cfg(feature = "dynamodb")]
        EventBackend::Dynamodb => Arc::new(
            flipbook_storage::dynamodb::DynamoEventStore::open(&events.dynamodb)
                .await
                .with_context(|| format!("opening the DynamoDB event store (table {:?})", events.dynamodb.table))?,
        ),
        #[cfg(not(feature = "postgres"))]
        EventBackend::Postgres => return Err(missing("postgres")),
        #[cfg(not(feature = "redis"))]
        EventBackend::Redis => return Err(missing("redis")),
        #[cfg(not(feature = "dynamodb"))]
        EventBackend::Dynamodb => return Err(missing("dynamodb")),
    })
}

/// Snapshots go where the events' settings say unless their own section says otherwise.
async fn open_snapshots(config: &Config) -> anyhow::Result<Arc<dyn SnapshotStore>> {
    let (events, snapshots) = (&config.events, &config.snapshots);
    Ok(match snapshots.backend {
        SnapshotBackend::Memory => Arc::new(MemorySnapshotStore::new()),
        SnapshotBackend::Sqlite => {
            let mut sqlite = events.sqlite.clone();
            if let Some(path) = &snapshots.path {
                sqlite.path.clone_from(path);
            }
            Arc::new(
                SqliteSnapshotStore::open(&sqlite)
                    .await
                    .with_context(|| format!("opening the SQLite snapshot store {}", sqlite.path.display()))?,
            )
        }
        #[cfg(feature = "postgres")]
        SnapshotBackend::Postgres => Arc::new(
            flipbook_storage::postgres::PostgresSnapshotStore::open(
                snapshots.postgres.as_ref().unwrap_or(&events.postgres),
            )
            .await
            .context("opening the PostgreSQL snapshot store")?,
        ),
        #[cfg(feature = "redis")]
        SnapshotBackend::Redis => Arc::new(
            flipbook_storage::redis::RedisSnapshotStore::open(snapshots.redis.as_ref().unwrap_or(&events.redis))
                .await
                .context("opening the Redis snapshot store")?,
        ),
        #[cfg(feature = "redis")]
        SnapshotBackend::RedisCluster => Arc::new(
            flipbook_storage::redis::RedisSnapshotStore::open_cluster(
                &snapshots.redis_cluster,
                snapshots.redis.as_ref().unwrap_or(&events.redis),
            )
            .await
            .context("opening the Redis Cluster snapshot store")?,
        ),
        #[cfg(feature = "dynamodb")]
        SnapshotBackend::Dynamodb => {
            let dynamodb = snapshots.dynamodb.as_ref().unwrap_or(&events.dynamodb);
            Arc::new(
                flipbook_storage::dynamodb::DynamoSnapshotStore::open(dynamodb)
                    .await
                    .with_context(|| format!("opening the DynamoDB snapshot store (table {:?})", dynamodb.table))?,
            )
        }
        #[cfg(not(feature = "postgres"))]
        SnapshotBackend::Postgres => return Err(missing("postgres")),
        #[cfg(not(feature = "redis"))]
        SnapshotBackend::Redis | SnapshotBackend::RedisCluster => return Err(missing("redis")),
        #[cfg(not(feature = "dynamodb"))]
        SnapshotBackend::Dynamodb => return Err(missing("dynamodb")),
    })
}
