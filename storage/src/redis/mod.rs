//! Redis: events on a single node (or a primary with replicas); snapshots on a node or a Redis
//! Cluster.
//!
//! Events cannot live on a cluster: a global position must be assigned atomically with the
//! append, and a cluster cannot run one script across slots. Redis is durable only with
//! `appendonly yes` and `appendfsync always`; the store reports itself not durable otherwise,
//! and the server warns at start.
//!
//! Keys (the `{…}` hash tags keep a state's keys in one slot):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `flipbook:position` | string | the last global position given out |
//! | `flipbook:events` | hash | global position -> event |
//! | `flipbook:{<state>}:head` | hash | kind, last_seq, last_position, recorded-at times, metadata |
//! | `flipbook:{<state>}:seq` | list | the state's global positions; index = sequence number - 1 |
//! | `flipbook:{<state>}:ids` | hash | event id -> sequence number |
//! | `flipbook:snapshot:{<state>}` | hash | "revision\nversion" -> snapshot |
//! | `flipbook:snapshots:{<state>}` | sorted set | "revision\nversion" members, for the newest-at-or-below lookup |

mod codec;
mod events;
mod snapshots;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};

pub use crate::RedisConfig;
pub use events::RedisEventStore;
pub use snapshots::RedisSnapshotStore;

use flipbook_model::Error;

impl RedisConfig {
    /// A multiplexed connection that reconnects by itself.
    async fn connect(&self) -> Result<Connection, Error> {
        let client = redis::Client::open(self.url.as_str()).map_err(redis_error)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout))
            .set_number_of_retries(1);
        Ok(Connection(ConnectionManager::new_with_config(client, config).await.map_err(redis_error)?))
    }
}

/// A Redis node's connection that sends a command again, once, when the connection turns out
/// dropped. After Redis restarts, the first command on each connection it closed fails so
/// (broken pipe) while the manager reconnects; sending it again on the new connection keeps a
/// restart from reaching callers. Safe because every command here may run twice: an append
/// re-sent with its event ids answers its first result, snapshots are put by key, reads read
/// (only `delete_snapshots`' count may then be short of what the first run deleted).
#[derive(Clone, Debug)]
pub struct Connection(ConnectionManager);

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            match self.0.req_packed_command(cmd).await {
                Err(error) if error.is_connection_dropped() => self.0.req_packed_command(cmd).await,
                answer => answer,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            match self.0.req_packed_commands(pipeline, offset, count).await {
                Err(error) if error.is_connection_dropped() => {
                    self.0.req_packed_commands(pipeline, offset, count).await
                }
                answer => answer,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// A store's `ping`: PING on its connection (commands on it are short, so one waits little
/// behind the others).
async fn ping(conn: &mut impl redis::aio::ConnectionLike) -> Result<(), Error> {
    redis::cmd("PING").query_async::<()>(conn).await.map_err(redis_error)
}

/// Connection trouble, timeouts and the server's transient states (loading, cluster down,
/// try again) can pass; the rest are bugs.
fn redis_error(error: redis::RedisError) -> Error {
    use redis::RetryMethod as R;
    // OOM: at `maxmemory` with nothing to evict; MISCONF: it cannot persist (a full disk,
    // usually), so it refuses writes. READONLY: a replica.
    match error.code() {
        Some("OOM" | "MISCONF") => return Error::StorageFull(error.to_string()),
        Some("READONLY") => return Error::ReadOnly(error.to_string()),
        _ => {}
    }
    let transient = error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_connection_refusal()
        || !matches!(error.retry_method(), R::NoRetry);
    if transient { Error::Unavailable(error.to_string()) } else { Error::Internal(error.to_string()) }
}
