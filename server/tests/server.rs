//! The server as an operator meets it: health, reflection, server info, metrics, streamed
//! reads, graceful shutdown and durability across a crash.

mod common;

use std::sync::Arc;
use std::time::Duration;

use flipbook_model::StateQuery;
use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::server_info_client::ServerInfoClient;
use flipbook_proto::v1::{self};
use flipbook_storage::sqlite::{SqliteConfig, SqliteEventStore};
use flipbook_storage::{EventStore, read};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

fn events_of(count: u64, payload_bytes: usize) -> Vec<v1::ProposedEvent> {
    (0..count)
        .map(|_| v1::ProposedEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            name: "Deposited".into(),
            payload: vec![b'7'; payload_bytes],
            ..Default::default()
        })
        .collect()
}

#[tokio::test]
async fn health_answers_serving_and_reflection_lists_the_services() {
    let server = common::start_server().await;
    let channel = common::channel(server.addr).await;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "flipbook.v1.EventStore", "flipbook.v1.SnapshotStore", "flipbook.v1.ServerInfo"] {
        let request = tonic_health::pb::HealthCheckRequest { service: service.into() };
        let status = health.check(request).await.expect("health check").into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter([request])).await.expect("reflection").into_inner();
    let response = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in
        ["flipbook.v1.EventStore", "flipbook.v1.SnapshotStore", "flipbook.v1.ServerInfo", "grpc.health.v1.Health"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}

#[tokio::test]
async fn server_info_reports_the_backends_and_limits() {
    let server = common::start_server().await;
    let mut info = ServerInfoClient::new(common::channel(server.addr).await);
    let info = info.get_server_info(v1::GetServerInfoRequest {}).await.expect("server info").into_inner();
    assert_eq!(info.event_backend, "sqlite");
    assert_eq!(info.snapshot_backend, "sqlite");
    assert!(info.durable, "SQLite with synchronous=FULL is durable by default");
    let limits = info.limits.expect("limits");
    assert_eq!(limits.max_events_per_append, 1000);
    assert_eq!(limits.max_payload_bytes, 1024 * 1024);
    assert_eq!(limits.max_state_id_bytes, 256);
    assert_eq!(limits.max_states_per_append, 64);
}

/// The log's head names the settled position and the events up to it, and every ReadAll
/// message carries the position the read covers; a read that finds nothing still says it.
#[tokio::test]
async fn the_log_head_and_read_all_say_how_far_the_log_is_settled() {
    let server = common::start_server().await;
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let head = client.get_log_head(v1::GetLogHeadRequest {}).await.expect("log head").into_inner();
    assert_eq!((head.settled_position, head.event_count), (0, 0));
    let mut last = 0;
    for state in ["a", "b"] {
        let request = v1::AppendRequest { state_id: state.into(), events: events_of(3, 10), ..Default::default() };
        last = *client.append(request).await.expect("append").into_inner().global_positions.last().expect("positions");
    }
    let head = client.get_log_head(v1::GetLogHeadRequest {}).await.expect("log head").into_inner();
    assert_eq!((head.settled_position, head.event_count), (last, 6));

    let read = |request: v1::ReadAllRequest| {
        let mut client = client.clone();
        async move {
            let stream = client.read_all(request).await.expect("read all").into_inner();
            stream.collect::<Result<Vec<_>, _>>().await.expect("messages")
        }
    };
    let messages = read(v1::ReadAllRequest::default()).await;
    assert!(messages.iter().all(|m| m.settled_position == last), "{messages:?}");
    assert_eq!(messages.iter().map(|m| m.events.len()).sum::<usize>(), 6);
    let bounded = read(v1::ReadAllRequest { until_position: Some(last - 1), ..Default::default() }).await;
    assert_eq!(bounded.iter().map(|m| m.events.len()).sum::<usize>(), 5, "until_position is inclusive");
    assert!(bounded.iter().all(|m| m.settled_position == last - 1));
    let nothing = read(v1::ReadAllRequest { state_id_prefix: "nobody".into(), ..Default::default() }).await;
    assert_eq!(nothing.len(), 1, "one message, though no event matched");
    assert!(nothing[0].events.is_empty());
    assert_eq!(nothing[0].settled_position, last);
    server.stop().await.expect("stop");
}

/// On DynamoDB the server lowers its batch limit to what one transaction holds, says so, and
/// refuses a larger batch whole; a batch of exactly the limit is stored.
#[tokio::test]
async fn server_info_reports_dynamodb_s_batch_limit() {
    let server = flipbook_server::start(common::dynamodb_config()).await.expect("start on DynamoDB");
    let mut info = ServerInfoClient::new(common::channel(server.addr).await);
    let info = info.get_server_info(v1::GetServerInfoRequest {}).await.expect("server info").into_inner();
    assert_eq!((info.event_backend.as_str(), info.snapshot_backend.as_str()), ("dynamodb", "dynamodb"));
    assert!(info.durable);
    let limits = info.limits.expect("limits");
    assert_eq!((limits.max_events_per_append, limits.max_states_per_append), (64, 24));

    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let append =
        |count| v1::AppendRequest { state_id: "batch".into(), events: events_of(count, 10), ..Default::default() };
    let status = client.append(append(65)).await.expect_err("65 events are refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("64"), "the error names the limit: {status:?}");
    let outcome = client.append(append(64)).await.expect("64 events fit one transaction").into_inner();
    assert_eq!(outcome.last_version, Some(64));

    // Parts: 24 of one event fit one transaction; 25 are refused as the advertised limit says.
    let parts = |count: usize| v1::AppendStatesRequest {
        parts: (0..count)
            .map(|i| v1::AppendRequest {
                state_id: format!("part-{count}-{i}"),
                events: events_of(1, 10),
                ..Default::default()
            })
            .collect(),
    };
    let status = client.append_states(parts(25)).await.expect_err("25 parts are refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let outcome = client.append_states(parts(24)).await.expect("24 parts fit one transaction").into_inner();
    assert_eq!(outcome.parts.len(), 24);
    // Fewer parts and events, but more items than one transaction holds (1 + 56 + 11 x 4).
    let mut big = parts(12);
    big.parts[0].events = events_of(53, 10);
    let status = client.append_states(big).await.expect_err("more than 100 items are refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    server.stop().await.expect("stop");
}

/// A GET over a bare TCP connection: enough HTTP/1.1 for one response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test]
async fn metrics_count_requests_appends_and_conflicts() {
    let mut config = common::test_config(common::fresh_db());
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    let server = flipbook_server::start(config).await.expect("start");
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let append = |expected| v1::AppendRequest {
        state_id: "metered".into(),
        events: events_of(3, 10),
        expected: Some(v1::append_request::Expected::ExactVersion(expected)),
        ..Default::default()
    };
    client.append(append(0)).await.expect("append");
    client.append(append(0)).await.expect_err("conflict");

    let metrics = http_get(server.metrics_addr.expect("metrics address"), "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let line = |prefix: &str| metrics.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    let appended = line("flipbook_events_appended_total").expect("appended counter");
    // Process-wide counters: other tests of this binary may have appended too.
    let count: u64 = appended.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a count");
    assert!(count >= 3, "{appended}");
    assert!(line("flipbook_version_conflicts_total").is_some(), "{metrics}");
    assert!(metrics.contains("flipbook_requests_total{method=\"Append\",code=\"Ok\"}"), "{metrics}");
    assert!(metrics.contains("flipbook_requests_total{method=\"Append\",code=\"Aborted\"}"), "{metrics}");
    assert!(metrics.contains("flipbook_request_duration_seconds_bucket{method=\"Append\""), "{metrics}");
    assert!(metrics.contains("flipbook_backend_reachable{store=\"events\"} 1"), "{metrics}");
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn reads_stream_in_messages_a_default_client_accepts() {
    let server = common::start_server().await;
    // A client with tonic's default 4 MiB decode limit.
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    for _ in 0..4 {
        let request = v1::AppendRequest { state_id: "big".into(), events: events_of(5, 900_000), ..Default::default() };
        client.append(request).await.expect("append 4.5 MB");
    }
    let request = v1::ReadStateRequest { state_id: "big".into(), ..Default::default() };
    let mut stream = client.read_state(request).await.expect("read").into_inner();
    let (mut messages, mut versions) = (0, Vec::new());
    while let Some(message) = stream.message().await.expect("a message under 4 MiB") {
        messages += 1;
        versions.extend(message.events.iter().filter_map(|e| e.version));
    }
    assert_eq!(versions, (1..=20).collect::<Vec<_>>());
    assert!(messages >= 6, "18 MB must come in several messages, came in {messages}");

    // A reader that goes away mid-stream costs the server nothing.
    let request = v1::ReadStateRequest { state_id: "big".into(), ..Default::default() };
    let mut stream = client.read_state(request).await.expect("read").into_inner();
    stream.message().await.expect("first message");
    drop(stream);
    let head = client.get_head(v1::GetHeadRequest { state_id: "big".into() }).await.expect("still serving");
    assert_eq!(head.into_inner().head.expect("head").last_version, Some(20));
}

#[tokio::test]
async fn graceful_shutdown_loses_no_acknowledged_append() {
    let db = common::fresh_db();
    let server = flipbook_server::start(common::test_config(db.clone())).await.expect("start");
    let client = EventStoreClient::new(common::channel(server.addr).await);
    let mut appends = Vec::new();
    for n in 0..64 {
        let mut client = client.clone();
        appends.push(tokio::spawn(async move {
            let request = v1::AppendRequest {
                state_id: format!("shutdown-{}", n % 4),
                events: events_of(2, 100),
                ..Default::default()
            };
            client.append(request).await
        }));
    }
    // Stop while those are on their way or in flight.
    tokio::time::sleep(Duration::from_millis(5)).await;
    tokio::time::timeout(Duration::from_secs(30), server.stop()).await.expect("stops within the grace").expect("stop");

    let mut acknowledged = 0;
    for append in appends {
        match append.await.expect("task") {
            Ok(_) => acknowledged += 2,
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        }
    }
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(&SqliteConfig::new(&db)).await.expect("reopen"));
    let mut stored = 0;
    for n in 0..4 {
        stored += read::collect_state(Arc::clone(&store), StateQuery::all(format!("shutdown-{n}")))
            .await
            .expect("read")
            .len();
    }
    assert_eq!(stored, acknowledged, "every acknowledged append is stored, and nothing else");
}

/// A conflict's `actual_version` is the state's version now; a state exists from its first event
/// on, so "0" is what a state with no events (one that does not exist) answers, as the proto's
/// error table says.
#[tokio::test]
async fn a_conflict_names_the_actual_version_0_when_the_state_does_not_exist() {
    use tonic_types::StatusExt;
    let server = common::start_server().await;
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let append = |expected| v1::AppendRequest {
        state_id: "nobody-yet".into(),
        events: events_of(1, 10),
        expected: Some(expected),
        ..Default::default()
    };
    let actual = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
        let info = status.get_error_details().error_info().cloned().expect("an ErrorInfo");
        assert_eq!((info.reason.as_str(), info.metadata["state_id"].as_str()), ("VERSION_CONFLICT", "nobody-yet"));
        info.metadata["actual_version"].clone()
    };
    use v1::append_request::Expected;
    assert_eq!(actual(client.append(append(Expected::ExactVersion(3))).await.expect_err("conflict")), "0");
    client.append(append(Expected::NoState(()))).await.expect("the first event");
    assert_eq!(actual(client.append(append(Expected::ExactVersion(3))).await.expect_err("conflict")), "1");
    assert_eq!(actual(client.append(append(Expected::NoState(()))).await.expect_err("conflict")), "1");
}

/// Every service decodes requests up to the advertised `max_request_bytes` (32 MiB by default),
/// not tonic's default of 4 MiB: a subscription filtering by 40,000 names (about 5 MB) is served.
#[tokio::test]
async fn every_service_accepts_requests_up_to_max_request_bytes() {
    use flipbook_proto::v1::event_bus_client::EventBusClient;
    let server = common::start_server().await;
    let channel = common::channel(server.addr).await;
    let info = ServerInfoClient::new(channel.clone()).get_server_info(v1::GetServerInfoRequest {}).await;
    let max = info.expect("server info").into_inner().limits.expect("limits").max_request_bytes;
    let names: Vec<String> = (0..40_000).map(|n| format!("{n:0>120}")).collect();
    let request = v1::SubscribeRequest { names, ..Default::default() };
    let size = prost::Message::encoded_len(&request);
    assert!(size > 4 * 1024 * 1024 && (size as u64) < max, "{size} bytes");
    let mut bus = EventBusClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    let mut stream = bus.subscribe(request).await.expect("the subscription is served").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.expect("a message");
    assert!(first.expect("no error").is_some(), "a first message (a checkpoint)");
}

/// The largest snapshot a default server takes comes back to a gRPC client with default
/// settings (4 MiB per message), as any language's generated client has.
#[tokio::test]
async fn a_default_grpc_client_reads_back_the_largest_snapshot() {
    use flipbook_proto::v1::snapshot_store_client::SnapshotStoreClient;
    let server = common::start_server().await;
    let channel = common::channel(server.addr).await;
    let info = ServerInfoClient::new(channel.clone()).get_server_info(v1::GetServerInfoRequest {}).await;
    let max = info.expect("server info").into_inner().limits.expect("limits").max_snapshot_bytes;
    let mut snapshots = SnapshotStoreClient::new(channel);
    let snapshot = v1::Snapshot {
        state_id: "s".repeat(256),
        version: 7,
        reducer_revision: "r".repeat(128),
        payload: vec![b'x'; usize::try_from(max).expect("fits")],
        content_type: "c".repeat(128),
        ..Default::default()
    };
    snapshots.put_snapshot(v1::PutSnapshotRequest { snapshot: Some(snapshot) }).await.expect("the largest is taken");
    let get =
        v1::GetSnapshotRequest { state_id: "s".repeat(256), reducer_revision: "r".repeat(128), max_version: None };
    let found = snapshots.get_snapshot(get).await.expect("and read back").into_inner().snapshot.expect("a snapshot");
    assert_eq!(found.payload.len() as u64, max);
}
