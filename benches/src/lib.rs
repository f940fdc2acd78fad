//! Shared pieces of Flipbook's benchmarks: a server in a child process (so its memory can be
//! measured alone), rate measurement, and the report that prints each Flipbook figure next to
//! its baseline measured in the same run, with the ratio and the target.

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flipbook_proto::v1::{self, event_store_client::EventStoreClient};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

pub mod floors;

/// A rate, in operations (or events) per second, over `count` operations.
pub async fn rate<F, Fut>(count: u64, run: F) -> anyhow::Result<f64>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    run().await?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The command line every benchmark takes: `--smoke` (tiny sizes, proves it runs), `--only
/// PART` (one of its parts), `--help`, and the options a benchmark adds (`--url URL`). Anything
/// else is refused before the benchmark starts, so a mistyped option never runs it all.
#[derive(Debug)]
pub struct Args(Vec<String>);

impl Args {
    /// The process's arguments, checked: `parts` are what `--only` may name, `options` the
    /// benchmark's own (`"--verbose"`, or `"--url URL"` for one that takes a value). Prints
    /// the usage and exits on `--help` (0) or a bad command line (2).
    pub fn from_env(parts: &[&str], options: &[&str]) -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match Self::check(&args, parts, options) {
            Ok(()) => Self(args),
            Err(problem) => {
                let name = std::env::args().next().unwrap_or_default();
                let name = Path::new(&name).file_name().map_or(name.clone(), |n| n.to_string_lossy().into_owned());
                let usage = format!(
                    "usage: {name} [--smoke] [--only {}]{}",
                    parts.join("|"),
                    options.iter().map(|o| format!(" [{o}]")).collect::<String>()
                );
                if problem.is_empty() {
                    println!("{usage}");
                    std::process::exit(0);
                }
                eprintln!("{problem}\n{usage}");
                std::process::exit(2);
            }
        }
    }

    /// `Err("")` for `--help`, else the problem with the command line.
    fn check(args: &[String], parts: &[&str], options: &[&str]) -> Result<(), String> {
        let takes_value = |name: &str| {
            name == "--only" || options.iter().any(|o| o.split(' ').next() == Some(name) && o.contains(' '))
        };
        let flag = |name: &str| name == "--smoke" || options.contains(&name);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(String::new());
            } else if takes_value(arg) {
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                if arg == "--only" && !parts.contains(&value.as_str()) {
                    return Err(format!("--only {value}: not a part of this benchmark"));
                }
            } else if !flag(arg) {
                return Err(format!("unknown argument {arg:?}"));
            }
        }
        Ok(())
    }

    pub fn smoke(&self) -> bool {
        self.flag("--smoke")
    }

    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    pub fn value(&self, name: &str) -> Option<String> {
        self.0.iter().position(|a| a == name).and_then(|i| self.0.get(i + 1)).cloned()
    }

    /// `--url URL`, else the URL in the environment variable the tests use.
    pub fn url(&self, env: &str) -> anyhow::Result<String> {
        match self.value("--url") {
            Some(url) => Ok(url),
            None => std::env::var(env).with_context(|| format!("--url or {env}")),
        }
    }

    /// Whether `part` runs: every part does unless `--only` names another.
    pub fn runs(&self, part: &str) -> bool {
        self.value("--only").is_none_or(|only| only == part)
    }
}

/// The sizes of a backend benchmark (postgres-, redis-, dynamodb-bench): appends per client,
/// the state read and how often per run, and how many runs each median takes.
#[derive(Clone, Copy, Debug)]
pub struct BackendSizes {
    pub appends_per_client: u64,
    pub read_events: u64,
    pub read_rounds: u64,
    pub repeats: usize,
}

/// Writes a `count`-event state of [`PAYLOAD`] events straight to a store, in appends of 1,000
/// events or of the most the backend takes in one: the state the read benchmarks read.
pub async fn fill_state(store: &dyn flipbook_storage::EventStore, state: &str, count: u64) -> anyhow::Result<()> {
    use flipbook_model::{AppendRequest, Expectation, ProposedEvent};
    let batch = store.limits().max_events_per_append.map_or(1000, |max| u64::from(max).min(1000));
    let mut written = 0;
    while written < count {
        let size = batch.min(count - written);
        let events = (0..size).map(|_| ProposedEvent::new("Deposited", PAYLOAD.to_vec())).collect();
        store.append(AppendRequest::new(state, Expectation::Exactly(written), events)).await?;
        written += size;
    }
    Ok(())
}

/// The child side, when this process was started as one: call first thing in `main`.
pub async fn child_main() -> Option<anyhow::Result<()>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((first, rest)) if first == "serve-child" => Some(serve_child(rest).await),
        _ => None,
    }
}

/// The median of some measurements (the upper one of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What a target asks of a ratio.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    AtLeast(f64),
    Above(f64),
    /// A figure that explains another; no target.
    None,
}

/// Prints one line: Flipbook's figure, the baseline, their ratio, the target and whether it
/// is met.
pub fn report(what: &str, unit: &str, flipbook: f64, baseline_name: &str, baseline: f64, target: Target) -> bool {
    report_of(what, unit, ("flipbook", flipbook), (baseline_name, baseline), target)
}

/// [`report`] for any figure against any baseline (a floor against the raw backend).
pub fn report_of(
    what: &str,
    unit: &str,
    (name, figure): (&str, f64),
    (baseline_name, baseline): (&str, f64),
    target: Target,
) -> bool {
    let ratio = figure / baseline;
    let (met, wanted) = match target {
        Target::AtLeast(t) => (ratio >= t, format!(">= {t}")),
        Target::Above(t) => (ratio > t, format!("> {t}")),
        Target::None => (true, "none".to_owned()),
    };
    println!(
        "{what:<44} {name:<8} {figure:>12.0} {unit:<9} {baseline_name} {baseline:>12.0} {unit:<9} ratio {ratio:>6.2} (target {wanted}) {}",
        if met { "met" } else { "MISSED" }
    );
    met
}

/// A `flipbook` server running in a child process: this benchmark binary started again with
/// `serve-child`, so the measured server is the library the `flipbook` binary runs.
#[derive(Debug)]
pub struct ChildServer {
    pub addr: std::net::SocketAddr,
    child: Child,
}

impl ChildServer {
    /// A server over this SQLite file.
    pub async fn sqlite(db: &Path) -> anyhow::Result<Self> {
        Self::spawn(&["sqlite", db.to_str().context("a UTF-8 path")?]).await
    }

    /// A server keeping events and snapshots in this PostgreSQL database.
    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        Self::spawn(&["postgres", url]).await
    }

    /// A server keeping events (and snapshots) on this Redis node.
    pub async fn redis(url: &str) -> anyhow::Result<Self> {
        Self::spawn(&["redis", url]).await
    }

    /// A server keeping events and snapshots in this DynamoDB table, at this endpoint (`aws`:
    /// AWS's own) and region.
    pub async fn dynamodb(endpoint: &str, region: &str, table: &str) -> anyhow::Result<Self> {
        Self::spawn(&["dynamodb", endpoint, region, table]).await
    }

    /// The gRPC floor: a minimal tonic service answering `Append` at once, storing nothing.
    pub async fn echo() -> anyhow::Result<Self> {
        Self::spawn(&["echo"]).await
    }

    /// The floor of a gRPC service over Redis: [`floors::RedisRelay`] on this Redis node.
    pub async fn redis_relay(url: &str) -> anyhow::Result<Self> {
        Self::spawn(&["redis-relay", url]).await
    }

    async fn spawn(args: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("serve-child")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the server")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("the server did not start in time")??
            .context("the server exited before listening")?;
        let addr = line.strip_prefix("listening ").context("unexpected first line from the server")?.parse()?;
        Ok(Self { addr, child })
    }

    /// The peak resident memory of the server process so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
        let kib: f64 = line.split_whitespace().nth(1).context("VmHWM value")?.parse()?;
        Ok(kib / 1024.0)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        if !status.success() {
            bail!("the server exited with {status}");
        }
        Ok(())
    }
}

/// The child side of [`ChildServer`] (`serve-child sqlite PATH`, `postgres URL`, `redis URL`,
/// `dynamodb ENDPOINT REGION TABLE`, or one of the [`floors`]: `echo`, `redis-relay URL`):
/// serves until stdin closes.
pub async fn serve_child(args: &[String]) -> anyhow::Result<()> {
    use flipbook_server::config::{EventBackend, SnapshotBackend};
    match args {
        [mode] if mode == "echo" => return floors::serve(floors::Echo).await,
        [mode, url] if mode == "redis-relay" => return floors::serve(floors::RedisRelay::open(url).await?).await,
        _ => {}
    }
    let config = match args {
        [backend, path] if backend == "sqlite" => flipbook_server::Config::local(path),
        [backend, url] if backend == "postgres" => {
            let mut config = flipbook_server::Config::local("unused.db");
            config.events.backend = EventBackend::Postgres;
            config.events.postgres.url.clone_from(url);
            config.snapshots.backend = SnapshotBackend::Postgres;
            config
        }
        [backend, url] if backend == "redis" => {
            let mut config = flipbook_server::Config::local("unused.db");
            config.events.backend = EventBackend::Redis;
            config.events.redis.url.clone_from(url);
            config.snapshots.backend = SnapshotBackend::Redis;
            config
        }
        [backend, endpoint, region, table] if backend == "dynamodb" => {
            let mut config = flipbook_server::Config::local("unused.db");
            config.events.backend = EventBackend::Dynamodb;
            config.events.dynamodb.table.clone_from(table);
            config.events.dynamodb.region = Some(region.clone());
            config.events.dynamodb.endpoint_url = (endpoint != "aws").then(|| endpoint.clone());
            config.snapshots.backend = SnapshotBackend::Dynamodb;
            config
        }
        _ => bail!(
            "serve-child sqlite PATH | postgres URL | redis URL | dynamodb ENDPOINT REGION TABLE | echo | redis-relay URL"
        ),
    };
    let running = flipbook_server::start(config).await?;
    println!("listening {}", running.addr);
    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink).await;
    running.stop().await
}

// ---- what every benchmark's client does -------------------------------------------------

/// A typical event payload (≈ 90 bytes of JSON).
pub const PAYLOAD: &[u8] =
    br#"{"account":"acc-0001","amount":1250,"currency":"EUR","reference":"invoice 2026-11-27/0042"}"#;

/// A single event as a client proposes it.
pub fn wire_event() -> v1::ProposedEvent {
    v1::ProposedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        name: "Deposited".into(),
        payload: PAYLOAD.to_vec(),
        content_type: "application/json".into(),
        ..Default::default()
    }
}

/// A client with a connection of its own (as a separate application process would have).
pub async fn client(addr: std::net::SocketAddr) -> anyhow::Result<EventStoreClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?.connect().await?;
    Ok(EventStoreClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

/// `clients` tasks with a connection each (as separate application processes would have),
/// each running `work(its number, its connection, total / clients)`: `total` per second.
async fn per_client<F, Work>(addr: std::net::SocketAddr, clients: u64, total: u64, work: F) -> anyhow::Result<f64>
where
    F: Fn(usize, EventStoreClient<Channel>, u64) -> Work,
    Work: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(client(addr).await?);
    }
    rate(total, || async {
        let tasks: Vec<_> = connections
            .into_iter()
            .enumerate()
            .map(|(n, client)| tokio::spawn(work(n, client, total / clients)))
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok(())
    })
    .await
}

/// Each of `clients` connections appends `batch` events at a time with `exact_version` to a
/// state of its own, `total` appends in all: the rate of appends per second.
pub async fn grpc_appends(addr: std::net::SocketAddr, clients: u64, batch: u64, total: u64) -> anyhow::Result<f64> {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    per_client(addr, clients, total, |n, mut client, appends| {
        let state = format!("flipbook-{prefix}-{n}");
        async move {
            for version in 0..appends {
                let request = v1::AppendRequest {
                    state_id: state.clone(),
                    events: (0..batch).map(|_| wire_event()).collect(),
                    expected: Some(v1::append_request::Expected::ExactVersion(version * batch)),
                    ..Default::default()
                };
                client.append(request).await?;
            }
            Ok(())
        }
    })
    .await
}

/// How [`grpc_transfers`] writes one event to each of two states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// One `AppendStates` of two parts: both or neither.
    Atomic,
    /// Two `Append`s, one after the other: what a client without it does (and may half do).
    TwoAppends,
}

/// Each of `clients` connections writes `total / clients` transfers (one event to each of two
/// states of its own, each with its exact version): transfers per second.
pub async fn grpc_transfers(
    addr: std::net::SocketAddr,
    clients: u64,
    total: u64,
    how: Transfer,
) -> anyhow::Result<f64> {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    per_client(addr, clients, total, |n, mut client, transfers| {
        let states = [format!("from-{prefix}-{n}"), format!("to-{prefix}-{n}")];
        async move {
            for version in 0..transfers {
                let parts = states.iter().map(|state| v1::AppendRequest {
                    state_id: state.clone(),
                    events: vec![wire_event()],
                    expected: Some(v1::append_request::Expected::ExactVersion(version)),
                    ..Default::default()
                });
                match how {
                    Transfer::Atomic => {
                        client.append_states(v1::AppendStatesRequest { parts: parts.collect() }).await?;
                    }
                    Transfer::TwoAppends => {
                        for part in parts {
                            client.append(part).await?;
                        }
                    }
                }
            }
            Ok(())
        }
    })
    .await
}

/// Runs both kinds of transfer `repeats` times, alternating, and prints the line.
pub async fn report_transfers(
    addr: std::net::SocketAddr,
    clients: u64,
    total: u64,
    repeats: usize,
) -> anyhow::Result<()> {
    let (mut atomic, mut two) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        two.push(grpc_transfers(addr, clients, total, Transfer::TwoAppends).await?);
        atomic.push(grpc_transfers(addr, clients, total, Transfer::Atomic).await?);
    }
    report(
        &format!("append to 2 states x 1 event, {clients} clients"),
        "writes/s",
        median(atomic),
        "2 appends",
        median(two),
        Target::None,
    );
    Ok(())
}

/// Reads a whole `count`-event state through gRPC `rounds` times: events per second.
pub async fn grpc_reads(
    client: &mut EventStoreClient<Channel>,
    state: &str,
    count: u64,
    rounds: u64,
) -> anyhow::Result<f64> {
    rate(count * rounds, || async {
        for _ in 0..rounds {
            let fold = read_through(client, state).await?;
            anyhow::ensure!(fold.events == count, "read {} of {count} events", fold.events);
        }
        Ok(())
    })
    .await
}

/// What a reader does with each event: keeps the fields a reducer would use.
#[derive(Debug, Default)]
pub struct Fold {
    pub events: u64,
    pub bytes: usize,
    pub last_version: u64,
}

impl Fold {
    /// Folds one event: its payload and version.
    pub fn add(&mut self, payload: &[u8], version: u64) {
        self.events += 1;
        self.bytes += payload.len();
        self.last_version = version;
    }
}

/// Reads a whole state through gRPC, folding each event.
pub async fn read_through(client: &mut EventStoreClient<Channel>, state: &str) -> anyhow::Result<Fold> {
    let request = v1::ReadStateRequest { state_id: state.to_owned(), ..Default::default() };
    let mut stream = client.read_state(request).await?.into_inner();
    let mut fold = Fold::default();
    while let Some(page) = stream.message().await? {
        for event in page.events {
            fold.add(&event.payload, event.version.unwrap_or_default());
        }
    }
    Ok(fold)
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn check(args: &[&str]) -> Result<(), String> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        Args::check(&args, &["appends", "reads"], &["--url URL", "--verbose"])
    }

    #[test]
    fn a_command_line_is_checked_before_anything_runs() {
        assert_eq!(check(&["--smoke", "--only", "reads", "--url", "x", "--verbose"]), Ok(()));
        assert_eq!(check(&["--help"]), Err(String::new()));
        assert!(check(&["--only", "read"]).is_err_and(|e| e.contains("not a part")));
        assert!(check(&["--only"]).is_err_and(|e| e.contains("needs a value")));
        assert!(check(&["--smoek"]).is_err_and(|e| e.contains("unknown")));
        assert!(check(&["--url"]).is_err_and(|e| e.contains("needs a value")));
    }
}
