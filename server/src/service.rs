//! The gRPC services over the in-process [`Engine`]. Each call converts its request to domain
//! types, hands it to the engine (which validates it against the limits: nothing invalid reaches
//! a backend), and maps the result back; errors go through the one mapping in
//! `flipbook_proto::status`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use flipbook_model::validate::{MAX_NAME_BYTES, MAX_STATE_ID_BYTES};
use flipbook_model::{
    AllQuery, AppendRequest, Delivery, Error, RecordedEvent, SnapshotQuery, StateQuery, SubscriptionQuery, Timestamp,
};
use flipbook_proto::convert::{parts_from_wire, snapshot_to_store};
use flipbook_proto::encoded::Encoded;
use flipbook_proto::server::{event_bus_server, event_store_server, server_info_server, snapshot_store_server};
use flipbook_proto::status::{not_found, to_status};
use flipbook_proto::v1;
use flipbook_storage::engine::Engine;
use flipbook_storage::read::read_ahead;
use flipbook_storage::wire::WirePage;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, stream};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::metrics as m;

/// Streams (reads and subscriptions) cut their pages into messages of about this size: small
/// enough that a client decodes one while the next is on its way (a 3 MiB message kept the
/// client idle until all of it had arrived: reads were 10% slower), large enough, hundreds of
/// typical events, that a message's own cost vanishes. An event larger than this goes alone;
/// the payload and metadata limits keep it under clients' default 4 MiB decode limit.
const STREAM_MESSAGE_BYTES: usize = 64 * 1024;

/// What every service serves: the engine (the stores, the event bus, the limits in force).
#[derive(Clone, Debug)]
pub struct Flipbook(pub Engine);

/// Records the call's outcome and latency, and turns a storage error into its status.
async fn observe<T>(method: &'static str, call: impl Future<Output = Result<T, Error>>) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = call.await;
    m::record_call(method, started.elapsed(), result.as_ref().err());
    result.map(Response::new).map_err(|e| to_status(&e))
}

/// Pages a read fetches ahead of the transport: the store reads the next page while this one
/// is encoded and sent.
const READ_AHEAD_PAGES: usize = 2;

type PageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Pages of a read as response messages of about [`STREAM_MESSAGE_BYTES`] (`split` cuts a page
/// into them). The store reads [`READ_AHEAD_PAGES`] ahead of the transport, no further.
fn page_messages<P, T>(
    method: &'static str,
    pages: BoxStream<'static, Result<P, Error>>,
    split: impl Fn(P) -> Vec<T> + Send + 'static,
) -> PageStream<T>
where
    P: Send + 'static,
    T: Send + 'static,
{
    read_ahead(pages, READ_AHEAD_PAGES)
        .flat_map(move |page| {
            let messages: Vec<Result<T, Status>> = match page {
                Ok(page) => split(page).into_iter().map(Ok).collect(),
                Err(error) => vec![Err(stream_error(method, &error))],
            };
            stream::iter(messages)
        })
        .boxed()
}

/// A page the store encoded (the body of a `ReadStateResponse` or `ReadAllResponse`: both are
/// `repeated RecordedEvent events = 1`), cut into messages at event boundaries; the bytes are
/// shared.
fn encoded_messages(page: WirePage) -> Vec<Encoded> {
    let ranges = page.messages(STREAM_MESSAGE_BYTES);
    let bytes = Bytes::from(page.into_bytes());
    ranges.into_iter().map(|range| Encoded { events: bytes.slice(range), trailer: Bytes::new() }).collect()
}

/// An error in the middle of a stream: counted, and the stream's last message.
fn stream_error(method: &'static str, error: &Error) -> Status {
    m::record_stream_error(method, error);
    to_status(error)
}

fn split_by_size(events: Vec<RecordedEvent>) -> Vec<Vec<v1::RecordedEvent>> {
    let mut messages = vec![Vec::new()];
    let mut size = 0;
    for event in events {
        let event = v1::RecordedEvent::from(event);
        let len = event.encoded_len() + 8;
        let current = messages.last_mut().expect("one message at least");
        if size + len > STREAM_MESSAGE_BYTES && !current.is_empty() {
            messages.push(Vec::new());
            size = 0;
        }
        size += len;
        messages.last_mut().expect("one message at least").push(event);
    }
    messages
}

#[tonic::async_trait]
impl event_store_server::EventStore for Flipbook {
    async fn append(&self, request: Request<v1::AppendRequest>) -> Result<Response<v1::AppendResponse>, Status> {
        observe("Append", async {
            let request = AppendRequest::try_from(request.into_inner())?;
            let count = request.events.len() as u64;
            let outcome = self.0.append(request).await?;
            m::record_appended(count);
            Ok(outcome.into())
        })
        .await
    }

    async fn append_states(
        &self,
        request: Request<v1::AppendStatesRequest>,
    ) -> Result<Response<v1::AppendStatesResponse>, Status> {
        observe("AppendStates", async {
            let parts = parts_from_wire(request.into_inner())?;
            let count = parts.iter().map(|p| p.events.len() as u64).sum();
            let outcomes = self.0.append_states(parts).await?;
            m::record_appended(count);
            Ok(v1::AppendStatesResponse { parts: outcomes.into_iter().map(Into::into).collect() })
        })
        .await
    }

    type ReadStateStream = PageStream<Encoded>;

    /// Pages come from the store encoded as `ReadStateResponse` bodies
    /// ([`Engine::read_state_encoded`]): a store that keeps its events encoded answers with a copy.
    async fn read_state(
        &self,
        request: Request<v1::ReadStateRequest>,
    ) -> Result<Response<Self::ReadStateStream>, Status> {
        observe("ReadState", async {
            let pages = self.0.read_state_encoded(StateQuery::try_from(request.into_inner())?)?;
            Ok(page_messages("ReadState", pages, encoded_messages))
        })
        .await
    }

    async fn get_head(&self, request: Request<v1::GetHeadRequest>) -> Result<Response<v1::GetHeadResponse>, Status> {
        let state_id = request.into_inner().state_id;
        let head = observe("GetHead", self.0.head(&state_id)).await?.into_inner();
        match head {
            Some(head) => Ok(Response::new(v1::GetHeadResponse { head: Some(head.into()) })),
            None => Err(not_found("head", &state_id)),
        }
    }

    type ReadAllStream = PageStream<Encoded>;

    async fn get_log_head(
        &self,
        _: Request<v1::GetLogHeadRequest>,
    ) -> Result<Response<v1::GetLogHeadResponse>, Status> {
        observe("GetLogHead", async {
            let head = self.0.log_head().await?;
            Ok(v1::GetLogHeadResponse { settled_position: head.settled_position, event_count: head.event_count })
        })
        .await
    }

    /// Every message ends with the settled position the read covers; a read that finds no
    /// event sends one message with only that.
    async fn read_all(&self, request: Request<v1::ReadAllRequest>) -> Result<Response<Self::ReadAllStream>, Status> {
        observe("ReadAll", async {
            let (settled, pages) = self.0.read_all_encoded(AllQuery::try_from(request.into_inner())?).await?;
            let trailer =
                Bytes::from(v1::ReadAllResponse { events: Vec::new(), settled_position: settled }.encode_to_vec());
            let with_trailer = trailer.clone();
            let messages = page_messages("ReadAll", pages, move |page| {
                let mut messages = encoded_messages(page);
                messages.iter_mut().for_each(|m| m.trailer = with_trailer.clone());
                messages
            });
            let sent = Arc::new(AtomicBool::new(false));
            let marked = Arc::clone(&sent);
            let bare = stream::once(async move { Ok(Encoded { events: Bytes::new(), trailer }) })
                .filter(move |_| std::future::ready(!sent.load(Ordering::Relaxed)));
            let messages = messages.inspect(move |_| marked.store(true, Ordering::Relaxed)).chain(bare);
            Ok(messages.boxed() as Self::ReadAllStream)
        })
        .await
    }
}

fn event_page(events: Vec<v1::RecordedEvent>) -> v1::SubscribeResponse {
    v1::SubscribeResponse { message: Some(v1::subscribe_response::Message::Events(v1::EventPage { events })) }
}

#[tonic::async_trait]
impl event_bus_server::EventBus for Flipbook {
    type SubscribeStream = PageStream<v1::SubscribeResponse>;

    /// Event pages are split like reads' (messages of about [`STREAM_MESSAGE_BYTES`]).
    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        observe("Subscribe", async {
            let deliveries = self.0.subscribe(SubscriptionQuery::from(request.into_inner()))?;
            let gauge = m::Subscriber::new();
            let messages = deliveries.flat_map(move |delivery| {
                let messages: Vec<Result<v1::SubscribeResponse, Status>> = match delivery {
                    Ok(Delivery::Events(events)) => {
                        gauge.delivered(events.len());
                        split_by_size(events).into_iter().map(|events| Ok(event_page(events))).collect()
                    }
                    Ok(checkpoint) => vec![Ok(checkpoint.into())],
                    Err(error) => vec![Err(stream_error("Subscribe", &error))],
                };
                stream::iter(messages)
            });
            Ok(messages.boxed() as Self::SubscribeStream)
        })
        .await
    }
}

#[tonic::async_trait]
impl snapshot_store_server::SnapshotStore for Flipbook {
    async fn put_snapshot(
        &self,
        request: Request<v1::PutSnapshotRequest>,
    ) -> Result<Response<v1::PutSnapshotResponse>, Status> {
        observe("PutSnapshot", async {
            self.0.put_snapshot(snapshot_to_store(request.into_inner().snapshot, Timestamp::now())?).await?;
            Ok(v1::PutSnapshotResponse {})
        })
        .await
    }

    async fn get_snapshot(
        &self,
        request: Request<v1::GetSnapshotRequest>,
    ) -> Result<Response<v1::GetSnapshotResponse>, Status> {
        let query = SnapshotQuery::from(request.into_inner());
        let found = observe("GetSnapshot", self.0.get_snapshot(&query)).await?.into_inner();
        match found {
            Some(snapshot) => Ok(Response::new(v1::GetSnapshotResponse { snapshot: Some(snapshot.into()) })),
            None => Err(not_found("snapshot", &query.state_id)),
        }
    }

    async fn delete_snapshots(
        &self,
        request: Request<v1::DeleteSnapshotsRequest>,
    ) -> Result<Response<v1::DeleteSnapshotsResponse>, Status> {
        observe("DeleteSnapshots", async {
            let deleted = self.0.delete_snapshots(&request.into_inner().state_id).await?;
            Ok(v1::DeleteSnapshotsResponse { deleted })
        })
        .await
    }
}

#[tonic::async_trait]
impl server_info_server::ServerInfo for Flipbook {
    async fn get_server_info(
        &self,
        _: Request<v1::GetServerInfoRequest>,
    ) -> Result<Response<v1::GetServerInfoResponse>, Status> {
        let info = self.0.info();
        let limits = &info.limits;
        Ok(Response::new(v1::GetServerInfoResponse {
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            event_backend: info.event_backend.to_owned(),
            snapshot_backend: info.snapshot_backend.to_owned(),
            durable: info.durable,
            limits: Some(v1::Limits {
                max_events_per_append: limits.max_events_per_append,
                max_payload_bytes: limits.max_payload_bytes,
                max_snapshot_bytes: limits.max_snapshot_bytes,
                max_state_id_bytes: MAX_STATE_ID_BYTES as u32,
                max_name_bytes: MAX_NAME_BYTES as u32,
                max_request_bytes: limits.max_request_bytes,
                max_states_per_append: limits.max_states_per_append,
            }),
        }))
    }
}
