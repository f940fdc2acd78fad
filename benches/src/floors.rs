//! gRPC floors: services that do the least a gRPC server can, so a benchmark can show how much
//! of a gap to the raw backend is the gRPC hop itself and how much is Flipbook.
//!
//! - [`Echo`] answers `Append` at once and stores nothing: gRPC alone.
//! - [`RedisRelay`] does the raw Redis work behind the same messages: each `Append` runs the
//!   raw append script, each `ReadState` streams the raw read's pages, the stored bytes sent
//!   as they come (nothing decoded, so its client decodes one field an event where Flipbook's
//!   decodes all). The gap between it and the raw backend is what gRPC costs on this machine;
//!   the gap between Flipbook and it is Flipbook's own.

use std::pin::Pin;

use flipbook_proto::v1::{self, event_store_server};
use futures::stream::{self, Stream, StreamExt};
use redis::aio::MultiplexedConnection;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// The raw append: the version check, the positions and the writes in one script, each write
/// one command for all the events (a benchmark's batches stay far below Lua's `unpack` bound).
/// `KEYS`: the head, the state's positions, the position counter, the events.
/// `ARGV`: the version the state must be at, then the events.
pub const RAW_APPEND: &str = r"
local last = tonumber(redis.call('HGET', KEYS[1], 'last_seq') or '0')
if last ~= tonumber(ARGV[1]) then return redis.error_reply('version conflict') end
local n = #ARGV - 1
local position = redis.call('INCRBY', KEYS[3], n)
local values, positions = {}, {}
for i = 1, n do
  positions[i] = position - n + i
  values[2 * i - 1], values[2 * i] = positions[i], ARGV[1 + i]
end
redis.call('HSET', KEYS[4], unpack(values))
redis.call('RPUSH', KEYS[2], unpack(positions))
redis.call('HSET', KEYS[1], 'last_seq', last + n)
return position
";

/// The raw read's page: events asked for this many at a time.
pub const RAW_READ_PAGE: usize = 1000;

/// A call of [`RAW_APPEND`] (`script`) on `state`, expecting it at `version`; it answers the
/// last event's position.
pub fn raw_append<'a, P: redis::ToRedisArgs>(
    script: &'a redis::Script,
    state: &str,
    version: u64,
    payloads: impl IntoIterator<Item = P>,
) -> redis::ScriptInvocation<'a> {
    let mut call = script.key(format!("raw:{{{state}}}:head"));
    call.key(format!("raw:{{{state}}}:seq")).key("raw:position").key("raw:events").arg(version);
    for payload in payloads {
        call.arg(payload);
    }
    call
}

/// The positions of all a Flipbook state's events, from its list.
pub async fn raw_positions(conn: &mut MultiplexedConnection, state: &str) -> redis::RedisResult<Vec<u64>> {
    redis::cmd("LRANGE").arg(format!("flipbook:{{{state}}}:seq")).arg(0).arg(-1).query_async(conn).await
}

/// The stored bytes of the events at `positions`, as Flipbook wrote them.
pub async fn raw_values(conn: &mut MultiplexedConnection, positions: &[u64]) -> redis::RedisResult<Vec<Vec<u8>>> {
    redis::cmd("HMGET").arg("flipbook:events").arg(positions).query_async(conn).await
}

/// Serves `service` on a local port until stdin closes, printing `listening ADDR` first, as a
/// [`crate::ChildServer`] expects.
pub async fn serve<S: event_store_server::EventStore>(service: S) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    // As the flipbook server does: NODELAY on every accepted socket.
    let incoming = TcpListenerStream::new(listener).map(|stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    });
    let stop = async {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    };
    tonic::transport::Server::builder()
        .add_service(event_store_server::EventStoreServer::new(service))
        .serve_with_incoming_shutdown(incoming, stop)
        .await?;
    Ok(())
}

type Pages<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented("a floor answers Append and ReadState only"))
}

/// gRPC alone: `Append` answered at once, nothing stored.
#[derive(Debug)]
pub struct Echo;

#[tonic::async_trait]
impl event_store_server::EventStore for Echo {
    async fn append(&self, request: Request<v1::AppendRequest>) -> Result<Response<v1::AppendResponse>, Status> {
        let request = request.into_inner();
        let count = request.events.len() as u64;
        let last = match request.expected {
            Some(v1::append_request::Expected::ExactVersion(n)) => n + count,
            _ => count,
        };
        Ok(Response::new(v1::AppendResponse {
            last_version: Some(last),
            global_positions: (1..=count).collect(),
            recorded_at: Some(prost_types::Timestamp::default()),
        }))
    }

    type ReadStateStream = Pages<v1::ReadStateResponse>;

    async fn read_state(&self, _: Request<v1::ReadStateRequest>) -> Result<Response<Self::ReadStateStream>, Status> {
        unimplemented()
    }

    async fn get_head(&self, _: Request<v1::GetHeadRequest>) -> Result<Response<v1::GetHeadResponse>, Status> {
        unimplemented()
    }

    type ReadAllStream = Pages<v1::ReadAllResponse>;

    async fn read_all(&self, _: Request<v1::ReadAllRequest>) -> Result<Response<Self::ReadAllStream>, Status> {
        unimplemented()
    }
}

/// The raw Redis work behind gRPC: what the raw baselines do, on one multiplexed connection.
#[derive(Debug)]
pub struct RedisRelay {
    conn: MultiplexedConnection,
    append: redis::Script,
}

impl RedisRelay {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
        Ok(Self { conn, append: redis::Script::new(RAW_APPEND) })
    }
}

fn unavailable(error: redis::RedisError) -> Status {
    Status::unavailable(error.to_string())
}

#[tonic::async_trait]
impl event_store_server::EventStore for RedisRelay {
    async fn append(&self, request: Request<v1::AppendRequest>) -> Result<Response<v1::AppendResponse>, Status> {
        let request = request.into_inner();
        let Some(v1::append_request::Expected::ExactVersion(version)) = request.expected else {
            return Err(Status::invalid_argument("the relay appends with an exact version only"));
        };
        let count = request.events.len() as u64;
        let call = raw_append(&self.append, &request.state_id, version, request.events.into_iter().map(|e| e.payload));
        let last: u64 = call.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(Response::new(v1::AppendResponse {
            last_version: Some(version + count),
            global_positions: (last + 1 - count..=last).collect(),
            recorded_at: Some(prost_types::Timestamp::default()),
        }))
    }

    type ReadStateStream = Pages<v1::ReadStateResponse>;

    /// The raw read's pages, each a message whose events carry the stored bytes as payload.
    async fn read_state(
        &self,
        request: Request<v1::ReadStateRequest>,
    ) -> Result<Response<Self::ReadStateStream>, Status> {
        let mut conn = self.conn.clone();
        let positions = raw_positions(&mut conn, &request.into_inner().state_id).await.map_err(unavailable)?;
        let pages = stream::unfold((conn, positions, 0), |(mut conn, positions, done)| async move {
            let page = positions.get(done..(done + RAW_READ_PAGE).min(positions.len()))?;
            if page.is_empty() {
                return None;
            }
            let values = match raw_values(&mut conn, page).await {
                Ok(values) => values,
                Err(error) => return Some((Err(unavailable(error)), (conn, Vec::new(), 0))),
            };
            let events = values
                .into_iter()
                .zip(page)
                .enumerate()
                .map(|(i, (payload, &global_position))| v1::RecordedEvent {
                    version: Some((done + i + 1) as u64),
                    global_position,
                    payload,
                    ..Default::default()
                })
                .collect();
            let next = done + page.len();
            Some((Ok(v1::ReadStateResponse { events }), (conn, positions, next)))
        });
        Ok(Response::new(pages.boxed()))
    }

    async fn get_head(&self, _: Request<v1::GetHeadRequest>) -> Result<Response<v1::GetHeadResponse>, Status> {
        unimplemented()
    }

    type ReadAllStream = Pages<v1::ReadAllResponse>;

    async fn read_all(&self, _: Request<v1::ReadAllRequest>) -> Result<Response<Self::ReadAllStream>, Status> {
        unimplemented()
    }
}
