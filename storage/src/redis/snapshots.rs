use async_trait::async_trait;
use flipbook_model::{Result, Snapshot, SnapshotQuery};
use redis::Script;
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;

use super::codec::{decode_snapshot, encode_snapshot};
use super::{RedisConfig, redis_error};
use crate::store::SnapshotStore;

/// The newest member of a state's snapshot index for one revision at or below a version, and
/// its value, in one step. Both keys share the state's hash tag, so this runs on a cluster.
const GET: &str = r"
local found = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[2], ARGV[1], 'LIMIT', 0, 1)
if #found == 0 then return false end
return {found[1], redis.call('HGET', KEYS[2], found[1])}
";

/// Deletes a state's snapshots, answering how many there were.
const DELETE: &str = r"
local count = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return count
";

/// Snapshots on one Redis node (`C` = [`super::Connection`]) or a Redis Cluster
/// ([`ClusterConnection`]).
#[derive(Clone)]
pub struct RedisSnapshotStore<C> {
    conn: C,
    get: Script,
    delete: Script,
    backend: &'static str,
}

impl<C> std::fmt::Debug for RedisSnapshotStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSnapshotStore").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl RedisSnapshotStore<super::Connection> {
    pub async fn open(config: &RedisConfig) -> Result<Self> {
        Ok(Self::with(config.connect().await?, "redis"))
    }
}

impl RedisSnapshotStore<ClusterConnection> {
    /// A cluster, from any of its nodes' URLs.
    pub async fn open_cluster(nodes: &[String], config: &RedisConfig) -> Result<Self> {
        let client = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
            .response_timeout(config.response_timeout)
            .connection_timeout(config.connection_timeout)
            .build()
            .map_err(redis_error)?;
        Ok(Self::with(client.get_async_connection().await.map_err(redis_error)?, "redis-cluster"))
    }
}

impl<C> RedisSnapshotStore<C> {
    fn with(conn: C, backend: &'static str) -> Self {
        Self { conn, get: Script::new(GET), delete: Script::new(DELETE), backend }
    }
}

fn keys(state_id: &str) -> (String, String) {
    (format!("flipbook:snapshots:{{{state_id}}}"), format!("flipbook:snapshot:{{{state_id}}}"))
}

/// `revision\n` + the version in 20 digits, so lexical order is version order within a revision.
fn member(revision: &str, version: u64) -> String {
    format!("{revision}\n{version:020}")
}

#[async_trait]
impl<C: ConnectionLike + Clone + Send + Sync + 'static> SnapshotStore for RedisSnapshotStore<C> {
    fn backend(&self) -> &'static str {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        super::ping(&mut self.conn.clone()).await
    }

    async fn put(&self, snapshot: Snapshot) -> Result<()> {
        let (index, values) = keys(&snapshot.state_id);
        let member = member(&snapshot.reducer_revision, snapshot.version);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zadd(&index, &member, 0)
            .hset(&values, &member, encode_snapshot(&snapshot))
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)
    }

    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        let (index, values) = keys(&query.state_id);
        let low = format!("[{}", member(&query.reducer_revision, 0));
        let high = format!("[{}", member(&query.reducer_revision, query.max_version.unwrap_or(u64::MAX)));
        let mut conn = self.conn.clone();
        let found: Option<(String, Vec<u8>)> =
            self.get.key(index).key(values).arg(low).arg(high).invoke_async(&mut conn).await.map_err(redis_error)?;
        let Some((member, value)) = found else { return Ok(None) };
        let version = member.rsplit('\n').next().and_then(|v| v.parse().ok()).unwrap_or_default();
        let (content_type, created_at, payload) = decode_snapshot(&value)?;
        Ok(Some(Snapshot {
            state_id: query.state_id.clone(),
            version,
            reducer_revision: query.reducer_revision.clone(),
            payload,
            content_type,
            created_at,
        }))
    }

    async fn delete(&self, state_id: &str) -> Result<u64> {
        let (index, values) = keys(state_id);
        let mut conn = self.conn.clone();
        self.delete.key(index).key(values).invoke_async(&mut conn).await.map_err(redis_error)
    }
}
