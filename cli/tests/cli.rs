//! The command-line client as a user runs it: the real `flipbook` binary against a server in
//! this process, and embedded over a SQLite file.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use flipbook_server::Config;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Where the commands go: `--endpoint` or `--embedded`.
#[derive(Clone, Debug)]
enum Target {
    Server(String),
    Embedded(PathBuf),
}

impl Target {
    fn args(&self) -> Vec<String> {
        match self {
            Self::Server(endpoint) => vec!["--endpoint".into(), endpoint.clone()],
            Self::Embedded(path) => vec!["--embedded".into(), path.display().to_string()],
        }
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    }

    /// The `{"error": {...}}` a --json command writes to stderr.
    fn error(&self) -> Value {
        let error: Value = serde_json::from_str(self.stderr.trim()).expect("a JSON error");
        error["error"].clone()
    }
}

async fn flipbook(target: &Target, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flipbook"))
        .args(args)
        .args(target.args())
        .env_remove("FLIPBOOK_ENDPOINT")
        .env_remove("FLIPBOOK_TOKEN")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run flipbook");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).await.expect("write stdin");
    }
    let output = child.wait_with_output().await.expect("flipbook ends");
    Run {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

async fn server_with(config: impl FnOnce(&mut Config)) -> (flipbook_server::Running, Target) {
    let mut settings = Config::local(common::fresh_db());
    config(&mut settings);
    let server = flipbook_server::start(settings).await.expect("start the server");
    let target = Target::Server(format!("http://{}", server.addr));
    (server, target)
}

fn embedded() -> Target {
    Target::Embedded(common::fresh_db())
}

/// A version-neutral event whose payload is labelled JSON but is not, sent over gRPC as any
/// client may (the store never parses payloads).
async fn append_mislabelled(server: &flipbook_server::Running, state_id: &str, payload: &[u8]) {
    use flipbook_proto::v1::{self, event_store_client::EventStoreClient};
    let mut client = EventStoreClient::connect(format!("http://{}", server.addr)).await.expect("connect");
    let event = v1::ProposedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        name: "Seen".into(),
        payload: payload.to_vec(),
        content_type: "application/json".into(),
        ..Default::default()
    };
    let request = v1::AppendRequest {
        state_id: state_id.into(),
        events: vec![event],
        version_neutral: true,
        ..Default::default()
    };
    client.append(request).await.expect("the server stores what it is sent");
}

/// An export without the store's own clock, which an import does not keep.
fn without_recorded_at(mut events: Vec<Value>) -> Vec<Value> {
    for event in &mut events {
        event.as_object_mut().expect("an object").remove("recorded_at_nanos");
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn append_then_read_and_head_over_a_server_and_embedded() {
    let (_server, remote) = server_with(|_| {}).await;
    for target in [remote, embedded()] {
        let appended = flipbook(&target, &["append", "acct", "Deposited", r#"{"amount": 5}"#], None).await.ok();
        assert!(appended.stdout.contains("last_version: 1"), "{appended:?}");
        let appended =
            flipbook(&target, &["append", "acct", "Withdrawn", "--json", "--expect", "1"], Some(b"{\"amount\":2}"))
                .await
                .ok()
                .json_lines();
        assert_eq!(appended[0]["last_version"], 2);
        assert_eq!(appended[0]["global_positions"].as_array().map(Vec::len), Some(1));

        let read = flipbook(&target, &["read", "acct"], None).await.ok();
        assert_eq!(read.stdout, "1 Deposited {\"amount\": 5}\n2 Withdrawn {\"amount\":2}\n");
        let backward = flipbook(&target, &["read", "acct", "--backward", "--limit", "1"], None).await.ok();
        assert_eq!(backward.stdout, "2 Withdrawn {\"amount\":2}\n");

        let events =
            flipbook(&target, &["read", "acct", "--json", "--names", "Withdrawn"], None).await.ok().json_lines();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["version"], 2);
        assert_eq!(events[0]["name"], "Withdrawn");
        assert_eq!(events[0]["payload"], serde_json::json!({ "amount": 2 }));
        assert_eq!(events[0]["event_id"], appended[0]["event_id"]);

        let head = flipbook(&target, &["head", "acct"], None).await.ok();
        assert!(head.stdout.contains("last_version: 2\n") && head.stdout.contains("kind: versioned\n"), "{head:?}");
        let head = flipbook(&target, &["head", "acct", "--json"], None).await.ok().json_lines();
        assert_eq!(head[0]["event_count"], 2);
        assert_eq!(head[0]["last_version"], 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn append_states_commits_all_or_nothing_then_the_log_shows_it_newest_first() {
    let (_server, remote) = server_with(|_| {}).await;
    for target in [remote, embedded()] {
        flipbook(&target, &["append", "from", "Opened", "{}"], None).await.ok();
        let transfer = concat!(
            r#"{"state_id": "from", "expect": 1, "events": [{"name": "Sent", "payload": {"amount": 5}}]}"#,
            "\n",
            r#"{"state_id": "to", "expect": "no-state", "events": [{"name": "Received", "payload": {"amount": 5}}]}"#,
            "\n"
        );
        let parts = flipbook(&target, &["append-states", "--json"], Some(transfer.as_bytes())).await.ok().json_lines();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0]["state_id"].as_str(), parts[0]["last_version"].as_u64()), (Some("from"), Some(2)));
        assert_eq!((parts[1]["state_id"].as_str(), parts[1]["last_version"].as_u64()), (Some("to"), Some(1)));
        let (sent, received) = (&parts[0]["global_positions"][0], &parts[1]["global_positions"][0]);
        assert_eq!(received.as_u64(), sent.as_u64().map(|p| p + 1), "contiguous, in part order");

        // The same transfer again conflicts on `from`, and `to` gets nothing either.
        let again = flipbook(&target, &["append-states", "--json"], Some(transfer.as_bytes())).await;
        assert_eq!(again.code, 4, "{again:?}");
        assert_eq!(
            (again.error()["state_id"].as_str(), again.error()["actual_version"].as_u64()),
            (Some("from"), Some(2))
        );
        let to = flipbook(&target, &["head", "to", "--json"], None).await.ok().json_lines();
        assert_eq!(to[0]["event_count"], 1);

        let bad = r#"{"state_id": "to", "events": [{"name": "Received", "payload": {oops}}]}"#;
        let refused = flipbook(&target, &["append-states", "--json"], Some(bad.as_bytes())).await;
        assert_eq!((refused.code, refused.error()["field"].as_str()), (2, Some("line 1: part")), "{refused:?}");

        let head = flipbook(&target, &["log-head", "--json"], None).await.ok().json_lines();
        assert_eq!(head[0]["event_count"], 3);
        assert_eq!(head[0]["settled_position"], *received);
        let newest = ["export", "--backward", "--limit", "2"];
        let newest = flipbook(&target, &newest, None).await.ok().json_lines();
        let names: Vec<_> = newest.iter().map(|e| e["name"].as_str().unwrap_or_default()).collect();
        assert_eq!(names, ["Received", "Sent"]);
        let until = format!("{}", sent.as_u64().unwrap_or_default());
        let upto = flipbook(&target, &["export", "--until", &until], None).await.ok().json_lines();
        assert_eq!(upto.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_exit_with_their_codes_and_name_what_failed() {
    let (_server, remote) = server_with(|_| {}).await;
    for target in [remote, embedded()] {
        flipbook(&target, &["append", "acct", "Opened", "{}"], None).await.ok();

        let conflict =
            flipbook(&target, &["append", "acct", "Opened", "{}", "--expect", "no-state", "--json"], None).await;
        assert_eq!(conflict.code, 4, "{conflict:?}");
        assert_eq!(conflict.error()["code"], "VERSION_CONFLICT");
        assert_eq!(conflict.error()["actual_version"], 1);

        let long_id = "x".repeat(300);
        let invalid = flipbook(&target, &["head", &long_id, "--json"], None).await;
        assert_eq!(invalid.code, 2, "{invalid:?}");
        assert_eq!(invalid.error()["code"], "INVALID_ARGUMENT");
        assert_eq!(invalid.error()["field"], "state_id");

        let unknown = flipbook(&target, &["head", "nobody"], None).await;
        assert_eq!(unknown.code, 3, "{unknown:?}");
        assert!(unknown.stderr.starts_with("error: not found"), "{unknown:?}");

        let usage = flipbook(&target, &["append", "acct", "Opened", "{}", "--expect", "soon"], None).await;
        assert_eq!(usage.code, 2, "{usage:?}");

        // A payload labelled JSON (the default) that is not: refused before it is sent.
        let not_json = flipbook(&target, &["append", "acct", "Noted", "{amount: 5}", "--json"], None).await;
        assert_eq!(not_json.code, 2, "{not_json:?}");
        assert_eq!(not_json.error()["field"], "payload");
        let labelled = ["append", "acct", "Noted", "{amount: 5}", "--content-type", "text/plain", "--json"];
        assert_eq!(flipbook(&target, &labelled, None).await.ok().json_lines()[0]["last_version"], 2, "stored as text");
        let snapshot = ["snapshot", "put", "acct", "rev-1", "1", "not json"];
        assert_eq!(flipbook(&target, &snapshot, None).await.code, 2);
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let nowhere = Target::Server(format!("http://127.0.0.1:{port}"));
    let unreachable = flipbook(&nowhere, &["info", "--json"], None).await;
    assert_eq!(unreachable.code, 5, "{unreachable:?}");
    assert_eq!(unreachable.error()["code"], "UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_a_token_needs_it() {
    let (_server, target) = server_with(|config| config.auth.token = Some("s3cret".into())).await;
    let refused = flipbook(&target, &["info"], None).await;
    assert_eq!(refused.code, 6, "{refused:?}");
    flipbook(&target, &["info", "--token", "s3cret"], None).await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_put_get_and_delete() {
    let (_server, remote) = server_with(|_| {}).await;
    for target in [remote, embedded()] {
        flipbook(&target, &["snapshot", "put", "acct", "r1", "3", r#"{"balance":3}"#], None).await.ok();
        flipbook(&target, &["snapshot", "put", "acct", "r1", "7", "-"], Some(br#"{"balance":7}"#)).await.ok();

        let newest = flipbook(&target, &["snapshot", "get", "acct", "r1", "--json"], None).await.ok().json_lines();
        assert_eq!(newest[0]["version"], 7);
        assert_eq!(newest[0]["payload"], serde_json::json!({ "balance": 7 }));
        let older = flipbook(&target, &["snapshot", "get", "acct", "r1", "--max-version", "5"], None).await.ok();
        assert!(older.stdout.contains("version: 3\n"), "{older:?}");
        let other = flipbook(&target, &["snapshot", "get", "acct", "r2"], None).await;
        assert_eq!(other.code, 3, "{other:?}");

        let deleted = flipbook(&target, &["snapshot", "delete", "acct", "--json"], None).await.ok().json_lines();
        assert_eq!(deleted[0]["deleted"], 2);
        let gone = flipbook(&target, &["snapshot", "get", "acct", "r1"], None).await;
        assert_eq!(gone.code, 3, "{gone:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_import_keeps_the_events_and_importing_again_changes_nothing() {
    let (server, source) = server_with(|_| {}).await;
    let appends: [&[&str]; 7] = [
        &[
            "append",
            "acct-1",
            "Opened",
            r#"{ "owner": "ann", "id": 1 }"#,
            "--metadata",
            "user=ann",
            "--timestamp-nanos",
            "42",
        ],
        &["append", "log", "Seen", "\"first\"", "--neutral"],
        &["append", "acct-1", "Noted", "line one\nline two", "--content-type", "text/plain"],
        &["append", "acct-1", "Deposited", r#"{"amount":5}"#],
        &["append", "acct-2", "Opened", "{}"],
        &[], // sixth: a payload labelled JSON that is not, which the CLI refuses but others may send
        &["append", "acct-1", "Deposited", r#"{"amount":6}"#],
    ];
    for args in appends {
        if args.is_empty() {
            append_mislabelled(&server, "log", b"not json").await;
        } else {
            flipbook(&source, args, None).await.ok();
        }
    }
    let exported = flipbook(&source, &["export"], None).await.ok();
    let events = exported.json_lines();
    assert_eq!(events.len(), 7);
    assert_eq!(events[1].get("version"), None, "version-neutral events carry none");
    assert_eq!(events[0]["payload"], serde_json::json!({ "owner": "ann", "id": 1 }));
    assert!(events[2]["payload_base64"].is_string(), "{}", events[2]);
    assert!(events[5]["payload_base64"].is_string(), "not JSON: {}", events[5]);
    let file = common::fresh_db().with_file_name("export.jsonl");
    std::fs::write(&file, &exported.stdout).expect("write the export");

    // Into an embedded file; and into a server taking two events per append, from stdin.
    let (_small, small_server) = server_with(|config| config.limits.max_events_per_append = 2).await;
    let into = [(embedded(), false), (small_server, true)];
    let path = file.to_str().expect("a UTF-8 path");
    for (target, from_stdin) in into {
        let (args, stdin): (&[&str], _) = if from_stdin {
            (&["import", "--json", "-"], Some(exported.stdout.as_bytes()))
        } else {
            (&["import", "--json", path], None)
        };
        let imported = flipbook(&target, args, stdin).await.ok().json_lines();
        assert_eq!(imported[0]["imported"], 7);
        let copy = flipbook(&target, &["export"], None).await.ok();
        assert_eq!(without_recorded_at(copy.json_lines()), without_recorded_at(events.clone()));

        flipbook(&target, args, stdin).await.ok();
        let again = flipbook(&target, &["export"], None).await.ok();
        assert_eq!(again.stdout, copy.stdout, "a second import changes nothing");
        let head = flipbook(&target, &["head", "acct-1", "--json"], None).await.ok().json_lines();
        assert_eq!(head[0]["last_version"], 4);
    }

    // The same event id with other content is refused, not overwritten.
    let tampered = exported.stdout.replacen("\"amount\":5", "\"amount\":500", 1);
    let refused = flipbook(&source, &["import", "--json"], Some(tampered.as_bytes())).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert_eq!(refused.error()["code"], "DUPLICATE_EVENT");
}

/// `tail` follows one state (not the states its id prefixes) from the beginning: the stored
/// events, then one appended while it runs (over a server, and from another process on the
/// same embedded file); `--checkpoints` prints where a tail from now starts.
#[tokio::test(flavor = "multi_thread")]
async fn tail_follows_a_state_then_stops_at_its_limit() {
    let (_server, remote) = server_with(|_| {}).await;
    for target in [remote, embedded()] {
        for (state, name) in [("acct", "Opened"), ("acct-2", "Other"), ("acct", "Deposited")] {
            flipbook(&target, &["append", state, name, "{}"], None).await.ok();
        }
        let following = {
            let target = target.clone();
            tokio::spawn(async move {
                flipbook(&target, &["tail", "--state", "acct", "--from", "beginning", "--limit", "3"], None).await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        flipbook(&target, &["append", "acct", "Withdrawn", "{}"], None).await.ok();
        let tailed = tokio::time::timeout(std::time::Duration::from_secs(30), following)
            .await
            .expect("tail stops at its limit")
            .expect("tail ran")
            .ok()
            .json_lines();
        let names: Vec<&str> = tailed.iter().map(|e| e["name"].as_str().expect("a name")).collect();
        assert_eq!(names, ["Opened", "Deposited", "Withdrawn"], "{target:?}");
        assert!(tailed.iter().all(|e| e["state_id"] == "acct"));
        let positions: Vec<u64> = tailed.iter().map(|e| e["global_position"].as_u64().expect("a position")).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));

        let from_now = {
            let target = target.clone();
            tokio::spawn(async move {
                flipbook(&target, &["tail", "--state", "acct", "--checkpoints", "--limit", "1"], None).await
            })
        };
        // Until the tail has started and seen one (it cannot be known from outside when a
        // tail from now has started).
        for _ in 0..100 {
            flipbook(&target, &["append", "acct", "Closed", "{}"], None).await.ok();
            if from_now.is_finished() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let lines = tokio::time::timeout(std::time::Duration::from_secs(30), from_now)
            .await
            .expect("in time")
            .expect("tail ran")
            .ok()
            .json_lines();
        let start = lines[0]["checkpoint"].as_u64().expect("first, where it starts");
        assert!(start >= positions[2], "from now starts after what was there");
        assert_eq!(lines[1]["name"], "Closed");
        assert!(lines[1]["global_position"].as_u64() > Some(start));
        let invalid = flipbook(&target, &["tail", "--from", "yesterday"], None).await;
        assert_eq!(invalid.code, 2, "{invalid:?}");
    }
}

/// `flipbook health`: 0 while the service is SERVING, 5 when the server does not answer (or the
/// service is not serving), 3 for a service the server does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_for_container_checks() {
    let (server, target) = server_with(|_| {}).await;
    let serving = flipbook(&target, &["health"], None).await.ok();
    assert_eq!(serving.stdout.trim(), "SERVING");
    let liveness = flipbook(&target, &["health", "--service", "", "--json"], None).await.ok().json_lines();
    assert_eq!(liveness[0]["status"], "SERVING");
    assert_eq!(flipbook(&target, &["health", "--service", "flipbook.v1.Nothing"], None).await.code, 3);
    server.stop().await.expect("stop");
    let gone = flipbook(&target, &["health"], None).await;
    assert_eq!(gone.code, 5, "{gone:?}");
}
