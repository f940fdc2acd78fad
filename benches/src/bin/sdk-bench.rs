//! The client core (`flipbook-sdk-core`) against the plainer ways of doing the same work with the
//! same client, measured in the same run.
//!
//! `cargo run --release -p flipbook-benches --bin sdk-bench` (add `--smoke` for a quick run
//! that only proves it works). Three ratios, all folding with the same [`WalletReducer`]:
//!
//! - loading a large state through a `Repository` whose client has a snapshot policy (each load
//!   from a fresh client, so it starts from the snapshot store, not the local cache) against
//!   the same load with snapshots and the cache off (every event read and folded);
//! - `Repository::execute` (default options: the local cache makes each command one append
//!   against the cached version) against raw `Client::append` of the same event with
//!   `Expectation::Exactly`, the caller tracking the version itself; 16 tasks, a state each;
//! - embedded mode (`Client::open_embedded`) loading a state against the same load through a
//!   local server, snapshots and cache off on both.

use std::path::Path;

use flipbook_benches::{Args, ChildServer, PAYLOAD, Target, child_main, median, rate, report};
use flipbook_sdk_core::{
    AppendRequest, BoxError, Client, ClientOptions, ConnectOptions, Expectation, ProposedEvent, RecordedEvent, Reducer,
    Repository, SnapshotQuery, StateQuery,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

struct Sizes {
    /// Events of the state loaded with and without snapshots.
    snapshot_state: u64,
    /// Loads timed per run: from the snapshot (fresh clients), and by folding every event.
    snapshot_loads: u64,
    plain_loads: u64,
    /// Concurrent tasks, each on its own state, and the commands each runs.
    tasks: u64,
    commands: u64,
    /// Events of the state loaded embedded and through a server, and loads per run.
    embedded_state: u64,
    embedded_loads: u64,
    /// Each figure is the median of this many runs, Flipbook and baseline alternating, so a
    /// noisy neighbour (fsync latency varies a lot on shared disks) skews both alike.
    repeats: usize,
}

/// The snapshot policy of the client that loads from snapshots.
const SNAPSHOT_EVERY: u64 = 1000;

/// What every load folds: a wallet summing the amounts of JSON payloads like [`PAYLOAD`].
#[derive(Clone, Copy, Debug)]
struct WalletReducer;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Wallet {
    balance: i64,
    deposits: u64,
}

#[derive(Deserialize)]
struct Amount {
    amount: i64,
}

impl Reducer for WalletReducer {
    type State = Wallet;
    const REVISION: &'static str = "wallet-1";

    fn initial(&self) -> Wallet {
        Wallet::default()
    }

    fn apply(&self, wallet: &mut Wallet, event: &RecordedEvent) -> Result<(), BoxError> {
        let Amount { amount } = serde_json::from_slice(&event.payload)?;
        wallet.balance += amount;
        wallet.deposits += 1;
        Ok(())
    }
}

/// What [`PAYLOAD`] adds to a wallet.
const AMOUNT: i64 = 1250;

fn deposit() -> ProposedEvent {
    ProposedEvent::new("Deposited", PAYLOAD)
}

/// Snapshots and the local cache off: every load reads and folds every event.
fn plain_options() -> ClientOptions {
    let mut options = ClientOptions::default();
    options.snapshots.every = None;
    options.cache.max_entries = 0;
    options
}

fn snapshot_options() -> ClientOptions {
    let mut options = ClientOptions::default();
    options.snapshots.every = Some(SNAPSHOT_EVERY);
    options
}

async fn connect(server: &ChildServer, options: ClientOptions) -> anyhow::Result<Client> {
    Ok(Client::connect_with(ConnectOptions::new(format!("http://{}", server.addr)), options).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(child) = child_main().await {
        return child;
    }
    let args = Args::from_env(&["snapshots", "commands", "embedded"], &["--verbose"]);
    let smoke = args.smoke();
    // `--only snapshots|commands|embedded` runs one part.
    let sizes = if smoke {
        Sizes {
            snapshot_state: 5_000,
            snapshot_loads: 5,
            plain_loads: 2,
            tasks: 16,
            commands: 10,
            embedded_state: 1_000,
            embedded_loads: 2,
            repeats: 1,
        }
    } else {
        Sizes {
            snapshot_state: 100_000,
            snapshot_loads: 100,
            plain_loads: 5,
            tasks: 16,
            commands: 300,
            embedded_state: 10_000,
            embedded_loads: 20,
            repeats: 5,
        }
    };
    if cfg!(debug_assertions) && !smoke {
        eprintln!("warning: a debug build; run with --release for figures");
    }
    let dir = tempfile::Builder::new().prefix("flipbook-sdk-bench-").tempdir()?;
    println!("SDK benchmark ({} mode), data in {}", if smoke { "smoke" } else { "full" }, dir.path().display());

    let mut met = true;
    if args.runs("snapshots") {
        met &= snapshots(dir.path(), &sizes).await?;
    }
    if args.runs("commands") {
        met &= commands(dir.path(), &sizes).await?;
    }
    if args.runs("embedded") {
        met &= embedded(dir.path(), &sizes).await?;
    }
    if !met && !smoke {
        println!("some targets were missed");
    }
    Ok(())
}

/// Writes `count` deposits to a state with raw appends of up to 1000 events each.
async fn write_state(client: &Client, state: &str, count: u64) -> anyhow::Result<()> {
    let mut done = 0;
    while done < count {
        let batch = (count - done).min(1000);
        let events = (0..batch).map(|_| deposit()).collect();
        client.append(AppendRequest::new(state, Expectation::Any, events)).await?;
        done += batch;
    }
    Ok(())
}

/// `loads` loads of the state by these repositories (one each, in turn), checked; loads/s.
async fn timed_loads(
    repositories: &[Repository<WalletReducer>],
    state: &str,
    loads: u64,
    events: u64,
) -> anyhow::Result<f64> {
    let expected = Wallet { balance: AMOUNT * events as i64, deposits: events };
    rate(loads, || async {
        for n in 0..loads as usize {
            let loaded = repositories[n % repositories.len()].load(state).await?;
            anyhow::ensure!(loaded.version == events && loaded.state == expected, "loaded {loaded:?}");
        }
        Ok(())
    })
    .await
}

// ---- 1. loading with a snapshot policy, against folding every event ----------------------

async fn snapshots(dir: &Path, sizes: &Sizes) -> anyhow::Result<bool> {
    let server = ChildServer::sqlite(&dir.join("snapshots.db")).await?;
    // Two states with the same events. A load reads the newest snapshot whatever the client's
    // snapshot policy (`every: None` only stops writing them), so the baseline loads a twin
    // that never had one.
    let (state, twin) = ("wallet-large", "wallet-large-twin");
    let plain = Repository::new(connect(&server, plain_options()).await?, WalletReducer);
    write_state(plain.client(), state, sizes.snapshot_state).await?;
    write_state(plain.client(), twin, sizes.snapshot_state).await?;
    // One load with the snapshot policy writes the snapshot the timed loads start from.
    let writer = Repository::new(connect(&server, snapshot_options()).await?, WalletReducer);
    writer.load(state).await?;
    writer.client().flush_snapshots().await.expect("flushed");
    anyhow::ensure!(snapshot_version(&plain, state).await? == Some(sizes.snapshot_state), "no snapshot written");

    let (mut baseline, mut flipbook) = (Vec::new(), Vec::new());
    for _ in 0..sizes.repeats {
        baseline.push(timed_loads(std::slice::from_ref(&plain), twin, sizes.plain_loads, sizes.snapshot_state).await?);
        // A fresh client per load (connected before the clock starts): its cache is empty, so
        // the load asks the snapshot store, then reads the (no) events after the snapshot.
        let mut fresh = Vec::new();
        for _ in 0..sizes.snapshot_loads {
            fresh.push(Repository::new(connect(&server, snapshot_options()).await?, WalletReducer));
        }
        flipbook.push(timed_loads(&fresh, state, sizes.snapshot_loads, sizes.snapshot_state).await?);
    }
    anyhow::ensure!(snapshot_version(&plain, twin).await?.is_none(), "the baseline's state has a snapshot");
    server.stop().await?;
    Ok(report(
        &format!("load a {}-event state, snapshots", sizes.snapshot_state),
        "loads/s",
        median(flipbook),
        "no snapshots",
        median(baseline),
        Target::AtLeast(20.0),
    ))
}

/// The version of the state's newest snapshot of the wallet's revision.
async fn snapshot_version(wallets: &Repository<WalletReducer>, state: &str) -> anyhow::Result<Option<u64>> {
    let query = SnapshotQuery {
        state_id: state.to_owned(),
        reducer_revision: WalletReducer::REVISION.to_owned(),
        max_version: None,
    };
    Ok(wallets.client().get_snapshot(query).await?.map(|s| s.version))
}

// ---- 2. Repository::execute, against raw appends --------------------------------------------

async fn commands(dir: &Path, sizes: &Sizes) -> anyhow::Result<bool> {
    let server = ChildServer::sqlite(&dir.join("commands.db")).await?;
    let (mut baseline, mut flipbook, mut unsnapshotted) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..sizes.repeats {
        // Where the time goes: the same commands without the default snapshot policy (a
        // snapshot every 100 events, written before the command returns).
        let mut unsnapshotted_options = ClientOptions::default();
        unsnapshotted_options.snapshots.every = None;
        // Who goes first rotates: a run right after another one on the same file tends to be
        // faster (or slower), and that should not favour one side.
        for turn in 0..3 {
            match (run + turn) % 3 {
                0 => baseline.push(raw_appends(&server, run, sizes).await?),
                1 => {
                    flipbook.push(executes(&server, &format!("execute-{run}"), ClientOptions::default(), sizes).await?)
                }
                _ => unsnapshotted.push(
                    executes(&server, &format!("unsnapshotted-{run}"), unsnapshotted_options.clone(), sizes).await?,
                ),
            }
        }
    }
    if std::env::args().any(|a| a == "--verbose") {
        eprintln!("raw append {baseline:.0?}\nexecute {flipbook:.0?}\nexecute, no snapshot policy {unsnapshotted:.0?}");
    }
    server.stop().await?;
    let baseline = median(baseline);
    report("  (execute, no snapshot policy)", "cmds/s", median(unsnapshotted), "raw append", baseline, Target::None);
    Ok(report(
        &format!("execute 1 event, {} tasks", sizes.tasks),
        "cmds/s",
        median(flipbook),
        "raw append",
        baseline,
        Target::AtLeast(0.8),
    ))
}

/// Each task appends one deposit at a time to its own state, expecting the version it tracks.
async fn raw_appends(server: &ChildServer, run: usize, sizes: &Sizes) -> anyhow::Result<f64> {
    let client = connect(server, ClientOptions::default()).await?;
    let (tasks, commands) = (sizes.tasks, sizes.commands);
    rate(tasks * commands, || async {
        let mut handles = Vec::new();
        for task in 0..tasks {
            let client = client.clone();
            handles.push(tokio::spawn(async move {
                let state = format!("raw-{run}-{task}");
                let mut version = 0;
                for _ in 0..commands {
                    let request = AppendRequest::new(&state, Expectation::Exactly(version), vec![deposit()]);
                    let outcome = client.append(request).await?;
                    version = outcome.last_version.unwrap_or(version + 1);
                }
                anyhow::ensure!(version == commands, "state {state} at {version}");
                anyhow::Ok(())
            }));
        }
        for handle in handles {
            handle.await??;
        }
        Ok(())
    })
    .await
}

/// Each task runs commands that decide one deposit on its own state.
async fn executes(server: &ChildServer, prefix: &str, options: ClientOptions, sizes: &Sizes) -> anyhow::Result<f64> {
    let wallets = Repository::new(connect(server, options).await?, WalletReducer);
    let (tasks, commands) = (sizes.tasks, sizes.commands);
    rate(tasks * commands, || async {
        let mut handles = Vec::new();
        for task in 0..tasks {
            let (wallets, prefix) = (wallets.clone(), prefix.to_owned());
            handles.push(tokio::spawn(async move {
                let state = format!("{prefix}-{task}");
                let mut last = None;
                for _ in 0..commands {
                    last = Some(wallets.execute(&state, |_wallet| Ok(vec![deposit()])).await?);
                }
                let done = last.map(|e| (e.version, e.state.deposits));
                anyhow::ensure!(done == Some((commands, commands)), "state {state}: {done:?}");
                anyhow::Ok(())
            }));
        }
        for handle in handles {
            handle.await??;
        }
        Ok(())
    })
    .await
}

// ---- 3. embedded, against through a local server -----------------------------------------

async fn embedded(dir: &Path, sizes: &Sizes) -> anyhow::Result<bool> {
    // One file: written and read embedded, and read by the server beside it (WAL).
    let db = dir.join("embedded.db");
    let state = "wallet-embedded";
    let local = Repository::new(Client::open_embedded(&db, plain_options()).await?, WalletReducer);
    write_state(local.client(), state, sizes.embedded_state).await?;
    let server = ChildServer::sqlite(&db).await?;
    let remote = Repository::new(connect(&server, plain_options()).await?, WalletReducer);
    let (mut baseline, mut flipbook, mut remote_reads, mut local_reads) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (loads, events) = (sizes.embedded_loads, sizes.embedded_state);
    for _ in 0..sizes.repeats {
        baseline.push(timed_loads(std::slice::from_ref(&remote), state, loads, events).await?);
        flipbook.push(timed_loads(std::slice::from_ref(&local), state, loads, events).await?);
        // Where the time goes: the same pages read with `Client::read_state`, nothing folded.
        remote_reads.push(timed_reads(remote.client(), state, loads, events).await?);
        local_reads.push(timed_reads(local.client(), state, loads, events).await?);
    }
    server.stop().await?;
    let events = events as f64;
    report(
        "  (read_state alone, no reducer)",
        "events/s",
        median(local_reads) * events,
        "server",
        median(remote_reads) * events,
        Target::None,
    );
    Ok(report(
        &format!("load a {}-event state, embedded", sizes.embedded_state),
        "events/s",
        median(flipbook) * events,
        "server",
        median(baseline) * events,
        Target::AtLeast(3.0),
    ))
}

/// `reads` reads of every event of the state with `Client::read_state`, counted; reads/s.
async fn timed_reads(client: &Client, state: &str, reads: u64, events: u64) -> anyhow::Result<f64> {
    rate(reads, || async {
        for _ in 0..reads {
            let mut pages = client.read_state(StateQuery::all(state));
            let mut read = 0;
            while let Some(page) = pages.try_next().await? {
                read += page.len() as u64;
            }
            anyhow::ensure!(read == events, "read {read} of {events}");
        }
        Ok(())
    })
    .await
}
