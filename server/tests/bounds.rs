//! Versions and positions are bounded at the edge, on every backend: above 2^63 - 1 a request is
//! INVALID_ARGUMENT naming the field and stores nothing (before, a huge `exact_version` panicked
//! a debug server on Redis, and SQLite and PostgreSQL clamped snapshot versions, so two
//! snapshots overwrote each other). At the bound itself requests are served as usual.

mod common;

use common::assert_invalid;
use flipbook_proto::v1::event_bus_client::EventBusClient;
use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::snapshot_store_client::SnapshotStoreClient;
use flipbook_proto::v1::{self, append_request::Expected, subscribe_request::Start};
use flipbook_server::config::Config;
use tonic::Code;

const MAX: u64 = (1 << 63) - 1;

async fn versions_above_the_bound_are_refused(config: Config) {
    let server = flipbook_server::start(config).await.expect("start");
    let channel = common::channel(server.addr).await;
    let mut events = EventStoreClient::new(channel.clone());
    let mut snapshots = SnapshotStoreClient::new(channel.clone());
    let mut bus = EventBusClient::new(channel);
    let state = format!("bounds-{}", uuid::Uuid::new_v4().simple());
    let event = |version| v1::ProposedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        name: "Deposited".into(),
        payload: b"{}".to_vec(),
        version,
        ..Default::default()
    };
    let append = |expected, version| v1::AppendRequest {
        state_id: state.clone(),
        events: vec![event(version)],
        expected,
        ..Default::default()
    };
    for huge in [MAX + 1, u64::MAX] {
        assert_invalid(events.append(append(Some(Expected::ExactVersion(huge)), None)).await, "exact_version");
        assert_invalid(events.append(append(None, Some(huge))).await, "events[0].version");
        let read = v1::ReadStateRequest { state_id: state.clone(), ..Default::default() };
        assert_invalid(
            events.read_state(v1::ReadStateRequest { min_version: Some(huge), ..read.clone() }).await,
            "min_version",
        );
        assert_invalid(
            events.read_state(v1::ReadStateRequest { max_version: Some(huge), ..read }).await,
            "max_version",
        );
        let all = v1::ReadAllRequest { after_position: huge, state_id_prefix: state.clone(), ..Default::default() };
        assert_invalid(events.read_all(all).await, "after_position");
        let subscribe = v1::SubscribeRequest { start: Some(Start::AfterPosition(huge)), ..Default::default() };
        assert_invalid(bus.subscribe(subscribe).await, "after_position");
        let snapshot = v1::Snapshot {
            state_id: state.clone(),
            version: huge,
            reducer_revision: "r1".into(),
            payload: b"{}".to_vec(),
            ..Default::default()
        };
        assert_invalid(
            snapshots.put_snapshot(v1::PutSnapshotRequest { snapshot: Some(snapshot) }).await,
            "snapshot.version",
        );
        let get =
            v1::GetSnapshotRequest { state_id: state.clone(), reducer_revision: "r1".into(), max_version: Some(huge) };
        assert_invalid(snapshots.get_snapshot(get).await, "max_version");
    }
    let head = events.get_head(v1::GetHeadRequest { state_id: state.clone() }).await;
    assert_eq!(head.expect_err("nothing was stored").code(), Code::NotFound);

    // At the bound: a conflict, not a panic; a snapshot kept at exactly that version.
    let status = events.append(append(Some(Expected::ExactVersion(MAX)), None)).await.expect_err("a conflict");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    for version in [MAX - 1, MAX] {
        let snapshot = v1::Snapshot {
            state_id: state.clone(),
            version,
            reducer_revision: "r1".into(),
            payload: version.to_string().into_bytes(),
            ..Default::default()
        };
        snapshots.put_snapshot(v1::PutSnapshotRequest { snapshot: Some(snapshot) }).await.expect("stored");
    }
    for (max_version, expected) in [(None, MAX), (Some(MAX - 1), MAX - 1)] {
        let get = v1::GetSnapshotRequest { state_id: state.clone(), reducer_revision: "r1".into(), max_version };
        let found = snapshots.get_snapshot(get).await.expect("found").into_inner().snapshot.expect("a snapshot");
        assert_eq!((found.version, found.payload), (expected, expected.to_string().into_bytes()), "not clamped");
    }
    let outcome = events.append(append(Some(Expected::NoState(())), None)).await.expect("still serving").into_inner();
    assert_eq!(outcome.last_version, Some(1));
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn on_sqlite() {
    versions_above_the_bound_are_refused(common::test_config(common::fresh_db())).await;
}

#[tokio::test]
async fn on_postgres() {
    versions_above_the_bound_are_refused(common::postgres_config()).await;
}

#[tokio::test]
async fn on_redis() {
    versions_above_the_bound_are_refused(common::redis_config()).await;
}

#[tokio::test]
async fn on_dynamodb() {
    versions_above_the_bound_are_refused(common::dynamodb_config()).await;
}
