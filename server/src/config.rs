//! Configuration: defaults, then a TOML file, then environment variables, then flags, each
//! overriding the one before; validated once, at start. Each backend's section is that store's
//! own settings type (`flipbook_storage::SqliteConfig`, …): this file only chooses.
//!
//! ```toml
//! listen = "127.0.0.1:7420"
//! metrics_listen = "127.0.0.1:7421"   # "" turns /metrics off
//!
//! [events]
//! backend = "sqlite"
//! [events.sqlite]
//! path = "flipbook.db"
//! durability = "full"                 # full | normal | off
//! read_connections = 4
//! busy_timeout = 5                    # seconds a write waits for another process's lock
//!
//! [events.postgres]                   # with backend = "postgres"
//! url = "postgres://postgres@127.0.0.1:5432/postgres"
//! max_connections = 32
//! acquire_timeout = 5                 # seconds a call waits for a connection
//!
//! [events.redis]                      # with backend = "redis" (a node, not a cluster)
//! url = "redis://127.0.0.1:6379/"
//! response_timeout = 5                # seconds one command may take
//! connection_timeout = 2
//!
//! [events.dynamodb]                   # with backend = "dynamodb" (events and snapshots)
//! table = "flipbook"                  # created at start (or by `flipbook migrate`) when missing
//! region = "eu-west-1"                # else AWS_REGION / the AWS profile's
//! endpoint = "http://127.0.0.1:8000"  # only for an emulator; AWS's own endpoint when unset
//! timeout = 5                         # seconds one attempt may take (the call: twice that)
//! connect_timeout = 2
//! create_table = true
//!                                     # credentials: the standard AWS chain (env, profile, role)
//!
//! [snapshots]
//! backend = "sqlite"                  # sqlite (the events' file unless `path` is set) | memory
//!                                     # | postgres ([snapshots.postgres], else the events')
//!                                     # | redis ([snapshots.redis], else the events')
//!                                     # | redis-cluster (redis_cluster = ["redis://…", …])
//!                                     # | dynamodb ([snapshots.dynamodb], else the events')
//!
//! [limits]
//! max_events_per_append = 1000
//! max_states_per_append = 64
//! max_payload_bytes = 1048576
//!
//! [subscriptions]
//! poll_interval = 0.01                # seconds between reads of the settled position while
//!                                     # anyone subscribes: the most an event appended through
//!                                     # another server waits
//! checkpoint_interval = 1             # seconds between checkpoints of an idle subscription
//! stall_timeout = 30                  # seconds a subscriber may take nothing before it is
//!                                     # dropped with FELL_BEHIND (it resumes from its position)
//!
//! [health]                            # the health service's readiness follows the probes
//! probe_interval = 0.5                # seconds between probes of each backend
//! probe_timeout = 1                   # seconds a probe may take. A probe that fails (a refused
//!                                     # connection), or three in a row without an answer, make
//!                                     # the backend unreachable: calls needing it answer
//!                                     # UNAVAILABLE at once, its services NOT_SERVING
//!
//! [auth]
//! token = "…"                         # calls must send `authorization: Bearer …`
//! tokens = ["…", "…"]                 # more accepted at once (rotation)
//! token_file = "/run/secrets/flipbook-tokens"   # one a line; kept off the command line
//!
//! [tls]                               # both set: gRPC over TLS
//! cert = "server.pem"
//! key = "server.key"
//!
//! [log]
//! format = "human"                    # human | json
//! level = "info"                      # a tracing filter: "info,flipbook=debug"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use flipbook_model::validate::Limits;
use flipbook_storage::bus::BusOptions;
use flipbook_storage::engine::ProbeOptions;
use flipbook_storage::{DynamoConfig, PostgresConfig, RedisConfig, SqliteConfig, seconds};
use serde::Deserialize;

/// The gRPC port a server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7420;
/// The port of the Prometheus `/metrics` endpoint unless told otherwise.
pub const DEFAULT_METRICS_PORT: u16 = 7421;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None` turns the endpoint off.
    #[serde(deserialize_with = "optional_addr")]
    pub metrics_listen: Option<SocketAddr>,
    pub events: EventsConfig,
    pub snapshots: SnapshotsConfig,
    pub limits: LimitsConfig,
    pub subscriptions: SubscriptionsConfig,
    pub health: HealthConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    /// How long a shutdown waits for in-flight calls before it closes connections.
    #[serde(with = "seconds")]
    pub shutdown_grace: Duration,
    /// How long one call may take before it is answered DEADLINE_EXCEEDED.
    #[serde(with = "seconds")]
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT))),
            events: EventsConfig::default(),
            snapshots: SnapshotsConfig::default(),
            limits: LimitsConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
            health: HealthConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            shutdown_grace: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EventBackend {
    #[default]
    Sqlite,
    Postgres,
    Redis,
    Dynamodb,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotBackend {
    #[default]
    Sqlite,
    Memory,
    Postgres,
    Redis,
    #[serde(rename = "redis-cluster")]
    #[value(name = "redis-cluster")]
    RedisCluster,
    Dynamodb,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    pub backend: EventBackend,
    pub sqlite: SqliteConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub dynamodb: DynamoConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotsConfig {
    pub backend: SnapshotBackend,
    /// The SQLite file for snapshots; the event store's file when unset.
    pub path: Option<PathBuf>,
    /// The PostgreSQL database for snapshots; the event store's settings when unset.
    pub postgres: Option<PostgresConfig>,
    /// The Redis node for snapshots; the event store's settings when unset.
    pub redis: Option<RedisConfig>,
    /// The Redis Cluster for snapshots: any of its nodes.
    pub redis_cluster: Vec<String>,
    /// The DynamoDB table for snapshots; the event store's settings when unset (one table may
    /// hold both).
    pub dynamodb: Option<DynamoConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_events_per_append: u32,
    pub max_states_per_append: u32,
    pub max_payload_bytes: u64,
    pub max_snapshot_bytes: u64,
    pub max_request_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_events_per_append: limits.max_events_per_append,
            max_states_per_append: limits.max_states_per_append,
            max_payload_bytes: limits.max_payload_bytes,
            max_snapshot_bytes: limits.max_snapshot_bytes,
            max_request_bytes: limits.max_request_bytes,
        }
    }
}

impl From<&LimitsConfig> for Limits {
    fn from(config: &LimitsConfig) -> Self {
        Self {
            max_events_per_append: config.max_events_per_append,
            max_states_per_append: config.max_states_per_append,
            max_payload_bytes: config.max_payload_bytes,
            max_snapshot_bytes: config.max_snapshot_bytes,
            max_request_bytes: config.max_request_bytes,
        }
    }
}

/// The event bus (see `flipbook_storage::bus`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionsConfig {
    #[serde(with = "seconds")]
    pub poll_interval: Duration,
    #[serde(with = "seconds")]
    pub checkpoint_interval: Duration,
    #[serde(with = "seconds")]
    pub stall_timeout: Duration,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        let bus = BusOptions::default();
        Self {
            poll_interval: bus.poll_interval,
            checkpoint_interval: bus.checkpoint_interval,
            stall_timeout: bus.stall_timeout,
        }
    }
}

impl From<&SubscriptionsConfig> for BusOptions {
    fn from(config: &SubscriptionsConfig) -> Self {
        Self {
            poll_interval: config.poll_interval,
            checkpoint_interval: config.checkpoint_interval,
            stall_timeout: config.stall_timeout,
            ..Self::default()
        }
    }
}

/// The probes of the backends (see `flipbook_storage::engine::Engine::watch_backends`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(with = "seconds")]
    pub probe_interval: Duration,
    #[serde(with = "seconds")]
    pub probe_timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        let probe = ProbeOptions::default();
        Self { probe_interval: probe.interval, probe_timeout: probe.timeout }
    }
}

impl From<&HealthConfig> for ProbeOptions {
    fn from(config: &HealthConfig) -> Self {
        Self { interval: config.probe_interval, timeout: config.probe_timeout }
    }
}

/// Who may call. Health and reflection stay open, for probes and tools.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// When any token is set, every call of the Flipbook services must carry
    /// `authorization: Bearer <token>` with one of them.
    pub token: Option<String>,
    /// More tokens accepted at once, for rotation: add the new one, move the clients to it,
    /// then remove the old one.
    pub tokens: Vec<String>,
    /// A file of tokens, one a line (blank lines and `#` comments skipped), read at start: keeps
    /// them off the command line, where `/proc/PID/cmdline` shows them to every local user.
    pub token_file: Option<PathBuf>,
}

impl AuthConfig {
    /// Every token a call may carry (`token`, `tokens` and the file's, read now); none: calls
    /// need no token.
    pub fn accepted(&self) -> anyhow::Result<Vec<String>> {
        let mut accepted: Vec<String> = self.token.iter().chain(&self.tokens).cloned().collect();
        if let Some(path) = &self.token_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading auth.token_file {}", path.display()))?;
            let lines = text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'));
            let before = accepted.len();
            accepted.extend(lines.map(str::to_owned));
            if accepted.len() == before {
                bail!("auth.token_file {} holds no token", path.display());
            }
        }
        if accepted.iter().any(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic())) {
            bail!("auth tokens must be printable ASCII without spaces (auth.token, auth.tokens, auth.token_file)");
        }
        Ok(accepted)
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// gRPC over TLS: a PEM certificate chain and its private key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".to_owned() }
    }
}

/// Flags of `flipbook serve`; each also reads an environment variable. Unset ones leave the
/// file's (or the default) value.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, env = "FLIPBOOK_CONFIG")]
    pub config: Option<PathBuf>,
    /// The gRPC address [default: 127.0.0.1:7420].
    #[arg(long, env = "FLIPBOOK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The address of the Prometheus /metrics endpoint; "off" turns it off [default: 127.0.0.1:7421].
    #[arg(long, env = "FLIPBOOK_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Where events are stored [default: sqlite].
    #[arg(long, env = "FLIPBOOK_EVENT_STORE", value_enum)]
    pub event_store: Option<EventBackend>,
    /// Where snapshots are stored [default: sqlite].
    #[arg(long, env = "FLIPBOOK_SNAPSHOT_STORE", value_enum)]
    pub snapshot_store: Option<SnapshotBackend>,
    /// The SQLite database file [default: ./flipbook.db].
    #[arg(long, env = "FLIPBOOK_SQLITE_PATH")]
    pub sqlite_path: Option<PathBuf>,
    /// full (survives power loss), normal (survives a process crash) or off [default: full].
    #[arg(long, env = "FLIPBOOK_SQLITE_DURABILITY")]
    pub sqlite_durability: Option<String>,
    /// The PostgreSQL database of the postgres backends [default: postgres://postgres@127.0.0.1:5432/postgres].
    #[arg(long, env = "FLIPBOOK_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// The Redis node of the redis backends [default: redis://127.0.0.1:6379/].
    #[arg(long, env = "FLIPBOOK_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The nodes of the Redis Cluster for snapshots, comma-separated.
    #[arg(long, env = "FLIPBOOK_REDIS_CLUSTER", value_delimiter = ',')]
    pub redis_cluster: Option<Vec<String>>,
    /// The DynamoDB table of the dynamodb backends, created when missing [default: flipbook].
    #[arg(long, env = "FLIPBOOK_DYNAMODB_TABLE")]
    pub dynamodb_table: Option<String>,
    /// The AWS region of the DynamoDB table [default: AWS_REGION or the AWS profile's].
    #[arg(long, env = "FLIPBOOK_DYNAMODB_REGION")]
    pub dynamodb_region: Option<String>,
    /// A DynamoDB endpoint other than AWS's own, such as an emulator's URL [default: AWS].
    #[arg(long, env = "FLIPBOOK_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    #[arg(long, env = "FLIPBOOK_MAX_EVENTS_PER_APPEND")]
    pub max_events_per_append: Option<u32>,
    #[arg(long, env = "FLIPBOOK_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<u64>,
    /// Calls must send `authorization: Bearer <token>` [default: none, anyone may call]. Local
    /// users can read a flag in /proc/PID/cmdline: prefer --auth-token-file.
    #[arg(long, env = "FLIPBOOK_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// A file of accepted tokens, one a line (several at once for rotation; `#` comments).
    #[arg(long, env = "FLIPBOOK_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// A PEM certificate chain: serve gRPC over TLS (with --tls-key).
    #[arg(long, env = "FLIPBOOK_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "FLIPBOOK_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// human or json [default: human].
    #[arg(long, env = "FLIPBOOK_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// A tracing filter such as "info" or "info,flipbook_server=debug" [default: info].
    #[arg(long, env = "FLIPBOOK_LOG")]
    pub log_level: Option<String>,
}

impl Config {
    /// A server on a free loopback port, without a metrics endpoint, over this SQLite file:
    /// for tests, benchmarks and tools that run a server in-process.
    pub fn local(sqlite_path: impl Into<PathBuf>) -> Self {
        let mut config =
            Self { listen: SocketAddr::from(([127, 0, 0, 1], 0)), metrics_listen: None, ..Self::default() };
        config.events.sqlite.path = sqlite_path.into();
        config
    }

    /// Defaults, then the file, then environment and flags (clap puts flags over environment).
    pub fn load(args: &ServeArgs) -> anyhow::Result<Self> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply(args)?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn apply(&mut self, args: &ServeArgs) -> anyhow::Result<()> {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        set(&mut self.listen, &args.listen);
        if let Some(metrics) = &args.metrics_listen {
            self.metrics_listen = parse_optional_addr(metrics)?;
        }
        set(&mut self.events.backend, &args.event_store);
        set(&mut self.snapshots.backend, &args.snapshot_store);
        set(&mut self.events.sqlite.path, &args.sqlite_path);
        if let Some(durability) = &args.sqlite_durability {
            self.events.sqlite.durability = durability.parse().map_err(anyhow::Error::msg)?;
        }
        set(&mut self.events.postgres.url, &args.postgres_url);
        set(&mut self.events.redis.url, &args.redis_url);
        set(&mut self.snapshots.redis_cluster, &args.redis_cluster);
        set(&mut self.events.dynamodb.table, &args.dynamodb_table);
        if args.dynamodb_region.is_some() {
            self.events.dynamodb.region.clone_from(&args.dynamodb_region);
        }
        if args.dynamodb_endpoint.is_some() {
            self.events.dynamodb.endpoint_url.clone_from(&args.dynamodb_endpoint);
        }
        set(&mut self.limits.max_events_per_append, &args.max_events_per_append);
        set(&mut self.limits.max_payload_bytes, &args.max_payload_bytes);
        if args.auth_token.is_some() {
            self.auth.token.clone_from(&args.auth_token);
        }
        if args.auth_token_file.is_some() {
            self.auth.token_file.clone_from(&args.auth_token_file);
        }
        if args.tls_cert.is_some() {
            self.tls.cert.clone_from(&args.tls_cert);
        }
        if args.tls_key.is_some() {
            self.tls.key.clone_from(&args.tls_key);
        }
        set(&mut self.log.format, &args.log_format);
        set(&mut self.log.level, &args.log_level);
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let limits = &self.limits;
        if limits.max_events_per_append == 0 || limits.max_states_per_append == 0 {
            bail!("limits.max_events_per_append and limits.max_states_per_append must be at least 1");
        }
        let bus = &self.subscriptions;
        if [bus.poll_interval, bus.checkpoint_interval, bus.stall_timeout].contains(&Duration::ZERO) {
            bail!("subscriptions: poll_interval, checkpoint_interval and stall_timeout must be above 0");
        }
        if [self.health.probe_interval, self.health.probe_timeout].contains(&Duration::ZERO) {
            bail!("health: probe_interval and probe_timeout must be above 0");
        }
        if limits.max_payload_bytes == 0 || limits.max_payload_bytes >= limits.max_request_bytes {
            bail!("limits.max_payload_bytes must be above 0 and below limits.max_request_bytes");
        }
        if limits.max_snapshot_bytes == 0 || limits.max_snapshot_bytes >= limits.max_request_bytes {
            bail!("limits.max_snapshot_bytes must be above 0 and below limits.max_request_bytes");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("tls.cert and tls.key go together (--tls-cert, --tls-key)");
        }
        self.auth.accepted()?;
        if self.snapshots.backend == SnapshotBackend::RedisCluster && self.snapshots.redis_cluster.is_empty() {
            bail!("snapshots.redis_cluster must name the cluster's nodes (--redis-cluster)");
        }
        for dynamodb in [Some(&self.events.dynamodb), self.snapshots.dynamodb.as_ref()].into_iter().flatten() {
            if dynamodb.table.len() < 3 || dynamodb.table.len() > 255 {
                bail!("dynamodb.table must be 3 to 255 characters long (--dynamodb-table)");
            }
            if dynamodb.attempt_timeout.is_zero() {
                bail!("dynamodb.timeout must be above 0");
            }
        }
        Ok(())
    }
}

fn parse_optional_addr(text: &str) -> anyhow::Result<Option<SocketAddr>> {
    match text.trim() {
        "" | "off" | "none" => Ok(None),
        addr => addr.parse().map(Some).with_context(|| format!("metrics address {addr:?}")),
    }
}

fn optional_addr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_optional_addr(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_nothing() {
        let config = Config::load(&ServeArgs::default()).expect("defaults");
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
        assert_eq!(config.events.sqlite.path, PathBuf::from("flipbook.db"));
        assert_eq!(config.events.backend, EventBackend::Sqlite);
        assert_eq!(config.snapshots.backend, SnapshotBackend::Sqlite);
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("flipbook.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmetrics_listen = \"off\"\n[events.sqlite]\npath = \"from-file.db\"\n\
             durability = \"normal\"\n[snapshots]\nbackend = \"memory\"\n[limits]\nmax_payload_bytes = 2048\n",
        )
        .expect("write config");
        let args =
            ServeArgs { config: Some(file), sqlite_path: Some(PathBuf::from("from-flag.db")), ..ServeArgs::default() };
        let config = Config::load(&args).expect("config");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.events.sqlite.path, PathBuf::from("from-flag.db"));
        assert_eq!(config.events.sqlite.durability, flipbook_storage::Durability::Normal);
        assert_eq!(config.snapshots.backend, SnapshotBackend::Memory);
        assert_eq!(config.limits.max_payload_bytes, 2048);
        assert_eq!(config.limits.max_events_per_append, 1000);
    }

    #[test]
    fn dynamodb_settings_from_the_file_and_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("flipbook.toml");
        std::fs::write(
            &file,
            "[events]\nbackend = \"dynamodb\"\n[events.dynamodb]\ntable = \"events\"\nregion = \"eu-west-1\"\n\
             timeout = 2\n[snapshots]\nbackend = \"dynamodb\"\n",
        )
        .expect("write config");
        let args = ServeArgs {
            config: Some(file),
            dynamodb_endpoint: Some("http://127.0.0.1:58000".into()),
            ..ServeArgs::default()
        };
        let config = Config::load(&args).expect("config");
        assert_eq!(config.events.backend, EventBackend::Dynamodb);
        assert_eq!(config.snapshots.backend, SnapshotBackend::Dynamodb);
        let dynamodb = &config.events.dynamodb;
        assert_eq!((dynamodb.table.as_str(), dynamodb.region.as_deref()), ("events", Some("eu-west-1")));
        assert_eq!(dynamodb.endpoint_url.as_deref(), Some("http://127.0.0.1:58000"));
        assert_eq!(dynamodb.attempt_timeout, Duration::from_secs(2));
    }

    /// Each backend's section is that store's own settings type, every field of it.
    #[test]
    fn backend_sections_are_the_stores_settings() {
        let text = "[events.sqlite]\nread_connections = 2\nbusy_timeout = 0.5\n\
                    [events.postgres]\nmax_connections = 8\nacquire_timeout = 1.5\n\
                    [events.redis]\nurl = \"redis://r:6379/\"\nconnection_timeout = 3\n\
                    [events.dynamodb]\nurl = \"http://d:8000\"\nconnect_timeout = 1\ncreate_table = false\n\
                    [snapshots.postgres]\nurl = \"postgres://s/db\"\n";
        let config: Config = toml::from_str(text).expect("parses");
        let events = &config.events;
        assert_eq!((events.sqlite.read_connections, events.sqlite.busy_timeout), (2, Duration::from_millis(500)));
        assert_eq!(events.sqlite.path, PathBuf::from("flipbook.db"), "unset fields keep their defaults");
        assert_eq!(
            (events.postgres.max_connections, events.postgres.acquire_timeout),
            (8, Duration::from_millis(1500))
        );
        assert_eq!(
            (events.redis.url.as_str(), events.redis.connection_timeout),
            ("redis://r:6379/", Duration::from_secs(3))
        );
        assert_eq!(events.dynamodb.endpoint_url.as_deref(), Some("http://d:8000"));
        assert_eq!((events.dynamodb.connect_timeout, events.dynamodb.create_table), (Duration::from_secs(1), false));
        let snapshots = config.snapshots.postgres.expect("its own section");
        assert_eq!((snapshots.url.as_str(), snapshots.max_connections), ("postgres://s/db", 32));
        assert!(toml::from_str::<Config>("[events.redis]\nurll = \"x\"\n").is_err(), "unknown keys are refused");
    }

    #[test]
    fn bad_configuration_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[events]\nbackend = \"cassandra\"\n").expect("write config");
        let error =
            Config::load(&ServeArgs { config: Some(file.clone()), ..ServeArgs::default() }).expect_err("refused");
        assert!(format!("{error:#}").contains("cassandra"), "{error:#}");

        std::fs::write(&file, "listne = \"x\"\n").expect("write config");
        let error = Config::load(&ServeArgs { config: Some(file), ..ServeArgs::default() }).expect_err("refused");
        assert!(format!("{error:#}").contains("listne"), "{error:#}");

        let args = ServeArgs { sqlite_durability: Some("sometimes".into()), ..ServeArgs::default() };
        assert!(Config::load(&args).expect_err("refused").to_string().contains("sometimes"));
        let args = ServeArgs { max_events_per_append: Some(0), ..ServeArgs::default() };
        assert!(Config::load(&args).is_err());
        let args = ServeArgs { tls_cert: Some("server.pem".into()), ..ServeArgs::default() };
        assert!(Config::load(&args).expect_err("a cert needs its key").to_string().contains("tls.key"));
        let args = ServeArgs { auth_token: Some("two words".into()), ..ServeArgs::default() };
        assert!(Config::load(&args).expect_err("refused").to_string().contains("auth.token"));
        let args = ServeArgs { dynamodb_table: Some("x".into()), ..ServeArgs::default() };
        assert!(Config::load(&args).expect_err("refused").to_string().contains("dynamodb.table"));
        let args = ServeArgs { auth_token: Some("s3cret".into()), ..ServeArgs::default() };
        let config = Config::load(&args).expect("a token");
        assert!(!format!("{config:?}").contains("s3cret"), "the token stays out of logs");
        let missing = ServeArgs { auth_token_file: Some(dir.path().join("none")), ..ServeArgs::default() };
        assert!(format!("{:#}", Config::load(&missing).expect_err("refused")).contains("auth.token_file"));
        let empty = dir.path().join("empty-tokens");
        std::fs::write(&empty, "# only a comment\n\n").expect("write");
        let args = ServeArgs { auth_token_file: Some(empty), ..ServeArgs::default() };
        assert!(Config::load(&args).expect_err("refused").to_string().contains("no token"));
    }
}
