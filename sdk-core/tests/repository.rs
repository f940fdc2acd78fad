//! SPEC section 6 on every way a client runs: through a real server (SQLite and PostgreSQL),
//! embedded over a SQLite file, and in memory. Each test runs once per mode.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{ChaosProxy, Fixture, Mode, Wallet, WalletReducer, event, plain, state_id};
use flipbook_sdk_core::{
    AppendRequest, ClientOptions, Error, ErrorCode, Expectation, ProposedEvent, Reducer, Repository, Snapshot,
    StateQuery, Timestamp,
};
use futures::TryStreamExt;

in_every_mode!(
    loads_with_and_without_snapshots_agree_on_random_histories,
    a_snapshot_of_another_revision_is_ignored,
    an_undecodable_snapshot_is_skipped,
    losing_every_snapshot_loses_nothing,
    as_of_loads_see_the_state_at_that_time,
    contended_deposits_land_exactly_once,
    contended_transfers_keep_every_balance,
    a_rejected_decision_appends_nothing,
    an_empty_decision_appends_nothing,
    the_cache_is_bounded,
    invalid_input_is_refused_with_the_field,
);

fn snapshots_every(n: u64) -> ClientOptions {
    let mut options = ClientOptions::default();
    options.snapshots.every = Some(n);
    options
}

/// The property: whatever the history and however often snapshots were written, a load with
/// snapshots and the cache gives exactly the state a plain fold of every event gives.
async fn loads_with_and_without_snapshots_agree_on_random_histories(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let plain_wallets = Repository::new(fixture.client(plain()).await, WalletReducer);
    for case in 0..12 {
        let seed = fastrand::u64(..);
        let mut rng = fastrand::Rng::with_seed(seed);
        let id = state_id("wallet");
        let writer = Repository::new(fixture.client(snapshots_every(rng.u64(1..8))).await, WalletReducer);
        let commands = rng.usize(0..40);
        for c in 0..commands {
            let batch: Vec<ProposedEvent> = (0..rng.usize(1..4))
                .map(|_| {
                    let name = ["Deposited", "PaymentMade", "Withdrawn"][rng.usize(0..3)];
                    event(name, rng.i64(1..1000), &format!("c{c}"))
                })
                .collect();
            writer.execute(&id, move |_| Ok(batch.clone())).await.expect("execute");
            if rng.u8(0..4) == 0 {
                // Another client, with its own cache, loads in the middle of the history.
                let other = Repository::new(fixture.client(snapshots_every(rng.u64(1..5))).await, WalletReducer);
                other.load(&id).await.expect("load");
            }
        }
        let expected = plain_wallets.load(&id).await.expect("plain load");
        let fresh = Repository::new(fixture.client(ClientOptions::default()).await, WalletReducer);
        for (what, loaded) in [
            ("the writer (cache)", writer.load(&id).await.expect("load")),
            ("a fresh client (snapshots)", fresh.load(&id).await.expect("load")),
            ("the fresh client again (cache)", fresh.load(&id).await.expect("load")),
        ] {
            assert_eq!(loaded, expected, "case {case} (seed {seed}), {what}");
        }
        let events: usize = plain_wallets
            .client()
            .read_state(StateQuery::all(id.clone()))
            .try_collect::<Vec<_>>()
            .await
            .expect("read")
            .iter()
            .map(Vec::len)
            .sum();
        assert_eq!(expected.version, events as u64, "case {case} (seed {seed})");
    }
}

async fn history(repository: &Repository<WalletReducer>, id: &str, deposits: i64) {
    for amount in 1..=deposits {
        repository.execute(id, move |_| Ok(vec![event("Deposited", amount, "")])).await.expect("execute");
    }
}

async fn a_snapshot_of_another_revision_is_ignored(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let id = state_id("wallet");
    history(&Repository::new(fixture.client(plain()).await, WalletReducer), &id, 5).await;
    let client = fixture.client(ClientOptions::default()).await;
    let lie = Wallet { balance: 1_000_000, ..Wallet::default() };
    for revision in ["wallet-0", "wallet-2"] {
        let snapshot = Snapshot {
            state_id: id.clone(),
            version: 5,
            reducer_revision: revision.to_owned(),
            payload: serde_json::to_vec(&lie).expect("json"),
            content_type: "application/json".to_owned(),
            created_at: Timestamp::now(),
        };
        client.put_snapshot(snapshot).await.expect("put");
    }
    let loaded = Repository::new(client, WalletReducer).load(&id).await.expect("load");
    assert_eq!((loaded.state.balance, loaded.version), (15, 5));
}

async fn an_undecodable_snapshot_is_skipped(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let id = state_id("wallet");
    history(&Repository::new(fixture.client(plain()).await, WalletReducer), &id, 4).await;
    let client = fixture.client(ClientOptions::default()).await;
    let snapshot = Snapshot {
        state_id: id.clone(),
        version: 4,
        reducer_revision: WalletReducer::REVISION.to_owned(),
        payload: b"{\"not\": \"a wallet\"".to_vec(),
        content_type: "application/json".to_owned(),
        created_at: Timestamp::now(),
    };
    client.put_snapshot(snapshot).await.expect("put");
    let loaded = Repository::new(client, WalletReducer).load(&id).await.expect("load");
    assert_eq!((loaded.state.balance, loaded.version), (10, 4));
}

async fn losing_every_snapshot_loses_nothing(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let id = state_id("wallet");
    let writer = Repository::new(fixture.client(snapshots_every(3)).await, WalletReducer);
    history(&writer, &id, 20).await;
    writer.client().flush_snapshots().await.expect("flushed");
    let client = fixture.client(ClientOptions::default()).await;
    let newest = client
        .get_snapshot(flipbook_sdk_core::SnapshotQuery {
            state_id: id.clone(),
            reducer_revision: WalletReducer::REVISION.to_owned(),
            max_version: None,
        })
        .await
        .expect("get")
        .expect("the policy wrote snapshots");
    assert!(newest.version >= 18, "a snapshot at least every 3 events: newest at {}", newest.version);
    let before = writer.load(&id).await.expect("load");
    assert!(client.delete_snapshots(&id).await.expect("delete") >= 6);
    let after = Repository::new(fixture.client(plain()).await, WalletReducer).load(&id).await.expect("load");
    assert_eq!(after, before);
    assert_eq!((after.state.balance, after.version), (210, 20));
}

async fn as_of_loads_see_the_state_at_that_time(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let id = state_id("wallet");
    let wallets = Repository::new(fixture.client(snapshots_every(1)).await, WalletReducer);
    let at = |day: i64| Timestamp::from_unix_nanos(day * 86_400 * 1_000_000_000);
    let dated = |amount: i64, day: Option<i64>| {
        let mut e = event("Deposited", amount, "");
        e.timestamp = day.map(at);
        e
    };
    // Day 1: 10; no date: 1; day 3: 100; day 2 (recorded later): 1000.
    for e in [dated(10, Some(1)), dated(1, None), dated(100, Some(3)), dated(1000, Some(2))] {
        wallets.execute(&id, move |_| Ok(vec![e.clone()])).await.expect("execute");
    }
    let balance = |day| {
        let wallets = &wallets;
        let id = &id;
        async move { wallets.load_as_of(id, at(day)).await.expect("load").state.balance }
    };
    assert_eq!(balance(0).await, 1, "only the time-neutral event");
    assert_eq!(balance(1).await, 11);
    assert_eq!(balance(2).await, 1011, "a back-dated event counts from its own date");
    assert_eq!(balance(3).await, 1111);
    assert_eq!(wallets.load(&id).await.expect("load").state.balance, 1111, "snapshots do not leak into as-of");
}

/// Through a server: a proxy that delays answers and cuts connections (none in-process), and
/// retry options patient enough for it.
async fn chaos(fixture: &Fixture) -> (Option<ChaosProxy>, ClientOptions) {
    let proxy = match fixture.server_addr() {
        Some(addr) => Some(ChaosProxy::start(addr, 15, Duration::from_millis(20)).await),
        None => None,
    };
    let mut options = ClientOptions::default();
    options.retry.max_tries = 100_000;
    options.retry.max_resends = 1_000;
    options.retry.first_delay = Duration::from_millis(1);
    options.retry.max_delay = Duration::from_millis(20);
    (proxy, options)
}

/// A client through the proxy when there is one, else the fixture's own.
async fn chaotic_client(
    fixture: &Fixture,
    proxy: Option<&ChaosProxy>,
    options: &ClientOptions,
) -> flipbook_sdk_core::Client {
    match proxy {
        Some(proxy) => Fixture::connect(proxy.addr, options.clone()).await,
        None => fixture.client(options.clone()).await,
    }
}

/// 32 tasks, each running 50 deposits on one wallet through retry, over four clients. Through
/// a server, the connection goes through a proxy that delays answers and cuts connections
/// mid-answer, so some appends are stored but their answer lost: the client re-sends them.
async fn contended_deposits_land_exactly_once(mode: Mode) {
    const TASKS: usize = 32;
    const DEPOSITS: usize = 50;
    let fixture = Fixture::new(mode).await;
    let (proxy, options) = chaos(&fixture).await;
    let mut repositories = Vec::new();
    for _ in 0..4 {
        let client = chaotic_client(&fixture, proxy.as_ref(), &options).await;
        repositories.push(Repository::new(client, WalletReducer));
    }
    if let Some(proxy) = &proxy {
        proxy.set_chaos(true);
    }
    let id = state_id("wallet");
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let wallets = repositories[task % repositories.len()].clone();
        let id = id.clone();
        tasks.spawn(async move {
            let mut retried = 0;
            for deposit in 0..DEPOSITS {
                let command = format!("t{task}-d{deposit}");
                let done = wallets
                    .execute(&id, |_| Ok(vec![event("Deposited", 1, &command)]))
                    .await
                    .unwrap_or_else(|e| panic!("{command}: {e}"));
                retried += done.tries - 1;
            }
            retried
        });
    }
    let mut retried = 0;
    while let Some(result) = tasks.join_next().await {
        retried += result.expect("task");
    }
    if let Some(proxy) = &proxy {
        proxy.set_chaos(false);
        assert!(proxy.cuts.load(std::sync::atomic::Ordering::Relaxed) > 0, "the proxy cut connections");
    }
    let total = (TASKS * DEPOSITS) as u64;
    let loaded = Repository::new(fixture.client(plain()).await, WalletReducer).load(&id).await.expect("load");
    assert_eq!(loaded.version, total, "the version equals the number of commands");
    assert_eq!(loaded.state.balance, total as i64);
    let events: Vec<_> = fixture
        .client(plain())
        .await
        .read_state(StateQuery::all(id.clone()))
        .try_collect::<Vec<_>>()
        .await
        .expect("read")
        .concat();
    let commands: HashSet<String> =
        events.iter().map(|e| serde_json::from_slice::<common::Amount>(&e.payload).expect("payload").command).collect();
    assert_eq!(commands.len(), events.len(), "a command's deposit is stored once");
    let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), events.len());
    assert!(retried > 0, "32 writers on one state conflict");
}

/// Transfers between three wallets, from 12 tasks at once over connections that break: each
/// transfer withdraws from one wallet and deposits into another in one command over both. Every
/// transfer lands once and whole: the balances still sum to what was paid in, and each wallet
/// holds exactly one event per transfer it took part in.
async fn contended_transfers_keep_every_balance(mode: Mode) {
    const TASKS: usize = 12;
    const TRANSFERS: usize = 10;
    let fixture = Fixture::new(mode).await;
    let (proxy, options) = chaos(&fixture).await;
    let client = chaotic_client(&fixture, proxy.as_ref(), &options).await;
    let wallets = Repository::new(client, WalletReducer);
    let ids: Vec<String> = (0..3).map(|_| state_id("wallet")).collect();
    for id in &ids {
        wallets.execute(id, |_| Ok(vec![event("Deposited", 1000, "opening")])).await.expect("open a wallet");
    }
    if let Some(proxy) = &proxy {
        proxy.set_chaos(true);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (wallets, ids) = (wallets.clone(), ids.clone());
        tasks.spawn(async move {
            let mut retried = 0;
            for transfer in 0..TRANSFERS {
                let (from, to) = ((task + transfer) % 3, (task + transfer + 1) % 3);
                let command = format!("t{task}-x{transfer}");
                let done = wallets
                    .execute_states(&[&ids[from], &ids[to]], |_| {
                        Ok(vec![vec![event("Withdrawn", 7, &command)], vec![event("Deposited", 7, &command)]])
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{command}: {e}"));
                assert_eq!(done.len(), 2);
                assert!(done.iter().all(|d| d.appended.is_some()));
                retried += done[0].tries - 1;
            }
            (retried, (0..TRANSFERS).map(move |t| ((task + t) % 3, (task + t + 1) % 3)).collect::<Vec<_>>())
        });
    }
    let (mut retried, mut touched) = (0, [1u64; 3]);
    while let Some(result) = tasks.join_next().await {
        let (tries, pairs) = result.expect("task");
        retried += tries;
        for (from, to) in pairs {
            touched[from] += 1;
            touched[to] += 1;
        }
    }
    if let Some(proxy) = &proxy {
        proxy.set_chaos(false);
    }
    let reader = Repository::new(fixture.client(plain()).await, WalletReducer);
    let mut total = 0;
    for (id, touched) in ids.iter().zip(touched) {
        let loaded = reader.load(id).await.expect("load");
        assert_eq!(loaded.version, touched, "{id}: one event per transfer it took part in");
        total += loaded.state.balance;
    }
    assert_eq!(total, 3000, "transfers move money, never make or lose it");
    assert!(retried > 0, "12 tasks over three wallets conflict");
}

#[derive(Debug)]
struct InsufficientFunds;

impl std::fmt::Display for InsufficientFunds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("insufficient funds")
    }
}

impl std::error::Error for InsufficientFunds {}

async fn a_rejected_decision_appends_nothing(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let id = state_id("wallet");
    let wallets = Repository::new(fixture.client(ClientOptions::default()).await, WalletReducer);
    history(&wallets, &id, 2).await;
    let error = wallets
        .execute(&id, |wallet: &Wallet| {
            if wallet.balance < 100 {
                return Err(InsufficientFunds.into());
            }
            Ok(vec![event("Withdrawn", 100, "")])
        })
        .await
        .expect_err("refused");
    assert_eq!(error.code(), ErrorCode::Rejected);
    let Error::Rejected(inner) = error else { unreachable!() };
    assert!(inner.downcast_ref::<InsufficientFunds>().is_some(), "the caller's own error comes back");
    let loaded = Repository::new(fixture.client(plain()).await, WalletReducer).load(&id).await.expect("load");
    assert_eq!((loaded.state.balance, loaded.version), (3, 2));
}

async fn an_empty_decision_appends_nothing(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let id = state_id("wallet");
    let wallets = Repository::new(fixture.client(ClientOptions::default()).await, WalletReducer);
    let done = wallets.execute(&id, |_| Ok(vec![])).await.expect("execute");
    assert_eq!((done.version, done.appended, done.tries), (0, None, 1));
    let head = wallets.client().head(&id).await.expect_err("no state");
    assert_eq!(head.code(), ErrorCode::NotFound);
}

async fn the_cache_is_bounded(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let mut options = ClientOptions::default();
    options.cache.max_entries = 3;
    let wallets = Repository::new(fixture.client(options).await, WalletReducer);
    for _ in 0..20 {
        history(&wallets, &state_id("wallet"), 1).await;
    }
    let (entries, _) = wallets.client().cache_usage().expect("open");
    assert!((1..=3).contains(&entries), "{entries} cached states");
}

async fn invalid_input_is_refused_with_the_field(mode: Mode) {
    let fixture = Fixture::new(mode).await;
    let client = fixture.client(ClientOptions::default()).await;
    let id = state_id("wallet");
    let cases = [
        (AppendRequest::new("", Expectation::Any, vec![event("Deposited", 1, "")]), "state_id"),
        (AppendRequest::new(id.clone(), Expectation::Any, vec![]), "events"),
        (AppendRequest::new(id.clone(), Expectation::Any, vec![event("", 1, "")]), "events[0].name"),
    ];
    for (request, field) in cases {
        let error = client.append(request).await.expect_err("refused");
        assert_eq!((error.code(), error.field()), (ErrorCode::InvalidArgument, Some(field)), "{error}");
    }
    let over = AppendRequest::new(id.clone(), Expectation::Any, vec![event("Deposited", 1, ""); 1001]);
    let error = client.append(over).await.expect_err("refused");
    assert_eq!((error.code(), error.field()), (ErrorCode::TooLarge, Some("events")), "{error}");
    let wallets = Repository::new(client.clone(), WalletReducer);
    let error = wallets.load("bad\nid").await.expect_err("refused");
    assert_eq!(error.field(), Some("state_id"));
    assert_eq!(client.head(&id).await.expect_err("nothing stored").code(), ErrorCode::NotFound);
}

/// A snapshot store that is down: every call fails as unavailable.
#[derive(Debug)]
struct DownSnapshotStore;

#[async_trait::async_trait]
impl flipbook_storage::SnapshotStore for DownSnapshotStore {
    fn backend(&self) -> &'static str {
        "down"
    }
    async fn put(&self, _: Snapshot) -> flipbook_model::Result<()> {
        Err(flipbook_model::Error::Unavailable("snapshot store down".into()))
    }
    async fn get(&self, _: &flipbook_sdk_core::SnapshotQuery) -> flipbook_model::Result<Option<Snapshot>> {
        Err(flipbook_model::Error::Unavailable("snapshot store down".into()))
    }
    async fn delete(&self, _: &str) -> flipbook_model::Result<u64> {
        Err(flipbook_model::Error::Unavailable("snapshot store down".into()))
    }
}

#[tokio::test]
async fn a_failing_snapshot_store_never_fails_a_command_or_a_load() {
    let events = std::sync::Arc::new(flipbook_storage::memory::MemoryEventStore::new());
    let client = flipbook_sdk_core::Client::local(events, std::sync::Arc::new(DownSnapshotStore), snapshots_every(1));
    let wallets = Repository::new(client.clone(), WalletReducer);
    let id = state_id("wallet");
    history(&wallets, &id, 5).await;
    client.flush_snapshots().await.expect("flushed");
    let fresh = Repository::new(client.clone(), WalletReducer).load(&id).await.expect("load");
    assert_eq!((fresh.state.balance, fresh.version), (15, 5));
    let mut no_cache = snapshots_every(1);
    no_cache.cache.max_entries = 0;
    let cold = flipbook_sdk_core::Client::local(
        std::sync::Arc::new(flipbook_storage::memory::MemoryEventStore::new()),
        std::sync::Arc::new(DownSnapshotStore),
        no_cache,
    );
    let error = cold.get_snapshot(flipbook_sdk_core::SnapshotQuery {
        state_id: id.clone(),
        reducer_revision: WalletReducer::REVISION.to_owned(),
        max_version: None,
    });
    assert_eq!(error.await.expect_err("down").code(), ErrorCode::Unavailable, "the low-level call reports it");
    let cold_wallets = Repository::new(cold, WalletReducer);
    let done = cold_wallets.execute(&id, |_| Ok(vec![event("Deposited", 7, "")])).await.expect("execute");
    assert_eq!((done.state.balance, done.version), (7, 1));
}
