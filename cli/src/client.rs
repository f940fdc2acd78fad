//! The command-line client: `flipbook append | read | head | snapshot | export | import | tail |
//! info`, over a server or an embedded SQLite file, built on `flipbook_sdk_core::Client`.
//!
//! Every command is one small function; every failure ends in [`exit_code`], the one mapping
//! from an error to the process's exit code.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, Subcommand};
use flipbook_model::DEFAULT_CONTENT_TYPE;
use flipbook_model::jsonl::{EventLine, PartLine, SnapshotLine, expectation, labelled};
use flipbook_sdk_core::{
    AllQuery, AppendRequest, Client, ClientOptions, ConnectOptions, Delivery, Direction, Error, ErrorCode, Expectation,
    ProposedEvent, Snapshot, SnapshotQuery, StateHead, StateKind, StateQuery, SubscriptionQuery, SubscriptionStart,
    Timestamp,
};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// Shown by `flipbook --help`; the README's "The command line" says the same.
pub const EXIT_CODES: &str = "\
Exit codes of the client commands:
  0  ok
  1  internal or other error
  2  invalid argument or usage
  3  not found
  4  version conflict, duplicate event or state kind mismatch
  5  unavailable (server unreachable, backend down or read-only)
  6  unauthenticated or permission denied
  7  the backend's storage is full";

/// Where a client command goes, and how it answers.
#[derive(Args, Debug)]
pub struct Target {
    /// The server to call.
    #[arg(long, env = "FLIPBOOK_ENDPOINT", default_value = "http://127.0.0.1:7420", global = true)]
    endpoint: String,
    /// Use this SQLite file directly, no server (created when missing).
    #[arg(long, value_name = "FILE", global = true)]
    embedded: Option<PathBuf>,
    /// Bearer token for the server.
    #[arg(long, env = "FLIPBOOK_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Machine output: one JSON object per line; errors as JSON on stderr.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Appends one event to a state; prints its event id, the last version and global position.
    Append(AppendArgs),
    /// Appends to several states at once, all or nothing: one JSON line per state
    /// (`{"state_id", "expect", "events": [{"name", "payload"}]}`); prints a line per state.
    AppendStates(AppendStatesArgs),
    /// Prints a state's events, one per line: `version name payload` (or JSON with --json).
    Read(ReadArgs),
    /// Prints a state's head (version 0): last version, event count, metadata.
    Head(HeadArgs),
    /// Prints the log's head: the settled position (every event at or below it is visible and
    /// none can still appear there) and how many events it covers.
    LogHead(InfoArgs),
    /// Gets, puts or deletes snapshots.
    Snapshot(SnapshotArgs),
    /// Writes every event of the store as JSON Lines on stdout (the format `import` reads).
    Export(ExportArgs),
    /// Appends the events of an export, keeping ids, versions, timestamps and metadata;
    /// running it again changes nothing.
    Import(ImportArgs),
    /// Follows the store: prints events as they are appended, as JSON Lines (the format
    /// `import` reads), until interrupted or --limit events.
    Tail(TailArgs),
    /// Prints what the server runs on and its limits.
    Info(InfoArgs),
    /// Asks the server's health service (open without a token) whether a service is SERVING:
    /// exit 0 if so, 5 if not or if the server does not answer. For container health checks
    /// and scripts; `flipbook.v1.EventStore` (the default) follows the event store's backend.
    Health(HealthArgs),
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    #[command(flatten)]
    target: Target,
    /// The service to ask about; "" is the server as a whole (liveness).
    #[arg(long, default_value = "flipbook.v1.EventStore")]
    service: String,
}

#[derive(Args, Debug)]
pub struct AppendArgs {
    #[command(flatten)]
    target: Target,
    state_id: String,
    name: String,
    /// The payload; read from stdin when absent or `-`.
    payload: Option<String>,
    /// any, no-state, or the version the state must be at.
    #[arg(long, default_value = "any", value_parser = expectation)]
    expect: Expectation,
    /// The event id [default: a new one].
    #[arg(long)]
    event_id: Option<Uuid>,
    #[arg(long, default_value = DEFAULT_CONTENT_TYPE)]
    content_type: String,
    /// The domain timestamp, in nanoseconds since the Unix epoch.
    #[arg(long)]
    timestamp_nanos: Option<i64>,
    /// A metadata entry `key=value` (repeatable).
    #[arg(long, value_parser = key_value)]
    metadata: Vec<(String, String)>,
    /// Append to a version-neutral state.
    #[arg(long)]
    neutral: bool,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    #[command(flatten)]
    target: Target,
    state_id: String,
    /// The first version (inclusive).
    #[arg(long)]
    from: Option<u64>,
    /// The last version (inclusive).
    #[arg(long)]
    to: Option<u64>,
    #[arg(long)]
    limit: Option<u64>,
    /// Newest first.
    #[arg(long)]
    backward: bool,
    /// Only these event names, comma-separated.
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// Only events whose timestamp is at or before this (nanoseconds since the Unix epoch).
    #[arg(long)]
    as_of_nanos: Option<i64>,
}

#[derive(Args, Debug)]
pub struct HeadArgs {
    #[command(flatten)]
    target: Target,
    state_id: String,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Prints the newest snapshot of a reducer revision.
    Get {
        state_id: String,
        revision: String,
        /// At or below this version.
        #[arg(long)]
        max_version: Option<u64>,
    },
    /// Stores a snapshot; the payload is read from stdin when absent or `-`.
    Put {
        state_id: String,
        revision: String,
        version: u64,
        payload: Option<String>,
        #[arg(long, default_value = DEFAULT_CONTENT_TYPE)]
        content_type: String,
    },
    /// Deletes a state's snapshots of every revision; prints how many there were.
    Delete { state_id: String },
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    target: Target,
    /// Only states whose id starts with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only events after this global position.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// Only events up to this global position (e.g. a `log-head` read before) [default: the
    /// settled position].
    #[arg(long)]
    until: Option<u64>,
    /// At most this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Newest first (to look at the last events; import wants the oldest first).
    #[arg(long)]
    backward: bool,
}

#[derive(Args, Debug)]
pub struct AppendStatesArgs {
    #[command(flatten)]
    target: Target,
    /// The parts as JSON Lines; stdin when absent or `-`.
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    target: Target,
    /// An export's JSON Lines; stdin when absent or `-`.
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    target: Target,
    /// Only this state.
    #[arg(long, conflicts_with = "prefix")]
    state: Option<String>,
    /// Only states whose id starts with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only these event names, comma-separated.
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// `now`, `beginning`, or the global position to follow after (a saved checkpoint).
    #[arg(long, default_value = "now", value_parser = subscription_start)]
    from: SubscriptionStart,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Also print checkpoints, as `{"checkpoint": <position>}` lines.
    #[arg(long)]
    checkpoints: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    target: Target,
}

impl Command {
    fn target(&self) -> &Target {
        match self {
            Self::Append(a) => &a.target,
            Self::AppendStates(a) => &a.target,
            Self::LogHead(a) => &a.target,
            Self::Read(a) => &a.target,
            Self::Head(a) => &a.target,
            Self::Snapshot(a) => &a.target,
            Self::Export(a) => &a.target,
            Self::Import(a) => &a.target,
            Self::Tail(a) => &a.target,
            Self::Info(a) => &a.target,
            Self::Health(a) => &a.target,
        }
    }
}

/// What a command fails with: Flipbook's error, or reading its input or writing its output.
#[derive(Debug)]
enum Failure {
    Flipbook(Error),
    Io(io::Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Flipbook(error)
    }
}

/// The JSON Lines parsers' and the input rules' errors (`flipbook_model::jsonl`).
impl From<flipbook_model::Error> for Failure {
    fn from(error: flipbook_model::Error) -> Self {
        Self::Flipbook(error.into())
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(error: serde_json::Error) -> Self {
        Self::Io(error.into())
    }
}

type Outcome = Result<(), Failure>;

/// The one mapping from an error to an exit code (see [`EXIT_CODES`]).
fn exit_code(code: ErrorCode) -> u8 {
    use ErrorCode::*;
    match code {
        InvalidArgument | TooLarge => 2,
        NotFound => 3,
        VersionConflict | Duplicate | StateKindMismatch => 4,
        Unavailable | ReadOnly | Closed | FellBehind => 5,
        Unauthenticated | PermissionDenied => 6,
        StorageFull => 7,
        Rejected | Internal => 1,
    }
}

/// Runs a client command; errors go to stderr.
pub fn run(command: Command) -> ExitCode {
    let json = command.target().json;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::from)
        .and_then(|runtime| runtime.block_on(execute(command)));
    let error = match result {
        Ok(()) => return ExitCode::SUCCESS,
        // The reader went away (`flipbook export | head`): not an error.
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(Failure::Io(e)) => Error::Internal(format!("input/output: {e}")),
        Err(Failure::Flipbook(e)) => e,
    };
    if json {
        let mut body = json!({ "code": error.code().as_str(), "message": error.to_string() });
        if let Some(field) = error.field() {
            body["field"] = json!(field);
        }
        if let Some(state_id) = error.state_id() {
            body["state_id"] = json!(state_id);
        }
        if let Some(version) = error.actual_version() {
            body["actual_version"] = json!(version);
        }
        eprintln!("{}", json!({ "error": body }));
    } else {
        eprintln!("error: {error}");
    }
    ExitCode::from(exit_code(error.code()))
}

async fn execute(command: Command) -> Outcome {
    if let Command::Health(args) = &command {
        return health(args).await;
    }
    let client = connect(command.target()).await?;
    let json = command.target().json;
    let mut out = BufWriter::new(io::stdout().lock());
    match command {
        Command::Append(args) => append(&client, args, &mut out).await?,
        Command::AppendStates(args) => append_states(&client, args, &mut out).await?,
        Command::LogHead(_) => {
            let head = client.log_head().await?;
            let record = json!({ "settled_position": head.settled_position, "event_count": head.event_count });
            print(&mut out, json, &record)?;
        }
        Command::Read(args) => read(&client, args, &mut out).await?,
        Command::Head(args) => print(&mut out, json, &head_record(&client.head(&args.state_id).await?))?,
        Command::Snapshot(args) => snapshot(&client, args.command, json, &mut out).await?,
        Command::Export(args) => export(&client, args, &mut out).await?,
        Command::Import(args) => import(&client, args, json, &mut out).await?,
        Command::Tail(args) => tail(&client, args, &mut out).await?,
        Command::Info(_) => info(&client, json, &mut out).await?,
        Command::Health(_) => unreachable!("answered before connecting"),
    }
    Ok(out.flush()?)
}

async fn connect(target: &Target) -> Result<Client, Error> {
    match &target.embedded {
        Some(path) => Client::open_embedded(path, ClientOptions::default()).await,
        None => {
            let options =
                ConnectOptions { token: target.token.clone(), ..ConnectOptions::new(target.endpoint.clone()) };
            Client::connect_with(options, ClientOptions::default()).await
        }
    }
}

// ---- the commands --------------------------------------------------------------------------

async fn append(client: &Client, args: AppendArgs, out: &mut impl Write) -> Outcome {
    let event = ProposedEvent {
        event_id: args.event_id.unwrap_or_else(Uuid::new_v4),
        payload: labelled(payload_argument(args.payload)?, &args.content_type, "payload")?,
        content_type: args.content_type,
        timestamp: args.timestamp_nanos.map(Timestamp::from_unix_nanos),
        metadata: args.metadata.into_iter().collect(),
        ..ProposedEvent::new(args.name, Vec::new())
    };
    let event_id = event.event_id;
    let request = if args.neutral {
        AppendRequest::neutral(args.state_id, args.expect, vec![event])
    } else {
        AppendRequest::new(args.state_id, args.expect, vec![event])
    };
    // The event id makes re-sending safe after a lost answer.
    let outcome = client.append(request).await?;
    let record = json!({
        "event_id": event_id.to_string(),
        "last_version": outcome.last_version,
        "global_positions": outcome.global_positions,
        "recorded_at_nanos": outcome.recorded_at.unix_nanos(),
    });
    print(out, args.target.json, &record)
}

/// Every part's events carry ids (new ones unless given), so re-sending after a lost answer
/// is safe.
async fn append_states(client: &Client, args: AppendStatesArgs, out: &mut impl Write) -> Outcome {
    let mut parts = Vec::new();
    for (index, line) in input(args.file.as_deref())?.lines().enumerate() {
        let line = line?;
        if !line.trim().is_empty() {
            parts.push(PartLine::parse(&line, index + 1)?);
        }
    }
    let outcomes = client.append_states(parts.clone()).await?;
    for (part, outcome) in parts.iter().zip(outcomes) {
        let record = json!({
            "state_id": part.state_id,
            "event_ids": part.events.iter().map(|e| e.event_id.to_string()).collect::<Vec<_>>(),
            "last_version": outcome.last_version,
            "global_positions": outcome.global_positions,
        });
        print(out, args.target.json, &record)?;
    }
    Ok(())
}

async fn read(client: &Client, args: ReadArgs, out: &mut impl Write) -> Outcome {
    let query = StateQuery {
        state_id: args.state_id,
        direction: if args.backward { Direction::Backward } else { Direction::Forward },
        min_version: args.from,
        max_version: args.to,
        limit: args.limit,
        names: args.names,
        as_of: args.as_of_nanos.map(Timestamp::from_unix_nanos),
    };
    let mut pages = client.read_state(query);
    while let Some(page) = pages.next().await {
        for event in page? {
            if args.target.json {
                json_line(out, &EventLine::from(event))?;
            } else {
                let version = event.version.map_or("-".to_owned(), |v| v.to_string());
                writeln!(out, "{version} {} {}", event.name, human_payload(&event.payload))?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

async fn snapshot(client: &Client, command: SnapshotCommand, json: bool, out: &mut impl Write) -> Outcome {
    match command {
        SnapshotCommand::Get { state_id, revision, max_version } => {
            let query = SnapshotQuery { state_id: state_id.clone(), reducer_revision: revision.clone(), max_version };
            let snapshot = client.get_snapshot(query).await?.ok_or_else(|| {
                Error::NotFound(format!("no snapshot of state {state_id:?} for revision {revision:?}"))
            })?;
            print(out, json, &SnapshotLine::from(snapshot))
        }
        SnapshotCommand::Put { state_id, revision, version, payload, content_type } => {
            let payload = labelled(payload_argument(payload)?, &content_type, "payload")?;
            let snapshot = Snapshot {
                state_id: state_id.clone(),
                version,
                reducer_revision: revision.clone(),
                payload,
                content_type,
                created_at: Timestamp::now(),
            };
            client.put_snapshot(snapshot).await?;
            print(out, json, &json!({ "state_id": state_id, "reducer_revision": revision, "version": version }))
        }
        SnapshotCommand::Delete { state_id } => {
            let deleted = client.delete_snapshots(&state_id).await?;
            print(out, json, &json!({ "state_id": state_id, "deleted": deleted }))
        }
    }
}

async fn export(client: &Client, args: ExportArgs, out: &mut impl Write) -> Outcome {
    let query = AllQuery {
        after_position: args.after,
        until_position: args.until,
        state_id_prefix: args.prefix,
        limit: args.limit,
        direction: if args.backward { Direction::Backward } else { Direction::Forward },
        ..AllQuery::default()
    };
    let mut pages = client.read_all(query);
    while let Some(page) = pages.next().await {
        for event in page? {
            json_line(out, &EventLine::from(event))?;
        }
        out.flush()?;
    }
    Ok(())
}

/// Each line is flushed as it comes: a pipe reader sees events as they happen.
async fn tail(client: &Client, args: TailArgs, out: &mut impl Write) -> Outcome {
    let prefix = args.state.clone().unwrap_or(args.prefix);
    let query = SubscriptionQuery { start: args.from, state_id_prefix: prefix, names: args.names };
    let mut subscription = client.subscribe(query);
    let mut left = args.limit;
    while left != Some(0) {
        let Some(delivery) = subscription.next().await else { break };
        match delivery? {
            Delivery::Events(events) => {
                // A state's id is also the prefix of longer ids: keep that state only.
                let events = events.into_iter().filter(|e| args.state.as_ref().is_none_or(|id| &e.state_id == id));
                for event in events.take(left.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))) {
                    json_line(out, &EventLine::from(event))?;
                    left = left.map(|n| n - 1);
                }
            }
            Delivery::Checkpoint(position) if args.checkpoints => json_line(out, &json!({ "checkpoint": position }))?,
            Delivery::Checkpoint(_) => {}
        }
        out.flush()?;
    }
    Ok(())
}

async fn import(client: &Client, args: ImportArgs, json: bool, out: &mut impl Write) -> Outcome {
    let input = input(args.file.as_deref())?;
    let limits = client.limits();
    // Far below the server's message limit, whatever the encoding adds.
    let max_bytes = limits.max_request_bytes / 2;
    let mut batch: Option<(AppendRequest, u64)> = None;
    let mut imported = 0;
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (state_id, event) = EventLine::parse(&line, index + 1)?;
        let size = event_size(&event);
        let joins = batch.as_ref().is_some_and(|(request, bytes)| {
            let last = &request.events[request.events.len() - 1];
            request.state_id == state_id
                && last.version.map(|v| v + 1) == event.version
                && request.events.len() < limits.max_events_per_append as usize
                && bytes + size <= max_bytes
        });
        if !joins && let Some((request, _)) = batch.take() {
            imported += send(client, request).await?;
        }
        let (request, bytes) = batch.get_or_insert_with(|| match event.version {
            Some(first) => (AppendRequest::new(state_id, Expectation::Exactly(first.saturating_sub(1)), vec![]), 0),
            None => (AppendRequest::neutral(state_id, Expectation::Any, vec![]), 0),
        });
        request.events.push(event);
        *bytes += size;
    }
    if let Some((request, _)) = batch {
        imported += send(client, request).await?;
    }
    print(out, json, &json!({ "imported": imported }))
}

/// One append of an import; events already stored are answered as replays.
async fn send(client: &Client, request: AppendRequest) -> Result<u64, Error> {
    let count = request.events.len() as u64;
    client.append(request).await?;
    Ok(count)
}

fn event_size(event: &ProposedEvent) -> u64 {
    let metadata: usize = event.metadata.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    (event.payload.len() + event.name.len() + event.content_type.len() + metadata + 96) as u64
}

async fn health(args: &HealthArgs) -> Outcome {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = tonic::transport::Endpoint::from_shared(args.target.endpoint.clone())
        .map_err(|e| Error::invalid("endpoint", e.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(5));
    let endpoint = if args.target.endpoint.starts_with("https://") {
        endpoint
            .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
            .map_err(|e| Error::invalid("endpoint", e.to_string()))?
    } else {
        endpoint
    };
    let channel = endpoint.connect().await.map_err(|e| Error::Unavailable(format!("{}: {e}", args.target.endpoint)))?;
    let request = HealthCheckRequest { service: args.service.clone() };
    let answer = HealthClient::new(channel).check(request).await.map_err(Error::from)?.into_inner();
    let status = ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown);
    let name = status.as_str_name();
    let mut out = io::stdout().lock();
    if args.target.json {
        json_line(&mut out, &json!({ "service": args.service, "status": name }))?;
    } else {
        writeln!(out, "{name}")?;
    }
    if status != ServingStatus::Serving {
        return Err(Error::Unavailable(format!("{:?} is {name}", args.service)).into());
    }
    Ok(())
}

async fn info(client: &Client, json: bool, out: &mut impl Write) -> Outcome {
    let info = client.server_info().await?;
    let record = json!({
        "server_version": info.server_version,
        "event_backend": info.event_backend,
        "snapshot_backend": info.snapshot_backend,
        "durable": info.durable,
        "max_events_per_append": info.limits.max_events_per_append,
        "max_payload_bytes": info.limits.max_payload_bytes,
        "max_snapshot_bytes": info.limits.max_snapshot_bytes,
        "max_request_bytes": info.limits.max_request_bytes,
    });
    print(out, json, &record)
}

fn head_record(head: &StateHead) -> Value {
    json!({
        "state_id": head.state_id,
        "kind": kind_name(head.kind),
        "last_version": head.last_version(),
        "event_count": head.event_count,
        "last_global_position": head.last_global_position,
        "first_recorded_at_nanos": head.first_recorded_at.unix_nanos(),
        "last_recorded_at_nanos": head.last_recorded_at.unix_nanos(),
        "metadata": head.metadata,
    })
}

fn kind_name(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Versioned => "versioned",
        StateKind::VersionNeutral => "version-neutral",
    }
}

// ---- input and output ----------------------------------------------------------------------

/// A payload on one line: text with its control characters escaped, or base64.
fn human_payload(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => {
            let mut line = String::with_capacity(text.len());
            for c in text.chars() {
                if c.is_control() {
                    line.extend(c.escape_default());
                } else {
                    line.push(c);
                }
            }
            line
        }
        Err(_) => format!("base64:{}", BASE64.encode(payload)),
    }
}

/// A file's lines, or stdin's when absent or `-`.
fn input(file: Option<&Path>) -> Result<Box<dyn BufRead>, Error> {
    Ok(match file {
        Some(path) if path.as_os_str() != "-" => Box::new(BufReader::new(
            File::open(path).map_err(|e| Error::invalid("FILE", format!("{}: {e}", path.display())))?,
        )),
        _ => Box::new(io::stdin().lock()),
    })
}

/// The payload argument, or stdin when absent or `-`.
fn payload_argument(payload: Option<String>) -> Result<Vec<u8>, Failure> {
    match payload {
        Some(text) if text != "-" => Ok(text.into_bytes()),
        _ => {
            let mut bytes = Vec::new();
            io::stdin().read_to_end(&mut bytes)?;
            Ok(bytes)
        }
    }
}

fn json_line(out: &mut impl Write, value: &impl Serialize) -> Outcome {
    serde_json::to_writer(&mut *out, value)?;
    Ok(writeln!(out)?)
}

/// A result: one JSON object, or `key: value` lines for people (absent values left out).
fn print(out: &mut impl Write, json: bool, record: &impl Serialize) -> Outcome {
    if json {
        return json_line(out, record);
    }
    if let Value::Object(fields) = serde_json::to_value(record)? {
        for (key, value) in fields {
            match value {
                Value::Null => {}
                Value::String(text) => writeln!(out, "{key}: {text}")?,
                other => writeln!(out, "{key}: {other}")?,
            }
        }
    }
    Ok(())
}

fn subscription_start(text: &str) -> Result<SubscriptionStart, String> {
    match text {
        "now" => Ok(SubscriptionStart::Now),
        "beginning" => Ok(SubscriptionStart::Beginning),
        position => {
            position.parse().map(SubscriptionStart::After).map_err(|_| "expected now, beginning or a position".into())
        }
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| "expected key=value".into())
}
