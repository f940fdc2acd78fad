//! The one error type of the contract. The input rules answer it, every backend maps its native
//! failures to it (a unique-key violation to `Duplicate`, a failed condition to
//! `VersionConflict`, a dropped connection to `Unavailable`), and the server maps it to gRPC
//! statuses in one place (`flipbook_proto::status`).

use uuid::Uuid;

use crate::StateKind;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Input broke a rule; nothing was stored.
    #[error("invalid argument: {field}: {rule}")]
    InvalidArgument { field: String, rule: String },

    /// The append's expectation failed; nothing was stored. `actual_version` is the state's
    /// current version (0 if it has no events; the event count for a version-neutral state).
    #[error("version conflict on state {state_id:?}: its current version is {actual_version}")]
    VersionConflict { state_id: String, actual_version: u64 },

    /// An event id already stored for the state, with other content or at another place.
    #[error("event {event_id} is already stored in state {state_id:?} with other content or at another place")]
    Duplicate { state_id: String, event_id: Uuid },

    /// Versioned and version-neutral events cannot be mixed in one state.
    #[error("state {state_id:?} is {}; an append cannot change that", kind_words(*.stored))]
    StateKindMismatch { state_id: String, stored: StateKind },

    /// Data over a limit (a payload, a metadata map, the events or parts of a request, a whole
    /// request) or more than the backend can hold (more items than one DynamoDB transaction);
    /// nothing was stored. `limit` says the bound and how far the input went past it.
    #[error("too large: {field}: {limit}")]
    TooLarge { field: String, limit: String },

    /// The backend has no room to store more: a full disk, Redis at its `maxmemory` or unable
    /// to persist. Nothing was stored; reads go on. Retrying cannot help until an operator
    /// makes room, so it is not retryable (unlike `Unavailable`), and not a bug (unlike
    /// `Internal`).
    #[error("the backend's storage is full: {0}")]
    StorageFull(String),

    /// The backend refuses writes: a read-only file or database, a replica. Nothing was stored;
    /// reads go on. Retryable: a failover ends it.
    #[error("the backend is read-only: {0}")]
    ReadOnly(String),

    /// A subscriber did not take what was delivered to it within the server's patience; the
    /// server dropped the subscription instead of buffering. Resume after `position`.
    #[error("the subscriber fell behind (took nothing for {waited_ms} ms); resume after position {position}")]
    FellBehind { position: u64, waited_ms: u64 },

    /// The backend cannot be reached or is shutting down; retrying later can help.
    #[error("backend unavailable: {0}")]
    Unavailable(String),

    /// A bug or corrupt data; retrying will not help.
    #[error("internal error: {0}")]
    Internal(String),
}

fn kind_words(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Versioned => "versioned",
        StateKind::VersionNeutral => "version-neutral",
    }
}

impl Error {
    /// `field` may be a `Display` that spells the name only now, when a rule failed.
    pub fn invalid(field: impl std::fmt::Display, rule: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.to_string(), rule: rule.into() }
    }

    /// `field` may be a `Display` that spells the name only now, when a limit was passed.
    pub fn too_large(field: impl std::fmt::Display, limit: impl Into<String>) -> Self {
        Self::TooLarge { field: field.to_string(), limit: limit.into() }
    }

    /// The same error, with the field it names (if any) inside `outer`: part 1's
    /// `events[0].name` is `parts[1].events[0].name`.
    pub fn within(self, outer: impl std::fmt::Display) -> Self {
        match self {
            Self::InvalidArgument { field, rule } => Self::InvalidArgument { field: format!("{outer}.{field}"), rule },
            Self::TooLarge { field, limit } => Self::TooLarge { field: format!("{outer}.{field}"), limit },
            other => other,
        }
    }

    /// Whether the same call may succeed if tried again unchanged. Retry loops read this, never
    /// messages. (A version conflict needs a reload first, so it is not retryable as is.)
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::ReadOnly(_))
    }
}
