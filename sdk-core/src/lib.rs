//! Flipbook's client core: event sourcing done right, once, for Rust applications and for the
//! Python, TypeScript and Go bindings built on it.
//!
//! - [`Client`]: every call of the `flipbook.v1` API, to a server ([`Client::connect`]) or
//!   embedded over a SQLite file with no server ([`Client::open_embedded`]), or in memory for
//!   unit tests ([`Client::in_memory`]). Requests are validated before they leave.
//! - [`Reducer`] and [`Repository`]: load a state (local cache, then the newest snapshot, then
//!   the events after it) and execute commands with retry on version conflict, idempotent
//!   re-sends and a snapshot policy. `docs/spec.md` section 6 is the contract.
//! - [`Client::subscribe`]: every event of the store, stored then live, once and in order,
//!   resumed across broken connections ([`Subscription`]).
//! - [`Session`]: the same load and execute as a conversation with no generics, which the
//!   bindings drive from their own language: pages of events cross once per page.
//!
//! The contract is `docs/spec.md`; `bindings/README.md` is how bindings use this crate.
//!
//! ```
//! use flipbook_sdk_core::{AppendRequest, Client, ClientOptions, Expectation, ProposedEvent, StateQuery};
//! use futures::TryStreamExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Client::connect("http://127.0.0.1:7420") for a server; in memory here.
//! let client = Client::in_memory(ClientOptions::default());
//! let event = ProposedEvent::new("Deposited", r#"{"amount": 100}"#);
//! let outcome = client.append(AppendRequest::new("wallet-1", Expectation::NoState, vec![event])).await?;
//! assert_eq!(outcome.last_version, Some(1));
//! // Reads stream page by page.
//! let pages: Vec<_> = client.read_state(StateQuery::all("wallet-1")).try_collect().await?;
//! assert_eq!(pages.concat()[0].name, "Deposited");
//! # Ok::<(), flipbook_sdk_core::Error>(())
//! # }).unwrap();
//! ```

mod backend;
mod cache;
mod client;
mod error;
mod options;
mod repository;
mod session;
mod subscription;

pub use backend::{EventPages, ServerInfo};
pub use client::Client;
pub use error::{BoxError, Error, ErrorCode, Result};
pub use options::{CacheOptions, ClientOptions, ConnectOptions, RetryPolicy, SnapshotPolicy};
pub use repository::{Executed, Loaded, Reducer, Repository};
pub use session::{Base, Finished, MultiStateSession, Session};
pub use subscription::Subscription;

pub use flipbook_model::validate::Limits;
/// The domain types requests and answers are made of.
pub use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, DEFAULT_CONTENT_TYPE, Delivery, Direction, Expectation, LogHead, Metadata,
    ProposedEvent, RecordedEvent, Snapshot, SnapshotQuery, StateHead, StateKind, StateQuery, SubscriptionQuery,
    SubscriptionStart, Timestamp,
};
