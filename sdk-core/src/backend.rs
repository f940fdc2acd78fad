//! What the client runs on: a server over gRPC ([`Remote`]) or stores in this process
//! ([`Local`]: the embedded SQLite file, or memory). The [`Client`](crate::Client) validates
//! every request before it reaches either, so both behave alike down to the errors.

use std::fmt::Debug;

use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Delivery, Limits, LogHead, RecordedEvent, Snapshot, SnapshotQuery,
    StateHead, StateQuery, SubscriptionQuery,
};
use flipbook_proto::v1::event_bus_client::EventBusClient;
use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::server_info_client::ServerInfoClient;
use flipbook_proto::v1::snapshot_store_client::SnapshotStoreClient;
use flipbook_proto::v1::{self};
use flipbook_storage::engine::{Engine, Pages};
use flipbook_storage::read::read_ahead;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::error::{Error, Result};
use crate::options::ConnectOptions;

/// A read's events, one page at a time (a page is what crosses into a binding's language at
/// once). Pages are fetched as the consumer takes them.
pub type EventPages = BoxStream<'static, Result<Vec<RecordedEvent>>>;

/// One subscription's messages, as the server (or the embedded bus) sends them.
pub(crate) type Deliveries = BoxStream<'static, Result<Delivery>>;

/// What the server (or the embedded store) runs on and accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub server_version: String,
    pub event_backend: String,
    pub snapshot_backend: String,
    pub durable: bool,
    pub limits: Limits,
}

#[async_trait]
pub(crate) trait Backend: Send + Sync + Debug + 'static {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome>;
    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>>;
    async fn head(&self, state_id: &str) -> Result<Option<StateHead>>;
    async fn log_head(&self) -> Result<LogHead>;
    fn read_state(&self, query: StateQuery) -> EventPages;
    fn read_all(&self, query: AllQuery) -> EventPages;
    /// Started when first polled.
    fn subscribe(&self, query: SubscriptionQuery) -> Deliveries;
    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()>;
    async fn get_snapshot(&self, query: SnapshotQuery) -> Result<Option<Snapshot>>;
    async fn delete_snapshots(&self, state_id: &str) -> Result<u64>;
    async fn server_info(&self) -> Result<ServerInfo>;
    /// Releases what this process holds for it once the calls running now end; a server
    /// connection closes as its last clone drops.
    async fn close(&self) {}
}

/// Pages a read fetches ahead of its consumer (memory: this many pages more).
const READ_AHEAD_PAGES: usize = 2;

/// Reads pages ahead of the consumer: the next page is fetched (from the store, or from the
/// server and decoded) while the caller folds this one, on another core. The reading task
/// starts when the stream is first polled, so a read can be made outside the runtime (a
/// binding's thread) and driven inside it.
fn ahead_of_the_caller<T: Send + 'static>(pages: BoxStream<'static, Result<T>>) -> BoxStream<'static, Result<T>> {
    stream::once(async move { read_ahead(pages, READ_AHEAD_PAGES) }).flatten().boxed()
}

// ---- stores in this process ----------------------------------------------------------------

/// The engine the server runs, called directly: embedded mode and in-memory, with an event bus
/// of its own (which also sees appends of other processes on the same SQLite file, within its
/// poll interval).
#[derive(Debug)]
pub(crate) struct Local(pub Engine);

/// A read the engine refused, or its pages read ahead of the caller.
fn local_pages<T: Send + 'static>(pages: flipbook_model::Result<Pages<T>>) -> BoxStream<'static, Result<T>> {
    match pages {
        Ok(pages) => ahead_of_the_caller(pages.map_err(Error::from).boxed()),
        Err(error) => stream::iter([Err(error.into())]).boxed(),
    }
}

#[async_trait]
impl Backend for Local {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        Ok(self.0.append(request).await?)
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        Ok(self.0.append_states(parts).await?)
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        Ok(self.0.head(state_id).await?)
    }

    async fn log_head(&self) -> Result<LogHead> {
        Ok(self.0.log_head().await?)
    }

    fn read_state(&self, query: StateQuery) -> EventPages {
        local_pages(self.0.read_state(query))
    }

    fn read_all(&self, query: AllQuery) -> EventPages {
        local_pages(self.0.read_all(query))
    }

    fn subscribe(&self, query: SubscriptionQuery) -> Deliveries {
        match self.0.subscribe(query) {
            Ok(deliveries) => deliveries.map_err(Error::from).boxed(),
            Err(error) => stream::iter([Err(error.into())]).boxed(),
        }
    }

    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        Ok(self.0.put_snapshot(snapshot).await?)
    }

    async fn get_snapshot(&self, query: SnapshotQuery) -> Result<Option<Snapshot>> {
        Ok(self.0.get_snapshot(&query).await?)
    }

    async fn delete_snapshots(&self, state_id: &str) -> Result<u64> {
        Ok(self.0.delete_snapshots(state_id).await?)
    }

    async fn close(&self) {
        self.0.close().await;
    }

    async fn server_info(&self) -> Result<ServerInfo> {
        let info = self.0.info();
        Ok(ServerInfo {
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            event_backend: info.event_backend.to_owned(),
            snapshot_backend: info.snapshot_backend.to_owned(),
            durable: info.durable,
            limits: info.limits,
        })
    }
}

// ---- a server over gRPC --------------------------------------------------------------------

/// Adds the bearer token to every call.
#[derive(Clone, Debug)]
pub(crate) struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Transport = InterceptedService<Channel, Auth>;

/// What a response may add to the largest request the server takes (its `max_request_bytes`):
/// an answer carries at most what some request could (an event, a snapshot), and a few fields.
const RESPONSE_OVERHEAD_BYTES: u64 = 64 * 1024;

/// One HTTP/2 connection, shared by every call and every clone of the client.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    events: EventStoreClient<Transport>,
    snapshots: SnapshotStoreClient<Transport>,
    bus: EventBusClient<Transport>,
    info: ServerInfoClient<Transport>,
}

impl Remote {
    /// Connects, asks the server what it accepts, and sizes every client to receive whatever
    /// the server may send (a snapshot of its `max_snapshot_bytes`, above tonic's 4 MiB).
    pub async fn connect(options: &ConnectOptions) -> Result<(Self, ServerInfo)> {
        let uri = if options.endpoint.contains("://") {
            options.endpoint.clone()
        } else {
            format!("http://{}", options.endpoint)
        };
        let token = options
            .token
            .as_ref()
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| Error::invalid("token", "must be printable ASCII"))
            })
            .transpose()?;
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| Error::invalid("endpoint", format!("{uri:?} is not a URI: {e}")))?
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(options.keep_alive_interval)
            .keep_alive_timeout(options.connect_timeout)
            .keep_alive_while_idle(true);
        if uri.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &options.ca_certificate {
                Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                None => tls.with_webpki_roots(),
            };
            if let Some(domain) = &options.tls_domain {
                tls = tls.domain_name(domain);
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| Error::invalid("ca_certificate", e.to_string()))?;
        } else if options.ca_certificate.is_some() {
            return Err(Error::invalid("endpoint", "a CA certificate needs an https:// endpoint"));
        }
        let channel = endpoint.connect().await.map_err(|e| Error::Unavailable(format!("connecting to {uri}: {e}")))?;
        let transport = InterceptedService::new(channel, Auth(token));
        let info = server_info(ServerInfoClient::new(transport.clone())).await?;
        let largest = info.limits.max_request_bytes.saturating_add(RESPONSE_OVERHEAD_BYTES);
        let max = usize::try_from(largest).unwrap_or(usize::MAX);
        let remote = Self {
            events: EventStoreClient::new(transport.clone()).max_decoding_message_size(max),
            snapshots: SnapshotStoreClient::new(transport.clone()).max_decoding_message_size(max),
            bus: EventBusClient::new(transport.clone()).max_decoding_message_size(max),
            info: ServerInfoClient::new(transport).max_decoding_message_size(max),
        };
        Ok((remote, info))
    }
}

fn recorded(events: Vec<v1::RecordedEvent>) -> Result<Vec<RecordedEvent>> {
    events.into_iter().map(|e| RecordedEvent::try_from(e).map_err(Error::from)).collect()
}

/// A server stream, started when first polled, each message converted by `convert`.
fn streamed<M, T, F, Fut>(call: F, convert: fn(M) -> Result<T>) -> BoxStream<'static, Result<T>>
where
    M: Send + 'static,
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>> + Send + 'static,
{
    stream::once(async move { call().await })
        .map(move |started| match started {
            Ok(response) => response.into_inner().map(move |m| m.map_err(Error::from).and_then(convert)).boxed(),
            Err(status) => stream::iter([Err(Error::from(status))]).boxed(),
        })
        .flatten()
        .boxed()
}

#[async_trait]
impl Backend for Remote {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        let response = self.events.clone().append(v1::AppendRequest::from(request)).await?;
        Ok(AppendOutcome::try_from(response.into_inner())?)
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        let request = v1::AppendStatesRequest { parts: parts.into_iter().map(Into::into).collect() };
        let response = self.events.clone().append_states(request).await?.into_inner();
        Ok(response.parts.into_iter().map(AppendOutcome::try_from).collect::<Result<_, _>>()?)
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        let request = v1::GetHeadRequest { state_id: state_id.to_owned() };
        match self.events.clone().get_head(request).await.map_err(Error::from) {
            Ok(response) => Ok(response.into_inner().head.map(StateHead::try_from).transpose()?),
            Err(Error::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn read_state(&self, query: StateQuery) -> EventPages {
        let mut client = self.events.clone();
        ahead_of_the_caller(streamed(
            move || async move { client.read_state(v1::ReadStateRequest::from(query)).await },
            |m: v1::ReadStateResponse| recorded(m.events),
        ))
    }

    async fn log_head(&self) -> Result<LogHead> {
        let head = self.events.clone().get_log_head(v1::GetLogHeadRequest {}).await?.into_inner();
        Ok(LogHead { settled_position: head.settled_position, event_count: head.event_count })
    }

    /// A read that finds nothing answers one message without events: no page for it.
    fn read_all(&self, query: AllQuery) -> EventPages {
        let mut client = self.events.clone();
        let pages = streamed(
            move || async move { client.read_all(v1::ReadAllRequest::from(query)).await },
            |m: v1::ReadAllResponse| recorded(m.events),
        );
        ahead_of_the_caller(pages.try_filter(|page| std::future::ready(!page.is_empty())).boxed())
    }

    fn subscribe(&self, query: SubscriptionQuery) -> Deliveries {
        let mut client = self.bus.clone();
        streamed(
            move || async move { client.subscribe(v1::SubscribeRequest::from(query)).await },
            |m: v1::SubscribeResponse| Ok(Delivery::try_from(m)?),
        )
    }

    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let request = v1::PutSnapshotRequest { snapshot: Some(snapshot.into()) };
        self.snapshots.clone().put_snapshot(request).await?;
        Ok(())
    }

    async fn get_snapshot(&self, query: SnapshotQuery) -> Result<Option<Snapshot>> {
        match self.snapshots.clone().get_snapshot(v1::GetSnapshotRequest::from(query)).await.map_err(Error::from) {
            Ok(response) => Ok(response.into_inner().snapshot.map(Snapshot::try_from).transpose()?),
            Err(Error::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn delete_snapshots(&self, state_id: &str) -> Result<u64> {
        let request = v1::DeleteSnapshotsRequest { state_id: state_id.to_owned() };
        Ok(self.snapshots.clone().delete_snapshots(request).await?.into_inner().deleted)
    }

    async fn server_info(&self) -> Result<ServerInfo> {
        server_info(self.info.clone()).await
    }
}

/// What the server runs on and accepts.
async fn server_info(mut client: ServerInfoClient<Transport>) -> Result<ServerInfo> {
    let info = client.get_server_info(v1::GetServerInfoRequest {}).await?.into_inner();
    let limits = info.limits.ok_or_else(|| Error::Internal("the server sent no limits".to_owned()))?;
    Ok(ServerInfo {
        server_version: info.server_version,
        event_backend: info.event_backend,
        snapshot_backend: info.snapshot_backend,
        durable: info.durable,
        limits: Limits {
            max_events_per_append: limits.max_events_per_append,
            max_payload_bytes: limits.max_payload_bytes,
            max_snapshot_bytes: limits.max_snapshot_bytes,
            max_request_bytes: limits.max_request_bytes,
            // A server from before appends to several states does not say (nor serve them).
            max_states_per_append: match limits.max_states_per_append {
                0 => Limits::default().max_states_per_append,
                max => max,
            },
        },
    })
}
