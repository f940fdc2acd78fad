//! A backend that cannot store: a full disk, Redis at `maxmemory`, a read-only database, a
//! replica. Each is answered with its own reason (STORAGE_FULL, READ_ONLY), never INTERNAL
//! (which says "bug"); nothing of the refused append is stored, reads go on, and the server
//! serves writes again once the operator has fixed it. A test binary of its own: the Redis
//! cases change the shared test Redis for a moment (cargo runs test binaries one at a time),
//! and the disks are tiny tmpfs mounts (the tests run as root, as `.ci/run` does).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use flipbook_proto::status::reason_of;
use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::{self, append_request::Expected};
use flipbook_server::Config;
use tonic::Code;
use tonic::transport::Channel;

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str, owner: Option<&str>) -> Self {
        let dir = tempfile::Builder::new().prefix("flipbook-tmpfs-").tempdir().expect("a directory").keep();
        let mut options = format!("size={size},mode=0700");
        if let Some(owner) = owner {
            let id = |flag| {
                let out = Command::new("id").args([flag, owner]).output().expect("id");
                String::from_utf8(out.stdout).expect("a number").trim().to_owned()
            };
            options += &format!(",uid={},gid={}", id("-u"), id("-g"));
        }
        run("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", dir.to_str().expect("a UTF-8 path")]);
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Events of `size` random bytes each (incompressible: PostgreSQL compresses large values).
fn append(state: &str, count: usize, size: usize) -> v1::AppendRequest {
    let events = (0..count)
        .map(|_| {
            let payload = (0..size / 16).flat_map(|_| uuid::Uuid::new_v4().into_bytes()).collect();
            v1::ProposedEvent {
                event_id: uuid::Uuid::new_v4().to_string(),
                name: "Filled".into(),
                payload,
                ..Default::default()
            }
        })
        .collect();
    v1::AppendRequest { state_id: state.to_owned(), events, expected: Some(Expected::Any(())), ..Default::default() }
}

async fn client(server: &flipbook_server::Running) -> EventStoreClient<Channel> {
    EventStoreClient::new(common::channel(server.addr).await).max_encoding_message_size(64 << 20)
}

async fn event_count(client: &mut EventStoreClient<Channel>, state: &str) -> u64 {
    let head = client.get_head(v1::GetHeadRequest { state_id: state.to_owned() }).await;
    head.expect("reads go on").into_inner().head.expect("a head").event_count
}

/// Appends until the backend refuses; asserts the refusal's code and reason, and that the
/// state holds exactly the appends that were answered OK.
async fn fill_until_refused(client: &mut EventStoreClient<Channel>, state: &str, count: usize, size: usize) {
    let mut stored = 0;
    let status = loop {
        match client.append(append(state, count, size)).await {
            Ok(_) => stored += count as u64,
            Err(status) => break status,
        }
        assert!(stored < 100_000, "the backend never filled up");
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason_of(&status).as_deref(), Some("STORAGE_FULL"), "{status:?}");
    assert_eq!(event_count(client, state).await, stored, "nothing of the refused append is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_storage_full() {
    let disk = Tmpfs::mount("1m", None);
    let server = flipbook_server::start(Config::local(disk.0.join("flipbook.db"))).await.expect("start");
    let mut client = client(&server).await;
    fill_until_refused(&mut client, "full", 4, 64 * 1024).await;
    // Reads go on, and so do writes once there is room again.
    let read = client.read_state(v1::ReadStateRequest { state_id: "full".into(), ..Default::default() }).await;
    read.expect("reads go on").into_inner().message().await.expect("a page");
    run("mount", &["-o", "remount,size=64m", disk.0.to_str().expect("a UTF-8 path")]);
    client.append(append("full", 4, 64 * 1024)).await.expect("room again");
    server.stop().await.expect("stop");
}

/// A database opened on a read-only file system: the server refuses to start, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_read_only_file_system_refuses_to_start_saying_so() {
    let disk = Tmpfs::mount("8m", None);
    let path = disk.0.join("flipbook.db");
    flipbook_server::migrate(&Config::local(path.clone())).await.expect("create the database");
    run("mount", &["-o", "remount,ro", disk.0.to_str().expect("a UTF-8 path")]);
    let error = flipbook_server::start(Config::local(path)).await.expect_err("a read-only file cannot be served");
    let message = format!("{error:#}");
    assert!(message.contains("the backend is read-only"), "{message}");
}

/// A PostgreSQL database whose tables live on a tiny tablespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_on_a_full_disk_answers_storage_full() {
    let disk = Tmpfs::mount("4m", Some("postgres"));
    let (url, database) = common::fresh_postgres_database("flipbook_full").await;
    let tablespace = database.replace("flipbook_full", "flipbook_tiny");
    let location = disk.0.to_str().expect("a UTF-8 path");
    common::postgres_admin(&format!("CREATE TABLESPACE {tablespace} LOCATION '{location}'")).await;
    common::postgres_admin(&format!("ALTER DATABASE {database} SET default_tablespace = {tablespace}")).await;
    let server = flipbook_server::start(postgres_on(&url)).await.expect("start");
    let mut client = client(&server).await;
    fill_until_refused(&mut client, "full", 8, 256 * 1024).await;
    server.stop().await.expect("stop");
    common::postgres_admin(&format!("DROP DATABASE {database} WITH (FORCE)")).await;
    common::postgres_admin(&format!("DROP TABLESPACE {tablespace}")).await;
}

/// A database set read-only under a running server (as a primary demoted to a standby is):
/// appends answer READ_ONLY, reads go on, and appends work again once it is writable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_only_answers_read_only() {
    let (url, database) = common::fresh_postgres_database("flipbook_ro").await;
    let server = flipbook_server::start(postgres_on(&url)).await.expect("start");
    let mut client = client(&server).await;
    client.append(append("ro", 1, 16)).await.expect("writable");

    let read_only = |on: bool| {
        let database = database.clone();
        async move {
            common::postgres_admin(&format!("ALTER DATABASE {database} SET default_transaction_read_only = {on}"))
                .await;
            // The setting applies to new sessions: end the server's, as a failover would.
            let kill = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'");
            common::postgres_admin(&kill).await;
        }
    };
    read_only(true).await;
    let status = until_not_unavailable(|| {
        let mut client = client.clone();
        async move { client.append(append("ro", 1, 16)).await.map(drop) }
    })
    .await
    .expect_err("a read-only database stores nothing");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason_of(&status).as_deref(), Some("READ_ONLY"), "{status:?}");
    assert_eq!(event_count(&mut client, "ro").await, 1);

    read_only(false).await;
    until_not_unavailable(|| {
        let mut client = client.clone();
        async move { client.append(append("ro", 1, 16)).await.map(drop) }
    })
    .await
    .expect("writable again");
    assert_eq!(event_count(&mut client, "ro").await, 2);
    server.stop().await.expect("stop");
    common::postgres_admin(&format!("DROP DATABASE {database} WITH (FORCE)")).await;
}

fn postgres_on(url: &str) -> Config {
    let mut config = common::postgres_config();
    config.events.postgres.url = url.to_owned();
    config
}

/// The call's first answer that is not plain UNAVAILABLE (a connection the backend ended, or
/// READ_ONLY's own retries, pass; READ_ONLY itself is an answer).
async fn until_not_unavailable<F, R>(call: impl Fn() -> F) -> Result<(), tonic::Status>
where
    F: std::future::Future<Output = Result<R, tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Err(status) if reason_of(&status).as_deref() == Some("UNAVAILABLE") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answer => return answer.map(drop),
        }
    }
}

/// Runs a Redis command on the test Redis node.
async fn redis(args: &[&str]) -> redis::Value {
    let client = redis::Client::open(std::env::var("FLIPBOOK_TEST_REDIS_URL").expect("FLIPBOOK_TEST_REDIS_URL"))
        .expect("a Redis URL");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect to Redis");
    let mut command = redis::cmd(args[0]);
    args[1..].iter().for_each(|arg| {
        command.arg(*arg);
    });
    command.query_async(&mut connection).await.unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Sets a Redis setting for the test and puts the old value back however it ends.
struct RedisSetting(&'static str, String);

impl RedisSetting {
    async fn set(name: &'static str, value: &str) -> Self {
        let old = match redis(&["CONFIG", "GET", name]).await {
            redis::Value::Array(pair) => match pair.get(1) {
                Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                other => panic!("CONFIG GET {name}: {other:?}"),
            },
            other => panic!("CONFIG GET {name}: {other:?}"),
        };
        redis(&["CONFIG", "SET", name, value]).await;
        Self(name, old)
    }
}

impl Drop for RedisSetting {
    fn drop(&mut self) {
        let url = std::env::var("FLIPBOOK_TEST_REDIS_URL").expect("FLIPBOOK_TEST_REDIS_URL");
        let client = redis::Client::open(url).expect("a Redis URL");
        let mut connection = client.get_connection().expect("connect to Redis");
        let _: redis::RedisResult<()> = redis::cmd("CONFIG").arg("SET").arg(self.0).arg(&self.1).query(&mut connection);
    }
}

/// The Redis cases change the one test Redis node: one at a time.
static REDIS_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Appends to the test Redis node while `change` holds (a guard that undoes it when dropped):
/// the append is refused with `code` and `expected_reason`, nothing is stored and reads go on;
/// once it is undone, appends work again.
async fn refused_while<G>(change: impl std::future::Future<Output = G>, code: Code, expected_reason: &str) {
    let _node = REDIS_NODE.lock().await;
    let server = flipbook_server::start(common::redis_config()).await.expect("start");
    let mut client = client(&server).await;
    let state = format!("refused-{}", uuid::Uuid::new_v4().simple());
    client.append(append(&state, 1, 16)).await.expect("before the change");
    {
        let _undo = change.await;
        let status = client.append(append(&state, 1, 16)).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert_eq!(reason_of(&status).as_deref(), Some(expected_reason), "{status:?}");
        assert_eq!(event_count(&mut client, &state).await, 1, "reads go on; nothing stored");
    }
    client.append(append(&state, 1, 16)).await.expect("after the change");
    server.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_at_maxmemory_answers_storage_full() {
    let full = async {
        let policy = RedisSetting::set("maxmemory-policy", "noeviction").await;
        (policy, RedisSetting::set("maxmemory", "1").await)
    };
    refused_while(full, Code::ResourceExhausted, "STORAGE_FULL").await;
}

/// A node turned into a replica (of a primary that is not there): READ_ONLY, reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_replica_answers_read_only() {
    struct Primary;
    impl Drop for Primary {
        fn drop(&mut self) {
            let url = std::env::var("FLIPBOOK_TEST_REDIS_URL").expect("FLIPBOOK_TEST_REDIS_URL");
            let mut connection = redis::Client::open(url).expect("a URL").get_connection().expect("connect");
            let _: redis::RedisResult<()> = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut connection);
        }
    }
    let replica = async {
        redis(&["REPLICAOF", "127.0.0.1", "1"]).await;
        Primary
    };
    refused_while(replica, Code::Unavailable, "READ_ONLY").await;
}
