//! The event bus on every backend: how long an appended event takes to reach a subscriber, and
//! whether delivery keeps up with appends, next to the append rate measured in the same run.
//!
//! `cargo run --release -p flipbook-benches --bin bus-bench` (`--only sqlite|postgres|redis`;
//! PostgreSQL and Redis from $FLIPBOOK_TEST_POSTGRES_URL and $FLIPBOOK_TEST_REDIS_URL;
//! `--smoke` for a quick run that only proves it works).
//!
//! Two servers in child processes over one backend: writers append through the first; one
//! subscriber reads through the first (woken by its appends) and one through the second (which
//! learns of them by polling the settled position every 10 ms).
//!
//! - latency: appends paced at 1,000 events/s by 16 writers (one event each); for every event,
//!   the time from the start of its `Append` call to its arrival at each subscriber: p50, p99.
//! - throughput: 16 writers append as fast as they can; the rate at which the subscriber through
//!   the other server receives them (from the first append to the last arrival) against the
//!   append rate (from the first append to the last answer).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flipbook_benches::{Args, ChildServer, PAYLOAD, Target, child_main, client, report};
use flipbook_proto::v1::{self, event_bus_client::EventBusClient};
use tonic::transport::Channel;

const WRITERS: usize = 16;

/// When each event's append started, by event id.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(child) = child_main().await {
        return child;
    }
    let args = Args::from_env(&["sqlite", "postgres", "redis"], &["--url URL"]);
    let smoke = args.smoke();
    let (paced, flood) = if smoke { (200, 400) } else { (5_000, 10_000) };
    println!("Event bus benchmark ({} mode)", if smoke { "smoke" } else { "full" });
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bus.db");
    let mut met = true;
    for backend in ["sqlite", "postgres", "redis"] {
        if !args.runs(backend) {
            continue;
        }
        let servers = match backend {
            "sqlite" => [ChildServer::sqlite(&db).await?, ChildServer::sqlite(&db).await?],
            "postgres" => {
                let url = args.url("FLIPBOOK_TEST_POSTGRES_URL")?;
                [ChildServer::postgres(&url).await?, ChildServer::postgres(&url).await?]
            }
            _ => {
                let url = std::env::var("FLIPBOOK_TEST_REDIS_URL")?;
                [ChildServer::redis(&url).await?, ChildServer::redis(&url).await?]
            }
        };
        let (writer, other) = (servers[0].addr, servers[1].addr);
        println!("{backend}:");

        let (same, across) = latency(writer, other, paced).await?;
        for (name, mut latencies) in [("the same server", same), ("the other server", across)] {
            latencies.sort_unstable();
            let p50 = percentile(&latencies, 0.50);
            let p99 = percentile(&latencies, 0.99);
            let ok = p99 < Duration::from_millis(50);
            met &= ok;
            println!(
                "  append-to-delivery at 1,000 events/s, through {name:<17} p50 {:>6.1} ms  p99 {:>6.1} ms  (target p99 < 50 ms) {}",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                if ok { "met" } else { "MISSED" }
            );
        }
        let (appended, delivered) = throughput(writer, other, flood).await?;
        met &= report(
            "  delivery through the other server",
            "events/s",
            delivered,
            "appends",
            appended,
            Target::AtLeast(0.9),
        );
        for server in servers {
            server.stop().await?;
        }
    }
    if !met && !smoke {
        println!("some targets were missed");
    }
    Ok(())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or_default()
}

async fn bus(addr: SocketAddr) -> anyhow::Result<EventBusClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?.connect().await?;
    Ok(EventBusClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

/// Subscribes from now to the states under `prefix` and waits for the first checkpoint (the
/// subscription is live); the task then receives `count` events, each stamped on arrival.
async fn subscriber(
    addr: SocketAddr,
    prefix: &str,
    count: usize,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Vec<(String, Instant)>>>> {
    let request = v1::SubscribeRequest {
        start: Some(v1::subscribe_request::Start::Now(())),
        state_id_prefix: prefix.to_owned(),
        names: Vec::new(),
    };
    let mut stream = bus(addr).await?.subscribe(request).await?.into_inner();
    let first = stream.message().await?;
    anyhow::ensure!(
        matches!(first.and_then(|m| m.message), Some(v1::subscribe_response::Message::Checkpoint(_))),
        "a subscription from now starts with a checkpoint"
    );
    Ok(tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(count);
        while arrivals.len() < count {
            let message = stream.message().await?.ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
            if let Some(v1::subscribe_response::Message::Events(page)) = message.message {
                let now = Instant::now();
                arrivals.extend(page.events.into_iter().map(|e| (e.event_id, now)));
            }
        }
        Ok(arrivals)
    }))
}

/// `count` single-event appends by [`WRITERS`] writers, each to a state of its own under
/// `prefix`, started every `every` (all at once when `None`); records when each started.
async fn append(
    addr: SocketAddr,
    prefix: &str,
    count: usize,
    every: Option<Duration>,
    sent: Sent,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let mut client = client(addr).await?;
        let (state, sent) = (format!("{prefix}{writer}"), Arc::clone(&sent));
        tasks.push(tokio::spawn(async move {
            // Writer w appends events w, w + 16, w + 32, … of the paced sequence.
            for i in (writer..count).step_by(WRITERS) {
                if let Some(every) = every {
                    tokio::time::sleep_until((started + every * i as u32).into()).await;
                }
                let event = v1::ProposedEvent {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    name: "Deposited".into(),
                    payload: PAYLOAD.to_vec(),
                    ..Default::default()
                };
                sent.lock().expect("lock").insert(event.event_id.clone(), Instant::now());
                let request = v1::AppendRequest { state_id: state.clone(), events: vec![event], ..Default::default() };
                client.append(request).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Latencies of `count` paced events at a subscriber on the writers' server and on the other.
async fn latency(
    writer: SocketAddr,
    other: SocketAddr,
    count: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let prefix = format!("bus-{}/", uuid::Uuid::new_v4().simple());
    let same = subscriber(writer, &prefix, count).await?;
    let across = subscriber(other, &prefix, count).await?;
    let sent: Sent = Arc::default();
    append(writer, &prefix, count, Some(Duration::from_millis(1)), Arc::clone(&sent)).await?;
    let sent = sent.lock().expect("lock").clone();
    let delays = |arrivals: Vec<(String, Instant)>| -> Vec<Duration> {
        arrivals.into_iter().map(|(id, at)| at.duration_since(sent[&id])).collect()
    };
    Ok((delays(same.await??), delays(across.await??)))
}

/// The append rate and the delivery rate at the other server, for `count` events appended as
/// fast as the writers can.
async fn throughput(writer: SocketAddr, other: SocketAddr, count: usize) -> anyhow::Result<(f64, f64)> {
    let prefix = format!("bus-{}/", uuid::Uuid::new_v4().simple());
    let receiving = subscriber(other, &prefix, count).await?;
    let started = Instant::now();
    append(writer, &prefix, count, None, Arc::default()).await?;
    let appended = started.elapsed();
    let arrivals = receiving.await??;
    let delivered = arrivals.iter().map(|(_, at)| *at).max().unwrap_or(started).duration_since(started);
    Ok((count as f64 / appended.as_secs_f64(), count as f64 / delivered.as_secs_f64()))
}
