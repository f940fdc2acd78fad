//! Subscriptions through the client, in every mode: stored events then live ones, once and in
//! order; resumed across connections a proxy cuts; checkpoints; invalid filters refused before
//! any round trip.

#[macro_use]
mod common;

use std::time::Duration;

use common::{ChaosProxy, Fixture, Mode, plain};
use flipbook_sdk_core::{
    AppendRequest, Client, Delivery, ErrorCode, Expectation, ProposedEvent, Subscription, SubscriptionQuery,
    SubscriptionStart,
};
use futures::StreamExt;

in_every_mode!(
    stored_then_live_events_once_in_order,
    a_subscription_resumes_across_cut_connections,
    invalid_filters_are_refused_before_a_round_trip,
);

/// A server on an SQLite file that stops and starts again on the same address.
async fn restartable_server() -> (flipbook_server::config::Config, flipbook_server::Running) {
    let mut config = flipbook_server::config::Config::local(common::temp_db());
    let server = flipbook_server::start(config.clone()).await.expect("start the server");
    config.listen = server.addr;
    (config, server)
}

/// The server stops and comes back two seconds later, while a subscriber waits: the
/// subscription resumes after the last event it handed out (spec §4, the resume window) and
/// the subscriber sees the next event, once, without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_outlives_a_server_restart() {
    let (config, server) = restartable_server().await;
    let (prefix, client) = (prefix(), Fixture::connect(server.addr, plain()).await);
    let first = append(&client, &prefix, 1).await;
    let mut subscription = client.subscribe(from(SubscriptionStart::Beginning, &prefix));
    assert_eq!(receive_until(&mut subscription, first[0]).await, first);
    let waiting = tokio::spawn(async move {
        let last = subscription.position().expect("a position") + 1;
        receive_until(&mut subscription, last).await
    });
    server.stop().await.expect("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = flipbook_server::start(config).await.expect("start again on the same address");
    let second = append(&client, &prefix, 1).await;
    let received = tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("in time").expect("subscriber");
    assert_eq!(received, second, "the event after the restart, once");
    server.stop().await.expect("stop");
}

/// A server that stays away longer than the resume window: the error reaches the subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_ends_once_its_resume_window_passes() {
    let (_, server) = restartable_server().await;
    let mut options = plain();
    options.retry.resume_for = Duration::from_millis(500);
    let (prefix, client) = (prefix(), Fixture::connect(server.addr, options).await);
    let first = append(&client, &prefix, 1).await;
    let mut subscription = client.subscribe(from(SubscriptionStart::Beginning, &prefix));
    assert_eq!(receive_until(&mut subscription, first[0]).await, first);
    server.stop().await.expect("stop");
    let started = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match subscription.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    });
    let error = ended.await.expect("it ends").expect("with an error").expect_err("an error");
    assert_eq!(error.code(), ErrorCode::Unavailable, "{error}");
    assert!(started.elapsed() >= Duration::from_millis(500), "not before the window: {:?}", started.elapsed());
    assert_eq!(subscription.position(), Some(first[0]), "where to go on");
}

fn prefix() -> String {
    format!("{}/", uuid::Uuid::new_v4().simple())
}

fn from(start: SubscriptionStart, prefix: &str) -> SubscriptionQuery {
    SubscriptionQuery { start, state_id_prefix: prefix.to_owned(), names: Vec::new() }
}

/// Appends `count` events one at a time to states under `prefix`; answers their positions.
async fn append(client: &Client, prefix: &str, count: u64) -> Vec<u64> {
    let mut positions = Vec::new();
    for i in 0..count {
        let event = ProposedEvent::new("Happened", format!("{{\"i\":{i}}}"));
        let request = AppendRequest::new(format!("{prefix}{}", i % 7), Expectation::Any, vec![event]);
        positions.extend(client.append(request).await.expect("append").global_positions);
    }
    positions
}

/// Positions of the events received until one reaches `last`.
async fn receive_until(subscription: &mut Subscription, last: u64) -> Vec<u64> {
    let mut positions = Vec::new();
    let receiving = async {
        while let Some(message) = subscription.next().await {
            match message.expect("no error reaches the caller") {
                Delivery::Events(events) => positions.extend(events.iter().map(|e| e.global_position)),
                Delivery::Checkpoint(_) => {}
            }
            if subscription.position().is_some_and(|p| p >= last) {
                return;
            }
        }
        panic!("the subscription ended");
    };
    tokio::time::timeout(Duration::from_secs(60), receiving).await.expect("in time");
    positions
}

async fn stored_then_live_events_once_in_order(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let (writer, reader) = (fixture.client(plain()).await, fixture.client(plain()).await);
    let prefix = prefix();
    let mut expected = append(&writer, &prefix, 30).await;
    let mut subscription = reader.subscribe(from(SubscriptionStart::Beginning, &prefix));
    let mut now = reader.subscribe(from(SubscriptionStart::Now, &prefix));
    let start = match now.next().await.expect("a message").expect("no error") {
        Delivery::Checkpoint(start) => start,
        other => panic!("from now, a checkpoint comes first: {other:?}"),
    };
    let live = append(&writer, &prefix, 20).await;
    expected.extend(&live);
    let last = *expected.last().expect("events");

    assert_eq!(receive_until(&mut subscription, last).await, expected);
    assert_eq!(subscription.position(), Some(last), "the position to save");
    let after_start: Vec<u64> = expected.iter().copied().filter(|&p| p > start).collect();
    assert_eq!(receive_until(&mut now, last).await, after_start);
    assert!(live.iter().all(|p| after_start.contains(p)));
}

/// 2,000 events appended while the subscriber's connection goes through a proxy that cuts
/// connections mid-answer: the subscription resumes after the last position it handed out and
/// the caller sees every event once, in order.
async fn a_subscription_resumes_across_cut_connections(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let writer = fixture.client(plain()).await;
    let proxy = match fixture.server_addr() {
        Some(addr) => Some(ChaosProxy::start(addr, 40, Duration::from_millis(5)).await),
        None => None,
    };
    let reader = match &proxy {
        Some(proxy) => {
            let mut options = plain();
            options.retry.max_resends = 50;
            Fixture::connect(proxy.addr, options).await
        }
        None => fixture.client(plain()).await,
    };
    let prefix = prefix();
    let mut subscription = reader.subscribe(from(SubscriptionStart::Beginning, &prefix));
    if let Some(proxy) = &proxy {
        proxy.set_chaos(true);
    }
    // The subscriber reads while the writers write: many small answers for the proxy to cut.
    let receiving = tokio::spawn(async move {
        let mut received = Vec::new();
        while received.len() < 2_000 {
            match subscription.next().await.expect("open").expect("no error reaches the caller") {
                Delivery::Events(events) => received.extend(events.iter().map(|e| e.global_position)),
                Delivery::Checkpoint(_) => {}
            }
        }
        received
    });
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (writer, prefix) = (writer.clone(), prefix.clone());
            tokio::spawn(async move { append(&writer, &prefix, 500).await })
        })
        .collect();
    let mut expected = Vec::new();
    for task in writers {
        expected.extend(task.await.expect("a writer"));
    }
    expected.sort_unstable();
    let received = tokio::time::timeout(Duration::from_secs(60), receiving).await.expect("in time").expect("reader");
    assert_eq!(received.len(), expected.len(), "every event once");
    assert_eq!(received, expected, "in order");
    if let Some(proxy) = proxy {
        let cuts = proxy.cuts.load(std::sync::atomic::Ordering::Relaxed);
        assert!(cuts > 0, "the proxy cut connections ({cuts})");
    }
}

async fn invalid_filters_are_refused_before_a_round_trip(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let client = fixture.client(plain()).await;
    let query = SubscriptionQuery { names: vec![String::new()], ..SubscriptionQuery::default() };
    let mut subscription = client.subscribe(query);
    let error = subscription.next().await.expect("a message").expect_err("refused");
    assert_eq!(error.code(), ErrorCode::InvalidArgument);
    assert!(error.field().is_some_and(|f| f.starts_with("names")), "{error}");
    assert!(subscription.next().await.is_none(), "and it ends");
}
