//! A backend goes away under a running server: calls answer UNAVAILABLE (retryable) within the
//! backend's timeout instead of hanging, the server stays up, and it serves again once the
//! backend is back, without a restart. A test binary of its own, so stopping a backend does not
//! disturb other tests (cargo runs test binaries one at a time); each test stops only its own.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::{self, append_request::Expected};
use flipbook_server::Config;
use tonic::Code;

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

async fn outage_answers_unavailable_then_recovers(config: Config, backend: Backend) {
    let server = flipbook_server::start(config).await.expect("start");
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let state = format!("outage-{}", uuid::Uuid::new_v4().simple());
    client.append(append(&state, 0)).await.expect("append while the backend is up");

    let restart = Restart(&backend);
    Backend::run(&backend.stop);
    // Its outcome is unknown: a backend that is paused rather than stopped (moto) may still
    // store it once it continues. The client re-sends it (same event id) after the outage.
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
        assert!(started.elapsed() < Duration::from_secs(15), "{call} took {:?}", started.elapsed());
    }

    Backend::run(&backend.start);
    std::mem::forget(restart);
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
    assert_eq!(outcome.last_version, Some(2), "the append that lost its answer is stored once");
    server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage() {
    let mut config = common::postgres_config();
    config.events.postgres.acquire_timeout = Duration::from_secs(2);
    let pg_ctl = |action: &str| {
        let ctl = std::env::var("FLIPBOOK_PG_CTL").expect("FLIPBOOK_PG_CTL (scripts/test sets it)");
        format!("{ctl} -m fast {action}")
    };
    outage_answers_unavailable_then_recovers(config, Backend { stop: pg_ctl("stop"), start: pg_ctl("start") }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage() {
    let mut config = common::redis_config();
    config.events.redis.response_timeout = Duration::from_secs(2);
    outage_answers_unavailable_then_recovers(config, Backend::from_env("FLIPBOOK_REDIS_STOP", "FLIPBOOK_REDIS_START"))
        .await;
}

/// moto paused (SIGSTOP): requests are accepted and never answered, so only the SDK's timeouts
/// end them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_outage() {
    let mut config = common::dynamodb_config();
    // The table is made first, with the default timeouts: moto, still busy with earlier tests'
    // requests, once took more than the short timeout below to create one (a CI run failed at
    // start). This test is about an outage, not a slow start.
    flipbook_server::migrate(&config).await.expect("create the table");
    config.events.dynamodb.attempt_timeout = Duration::from_secs(2);
    outage_answers_unavailable_then_recovers(
        config,
        Backend::from_env("FLIPBOOK_DYNAMODB_STOP", "FLIPBOOK_DYNAMODB_START"),
    )
    .await;
}
