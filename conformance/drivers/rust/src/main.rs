//! The conformance suite's Rust driver (`conformance/README.md`, "The protocol"): reads one
//! request a line on stdin, answers one line on stdout, using only flipbook-sdk-core's public
//! API, as an application would.

mod consumer;

use std::io::{BufRead, Write};
use std::time::Duration;

use consumer::Consumer;

use flipbook_sdk_core::{
    AllQuery, AppendOutcome, AppendRequest, BoxError, Client, ClientOptions, Delivery, Direction, Error, Expectation,
    Metadata, ProposedEvent, RecordedEvent, Reducer, Repository, Snapshot, SnapshotQuery, StateKind, StateQuery,
    SubscriptionQuery, SubscriptionStart, Timestamp,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value, json};

/// A deliberately wrong driver, for the runner's own test that the suite catches a binding that
/// breaks the contract (`FLIPBOOK_CONFORMANCE_FAULT`): `ignore-expected` sends every append as
/// `any`; `new-ids` gives every event a new id, so a re-send is not one; `send-once` never
/// re-sends an append whose answer was lost; `drop-delivered` loses the second event of every
/// subscription.
fn fault() -> Option<String> {
    std::env::var("FLIPBOOK_CONFORMANCE_FAULT").ok().filter(|f| !f.is_empty())
}

fn faulty(fault_name: &str) -> bool {
    fault().as_deref() == Some(fault_name)
}

/// How long a subscription step waits for the events it asks for.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let mut session = Session::default();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("a line from the runner");
        let request: Value = serde_json::from_str(&line).expect("a JSON request");
        let answer = runtime.block_on(answer(&mut session, &request));
        let reply = match answer {
            Ok(ok) => json!({ "ok": ok }),
            Err(Failure::Flipbook(error)) => json!({ "error": error_json(&error) }),
            Err(Failure::Driver(message)) => json!({ "error": { "code": "DRIVER", "message": message } }),
        };
        let mut out = stdout.lock();
        writeln!(out, "{reply}").and_then(|()| out.flush()).expect("answer the runner");
    }
    drop(session.consumer.take());
    if let Some(client) = session.client {
        runtime.block_on(client.close());
    }
}

/// What the driver holds between steps: its client, and the subscription a case opened.
#[derive(Default)]
struct Session {
    client: Option<Client>,
    consumer: Option<Consumer>,
}

/// An error of the binding (compared with the case), or of the driver itself (a bad request).
enum Failure {
    Flipbook(Error),
    Driver(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Flipbook(error)
    }
}

type Answer = Result<Value, Failure>;

fn bad(message: impl Into<String>) -> Failure {
    Failure::Driver(message.into())
}

fn error_json(error: &Error) -> Value {
    let mut fields = Map::new();
    fields.insert("code".into(), json!(error.code().as_str()));
    if let Some(field) = error.field() {
        fields.insert("field".into(), json!(field));
    }
    if let Some(state) = error.state_id() {
        fields.insert("state".into(), json!(state));
    }
    if let Some(version) = error.actual_version() {
        fields.insert("actual_version".into(), json!(version));
    }
    fields.insert("message".into(), json!(error.to_string()));
    Value::Object(fields)
}

async fn answer(session: &mut Session, request: &Value) -> Answer {
    let op = request["op"].as_str().ok_or_else(|| bad("no op"))?;
    let args = &request["args"];
    let client = &mut session.client;
    if op == "connect" {
        // A connect while connected replaces the client (the runner moves a case to the other
        // server, or to a new client of the same embedded file).
        session.consumer = None;
        if let Some(old) = client.take() {
            old.close().await;
        }
        let connected = match (args["server"].as_str(), args["embedded"].as_str()) {
            (Some(url), _) => Client::connect(url).await?,
            (None, Some(path)) => Client::open_embedded(path, ClientOptions::default()).await?,
            _ => return Err(bad("connect: server or embedded")),
        };
        *client = Some(connected);
        return Ok(json!({}));
    }
    let client = client.as_ref().ok_or_else(|| bad("not connected"))?;
    match op {
        // The appends an application makes: a lost answer is re-sent with the same event ids.
        "append" if faulty("send-once") => Ok(outcome(&client.append_once(append_request(args)?).await?)),
        "append" => Ok(outcome(&client.append(append_request(args)?).await?)),
        "append_states" => {
            let parts = args["parts"].as_array().ok_or_else(|| bad("parts"))?;
            let parts = parts.iter().map(append_request).collect::<Result<Vec<_>, _>>()?;
            let outcomes = client.append_states(parts).await?;
            Ok(json!({ "parts": outcomes.iter().map(outcome).collect::<Vec<_>>() }))
        }
        "read" => {
            let query = StateQuery {
                state_id: text(args, "state")?,
                direction: direction(args),
                min_version: args["min_version"].as_u64(),
                max_version: args["max_version"].as_u64(),
                limit: args["limit"].as_u64(),
                names: names(args),
                as_of: args["as_of_nanos"].as_i64().map(Timestamp::from_unix_nanos),
            };
            events(client.read_state(query)).await
        }
        "read_all" => {
            let query = AllQuery {
                after_position: args["after"].as_u64().unwrap_or(0),
                until_position: args["until"].as_u64(),
                state_id_prefix: text(args, "prefix")?,
                names: names(args),
                limit: args["limit"].as_u64(),
                direction: direction(args),
            };
            events(client.read_all(query)).await
        }
        "head" => {
            let head = client.head(&text(args, "state")?).await?;
            Ok(json!({
                "last_version": head.last_version(),
                "event_count": head.event_count,
                "kind": if head.kind == StateKind::Versioned { "versioned" } else { "version-neutral" },
                "metadata": head.metadata,
                "last_position": head.last_global_position,
            }))
        }
        "log_head" => {
            let head = client.log_head().await?;
            Ok(json!({ "settled_position": head.settled_position, "event_count": head.event_count }))
        }
        "load" => {
            let state = text(args, "state")?;
            let as_of = args["as_of_nanos"].as_i64().map(Timestamp::from_unix_nanos);
            match text(args, "reducer")?.as_str() {
                "wallet" => loaded(load(&Repository::new(client.clone(), Wallet), &state, as_of).await?),
                "counter" => loaded(load(&Repository::new(client.clone(), Counter), &state, as_of).await?),
                other => Err(bad(format!("no reducer {other}"))),
            }
        }
        "subscribe" => subscribe(client, args).await,
        "subscribe_open" => {
            let now = args["after"].as_str() == Some("now");
            let consumer = Consumer::start(client.subscribe(subscription_query(args)?), faulty("drop-delivered"));
            if now {
                consumer.started(PATIENCE).await;
            }
            session.consumer = Some(consumer);
            Ok(json!({}))
        }
        "subscribe_next" => {
            let consumer = session.consumer.as_mut().ok_or_else(|| bad("no subscription is open"))?;
            let count = args["count"].as_u64().ok_or_else(|| bad("count"))? as usize;
            let patience = args["wait_ms"].as_u64().map_or(PATIENCE, Duration::from_millis);
            Ok(json!({ "events": consumer.next(count, patience).await? }))
        }
        "subscribe_close" => {
            session.consumer = None;
            Ok(json!({}))
        }
        "put_snapshot" => {
            let snapshot = Snapshot {
                state_id: text(args, "state")?,
                version: args["version"].as_u64().ok_or_else(|| bad("version"))?,
                reducer_revision: text(args, "revision")?,
                payload: args["payload"].to_string().into_bytes(),
                content_type: "application/json".into(),
                created_at: Timestamp::now(),
            };
            client.put_snapshot(snapshot).await?;
            Ok(json!({}))
        }
        "get_snapshot" => {
            let query = SnapshotQuery {
                state_id: text(args, "state")?,
                reducer_revision: text(args, "revision")?,
                max_version: args["max_version"].as_u64(),
            };
            let found = client.get_snapshot(query).await?;
            Ok(json!({ "snapshot": found.map(|s| json!({
                "version": s.version,
                "revision": s.reducer_revision,
                "payload": serde_json::from_slice::<Value>(&s.payload).unwrap_or(Value::Null),
            })) }))
        }
        "execute" => execute(client, args).await,
        "execute_states" => execute_states(client, args).await,
        other => Err(bad(format!("no op {other}"))),
    }
}

fn text(args: &Value, key: &str) -> Result<String, Failure> {
    args[key].as_str().map(str::to_owned).ok_or_else(|| bad(format!("{key}: a string")))
}

fn names(args: &Value) -> Vec<String> {
    args["names"]
        .as_array()
        .map(|names| names.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn direction(args: &Value) -> Direction {
    if args["backward"].as_bool() == Some(true) { Direction::Backward } else { Direction::Forward }
}

fn append_request(args: &Value) -> Result<AppendRequest, Failure> {
    let expected = match &args["expected"] {
        Value::String(s) if s == "any" => Expectation::Any,
        Value::String(s) if s == "no_state" => Expectation::NoState,
        Value::Number(n) => Expectation::Exactly(n.as_u64().ok_or_else(|| bad("expected: a version"))?),
        _ => Expectation::Any,
    };
    let expected = if faulty("ignore-expected") { Expectation::Any } else { expected };
    let events = args["events"].as_array().ok_or_else(|| bad("events"))?;
    let mut events = events.iter().map(proposed).collect::<Result<Vec<_>, _>>()?;
    if faulty("new-ids") {
        events.iter_mut().for_each(|event| event.event_id = uuid::Uuid::new_v4());
    }
    let state = text(args, "state")?;
    let mut request = if args["neutral"].as_bool() == Some(true) {
        AppendRequest::neutral(state, expected, events)
    } else {
        AppendRequest::new(state, expected, events)
    };
    request.state_metadata = metadata(&args["state_metadata"]);
    Ok(request)
}

fn proposed(event: &Value) -> Result<ProposedEvent, Failure> {
    let name = event["name"].as_str().unwrap_or_default();
    let mut proposed = match event["payload_size"].as_u64() {
        Some(size) => ProposedEvent {
            content_type: "application/octet-stream".into(),
            ..ProposedEvent::new(name, vec![b'x'; size as usize])
        },
        None => ProposedEvent::new(name, event.get("payload").unwrap_or(&json!({})).to_string()),
    };
    if let Some(id) = event["id"].as_str() {
        proposed.event_id = id.parse().map_err(|e| bad(format!("id: {e}")))?;
    }
    proposed.version = event["version"].as_u64();
    proposed.timestamp = event["timestamp_nanos"].as_i64().map(Timestamp::from_unix_nanos);
    proposed.metadata = metadata(&event["metadata"]);
    Ok(proposed)
}

fn metadata(value: &Value) -> Metadata {
    value
        .as_object()
        .map(|map| map.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

fn outcome(outcome: &AppendOutcome) -> Value {
    json!({ "last_version": outcome.last_version, "positions": outcome.global_positions })
}

async fn events(pages: flipbook_sdk_core::EventPages) -> Answer {
    let pages: Vec<Vec<RecordedEvent>> = pages.try_collect().await?;
    Ok(json!({ "events": pages.iter().flatten().map(event_json).collect::<Vec<_>>() }))
}

fn event_json(event: &RecordedEvent) -> Value {
    let payload = if event.content_type == "application/json" {
        serde_json::from_slice(&event.payload).unwrap_or_else(|_| json!({ "size": event.payload.len() }))
    } else {
        json!({ "size": event.payload.len() })
    };
    json!({
        "state": event.state_id,
        "version": event.version,
        "position": event.global_position,
        "id": event.event_id.to_string(),
        "name": event.name,
        "payload": payload,
        "metadata": event.metadata,
        "timestamp_nanos": event.timestamp.map(Timestamp::unix_nanos),
    })
}

async fn load<R: Reducer>(
    repository: &Repository<R>,
    state: &str,
    as_of: Option<Timestamp>,
) -> flipbook_sdk_core::Result<flipbook_sdk_core::Loaded<R::State>> {
    match as_of {
        Some(as_of) => repository.load_as_of(state, as_of).await,
        None => repository.load(state).await,
    }
}

/// The first `count` events of a subscription (from the beginning, or after a position), or
/// what arrived of them within 10 s.
async fn subscribe(client: &Client, args: &Value) -> Answer {
    let query = subscription_query(args)?;
    let count = args["count"].as_u64().ok_or_else(|| bad("count"))? as usize;
    let mut subscription = client.subscribe(query);
    let (mut received, mut delivered) = (Vec::new(), 0);
    let collect = async {
        while delivered < count {
            match subscription.next().await {
                Some(Ok(Delivery::Events(events))) => {
                    for event in &events {
                        delivered += 1;
                        if !(delivered == 2 && faulty("drop-delivered")) {
                            received.push(event_json(event));
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(Failure::from(error)),
                None => break,
            }
        }
        Ok(())
    };
    if let Ok(ended) = tokio::time::timeout(PATIENCE, collect).await {
        ended?;
    }
    Ok(json!({ "events": received }))
}

/// `after`: none (from the beginning), `"now"`, or a position.
fn subscription_query(args: &Value) -> Result<SubscriptionQuery, Failure> {
    let start = match &args["after"] {
        Value::Null => SubscriptionStart::Beginning,
        Value::String(now) if now == "now" => SubscriptionStart::Now,
        after => SubscriptionStart::After(after.as_u64().ok_or_else(|| bad("after: a position or \"now\""))?),
    };
    Ok(SubscriptionQuery { start, state_id_prefix: text(args, "prefix")?, names: names(args) })
}

fn loaded(loaded: flipbook_sdk_core::Loaded<Value>) -> Answer {
    Ok(json!({ "state": loaded.state, "version": loaded.version }))
}

// ---- the named reducers and decide functions (conformance/README.md) ------------------------

fn amount(event: &RecordedEvent) -> i64 {
    serde_json::from_slice::<Value>(&event.payload).ok().and_then(|p| p["amount"].as_i64()).unwrap_or(0)
}

struct Wallet;

impl Reducer for Wallet {
    type State = Value;
    const REVISION: &'static str = "conformance-wallet-1";

    fn initial(&self) -> Value {
        json!({ "balance": 0 })
    }

    fn apply(&self, state: &mut Value, event: &RecordedEvent) -> Result<(), BoxError> {
        let balance = state["balance"].as_i64().unwrap_or(0);
        let change = match event.name.as_str() {
            "Deposited" => amount(event),
            "Withdrawn" => -amount(event),
            _ => 0,
        };
        state["balance"] = json!(balance + change);
        Ok(())
    }
}

struct Counter;

impl Reducer for Counter {
    type State = Value;
    const REVISION: &'static str = "conformance-counter-1";

    fn initial(&self) -> Value {
        json!({ "count": 0 })
    }

    fn apply(&self, state: &mut Value, _: &RecordedEvent) -> Result<(), BoxError> {
        state["count"] = json!(state["count"].as_i64().unwrap_or(0) + 1);
        Ok(())
    }
}

async fn execute(client: &Client, args: &Value) -> Answer {
    let state_id = text(args, "state")?;
    let decide = &args["decide"];
    if text(args, "reducer")? != "wallet" {
        return Err(bad("execute: the wallet reducer"));
    }
    let wallets = Repository::new(client.clone(), Wallet);
    // The competing writer appends while the first decision is made, so that decision's append
    // conflicts and the command must decide again on the new state. The decide function is
    // synchronous: the append runs to its end on a thread of its own.
    let mut competitor = decide["competitor"].as_i64();
    let handle = tokio::runtime::Handle::current();
    let executed = wallets
        .execute(&state_id, |state| {
            if let Some(amount) = competitor.take() {
                let event = ProposedEvent::new("Deposited", json!({ "amount": amount }).to_string());
                let request = AppendRequest::new(state_id.clone(), Expectation::Any, vec![event]);
                let (client, handle) = (client.clone(), handle.clone());
                std::thread::spawn(move || handle.block_on(client.append(request)))
                    .join()
                    .map_err(|_| "the competing writer panicked")??;
            }
            decision(decide, state)
        })
        .await?;
    executed_json(executed)
}

/// `{"transfer": n}` over two wallets: `Withdrawn n` from the first, `Deposited n` to the
/// second, in one atomic append; refused (the decide function's own error) when the first's
/// balance is below n.
async fn execute_states(client: &Client, args: &Value) -> Answer {
    let states: Vec<String> = args["states"]
        .as_array()
        .ok_or_else(|| bad("states"))?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    let ids: Vec<&str> = states.iter().map(String::as_str).collect();
    let amount = args["decide"]["transfer"].as_i64().ok_or_else(|| bad("decide: transfer"))?;
    let executed = Repository::new(client.clone(), Wallet)
        .execute_states(&ids, |wallets| {
            let balance = wallets[0]["balance"].as_i64().unwrap_or(0);
            if balance < amount {
                return Err(format!("insufficient funds: {balance} < {amount}").into());
            }
            let event = |name: &str| ProposedEvent::new(name, json!({ "amount": amount }).to_string());
            Ok(vec![vec![event("Withdrawn")], vec![event("Deposited")]])
        })
        .await?;
    let results: Vec<Value> = executed
        .into_iter()
        .map(|e| json!({ "state": e.state, "version": e.version, "appended": e.appended.is_some() }))
        .collect();
    Ok(json!({ "results": results }))
}

fn decision(decide: &Value, state: &Value) -> Result<Vec<ProposedEvent>, BoxError> {
    let balance = state["balance"].as_i64().unwrap_or(0);
    if let Some(amount) = decide["deposit"].as_i64() {
        return Ok(vec![ProposedEvent::new("Deposited", json!({ "amount": amount }).to_string())]);
    }
    if let Some(amount) = decide["withdraw"].as_i64() {
        if balance < amount {
            return Err(format!("insufficient funds: {balance} < {amount}").into());
        }
        return Ok(vec![ProposedEvent::new("Withdrawn", json!({ "amount": amount }).to_string())]);
    }
    Ok(Vec::new())
}

fn executed_json(executed: flipbook_sdk_core::Executed<Value>) -> Answer {
    Ok(json!({
        "state": executed.state,
        "version": executed.version,
        "tries": executed.tries,
        "appended": executed.appended.is_some(),
    }))
}
