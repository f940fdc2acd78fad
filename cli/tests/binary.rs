//! The `flipbook` binary as an operator runs it: `serve` with no set-up, `migrate`, and
//! acknowledged appends that survive a killed server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use flipbook_model::{AppendRequest, Expectation, ProposedEvent, StateQuery};
use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::{self};
use flipbook_storage::sqlite::{SqliteConfig, SqliteEventStore};
use flipbook_storage::{EventStore, read};
use tokio::io::AsyncBufReadExt;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// `flipbook serve` on port 0 over `db`, logging in `format` to a pipe: the child, and the log
/// line that says it serves (with the bound address: no port race with the other tests).
async fn serve(format: &str, db: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flipbook"))
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--log-format", format])
        .arg("--sqlite-path")
        .arg(db)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn flipbook");
    let mut log = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = log.next_line().await.expect("a log line") {
            if line.contains("flipbook serving") {
                return line;
            }
        }
        panic!("the server exited before serving");
    })
    .await
    .expect("the server did not start");
    (child, line)
}

#[tokio::test]
async fn acknowledged_appends_survive_a_killed_server() {
    let db = common::fresh_db();
    let (mut child, line) = serve("json", &db).await;
    let addr = line.split("\"addr\":\"").nth(1).and_then(|rest| rest.split('"').next()).expect("the address");
    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    let mut client = EventStoreClient::new(channel);
    for n in 0..20u64 {
        let request = v1::AppendRequest {
            state_id: "crash".into(),
            events: vec![v1::ProposedEvent {
                event_id: uuid::Uuid::new_v4().to_string(),
                name: "Deposited".into(),
                payload: vec![b'7'; 32],
                ..Default::default()
            }],
            expected: Some(v1::append_request::Expected::ExactVersion(n)),
            ..Default::default()
        };
        client.append(request).await.expect("append");
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("reaped");

    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(&SqliteConfig::new(&db)).await.expect("reopen"));
    let stored = read::collect_state(Arc::clone(&store), StateQuery::all("crash")).await.expect("read");
    assert_eq!(stored.iter().filter_map(|e| e.version).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    // And the state goes on where it was.
    let next = AppendRequest::new("crash", Expectation::Exactly(20), vec![ProposedEvent::new("After", b"{}".to_vec())]);
    assert_eq!(store.append(next).await.expect("append after restart").last_version, Some(21));
}

/// The README's command: `flipbook serve` with no flags and no set-up serves on 127.0.0.1:7420
/// from ./flipbook.db, answers health checks, and exits cleanly on SIGTERM.
#[tokio::test]
async fn flipbook_serve_with_defaults_needs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flipbook"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("FLIPBOOK_LISTEN")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn flipbook");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], flipbook_server::config::DEFAULT_PORT));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let channel = loop {
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await {
            break channel;
        }
        assert!(tokio::time::Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    let status = HealthClient::new(channel).check(request).await.expect("health").into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);
    assert!(dir.path().join("flipbook.db").exists(), "the embedded default store is ./flipbook.db");

    let pid = child.id().expect("a pid").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits").expect("status");
    assert!(exit.success(), "SIGTERM is a clean shutdown: {exit:?}");
}

/// `flipbook migrate` creates the schemas and exits; a server started after finds them.
#[tokio::test]
async fn migrate_creates_the_schemas_and_exits() {
    let db = common::fresh_db();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flipbook"))
        .args(["migrate", "--sqlite-path"])
        .arg(&db)
        .args(["--metrics-listen", "off"])
        .output()
        .await
        .expect("run flipbook migrate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("events on sqlite, snapshots on sqlite"));
    let store = SqliteEventStore::open(&SqliteConfig::new(&db)).await.expect("open");
    assert!(store.head("nothing").await.expect("the tables exist").is_none());

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flipbook"))
        .args(["migrate", "--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url"])
        .arg(common::postgres_url())
        .output()
        .await
        .expect("run flipbook migrate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("events on postgres, snapshots on postgres"));

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flipbook"))
        .args(["migrate", "--event-store", "postgres", "--postgres-url", "postgres://nobody@127.0.0.1:1/none"])
        .output()
        .await
        .expect("run flipbook migrate");
    assert!(!output.status.success(), "an unreachable database fails the migration");
}

/// Human logs to a pipe (a log file, a collector) carry no colour codes.
#[tokio::test]
async fn logs_to_a_pipe_have_no_colour_codes() {
    let (_child, line) = serve("human", &common::fresh_db()).await;
    assert!(line.contains("INFO"), "{line}");
    assert!(!line.contains('\u{1b}'), "no escape codes: {line:?}");
}
