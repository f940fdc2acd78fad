//! PostgreSQL goes away under a running server: calls answer UNAVAILABLE (retryable) within the
//! connection timeout instead of hanging, the server stays up, and it serves again once the
//! database is back, without a restart. Its own test binary, so stopping the database does not
//! disturb other tests (cargo runs test binaries one at a time).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::{self, append_request::Expected};
use tonic::Code;

/// Runs `$FLIPBOOK_PG_CTL <action>` (set by scripts/services.sh).
fn pg_ctl(action: &str) {
    let ctl = std::env::var("FLIPBOOK_PG_CTL")
        .expect("FLIPBOOK_PG_CTL must be a pg_ctl command for the test database (scripts/test sets it)");
    let status = Command::new("sh").arg("-c").arg(format!("{ctl} -m fast {action}")).status().expect("run pg_ctl");
    assert!(status.success(), "pg_ctl {action}: {status}");
}

/// Starts the database again however the test ends, so later tests find it running.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let ctl = std::env::var("FLIPBOOK_PG_CTL").unwrap_or_default();
        let _ = Command::new("sh").arg("-c").arg(format!("{ctl} status >/dev/null || {ctl} start")).status();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_unavailable_then_recovers_without_a_restart() {
    let mut config = common::postgres_config();
    config.events.postgres.acquire_timeout = Duration::from_secs(2);
    let server = flipbook_server::start(config).await.expect("start");
    let mut client = EventStoreClient::new(common::channel(server.addr).await);
    let state = format!("outage-{}", uuid::Uuid::new_v4().simple());
    client.append(append(&state, 0)).await.expect("append while the database is up");

    let _restart = Restart;
    pg_ctl("stop");
    for call in ["append", "head", "read"] {
        let started = Instant::now();
        let status = match call {
            "append" => client.append(append(&state, 1)).await.map(drop),
            "head" => client.get_head(v1::GetHeadRequest { state_id: state.clone() }).await.map(drop),
            _ => {
                match client.read_state(v1::ReadStateRequest { state_id: state.clone(), ..Default::default() }).await {
                    Ok(response) => response.into_inner().message().await.map(drop),
                    Err(status) => Err(status),
                }
            }
        }
        .expect_err("the database is down");
        assert_eq!(status.code(), Code::Unavailable, "{call}: {status:?}");
        assert!(started.elapsed() < Duration::from_secs(15), "{call} took {:?}", started.elapsed());
    }

    pg_ctl("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        match client.append(append(&state, 1)).await {
            Ok(outcome) => break outcome.into_inner(),
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("the server did not recover: {status:?}"),
        }
    };
    assert_eq!(outcome.last_version, Some(2), "nothing was stored while the database was down");
    server.stop().await.expect("stop");
}
