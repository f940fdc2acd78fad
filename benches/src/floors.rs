//! gRPC floors: services that do the least a gRPC server can, so a benchmark can show how much
//! of a gap to the raw backend is the gRPC hop itself and how much is Flipbook.
//!
//! - [`Echo`] answers `Append` at once and stores nothing: gRPC alone.
//! - [`RedisRelay`] does the raw Redis work behind the same messages: each `Append` runs the
//!   raw append script, each `ReadState` streams the raw read's pages, every stored event
//!   decoded and sent with the fields Flipbook's carry, so the clients of both decode the same
//!   messages. The gap between it and the raw backend is what gRPC costs on this machine; the
//!   gap between Flipbook and it is Flipbook's own.

use std::pin::Pin;

use flipbook_proto::v1::{self, event_store_server};
use futures::stream::{self, Stream, StreamExt};
use prost::Message;
use redis::aio::MultiplexedConnection;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// The raw append: the same work as Flipbook's, written directly (as the PostgreSQL bench's raw
/// side does it, with a unique event id per state): the version check, no event id already
/// stored, the positions, the events as the client sent them, and the ids recorded, in one
/// script, each step one command for all the events (a benchmark's batches stay far below Lua's
/// `unpack` bound).
/// `KEYS`: the head, the state's positions, the state's event ids, the position counter, the
/// events. `ARGV`: the version the state must be at, then each event's id and bytes.
pub const RAW_APPEND: &str = r"
local last = tonumber(redis.call('HGET', KEYS[1], 'last_seq') or '0')
if last ~= tonumber(ARGV[1]) then return redis.error_reply('version conflict') end
local n = (#ARGV - 1) / 2
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i] end
for _, seq in ipairs(redis.call('HMGET', KEYS[3], unpack(ids))) do
  if seq then return redis.error_reply('event id already stored') end
end
local position = redis.call('INCRBY', KEYS[4], n)
local values, positions, seqs = {}, {}, {}
for i = 1, n do
  positions[i] = position - n + i
  values[2 * i - 1], values[2 * i] = positions[i], ARGV[1 + 2 * i]
  seqs[2 * i - 1], seqs[2 * i] = ids[i], last + i
end
redis.call('HSET', KEYS[5], unpack(values))
redis.call('RPUSH', KEYS[2], unpack(positions))
redis.call('HSET', KEYS[3], unpack(seqs))
redis.call('HSET', KEYS[1], 'last_seq', last + n)
return position
";

/// The raw read's page: events asked for this many at a time.
pub const RAW_READ_PAGE: usize = 1000;

/// A call of [`RAW_APPEND`] (`script`) on `state`, expecting it at `version`, for these events
/// (each stored as its protobuf encoding); it answers the last event's position.
pub fn raw_append<'a>(
    script: &'a redis::Script,
    state: &str,
    version: u64,
    events: impl IntoIterator<Item = v1::ProposedEvent>,
) -> redis::ScriptInvocation<'a> {
    let mut call = script.key(format!("raw:{{{state}}}:head"));
    call.key(format!("raw:{{{state}}}:seq")).key(format!("raw:{{{state}}}:ids"));
    call.key("raw:position").key("raw:events").arg(version);
    for event in events {
        call.arg(&event.event_id).arg(event.encode_to_vec());
    }
    call
}

/// Writes a `count`-event raw state with [`RAW_APPEND`], 500 events an append: the state the raw
/// read and the relay read.
pub async fn fill_raw_state(conn: &mut MultiplexedConnection, state: &str, count: u64) -> anyhow::Result<()> {
    let script = redis::Script::new(RAW_APPEND);
    let mut written = 0;
    while written < count {
        let size = (count - written).min(500);
        let _: u64 =
            raw_append(&script, state, written, (0..size).map(|_| crate::wire_event())).invoke_async(conn).await?;
        written += size;
    }
    Ok(())
}

/// The positions of all a raw state's events, from its list.
pub async fn raw_positions(conn: &mut MultiplexedConnection, state: &str) -> redis::RedisResult<Vec<u64>> {
    redis::cmd("LRANGE").arg(format!("raw:{{{state}}}:seq")).arg(0).arg(-1).query_async(conn).await
}

/// The stored events at `positions`, decoded.
pub async fn raw_events(conn: &mut MultiplexedConnection, positions: &[u64]) -> anyhow::Result<Vec<v1::ProposedEvent>> {
    let values: Vec<Vec<u8>> = redis::cmd("HMGET").arg("raw:events").arg(positions).query_async(conn).await?;
    Ok(values.iter().map(|value| v1::ProposedEvent::decode(value.as_slice())).collect::<Result<_, _>>()?)
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

    async fn append_states(
        &self,
        _: Request<v1::AppendStatesRequest>,
    ) -> Result<Response<v1::AppendStatesResponse>, Status> {
        unimplemented()
    }

    async fn get_log_head(
        &self,
        _: Request<v1::GetLogHeadRequest>,
    ) -> Result<Response<v1::GetLogHeadResponse>, Status> {
        unimplemented()
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
        let call = raw_append(&self.append, &request.state_id, version, request.events);
        let last: u64 = call.invoke_async(&mut self.conn.clone()).await.map_err(unavailable)?;
        Ok(Response::new(v1::AppendResponse {
            last_version: Some(version + count),
            global_positions: (last + 1 - count..=last).collect(),
            recorded_at: Some(prost_types::Timestamp::default()),
        }))
    }

    async fn append_states(
        &self,
        _: Request<v1::AppendStatesRequest>,
    ) -> Result<Response<v1::AppendStatesResponse>, Status> {
        unimplemented()
    }

    async fn get_log_head(
        &self,
        _: Request<v1::GetLogHeadRequest>,
    ) -> Result<Response<v1::GetLogHeadResponse>, Status> {
        unimplemented()
    }

    type ReadStateStream = Pages<v1::ReadStateResponse>;

    /// The raw read's pages, each a message of the stored events with the fields Flipbook's
    /// carry (the raw append records no time, so `recorded_at` is left out).
    async fn read_state(
        &self,
        request: Request<v1::ReadStateRequest>,
    ) -> Result<Response<Self::ReadStateStream>, Status> {
        let mut conn = self.conn.clone();
        let state = request.into_inner().state_id;
        let positions = raw_positions(&mut conn, &state).await.map_err(unavailable)?;
        let pages = stream::unfold((conn, state, positions, 0), |(mut conn, state, positions, done)| async move {
            let page = positions.get(done..(done + RAW_READ_PAGE).min(positions.len()))?;
            if page.is_empty() {
                return None;
            }
            let stored = match raw_events(&mut conn, page).await {
                Ok(stored) => stored,
                Err(error) => return Some((Err(Status::unavailable(error.to_string())), (conn, state, Vec::new(), 0))),
            };
            let events = stored
                .into_iter()
                .zip(page)
                .enumerate()
                .map(|(i, (event, &global_position))| v1::RecordedEvent {
                    state_id: state.clone(),
                    version: Some((done + i + 1) as u64),
                    global_position,
                    event_id: event.event_id,
                    name: event.name,
                    payload: event.payload,
                    content_type: event.content_type,
                    timestamp: event.timestamp,
                    recorded_at: None,
                    metadata: event.metadata,
                })
                .collect();
            let next = done + page.len();
            Some((Ok(v1::ReadStateResponse { events }), (conn, state, positions, next)))
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
