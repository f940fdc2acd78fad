//! A backend goes away under a running server: within a probe's time the health service's
//! readiness says NOT_SERVING (liveness stays SERVING), calls answer UNAVAILABLE (retryable) at
//! once instead of each waiting out the backend's timeout, the server stays up, and it serves
//! again once the backend is back, without a restart. A test binary of its own, so stopping a
//! backend does not disturb other tests (cargo runs test binaries one at a time); each test
//! stops only its own.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::{self, append_request::Expected};
use flipbook_server::Config;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Shell commands that stop and start a backend (scripts/services.sh exports them).
struct Backend {
    stop: String,
    start: String,
}

impl Backend {
    fn from_env(stop: &str, start: &str) -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (scripts/test starts the services)"))
        };
        Self { stop: var(stop), start: var(start) }
    }

    fn run(command: &str) {
        let status = Command::new("sh").arg("-c").arg(command).status().expect("run a shell");
        assert!(status.success(), "{command}: {status}");
    }
}

/// Starts the backend again however the test ends, so later tests find it running.
struct Restart<'a>(&'a Backend);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(&self.0.start).status();
    }
}

fn append(state: &str, expected: u64) -> v1::AppendRequest {
    v1::AppendRequest {
        state_id: state.to_owned(),
        events: vec![v1::ProposedEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            name: "Deposited".into(),
            payload: b"{}".to_vec(),
            ..Default::default()
        }],
        expected: Some(Expected::ExactVersion(expected)),
        ..Default::default()
    }
}

/// The health service's status for `service` ("" is the server as a whole: liveness).
async fn health(addr: std::net::SocketAddr, service: &str) -> ServingStatus {
    let mut health = HealthClient::new(common::channel(addr).await);
    let request = HealthCheckRequest { service: service.to_owned() };
    let status = health.check(request).await.expect("the health service answers").into_inner().status;
    ServingStatus::try_from(status).expect("a known status")
}

/// Waits until the readiness of the event store's service is `wanted` (the probes run twice a
/// second; a probe gives up after one).
async fn until_ready_is(addr: std::net::SocketAddr, wanted: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(addr, "flipbook.v1.EventStore").await != wanted {
        assert!(Instant::now() < deadline, "readiness never became {wanted:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `snapshots_there`: whether the snapshot store is on the stopped backend too (its readiness
/// follows its own store's probes).
async fn outage_answers_unavailable_then_recovers(config: Config, backend: Backend, snapshots_there: bool) {
    let server = flipbook_server::start(config).await.expect("start");
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let state = format!("outage-{}", uuid::Uuid::new_v4().simple());
    client.append(append(&state, 0)).await.expect("append while the backend is up");
    assert_eq!(health(server.addr, "flipbook.v1.EventStore").await, ServingStatus::Serving);

    let restart = Restart(&backend);
    Backend::run(&backend.stop);
    until_ready_is(server.addr, ServingStatus::NotServing).await;
    assert_eq!(health(server.addr, "").await, ServingStatus::Serving, "liveness does not follow the backend");
    assert_eq!(health(server.addr, "flipbook.v1.EventBus").await, ServingStatus::NotServing);
    let snapshots = if snapshots_there { ServingStatus::NotServing } else { ServingStatus::Serving };
    assert_eq!(health(server.addr, "flipbook.v1.SnapshotStore").await, snapshots);
    assert_eq!(health(server.addr, "flipbook.v1.ServerInfo").await, ServingStatus::Serving);
    // Refused before it reaches the store: the client re-sends it (same event id) after the
    // outage, as it would one whose answer was lost.
    let lost = append(&state, 1);
    for call in ["append", "head", "read"] {
        let started = Instant::now();
        let status = match call {
            "append" => client.append(lost.clone()).await.map(drop),
            "head" => client.get_head(v1::GetHeadRequest { state_id: state.clone() }).await.map(drop),
            _ => {
                match client.read_state(v1::ReadStateRequest { state_id: state.clone(), ..Default::default() }).await {
                    Ok(response) => response.into_inner().message().await.map(drop),
                    Err(status) => Err(status),
                }
            }
        }
        .expect_err("the backend is down");
        assert_eq!(status.code(), Code::Unavailable, "{call}: {status:?}");
        assert!(status.message().contains("unreachable"), "{call}: {status:?}");
        // At once: the backends' own timeouts are 5 s (a pool's wait for a connection, a
        // command's, an attempt's).
        assert!(started.elapsed() < Duration::from_secs(1), "{call} took {:?}", started.elapsed());
    }

    Backend::run(&backend.start);
    std::mem::forget(restart);
    until_ready_is(server.addr, ServingStatus::Serving).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        match client.append(lost.clone()).await {
            Ok(outcome) => break outcome.into_inner(),
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("the server did not recover: {status:?}"),
        }
    };
    assert_eq!(outcome.last_version, Some(2), "the append refused during the outage is stored once");
    server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage() {
    let config = common::postgres_config();
    let pg_ctl = |action: &str| {
        let ctl = std::env::var("FLIPBOOK_PG_CTL").expect("FLIPBOOK_PG_CTL (scripts/test sets it)");
        format!("{ctl} -m fast {action}")
    };
    let backend = Backend { stop: pg_ctl("stop"), start: pg_ctl("start") };
    outage_answers_unavailable_then_recovers(config, backend, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage() {
    let config = common::redis_config();
    // Snapshots are on the Redis Cluster, which stays up.
    let backend = Backend::from_env("FLIPBOOK_REDIS_STOP", "FLIPBOOK_REDIS_START");
    outage_answers_unavailable_then_recovers(config, backend, false).await;
}

/// moto paused (SIGSTOP): requests are accepted and never answered, so only timeouts end them
/// (three probes in a row without an answer cut the store off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_outage() {
    let config = common::dynamodb_config();
    // The table is made first: moto, still busy with earlier tests' requests, once took long
    // to create one (a CI run failed at start). This test is about an outage, not a slow start.
    flipbook_server::migrate(&config).await.expect("create the table");
    let backend = Backend::from_env("FLIPBOOK_DYNAMODB_STOP", "FLIPBOOK_DYNAMODB_START");
    outage_answers_unavailable_then_recovers(config, backend, true).await;
}

/// Redis restarted between two probes: the first command on each connection it closed fails
/// (broken pipe) while the client reconnects. The store sends it again on the new connection,
/// so neither the next call nor the next probe sees the restart (the conformance suite found
/// it: a snapshot put right after a container restart answered UNAVAILABLE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_between_probes_does_not_reach_callers() {
    let config = common::redis_config();
    let backend = Backend::from_env("FLIPBOOK_REDIS_STOP", "FLIPBOOK_REDIS_START");
    let server = flipbook_server::start(config).await.expect("start");
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let state = format!("restart-{}", uuid::Uuid::new_v4().simple());
    client.append(append(&state, 0)).await.expect("append while Redis is up");

    let restart = Restart(&backend);
    Backend::run(&backend.stop);
    Backend::run(&backend.start);
    std::mem::forget(restart);
    // Serving again (not loading its data) before any probe can notice it was away.
    let url = std::env::var("FLIPBOOK_TEST_REDIS_URL").expect("FLIPBOOK_TEST_REDIS_URL");
    let ping = || Command::new("redis-cli").args(["-u", &url, "ping"]).output().expect("redis-cli").stdout;
    while ping() != b"PONG\n" {
        std::thread::sleep(Duration::from_millis(10));
    }
    for version in 1..4 {
        client.append(append(&state, version)).await.expect("an append right after the restart");
    }
    assert_eq!(health(server.addr, "flipbook.v1.EventStore").await, ServingStatus::Serving);
    server.stop().await.expect("stop");
}
