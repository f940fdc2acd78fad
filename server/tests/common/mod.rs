//! Test support: a real server on a free port over a fresh SQLite file, and the storage traits
//! implemented over its gRPC API, so the storage test kit runs end to end unchanged.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Delivery, Error, Result, Snapshot, SnapshotQuery, StateHead, StateQuery,
    SubscriptionQuery,
};
use flipbook_proto::status::{from_status, reason, reason_of};
use flipbook_proto::v1::event_bus_client::EventBusClient;
use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::server_info_client::ServerInfoClient;
use flipbook_proto::v1::snapshot_store_client::SnapshotStoreClient;
use flipbook_proto::v1::{self};
use flipbook_server::config::{Config, EventBackend, SnapshotBackend};
use flipbook_storage::{BackendLimits, EventStore, Page, SnapshotStore};
use tonic::transport::Channel;

/// A fresh database path in a directory that outlives the test's runtime.
pub fn fresh_db() -> PathBuf {
    tempfile::Builder::new().prefix("flipbook-server-").tempdir().expect("temp dir").keep().join("flipbook.db")
}

pub fn test_config(db: PathBuf) -> Config {
    Config::local(db)
}

pub async fn start_server() -> flipbook_server::Running {
    flipbook_server::start(test_config(fresh_db())).await.expect("start the server")
}

/// The PostgreSQL database the tests use (scripts/test starts one).
pub fn postgres_url() -> String {
    std::env::var("FLIPBOOK_TEST_POSTGRES_URL")
        .expect("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test starts one)")
}

/// Runs statements of the test's own making (fixed words, UUID digits, a temporary path) on the
/// test PostgreSQL server, as its superuser.
pub async fn postgres_admin(sql: &str) {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(&postgres_url()).await.expect("connect to PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A database of its own on the test PostgreSQL server, named `{prefix}_{uuid}`: its URL and
/// name (`DROP DATABASE … WITH (FORCE)` it at the end).
pub async fn fresh_postgres_database(prefix: &str) -> (String, String) {
    let database = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    postgres_admin(&format!("CREATE DATABASE {database}")).await;
    let admin = postgres_url();
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("the PostgreSQL URL names no database: {admin}"),
    };
    (url, database)
}

/// A server keeping events and snapshots in the test PostgreSQL database.
pub fn postgres_config() -> Config {
    let mut config = Config::local(fresh_db());
    config.events.backend = EventBackend::Postgres;
    config.events.postgres.url = postgres_url();
    config.snapshots.backend = SnapshotBackend::Postgres;
    config
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (scripts/test starts the services)"))
}

/// A server keeping events on the test Redis node and snapshots on the test Redis Cluster.
pub fn redis_config() -> Config {
    let mut config = Config::local(fresh_db());
    config.events.backend = EventBackend::Redis;
    config.events.redis.url = env("FLIPBOOK_TEST_REDIS_URL");
    config.snapshots.backend = SnapshotBackend::RedisCluster;
    config.snapshots.redis_cluster =
        env("FLIPBOOK_TEST_REDIS_CLUSTER_URLS").split_whitespace().map(str::to_owned).collect();
    config
}

pub async fn grpc_redis_events() -> Arc<dyn EventStore> {
    Arc::new(GrpcStore::connect(flipbook_server::start(redis_config()).await.expect("start").addr).await)
}

pub async fn grpc_redis_snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(GrpcStore::connect(flipbook_server::start(redis_config()).await.expect("start").addr).await)
}

pub async fn two_redis_servers() -> Arc<dyn EventStore> {
    Arc::new(TwoServers::start(redis_config).await)
}

/// The DynamoDB emulator (or AWS) the tests use: scripts/test starts moto and sets the URL.
pub fn dynamodb_url() -> String {
    env("FLIPBOOK_TEST_DYNAMODB_URL")
}

/// A server keeping events and snapshots in one DynamoDB table: `table`, or a fresh one (moto
/// makes tables for free; FLIPBOOK_TEST_DYNAMODB_TABLE names one for every test instead).
pub fn dynamodb_config_on(table: &str) -> Config {
    let mut config = Config::local(fresh_db());
    config.events.backend = EventBackend::Dynamodb;
    config.snapshots.backend = SnapshotBackend::Dynamodb;
    let url = dynamodb_url();
    config.events.dynamodb.endpoint_url = (url != "aws").then_some(url);
    config.events.dynamodb.region =
        Some(std::env::var("FLIPBOOK_TEST_DYNAMODB_REGION").unwrap_or_else(|_| "us-east-1".to_owned()));
    config.events.dynamodb.table = std::env::var("FLIPBOOK_TEST_DYNAMODB_TABLE").unwrap_or_else(|_| table.to_owned());
    config
}

/// A fresh table's name.
pub fn fresh_dynamodb_table() -> String {
    format!("flipbook-test-{}", uuid::Uuid::new_v4().simple())
}

pub fn dynamodb_config() -> Config {
    dynamodb_config_on(&fresh_dynamodb_table())
}

pub async fn grpc_dynamodb_events() -> Arc<dyn EventStore> {
    Arc::new(GrpcStore::connect(flipbook_server::start(dynamodb_config()).await.expect("start").addr).await)
}

pub async fn grpc_dynamodb_snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(GrpcStore::connect(flipbook_server::start(dynamodb_config()).await.expect("start").addr).await)
}

/// Two servers over one (fresh) table.
pub async fn two_dynamodb_servers() -> Arc<dyn EventStore> {
    let table = fresh_dynamodb_table();
    Arc::new(TwoServers::start(|| dynamodb_config_on(&table)).await)
}

pub async fn start_postgres_server() -> flipbook_server::Running {
    flipbook_server::start(postgres_config()).await.expect("start the server")
}

/// The call was refused as INVALID_ARGUMENT, with the reason and a `google.rpc.BadRequest`
/// naming `field` and the rule it broke.
pub fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    assert_refused(result, tonic::Code::InvalidArgument, reason::INVALID_ARGUMENT, field);
}

/// The call was refused as RESOURCE_EXHAUSTED / TOO_LARGE, naming `field` and the limit in the
/// `ErrorInfo` and in a `google.rpc.BadRequest` (docs/spec.md §2, "Limits").
pub fn assert_too_large(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = assert_refused(result, tonic::Code::ResourceExhausted, reason::TOO_LARGE, field);
    let info = tonic_types::StatusExt::get_error_details(&status).error_info().cloned().expect("an ErrorInfo");
    assert_eq!(info.metadata.get("field").map(String::as_str), Some(field), "{status:?}");
    assert!(info.metadata.get("limit").is_some_and(|limit| limit.contains("at most")), "{status:?}");
}

fn assert_refused(
    result: Result<impl std::fmt::Debug, tonic::Status>,
    code: tonic::Code,
    expected_reason: &str,
    field: &str,
) -> tonic::Status {
    use tonic_types::StatusExt;
    let status = result.expect_err("bad input must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason_of(&status).as_deref(), Some(expected_reason), "{status:?}");
    let details = status.get_error_details();
    let violations = &details.bad_request().expect("a BadRequest detail").field_violations;
    assert_eq!(violations[0].field, field, "{status:?}");
    assert!(!violations[0].description.is_empty());
    status
}

pub async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect")
}

/// The storage traits over gRPC: what the test kit calls to test the server end to end.
#[derive(Clone, Debug)]
pub struct GrpcStore {
    events: EventStoreClient<Channel>,
    snapshots: SnapshotStoreClient<Channel>,
    bus: EventBusClient<Channel>,
    /// What the server's info says it accepts per append (the kit sizes its batches by it).
    limits: BackendLimits,
}

impl GrpcStore {
    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        let channel = channel(addr).await;
        let max = 64 * 1024 * 1024;
        let info = ServerInfoClient::new(channel.clone())
            .get_server_info(v1::GetServerInfoRequest::default())
            .await
            .expect("server info")
            .into_inner();
        let limits = BackendLimits {
            max_events_per_append: info.limits.map(|l| l.max_events_per_append),
            max_states_per_append: info.limits.map(|l| l.max_states_per_append),
        };
        Self {
            events: EventStoreClient::new(channel.clone()).max_decoding_message_size(max),
            snapshots: SnapshotStoreClient::new(channel.clone()).max_decoding_message_size(max),
            bus: EventBusClient::new(channel).max_decoding_message_size(max),
            limits,
        }
    }

    /// A subscription's messages, as the server sends them.
    pub async fn subscribe(
        &self,
        query: SubscriptionQuery,
    ) -> Result<impl futures::Stream<Item = Result<Delivery>> + use<>> {
        use futures::StreamExt;
        let stream = self.bus.clone().subscribe(v1::SubscribeRequest::from(query)).await.map_err(error)?.into_inner();
        Ok(stream.map(|message| Delivery::try_from(message.map_err(error)?)))
    }

    pub async fn log_head(&self) -> Result<flipbook_model::LogHead> {
        let head = self.events.clone().get_log_head(v1::GetLogHeadRequest {}).await.map_err(error)?.into_inner();
        Ok(flipbook_model::LogHead { settled_position: head.settled_position, event_count: head.event_count })
    }

    /// A new server with a fresh database, and a store over it.
    pub async fn start() -> Self {
        let server = start_server().await;
        Self::connect(server.addr).await
    }
}

fn error(status: tonic::Status) -> Error {
    from_status(&status)
}

fn is_not_found(status: &tonic::Status) -> bool {
    reason_of(status).as_deref() == Some(reason::NOT_FOUND)
}

#[async_trait]
impl EventStore for GrpcStore {
    fn backend(&self) -> &'static str {
        "grpc"
    }

    fn durable(&self) -> bool {
        true
    }

    fn limits(&self) -> BackendLimits {
        self.limits.clone()
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        let response = self.events.clone().append(v1::AppendRequest::from(request)).await.map_err(error)?;
        AppendOutcome::try_from(response.into_inner())
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        let request = v1::AppendStatesRequest { parts: parts.into_iter().map(Into::into).collect() };
        let response = self.events.clone().append_states(request).await.map_err(error)?;
        response.into_inner().parts.into_iter().map(AppendOutcome::try_from).collect()
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        let request = v1::GetHeadRequest { state_id: state_id.to_owned() };
        match self.events.clone().get_head(request).await {
            Ok(response) => response.into_inner().head.map(StateHead::try_from).transpose(),
            Err(status) if is_not_found(&status) => Ok(None),
            Err(status) => Err(error(status)),
        }
    }

    /// One server stream per call, read to its end: the server pages internally, and the kit's
    /// own paging over this exercises limits and bounds through the wire.
    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page> {
        let mut query = query.clone();
        match (query.direction, after) {
            (flipbook_model::Direction::Forward, Some(after)) => {
                query.min_version = Some(query.min_version.unwrap_or(1).max(after + 1));
            }
            (flipbook_model::Direction::Backward, Some(before)) => {
                query.max_version = Some(query.max_version.unwrap_or(u64::MAX).min(before.saturating_sub(1)));
                if before <= 1 || query.max_version < query.min_version {
                    return Ok(Page::default());
                }
            }
            _ => {}
        }
        query.limit = Some(max as u64);
        let mut stream =
            self.events.clone().read_state(v1::ReadStateRequest::from(query)).await.map_err(error)?.into_inner();
        let mut events = Vec::new();
        while let Some(message) = stream.message().await.map_err(error)? {
            for event in message.events {
                events.push(flipbook_model::RecordedEvent::try_from(event)?);
            }
        }
        // The wire hides the sequence of version-neutral events; this adapter pages only
        // versioned states by version, and reads neutral ones whole.
        let next = match events.last() {
            Some(last) if events.len() >= max => last.version,
            _ => None,
        };
        Ok(Page { events, next })
    }

    /// A page is a read of the window past the cursor.
    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page> {
        let (low, high) = query.window(cursor);
        let request = v1::ReadAllRequest {
            after_position: low,
            until_position: (high < u64::MAX).then_some(high),
            limit: Some(max as u64),
            ..query.clone().into()
        };
        let mut stream = self.events.clone().read_all(request).await.map_err(error)?.into_inner();
        let mut events = Vec::new();
        while let Some(message) = stream.message().await.map_err(error)? {
            for event in message.events {
                events.push(flipbook_model::RecordedEvent::try_from(event)?);
            }
        }
        let next = match events.last() {
            Some(last) if events.len() >= max => Some(last.global_position),
            _ => None,
        };
        Ok(Page { events, next })
    }

    async fn settled_position(&self) -> Result<u64> {
        Ok(self.log_head().await?.settled_position)
    }

    async fn event_count(&self, until: u64) -> Result<u64> {
        let head = self.log_head().await?;
        match until >= head.settled_position {
            true => Ok(head.event_count),
            false => Err(Error::Internal("the wire counts events up to the settled position only".to_owned())),
        }
    }
}

#[async_trait]
impl SnapshotStore for GrpcStore {
    fn backend(&self) -> &'static str {
        "grpc"
    }

    async fn put(&self, snapshot: Snapshot) -> Result<()> {
        let request = v1::PutSnapshotRequest { snapshot: Some(snapshot.into()) };
        self.snapshots.clone().put_snapshot(request).await.map(drop).map_err(error)
    }

    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        match self.snapshots.clone().get_snapshot(v1::GetSnapshotRequest::from(query.clone())).await {
            Ok(response) => response.into_inner().snapshot.map(Snapshot::try_from).transpose(),
            Err(status) if is_not_found(&status) => Ok(None),
            Err(status) => Err(error(status)),
        }
    }

    async fn delete(&self, state_id: &str) -> Result<u64> {
        let request = v1::DeleteSnapshotsRequest { state_id: state_id.to_owned() };
        Ok(self.snapshots.clone().delete_snapshots(request).await.map_err(error)?.into_inner().deleted)
    }
}

pub async fn grpc_events() -> Arc<dyn EventStore> {
    Arc::new(GrpcStore::start().await)
}

pub async fn grpc_postgres_events() -> Arc<dyn EventStore> {
    Arc::new(GrpcStore::connect(start_postgres_server().await.addr).await)
}

pub async fn grpc_postgres_snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(GrpcStore::connect(start_postgres_server().await.addr).await)
}

/// Two servers over one backend, called in turn: every call goes to the other server than the
/// one before, so each case of the kit runs across both (concurrent writers included).
#[derive(Debug)]
pub struct TwoServers {
    pub servers: [GrpcStore; 2],
    next: std::sync::atomic::AtomicUsize,
}

impl TwoServers {
    pub async fn start(config: impl Fn() -> Config) -> Self {
        let first = flipbook_server::start(config()).await.expect("start the first server");
        let second = flipbook_server::start(config()).await.expect("start the second server");
        Self {
            servers: [GrpcStore::connect(first.addr).await, GrpcStore::connect(second.addr).await],
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> &GrpcStore {
        &self.servers[self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2]
    }
}

#[async_trait]
impl EventStore for TwoServers {
    fn backend(&self) -> &'static str {
        "two servers"
    }

    fn durable(&self) -> bool {
        true
    }

    fn limits(&self) -> BackendLimits {
        self.servers[0].limits()
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        self.pick().append(request).await
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        self.pick().append_states(parts).await
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        self.pick().head(state_id).await
    }

    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page> {
        self.pick().read_state_page(query, after, max).await
    }

    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page> {
        self.pick().read_all_page(query, cursor, max).await
    }

    async fn settled_position(&self) -> Result<u64> {
        self.pick().settled_position().await
    }

    async fn event_count(&self, until: u64) -> Result<u64> {
        self.pick().event_count(until).await
    }
}

pub async fn two_postgres_servers() -> Arc<dyn EventStore> {
    Arc::new(TwoServers::start(postgres_config).await)
}

pub async fn grpc_snapshots() -> Arc<dyn SnapshotStore> {
    Arc::new(GrpcStore::start().await)
}
