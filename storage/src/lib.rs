//! The stores: the storage traits every backend implements, the rules they share, reads, the
//! event bus, the backends, and the contract test kit they all pass. The words they store (events,
//! states, snapshots), the input rules and the error type are `flipbook-model`'s.
//!
//! - [`EventStore`] and [`SnapshotStore`]: the two traits; [`plan_append`] and [`replayed`] hold
//!   the append rules every backend shares.
//! - [`engine`]: the stores, the bus and the limits behind one set of validated calls: what the
//!   server serves and the SDK runs in-process.
//! - [`read`]: reads as bounded streams of pages over any backend.
//! - [`bus`]: subscriptions over any backend, which cannot skip an event (each backend says
//!   which positions are settled).
//! - Backends: [`sqlite`] (feature `sqlite`, the embedded default), `postgres`, `redis` and
//!   `dynamodb` (features of the same names) and [`memory`] (always built, no dependency):
//!   [`memory::MemoryEventStore`] for the SDK's in-memory mode and tests, and
//!   [`memory::MemorySnapshotStore`].
//! - [`wire`]: events encoded as the API sends them, which a backend may store so a read is
//!   mostly a copy.
//! - `testkit` (feature `testkit`, for tests only): the contract tests every backend runs
//!   unchanged.

pub mod bus;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis", feature = "dynamodb"))]
mod encoding;
pub mod engine;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod read;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;

pub mod seconds;

// Each backend's settings, compiled whatever the features: a configuration may name a backend
// this build lacks, and is told so when the store is opened. Each file sits beside its
// backend's code.
#[path = "dynamodb/config.rs"]
mod dynamodb_config;
#[path = "postgres/config.rs"]
mod postgres_config;
#[path = "redis/config.rs"]
mod redis_config;
#[path = "sqlite/config.rs"]
mod sqlite_config;

pub use dynamodb_config::DynamoConfig;
pub use postgres_config::PostgresConfig;
pub use redis_config::RedisConfig;
pub use sqlite_config::{Durability, SqliteConfig};
pub use store::{BackendLimits, EventStore, Page, SnapshotStore, Tip, plan_append, replayed};
