//! Test support: the ways a client runs (a real server on SQLite or PostgreSQL, embedded over a
//! SQLite file, in memory), a wallet reducer, and a proxy that breaks connections.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use flipbook_sdk_core::{BoxError, Client, ClientOptions, ConnectOptions, RecordedEvent, Reducer};
use flipbook_server::config::{Config, EventBackend, SnapshotBackend};
use flipbook_storage::{EventStore, SnapshotStore};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Runs each named test once per mode, in a module per mode.
macro_rules! in_every_mode {
    ($($test:ident),+ $(,)?) => {
        mod server_sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $test() { super::$test(super::Mode::ServerSqlite).await } )+ }
        mod server_postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $test() { super::$test(super::Mode::ServerPostgres).await } )+ }
        mod embedded { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $test() { super::$test(super::Mode::Embedded).await } )+ }
        mod memory { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $test() { super::$test(super::Mode::Memory).await } )+ }
    };
}

/// Where the clients of one test run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ServerSqlite,
    ServerPostgres,
    Embedded,
    Memory,
}

/// One store for a test, and clients over it.
pub enum Fixture {
    Server { addr: SocketAddr, _server: Arc<flipbook_server::Running> },
    Local { events: Arc<dyn EventStore>, snapshots: Arc<dyn SnapshotStore> },
}

pub fn temp_db() -> std::path::PathBuf {
    tempfile::Builder::new().prefix("flipbook-sdk-").tempdir().expect("temp dir").keep().join("flipbook.db")
}

impl Fixture {
    pub async fn new(mode: Mode) -> Self {
        match mode {
            Mode::ServerSqlite => Self::server(Config::local(temp_db())).await,
            Mode::ServerPostgres => {
                let mut config = Config::local(temp_db());
                config.events.backend = EventBackend::Postgres;
                config.events.postgres.url = std::env::var("FLIPBOOK_TEST_POSTGRES_URL")
                    .expect("FLIPBOOK_TEST_POSTGRES_URL must name a PostgreSQL database (scripts/test starts one)");
                config.snapshots.backend = SnapshotBackend::Postgres;
                Self::server(config).await
            }
            Mode::Embedded => {
                use flipbook_storage::sqlite::{SqliteConfig, SqliteEventStore, SqliteSnapshotStore};
                let config = SqliteConfig::new(temp_db());
                Self::Local {
                    events: Arc::new(SqliteEventStore::open(&config).await.expect("open SQLite")),
                    snapshots: Arc::new(SqliteSnapshotStore::open(&config).await.expect("open SQLite")),
                }
            }
            Mode::Memory => Self::Local {
                events: Arc::new(flipbook_storage::memory::MemoryEventStore::new()),
                snapshots: Arc::new(flipbook_storage::memory::MemorySnapshotStore::new()),
            },
        }
    }

    async fn server(config: Config) -> Self {
        let server = flipbook_server::start(config).await.expect("start the server");
        Self::Server { addr: server.addr, _server: Arc::new(server) }
    }

    /// A new client (its own cache) over the fixture's store.
    pub async fn client(&self, options: ClientOptions) -> Client {
        match self {
            Self::Server { addr, .. } => Self::connect(*addr, options).await,
            Self::Local { events, snapshots } => Client::local(Arc::clone(events), Arc::clone(snapshots), options),
        }
    }

    pub async fn connect(addr: SocketAddr, options: ClientOptions) -> Client {
        Client::connect_with(ConnectOptions::new(format!("http://{addr}")), options).await.expect("connect")
    }

    pub fn server_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Server { addr, .. } => Some(*addr),
            Self::Local { .. } => None,
        }
    }
}

/// Options with neither snapshots nor a cache: every load folds every event.
pub fn plain() -> ClientOptions {
    let mut options = ClientOptions::default();
    options.snapshots.every = None;
    options.cache.max_entries = 0;
    options
}

pub fn state_id(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4())
}

// ---- the wallet of the project's description -----------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub balance: i64,
    pub deposits: u64,
    pub payments: u64,
    pub withdrawals: u64,
    /// Every event folded, in order: a missed, repeated or reordered event changes it.
    pub trail: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct WalletReducer;

#[derive(Debug, Serialize, Deserialize)]
pub struct Amount {
    pub amount: i64,
    /// Which command made the event, so a test can count each command's events.
    #[serde(default)]
    pub command: String,
}

impl Reducer for WalletReducer {
    type State = Wallet;
    const REVISION: &'static str = "wallet-1";

    fn initial(&self) -> Wallet {
        Wallet::default()
    }

    fn apply(&self, wallet: &mut Wallet, event: &RecordedEvent) -> Result<(), BoxError> {
        let Amount { amount, .. } = serde_json::from_slice(&event.payload)?;
        match event.name.as_str() {
            "Deposited" => {
                wallet.balance += amount;
                wallet.deposits += 1;
            }
            "PaymentMade" => {
                wallet.balance -= amount;
                wallet.payments += 1;
            }
            "Withdrawn" => {
                wallet.balance -= amount;
                wallet.withdrawals += 1;
            }
            other => return Err(format!("unknown event {other}").into()),
        }
        let version = event.version.unwrap_or_default();
        wallet.trail = wallet.trail.wrapping_mul(1_000_003).wrapping_add(version * 31 + amount as u64);
        Ok(())
    }
}

pub fn event(name: &str, amount: i64, command: &str) -> flipbook_sdk_core::ProposedEvent {
    let payload = serde_json::to_vec(&Amount { amount, command: command.to_owned() }).expect("json");
    flipbook_sdk_core::ProposedEvent::new(name, payload)
}

// ---- a proxy that breaks connections ---------------------------------------------------------

/// A TCP proxy to `target` that, while `chaos` is on, delays some of the server's answers and
/// cuts some connections mid-answer: the request reached the server, its answer is lost, and
/// the client must re-send.
pub struct ChaosProxy {
    pub addr: SocketAddr,
    pub chaos: Arc<AtomicBool>,
    /// Connections cut so far.
    pub cuts: Arc<AtomicU64>,
}

impl ChaosProxy {
    pub async fn start(target: SocketAddr, cut_per_mille: u32, max_delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let chaos = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        let (on, cut) = (Arc::clone(&chaos), Arc::clone(&cuts));
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (on, cut) = (Arc::clone(&on), Arc::clone(&cut));
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (mut client_read, mut client_write) = inbound.into_split();
                    let (mut server_read, mut server_write) = outbound.into_split();
                    let requests = tokio::io::copy(&mut client_read, &mut server_write);
                    let answers = async {
                        let mut buffer = vec![0; 64 * 1024];
                        loop {
                            let n = match server_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if on.load(Ordering::Relaxed) {
                                if fastrand::u32(0..1000) < cut_per_mille {
                                    cut.fetch_add(1, Ordering::Relaxed);
                                    return; // both halves drop: the connection is cut
                                }
                                if fastrand::bool() {
                                    tokio::time::sleep(max_delay.mul_f64(fastrand::f64())).await;
                                }
                            }
                            if client_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = requests => {}
                        () = answers => {}
                    }
                });
            }
        });
        Self { addr, chaos, cuts }
    }

    pub fn set_chaos(&self, on: bool) {
        self.chaos.store(on, Ordering::Relaxed);
    }
}
