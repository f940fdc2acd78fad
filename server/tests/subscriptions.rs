//! SPEC §4 end to end, on every backend: 8 writers append 10,000 events to 100 random states
//! through two servers over one backend while 3 subscribers (from the beginning, from a position
//! in the middle, from now) and a reader polling ReadAll from the last position it saw read
//! through either server. Each must receive exactly the events
//! after its start, each once, in strictly increasing global position. The subscriber from the
//! beginning drops its stream every 1,500 events and resumes from its last position on the
//! other server. On PostgreSQL the scenario runs again with every append's transaction held open
//! for a random 0–20 ms after its insert, which makes transactions commit out of position order.
//! On DynamoDB (moto in the tests, serving one request at a time) each server reads the settled
//! position every 100 ms instead of 10 ms, so the polls leave moto time for the appends.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{GrpcStore, dynamodb_config, fresh_db, postgres_url, redis_config};
use flipbook_model::{
    AllQuery, AppendRequest, Delivery, Error, Expectation, ProposedEvent, SubscriptionQuery, SubscriptionStart,
};
use flipbook_server::config::{Config, EventBackend, SnapshotBackend};
use flipbook_storage::EventStore;
use futures::StreamExt;
use uuid::Uuid;

const WRITERS: u64 = 8;
const EVENTS: u64 = 10_000;
const STATES: u64 = 100;
/// The subscriber from the beginning resumes on the other server after this many events.
const RESUME_EVERY: usize = 1_500;

/// What the writers stored under the scenario's prefix: position -> event id.
type Stored = BTreeMap<u64, Uuid>;

/// A cheap random number for the writers' choices (no dependency for it).
fn random(below: u64) -> u64 {
    (Uuid::new_v4().as_u128() % u128::from(below)) as u64
}

async fn write(servers: Arc<[GrpcStore; 2]>, prefix: String, writer: u64, written: Arc<AtomicU64>) -> Stored {
    let mut stored = Stored::new();
    let mut left = EVENTS / WRITERS;
    let mut turn = writer as usize;
    while left > 0 {
        let count = (1 + random(3)).min(left);
        let state = format!("{prefix}{}", random(STATES));
        let events: Vec<ProposedEvent> =
            (0..count).map(|i| ProposedEvent::new("Happened", format!("{{\"w\":{writer},\"i\":{i}}}"))).collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        turn += 1;
        let outcome = servers[turn % 2]
            .append(AppendRequest::new(&state, Expectation::Any, events))
            .await
            .unwrap_or_else(|e| panic!("writer {writer}: {e}"));
        stored.extend(outcome.global_positions.into_iter().zip(ids));
        written.fetch_add(count, Ordering::Relaxed);
        left -= count;
    }
    stored
}

/// A subscriber: reads through `servers[first]` from `start` until it reaches `until` (read from
/// the watch once the writers are done). With `resume_every`, it drops its stream after that
/// many events and subscribes again after the last position it received, on the other server.
/// Answers its first checkpoint's position when it starts from now, and what it received.
async fn subscribe(
    servers: Arc<[GrpcStore; 2]>,
    prefix: String,
    start: SubscriptionStart,
    first: usize,
    resume_every: Option<usize>,
    mut until: tokio::sync::watch::Receiver<Option<u64>>,
) -> (u64, Vec<(u64, Uuid)>) {
    let mut received: Vec<(u64, Uuid)> = Vec::new();
    let mut position: Option<u64> = None;
    let mut now_start = None;
    let mut server = first;
    loop {
        let start = match position {
            Some(after) => SubscriptionStart::After(after),
            None => start,
        };
        let query = SubscriptionQuery { start, state_id_prefix: prefix.clone(), names: Vec::new() };
        let mut stream = std::pin::pin!(servers[server % 2].subscribe(query).await.expect("subscribe"));
        let mut this_stream = 0;
        loop {
            let message = tokio::select! {
                message = stream.next() => message,
                // The writers are done: it may have everything already.
                _ = until.changed() => {
                    if until.borrow().is_some_and(|last| position.is_some_and(|p| p >= last)) {
                        return (now_start.unwrap_or_default(), received);
                    }
                    continue;
                }
            };
            let reached = match message.expect("the stream stays open").expect("no error") {
                Delivery::Events(events) => {
                    this_stream += events.len();
                    received.extend(events.iter().map(|e| (e.global_position, e.event_id)));
                    events.last().map(|e| e.global_position).expect("no empty page")
                }
                Delivery::Checkpoint(at) => {
                    if now_start.is_none() && position.is_none() {
                        now_start = Some(at);
                    }
                    at
                }
            };
            position = Some(reached);
            if until.borrow().is_some_and(|last| reached >= last) {
                return (now_start.unwrap_or_default(), received);
            }
            if resume_every.is_some_and(|every| this_stream >= every) {
                break;
            }
        }
        server += 1;
    }
}

/// A reader that polls ReadAll instead of subscribing, as notification logs and outbox relays
/// do: from the last position it saw, through either server in turn, until it reaches `until`.
/// ReadAll never shows a position above the settled one, so it misses nothing even while
/// transactions commit out of position order. Answers what it read.
async fn poll(
    servers: Arc<[GrpcStore; 2]>,
    prefix: String,
    until: tokio::sync::watch::Receiver<Option<u64>>,
) -> (u64, Vec<(u64, Uuid)>) {
    let mut received: Vec<(u64, Uuid)> = Vec::new();
    let mut after = 0;
    for turn in 0.. {
        if until.borrow().is_some_and(|last| after >= last) {
            return (0, received);
        }
        let query = AllQuery { after_position: after, state_id_prefix: prefix.clone(), ..AllQuery::default() };
        let page = servers[turn % 2].read_all_page(&query, None, 500).await.expect("read all");
        if let Some(last) = page.events.last() {
            after = last.global_position;
        }
        received.extend(page.events.iter().map(|e| (e.global_position, e.event_id)));
        if page.events.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    unreachable!("the loop ends when the reader is done")
}

/// Runs the scenario over two servers started from `config`.
async fn scenario(config: Config) {
    let first = flipbook_server::start(config.clone()).await.expect("start the first server");
    let second = flipbook_server::start(config).await.expect("start the second server");
    let servers = Arc::new([GrpcStore::connect(first.addr).await, GrpcStore::connect(second.addr).await]);
    let prefix = format!("{}/", Uuid::new_v4().simple());
    let written = Arc::new(AtomicU64::new(0));
    let (done, until) = tokio::sync::watch::channel(None);

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write(Arc::clone(&servers), prefix.clone(), writer, Arc::clone(&written))))
        .collect();
    // Subscribe once about a third is written: the middle is the newest position acknowledged
    // by then; from the beginning catches up on the stored third while the writers go on.
    while written.load(Ordering::Relaxed) < EVENTS / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let middle = servers[0]
        .read_all_page(&flipbook_model::AllQuery { state_id_prefix: prefix.clone(), ..Default::default() }, None, 1_000)
        .await
        .expect("read the stored events")
        .events
        .last()
        .expect("events are stored")
        .global_position;
    let subscribers = [
        (SubscriptionStart::Beginning, 0, Some(RESUME_EVERY)),
        (SubscriptionStart::After(middle), 1, None),
        (SubscriptionStart::Now, 0, None),
    ]
    .map(|(start, server, resume)| {
        tokio::spawn(subscribe(Arc::clone(&servers), prefix.clone(), start, server, resume, until.clone()))
    });
    let poller = tokio::spawn(poll(Arc::clone(&servers), prefix.clone(), until.clone()));

    let mut stored = Stored::new();
    for writer in writers {
        stored.extend(writer.await.expect("a writer"));
    }
    assert_eq!(stored.len() as u64, EVENTS, "every append got its own positions");
    done.send_replace(stored.keys().last().copied());

    let readers = subscribers.into_iter().chain([poller]).zip(["beginning", "middle", "now", "a ReadAll poller"]);
    for (subscriber, (task, start)) in readers.enumerate() {
        let (now_start, received) =
            tokio::time::timeout(Duration::from_secs(120), task).await.expect("in time").expect("a subscriber");
        let after = match subscriber {
            1 => middle,
            2 => now_start,
            _ => 0,
        };
        let expected: Vec<(u64, Uuid)> = stored.range(after + 1..).map(|(&p, &id)| (p, id)).collect();
        assert!(
            received.windows(2).all(|w| w[0].0 < w[1].0),
            "{start}: strictly increasing positions (none repeated, none out of order)"
        );
        let missing = expected.iter().filter(|e| !received.contains(e)).count();
        assert_eq!(received.len(), expected.len(), "{start}: {missing} of {} events missed", expected.len());
        assert_eq!(received, expected, "{start}: exactly the events after its start");
    }
    first.stop().await.expect("stop");
    second.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_servers_one_file() {
    scenario(Config::local(fresh_db())).await;
}

fn postgres(url: String) -> Config {
    let mut config = Config::local(fresh_db());
    config.events.backend = EventBackend::Postgres;
    config.events.postgres.url = url;
    config.snapshots.backend = SnapshotBackend::Memory;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_servers() {
    scenario(postgres(postgres_url())).await;
}

/// In a database of its own, whose inserts into the event table sleep 0–20 ms before their
/// transaction commits (a trigger): transactions then commit in an order other than their
/// positions', which is what makes a naive subscription skip events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_servers_with_slow_transactions() {
    use sqlx::Connection;
    let (url, database) = common::fresh_postgres_database("flipbook_slow").await;
    flipbook_server::migrate(&postgres(url.clone())).await.expect("create the schema");
    let mut slow = sqlx::PgConnection::connect(&url).await.expect("connect to the new database");
    sqlx::raw_sql(
        "CREATE FUNCTION flipbook_test_slow() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(random() * 0.02); RETURN NULL; END $$; \
         CREATE TRIGGER flipbook_test_slow AFTER INSERT ON flipbook_events \
         FOR EACH STATEMENT EXECUTE FUNCTION flipbook_test_slow();",
    )
    .execute(&mut slow)
    .await
    .expect("install the slow trigger");
    scenario(postgres(url)).await;
    slow.close().await.expect("close");
    common::postgres_admin(&format!("DROP DATABASE {database} WITH (FORCE)")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_servers() {
    let mut config = redis_config();
    config.snapshots.backend = SnapshotBackend::Memory;
    scenario(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_two_servers() {
    let mut config = dynamodb_config();
    config.snapshots.backend = SnapshotBackend::Memory;
    // Each server reads the counter every poll while anyone subscribes: at the default 10 ms,
    // two servers' polls alone would take most of moto's one thread.
    config.subscriptions.poll_interval = Duration::from_millis(100);
    scenario(config).await;
}

/// A subscriber that takes nothing is dropped with FELL_BEHIND and the position to resume
/// after; resuming there delivers the rest once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_told_where_to_resume() {
    let mut config = Config::local(fresh_db());
    config.subscriptions.stall_timeout = Duration::from_millis(300);
    let server = flipbook_server::start(config).await.expect("start");
    let store = GrpcStore::connect(server.addr).await;
    // About 8 MiB: more than the transport's windows hold for a reader that does not read.
    let payload = format!("\"{}\"", "x".repeat(16 * 1024));
    let mut stored = Vec::new();
    for batch in 0..16 {
        let events = (0..32).map(|_| ProposedEvent::new("Big", payload.clone())).collect();
        let outcome =
            store.append(AppendRequest::new(format!("big-{batch}"), Expectation::Any, events)).await.expect("append");
        stored.extend(outcome.global_positions);
    }
    let mut stream = std::pin::pin!(store.subscribe(SubscriptionQuery::default()).await.expect("subscribe"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = Vec::new();
    let error = loop {
        match stream.next().await.expect("ends with an error, not silently") {
            Ok(Delivery::Events(events)) => received.extend(events.iter().map(|e| e.global_position)),
            Ok(Delivery::Checkpoint(_)) => {}
            Err(error) => break error,
        }
    };
    assert!(received.len() < stored.len(), "the server did not buffer everything for it");
    assert_eq!(received, stored[..received.len()]);
    let Error::FellBehind { position, waited_ms } = error else { panic!("expected FELL_BEHIND, got {error:?}") };
    assert_eq!(position, received.last().copied().unwrap_or(0));
    assert_eq!(waited_ms, 300);

    let resumed = SubscriptionQuery { start: SubscriptionStart::After(position), ..Default::default() };
    let mut stream = std::pin::pin!(store.subscribe(resumed).await.expect("subscribe again"));
    while received.len() < stored.len() {
        match stream.next().await.expect("open").expect("no error") {
            Delivery::Events(events) => received.extend(events.iter().map(|e| e.global_position)),
            Delivery::Checkpoint(_) => {}
        }
    }
    assert_eq!(received, stored, "every event once");
    server.stop().await.expect("stop");
}

/// Stopping a server ends its subscriptions with UNAVAILABLE at once, so the stop does not
/// wait out its grace period and subscribers move to another server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_ends_subscriptions() {
    let server = flipbook_server::start(Config::local(fresh_db())).await.expect("start");
    let store = GrpcStore::connect(server.addr).await;
    let mut stream = std::pin::pin!(store.subscribe(SubscriptionQuery::default()).await.expect("subscribe"));
    assert_eq!(stream.next().await.expect("a message").expect("no error"), Delivery::Checkpoint(0));
    let started = std::time::Instant::now();
    server.stop().await.expect("stop");
    assert!(started.elapsed() < Duration::from_secs(5), "the stop did not wait for the subscription");
    match stream.next().await {
        Some(Err(Error::Unavailable(_))) => {}
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}
