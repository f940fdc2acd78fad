//! Opens the configured stores. Each backend is compiled in by its cargo feature; a configured
//! backend whose feature is off is refused at start with the feature's name.

use std::sync::Arc;

use anyhow::Context;
use flipbook_storage::memory::MemorySnapshotStore;
use flipbook_storage::sqlite::{SqliteConfig, SqliteEventStore, SqliteSnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

use crate::config::{
    Config, DynamodbSettings, EventBackend, PostgresSettings, RedisSettings, SnapshotBackend, SqliteSettings,
};

fn sqlite_config(settings: &SqliteSettings) -> anyhow::Result<SqliteConfig> {
    let mut config = SqliteConfig::new(&settings.path);
    config.durability = settings.durability.parse().map_err(anyhow::Error::msg)?;
    config.read_connections = settings.read_connections.max(1);
    Ok(config)
}

#[cfg(feature = "postgres")]
fn postgres_config(settings: &PostgresSettings) -> flipbook_storage::postgres::PostgresConfig {
    let mut config = flipbook_storage::postgres::PostgresConfig::new(&settings.url);
    config.max_connections = settings.max_connections;
    config.acquire_timeout = settings.acquire_timeout;
    config
}

#[cfg(feature = "redis")]
fn redis_config(settings: &RedisSettings) -> flipbook_storage::redis::RedisConfig {
    let mut config = flipbook_storage::redis::RedisConfig::new(&settings.url);
    config.response_timeout = settings.response_timeout;
    config
}

#[cfg(feature = "dynamodb")]
fn dynamodb_config(settings: &DynamodbSettings) -> flipbook_storage::dynamodb::DynamoConfig {
    let mut config = flipbook_storage::dynamodb::DynamoConfig::new(&settings.table);
    config.region.clone_from(&settings.region);
    config.endpoint_url.clone_from(&settings.endpoint);
    config.attempt_timeout = settings.timeout;
    config.operation_timeout = settings.timeout * 2;
    config
}

/// The error for a backend this binary was built without.
#[cfg(not(all(feature = "postgres", feature = "redis", feature = "dynamodb")))]
fn missing(feature: &str) -> anyhow::Error {
    anyhow::anyhow!("this flipbook was built without the `{feature}` cargo feature")
}

pub async fn open(config: &Config) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn SnapshotStore>)> {
    let events: Arc<dyn EventStore> = match config.events.backend {
        EventBackend::Sqlite => {
            let sqlite = sqlite_config(&config.events.sqlite)?;
            Arc::new(
                SqliteEventStore::open(&sqlite)
                    .await
                    .with_context(|| format!("opening the SQLite event store {}", sqlite.path.display()))?,
            )
        }
        #[cfg(feature = "postgres")]
        EventBackend::Postgres => Arc::new(
            flipbook_storage::postgres::PostgresEventStore::open(&postgres_config(&config.events.postgres))
                .await
                .context("opening the PostgreSQL event store")?,
        ),
        #[cfg(not(feature = "postgres"))]
        EventBackend::Postgres => return Err(missing("postgres")),
        #[cfg(feature = "redis")]
        EventBackend::Redis => Arc::new(
            flipbook_storage::redis::RedisEventStore::open(&redis_config(&config.events.redis))
                .await
                .context("opening the Redis event store")?,
        ),
        #[cfg(not(feature = "redis"))]
        EventBackend::Redis => return Err(missing("redis")),
        #[cfg(feature = "dynamodb")]
        EventBackend::Dynamodb => {
            let dynamodb = dynamodb_config(&config.events.dynamodb);
            Arc::new(
                flipbook_storage::dynamodb::DynamoEventStore::open(&dynamodb)
                    .await
                    .with_context(|| format!("opening the DynamoDB event store (table {:?})", dynamodb.table))?,
            )
        }
        #[cfg(not(feature = "dynamodb"))]
        EventBackend::Dynamodb => return Err(missing("dynamodb")),
    };
    let snapshots: Arc<dyn SnapshotStore> = match config.snapshots.backend {
        SnapshotBackend::Memory => Arc::new(MemorySnapshotStore::new()),
        SnapshotBackend::Sqlite => {
            let mut sqlite = sqlite_config(&config.events.sqlite)?;
            if let Some(path) = &config.snapshots.path {
                sqlite.path.clone_from(path);
            }
            Arc::new(
                SqliteSnapshotStore::open(&sqlite)
                    .await
                    .with_context(|| format!("opening the SQLite snapshot store {}", sqlite.path.display()))?,
            )
        }
        #[cfg(feature = "postgres")]
        SnapshotBackend::Postgres => {
            let settings = config.snapshots.postgres.as_ref().unwrap_or(&config.events.postgres);
            Arc::new(
                flipbook_storage::postgres::PostgresSnapshotStore::open(&postgres_config(settings))
                    .await
                    .context("opening the PostgreSQL snapshot store")?,
            )
        }
        #[cfg(not(feature = "postgres"))]
        SnapshotBackend::Postgres => return Err(missing("postgres")),
        #[cfg(feature = "redis")]
        SnapshotBackend::Redis => {
            let settings = config.snapshots.redis.as_ref().unwrap_or(&config.events.redis);
            Arc::new(
                flipbook_storage::redis::RedisSnapshotStore::open(&redis_config(settings))
                    .await
                    .context("opening the Redis snapshot store")?,
            )
        }
        #[cfg(feature = "redis")]
        SnapshotBackend::RedisCluster => {
            let settings = config.snapshots.redis.as_ref().unwrap_or(&config.events.redis);
            Arc::new(
                flipbook_storage::redis::RedisSnapshotStore::open_cluster(
                    &config.snapshots.redis_cluster,
                    &redis_config(settings),
                )
                .await
                .context("opening the Redis Cluster snapshot store")?,
            )
        }
        #[cfg(not(feature = "redis"))]
        SnapshotBackend::Redis | SnapshotBackend::RedisCluster => return Err(missing("redis")),
        #[cfg(feature = "dynamodb")]
        SnapshotBackend::Dynamodb => {
            let dynamodb = dynamodb_config(config.snapshots.dynamodb.as_ref().unwrap_or(&config.events.dynamodb));
            Arc::new(
                flipbook_storage::dynamodb::DynamoSnapshotStore::open(&dynamodb)
                    .await
                    .with_context(|| format!("opening the DynamoDB snapshot store (table {:?})", dynamodb.table))?,
            )
        }
        #[cfg(not(feature = "dynamodb"))]
        SnapshotBackend::Dynamodb => return Err(missing("dynamodb")),
    };
    if !events.durable() {
        tracing::warn!(
            backend = events.backend(),
            "the event store is not durable as configured: an acknowledged append may be lost"
        );
    }
    Ok((events, snapshots))
}
