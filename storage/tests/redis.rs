//! The storage contract on Redis: events on a node, snapshots on a node and on a Redis Cluster.
//! Needs FLIPBOOK_TEST_REDIS_URL and FLIPBOOK_TEST_REDIS_CLUSTER_URLS (scripts/test starts both).

use std::sync::Arc;

use flipbook_storage::redis::{RedisConfig, RedisEventStore, RedisSnapshotStore};
use flipbook_storage::{EventStore, SnapshotStore};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (scripts/test starts the services)"))
}

async fn events() -> Arc<dyn EventStore> {
    let store = RedisEventStore::open(&RedisConfig::new(env("FLIPBOOK_TEST_REDIS_URL"))).await.expect("open Redis");
    assert!(store.durable(), "the test Redis runs with appendonly yes, appendfsync always");
    Arc::new(store)
}

async fn snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(RedisSnapshotStore::open(&RedisConfig::new(env("FLIPBOOK_TEST_REDIS_URL"))).await.expect("open Redis"))
}

async fn cluster_snapshots() -> Arc<dyn SnapshotStore> {
    let nodes: Vec<String> = env("FLIPBOOK_TEST_REDIS_CLUSTER_URLS").split_whitespace().map(str::to_owned).collect();
    let config = RedisConfig::new(nodes[0].clone());
    Arc::new(RedisSnapshotStore::open_cluster(&nodes, &config).await.expect("open the Redis Cluster"))
}

flipbook_storage::event_store_contract!(events());

mod redis_snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(snapshots());
}

mod redis_cluster_snapshots {
    use super::*;
    flipbook_storage::snapshot_store_contract!(cluster_snapshots());
}

mod bus {
    use super::*;
    flipbook_storage::event_bus_contract!(events());
}
