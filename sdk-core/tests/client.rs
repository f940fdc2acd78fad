//! The low-level API, the same through a server, embedded and in memory: every call, its
//! answers and its errors.

#[macro_use]
mod common;

use common::{Fixture, Mode, event, plain, state_id, temp_db};
use flipbook_sdk_core::{
    AllQuery, AppendRequest, Direction, ErrorCode, Expectation, Snapshot, SnapshotQuery, StateKind, StateQuery,
    SubscriptionQuery, Timestamp,
};
use futures::TryStreamExt;

in_every_mode!(
    append_head_and_read_a_state,
    a_resent_append_answers_the_original_outcome,
    conflicts_name_the_actual_version,
    appends_to_several_states_are_all_or_nothing,
    read_all_follows_global_positions_with_filters,
    snapshots_put_get_and_delete,
    server_info_reports_limits,
    close_refuses_calls_and_ends_reads_and_subscriptions_begun_before,
);

async fn close_refuses_calls_and_ends_reads_and_subscriptions_begun_before(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let client = fixture.client(plain()).await;
    let id = state_id("closing");
    let events = (1..=100).map(|i| event("Deposited", i, "")).collect();
    client.append(AppendRequest::new(id.clone(), Expectation::NoState, events)).await.expect("append");
    let mut read = client.read_state(StateQuery::all(&id));
    assert!(!read.try_next().await.expect("a first page").expect("events").is_empty());
    let query = SubscriptionQuery { state_id_prefix: id.clone(), ..SubscriptionQuery::default() };
    let mut subscription = client.subscribe(query.clone());
    assert!(subscription.try_next().await.expect("a delivery").is_some());

    let copy = client.clone();
    client.close().await;
    assert!(copy.is_closed(), "every copy is closed");
    let refused = [
        copy.append(AppendRequest::new(id.clone(), Expectation::Any, vec![event("Late", 1, "")])).await.map(drop),
        copy.head(&id).await.map(drop),
        copy.log_head().await.map(drop),
        copy.server_info().await.map(drop),
        copy.flush_snapshots().await,
        copy.read_state(StateQuery::all(&id)).try_collect::<Vec<_>>().await.map(drop),
        read.try_collect::<Vec<_>>().await.map(drop),
        subscription.try_collect::<Vec<_>>().await.map(drop),
        copy.subscribe(query).try_collect::<Vec<_>>().await.map(drop),
    ];
    for (i, result) in refused.into_iter().enumerate() {
        let error = result.expect_err("refused after close");
        assert_eq!((i, error.code(), error.is_retryable()), (i, ErrorCode::Closed, false), "{error}");
    }
    client.close().await; // again: nothing happens

    // Another client of the same store sees everything, and the late append is not there.
    if let Mode::ServerSqlite | Mode::ServerPostgres = mode {
        let other = fixture.client(plain()).await;
        assert_eq!(other.head(&id).await.expect("head").event_count, 100);
    }
}

async fn append_head_and_read_a_state(mode: Mode) {
    let client = Fixture::new(mode).await.client(plain()).await;
    let id = state_id("order");
    let mut request =
        AppendRequest::new(id.clone(), Expectation::NoState, (1..=5).map(|i| event("Deposited", i, "")).collect());
    request.state_metadata.insert("owner".into(), "ada".into());
    let outcome = client.append(request).await.expect("append");
    assert_eq!(outcome.last_version, Some(5));
    assert_eq!(outcome.global_positions.len(), 5);

    let head = client.head(&id).await.expect("head");
    assert_eq!((head.kind, head.event_count, head.last_version()), (StateKind::Versioned, 5, Some(5)));
    assert_eq!(head.metadata.get("owner").map(String::as_str), Some("ada"));
    assert_eq!(head.last_recorded_at, outcome.recorded_at);

    let query =
        StateQuery { direction: Direction::Backward, min_version: Some(2), limit: Some(3), ..StateQuery::all(&id) };
    let events: Vec<_> = client.read_state(query).try_collect::<Vec<_>>().await.expect("read").concat();
    let versions: Vec<_> = events.iter().map(|e| e.version.unwrap_or_default()).collect();
    assert_eq!(versions, [5, 4, 3]);
    assert!(events.iter().all(|e| e.recorded_at == outcome.recorded_at));
    let missing = client.head(&state_id("nothing")).await.expect_err("not found");
    assert_eq!(missing.code(), ErrorCode::NotFound);
}

async fn a_resent_append_answers_the_original_outcome(mode: Mode) {
    let client = Fixture::new(mode).await.client(plain()).await;
    let id = state_id("order");
    let request = AppendRequest::new(id.clone(), Expectation::Exactly(0), vec![event("Deposited", 1, "")]);
    let first = client.append(request.clone()).await.expect("append");
    client
        .append(AppendRequest::new(id.clone(), Expectation::Any, vec![event("Deposited", 2, "")]))
        .await
        .expect("append");
    let again = client.append(request.clone()).await.expect("the same append, sent again");
    assert_eq!(again, first);
    assert_eq!(client.head(&id).await.expect("head").event_count, 2);
    let mut changed = request;
    changed.events[0].payload = b"{\"amount\": 99}".to_vec();
    let error = client.append(changed).await.expect_err("same id, other content");
    assert_eq!(error.code(), ErrorCode::Duplicate);
}

async fn conflicts_name_the_actual_version(mode: Mode) {
    let client = Fixture::new(mode).await.client(plain()).await;
    let id = state_id("order");
    let events = || vec![event("Deposited", 1, ""), event("Deposited", 2, "")];
    client.append(AppendRequest::new(id.clone(), Expectation::Any, events())).await.expect("append");
    for expected in [Expectation::NoState, Expectation::Exactly(1), Expectation::Exactly(3)] {
        let error = client.append(AppendRequest::new(id.clone(), expected, events())).await.expect_err("conflict");
        assert_eq!((error.code(), error.actual_version()), (ErrorCode::VersionConflict, Some(2)), "{expected:?}");
    }
    let neutral = AppendRequest::neutral(id.clone(), Expectation::Any, events());
    let error = client.append(neutral).await.expect_err("kinds do not mix");
    assert_eq!(error.code(), ErrorCode::StateKindMismatch);
    assert_eq!(client.head(&id).await.expect("head").event_count, 2, "refused appends store nothing");
}

async fn appends_to_several_states_are_all_or_nothing(mode: Mode) {
    let client = Fixture::new(mode).await.client(plain()).await;
    let (order, stock) = (state_id("order"), state_id("stock"));
    client
        .append(AppendRequest::new(stock.clone(), Expectation::Any, vec![event("Counted", 1, "")]))
        .await
        .expect("append");
    let parts = |stock_expected| {
        vec![
            AppendRequest::new(order.clone(), Expectation::NoState, vec![event("Placed", 1, "")]),
            AppendRequest::new(stock.clone(), stock_expected, vec![event("Reserved", 2, "")]),
        ]
    };
    let error = client.append_states(parts(Expectation::Exactly(0))).await.expect_err("the second part conflicts");
    assert_eq!((error.code(), error.actual_version()), (ErrorCode::VersionConflict, Some(1)));
    assert!(error.to_string().contains(&stock), "the conflict names its state: {error}");
    assert_eq!(client.head(&order).await.expect_err("nothing stored").code(), ErrorCode::NotFound);

    let request = parts(Expectation::Exactly(1));
    let outcomes = client.append_states(request.clone()).await.expect("both parts");
    assert_eq!(outcomes.iter().map(|o| o.last_version).collect::<Vec<_>>(), [Some(1), Some(2)]);
    assert_eq!(outcomes[1].global_positions[0], outcomes[0].global_positions[0] + 1);
    assert_eq!(client.append_states(request.clone()).await.expect("a re-send"), outcomes);

    // Refused before it is sent: the same state twice.
    let twice = vec![request[0].clone(), AppendRequest::new(order.clone(), Expectation::Any, vec![event("X", 3, "")])];
    let error = client.append_states(twice).await.expect_err("a state in two parts");
    assert_eq!((error.code(), error.field()), (ErrorCode::InvalidArgument, Some("parts[1].state_id")));
}

async fn read_all_follows_global_positions_with_filters(mode: Mode) {
    let client = Fixture::new(mode).await.client(plain()).await;
    let prefix = state_id("shop");
    for (i, name) in ["Deposited", "Withdrawn", "Deposited"].into_iter().enumerate() {
        let id = format!("{prefix}/{i}");
        client.append(AppendRequest::new(id, Expectation::Any, vec![event(name, 1, "")])).await.expect("append");
    }
    let query = AllQuery { state_id_prefix: prefix.clone(), names: vec!["Deposited".into()], ..AllQuery::default() };
    let events: Vec<_> = client.read_all(query).try_collect::<Vec<_>>().await.expect("read").concat();
    let ids: Vec<_> = events.iter().map(|e| e.state_id.clone()).collect();
    assert_eq!(ids, [format!("{prefix}/0"), format!("{prefix}/2")]);
    assert!(events[0].global_position < events[1].global_position);
    let after =
        AllQuery { after_position: events[0].global_position, state_id_prefix: prefix.clone(), ..AllQuery::default() };
    let later: Vec<_> = client.read_all(after).try_collect::<Vec<_>>().await.expect("read").concat();
    assert_eq!(later.len(), 2);

    // The newest first, down to a position.
    let newest: Vec<_> = client.read_all(newest_query(&prefix)).try_collect::<Vec<_>>().await.expect("read").concat();
    let ids: Vec<_> = newest.iter().map(|e| e.state_id.clone()).collect();
    assert_eq!(ids, [format!("{prefix}/2"), format!("{prefix}/1"), format!("{prefix}/0")]);
    let above_first = AllQuery { after_position: events[0].global_position, limit: Some(1), ..newest_query(&prefix) };
    let last: Vec<_> = client.read_all(above_first).try_collect::<Vec<_>>().await.expect("read").concat();
    assert_eq!(last.iter().map(|e| e.state_id.clone()).collect::<Vec<_>>(), [format!("{prefix}/2")]);
    let head = client.log_head().await.expect("log head");
    assert!(head.settled_position >= newest[0].global_position);
}

fn newest_query(prefix: &str) -> AllQuery {
    AllQuery { state_id_prefix: prefix.to_owned(), direction: Direction::Backward, ..AllQuery::default() }
}

async fn snapshots_put_get_and_delete(mode: Mode) {
    let client = Fixture::new(mode).await.client(plain()).await;
    let id = state_id("order");
    for version in [3, 7] {
        let snapshot = Snapshot {
            state_id: id.clone(),
            version,
            reducer_revision: "r1".into(),
            payload: format!("{{\"v\": {version}}}").into_bytes(),
            content_type: "application/json".into(),
            created_at: Timestamp::now(),
        };
        client.put_snapshot(snapshot).await.expect("put");
    }
    let query = |max_version| SnapshotQuery { state_id: id.clone(), reducer_revision: "r1".into(), max_version };
    assert_eq!(client.get_snapshot(query(None)).await.expect("get").map(|s| s.version), Some(7));
    assert_eq!(client.get_snapshot(query(Some(5))).await.expect("get").map(|s| s.version), Some(3));
    let other = SnapshotQuery { reducer_revision: "r2".into(), ..query(None) };
    assert_eq!(client.get_snapshot(other).await.expect("get"), None);
    assert_eq!(client.delete_snapshots(&id).await.expect("delete"), 2);
    assert_eq!(client.get_snapshot(query(None)).await.expect("get"), None);
    let bad = Snapshot {
        state_id: id,
        version: 0,
        reducer_revision: "r1".into(),
        payload: vec![],
        content_type: "application/json".into(),
        created_at: Timestamp::now(),
    };
    assert_eq!(client.put_snapshot(bad).await.expect_err("version 0").field(), Some("snapshot.version"));
}

async fn server_info_reports_limits(mode: Mode) {
    let client = Fixture::new(mode).await.client(plain()).await;
    let info = client.server_info().await.expect("info");
    assert_eq!(&info.limits, client.limits());
    assert_eq!(info.limits.max_events_per_append, 1000);
    let expected = match mode {
        Mode::ServerSqlite | Mode::Embedded => "sqlite",
        Mode::ServerPostgres => "postgres",
        Mode::Memory => "memory",
    };
    assert_eq!(info.event_backend, expected);
}

/// The in-process client runs the server's engine: over a backend that holds fewer events per
/// append than the default batch (DynamoDB: 64, one transaction), it reports and enforces the
/// same lowered limit as a server on that backend, and refuses the same batch with the same
/// error, storing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_process_client_refuses_what_the_server_refuses() {
    use flipbook_proto::v1::{self, event_store_client::EventStoreClient};
    use flipbook_sdk_core::{Client, Error};
    use flipbook_server::config::{Config, EventBackend};
    use flipbook_storage::dynamodb::{DynamoConfig, DynamoEventStore};
    use flipbook_storage::memory::MemorySnapshotStore;

    let url = std::env::var("FLIPBOOK_TEST_DYNAMODB_URL")
        .expect("FLIPBOOK_TEST_DYNAMODB_URL must name a DynamoDB endpoint (scripts/test starts one)");
    let mut dynamodb = DynamoConfig::new(format!("flipbook-test-{}", uuid::Uuid::new_v4().simple()));
    dynamodb.endpoint_url = (url != "aws").then_some(url);
    dynamodb.region = Some(std::env::var("FLIPBOOK_TEST_DYNAMODB_REGION").unwrap_or_else(|_| "us-east-1".to_owned()));
    let events = DynamoEventStore::open(&dynamodb).await.expect("open DynamoDB in-process");
    let local = Client::local(std::sync::Arc::new(events), std::sync::Arc::new(MemorySnapshotStore::new()), plain());

    let mut config = Config::local(tempfile::tempdir().expect("temp dir").keep().join("flipbook.db"));
    config.events.backend = EventBackend::Dynamodb;
    config.events.dynamodb = dynamodb;
    let server = flipbook_server::start(config).await.expect("start a server on DynamoDB");
    let info = local.server_info().await.expect("info");
    let mut grpc = EventStoreClient::connect(format!("http://{}", server.addr)).await.expect("connect");
    let served = flipbook_proto::v1::server_info_client::ServerInfoClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect")
        .get_server_info(v1::GetServerInfoRequest {})
        .await
        .expect("server info")
        .into_inner();
    assert_eq!(info.limits.max_events_per_append, 64);
    assert_eq!(local.limits().max_events_per_append, 64);
    assert_eq!(served.limits.expect("limits").max_events_per_append, info.limits.max_events_per_append);

    let id = state_id("batch");
    let batch = AppendRequest::new(id.clone(), Expectation::Any, (1..=65).map(|i| event("Deposited", i, "")).collect());
    let refused = local.append(batch.clone()).await.expect_err("65 events are refused in-process");
    let Error::TooLarge { field, limit: rule } = &refused else { panic!("{refused:?}") };
    assert_eq!(field, "events");
    assert!(rule.contains("64"), "{rule}");
    let status = grpc.append(v1::AppendRequest::from(batch)).await.expect_err("and by the server");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains(rule.as_str()), "the same rule: {status:?} and {refused:?}");
    assert_eq!(local.head(&id).await.expect_err("nothing stored").code(), ErrorCode::NotFound);
    server.stop().await.expect("stop");
}

/// The SDK's client receives whatever the server advertises: on a server configured for 80 MiB
/// requests and 70 MiB snapshots, a 70 MiB snapshot goes and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_receives_snapshots_as_large_as_the_server_takes() {
    use flipbook_sdk_core::Client;
    let mut config = flipbook_server::config::Config::local(tempfile::tempdir().expect("dir").keep().join("f.db"));
    config.limits.max_request_bytes = 80 * 1024 * 1024;
    config.limits.max_snapshot_bytes = 70 * 1024 * 1024;
    let server = flipbook_server::start(config).await.expect("start");
    let client = Client::connect(format!("http://{}", server.addr)).await.expect("connect");
    let snapshot = Snapshot {
        state_id: state_id("large"),
        version: 1,
        reducer_revision: "r1".into(),
        payload: vec![7; 70 * 1024 * 1024],
        content_type: "application/octet-stream".into(),
        created_at: Timestamp::now(),
    };
    client.put_snapshot(snapshot.clone()).await.expect("put");
    let query = SnapshotQuery { state_id: snapshot.state_id.clone(), reducer_revision: "r1".into(), max_version: None };
    let found = client.get_snapshot(query).await.expect("get").expect("found");
    assert_eq!(found.payload.len(), snapshot.payload.len());
    server.stop().await.expect("stop");
}

/// This process's open files of the SQLite database at `path` (with its -wal and -shm).
fn open_files(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let fds = std::fs::read_dir("/proc/self/fd").expect("list this process's files");
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).filter(|file| file.starts_with(path)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_releases_the_embedded_file_before_it_returns() {
    let path = temp_db();
    let client = flipbook_sdk_core::Client::open_embedded(&path, plain()).await.expect("open");
    let id = state_id("file");
    // Appends racing the close: each is stored or refused as closed, none is lost halfway.
    let appends: Vec<_> = (0..8)
        .map(|i| {
            let (client, id) = (client.clone(), id.clone());
            tokio::spawn(async move {
                client.append(AppendRequest::new(id, Expectation::Any, vec![event("Deposited", i, "")])).await
            })
        })
        .collect();
    let _reading = client.read_all(AllQuery::default());
    assert!(!open_files(&path).is_empty());
    client.close().await;
    assert_eq!(open_files(&path), Vec::<std::path::PathBuf>::new(), "released when close returns");
    let mut stored = 0u64;
    for append in appends {
        match append.await.expect("the task") {
            Ok(_) => stored += 1,
            Err(error) => assert_eq!(error.code(), ErrorCode::Closed, "{error}"),
        }
    }
    let again = flipbook_sdk_core::Client::open_embedded(&path, plain()).await.expect("open again");
    let head = again.head(&id).await.map(|h| h.event_count).unwrap_or(0);
    assert_eq!(head, stored, "what was acknowledged is there, nothing else");
}
