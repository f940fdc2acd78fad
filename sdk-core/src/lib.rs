//! Flipbook's client core: event sourcing done right, once, for Rust applications and for the
//! Python, TypeScript and Go bindings built on it.
//!
//! - [`Client`]: every call of the `flipbook.v1` API, to a server ([`Client::connect`]) or
//!   embedded over a SQLite file with no server ([`Client::open_embedded`]), or in memory for
//!   unit tests ([`Client::in_memory`]). Requests are validated before they leave.
//! - [`Reducer`] and [`Repository`]: load a state (local cache, then the newest snapshot, then
//!   the events after it) and execute commands with retry on version conflict, idempotent
//!   re-sends and a snapshot policy. `../shared/SPEC.md` section 6 is the contract.
//! - [`Session`]: the same load and execute as a conversation with no generics, which the
//!   bindings drive from their own language: pages of events cross once per page.
//!
//! The contract is `docs/spec.md`; `bindings/README.md` is how bindings use this crate.

mod backend;
mod cache;
mod client;
mod error;
mod options;
mod repository;
mod session;

pub use backend::{EventPages, ServerInfo};
pub use client::Client;
pub use error::{BoxError, Error, ErrorCode, Result};
pub use options::{CacheOptions, ClientOptions, ConnectOptions, RetryPolicy, SnapshotPolicy};
pub use repository::{Executed, Loaded, Reducer, Repository};
pub use session::{Base, Finished, Session};

/// The domain types requests and answers are made of.
pub use flipbook_storage::model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Expectation, Metadata, ProposedEvent, RecordedEvent, Snapshot,
    SnapshotQuery, StateHead, StateKind, StateQuery, Timestamp,
};
pub use flipbook_storage::validate::Limits;
