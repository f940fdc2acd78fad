//! The one error type of the client. Every failure, from a server, the embedded store or the
//! caller's own code, arrives as one of these kinds; bindings map [`Error::code`] to their
//! language's error classes (see `bindings/README.md`), never the message.

use flipbook_proto::status::{from_status, reason, reason_of};
use tonic::{Code, Status};
use uuid::Uuid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error raised by the caller's reducer or decide function, kept as it was raised.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input broke a rule; nothing was stored.
    #[error("invalid argument: {field}: {rule}")]
    InvalidArgument { field: String, rule: String },

    /// The state (its head) or the snapshot does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// The state's version was not the expected one (after the retries, for a command);
    /// `actual_version` is its version now.
    #[error("version conflict on state {state_id:?}: its current version is {actual_version}")]
    VersionConflict { state_id: String, actual_version: u64 },

    /// An event id already stored in the state with other content or at another place.
    #[error("event {event_id} is already stored in state {state_id:?} with other content or at another place")]
    Duplicate { state_id: String, event_id: Uuid },

    /// Versioned and version-neutral events cannot be mixed in one state.
    #[error("state {state_id:?} is {}; an append cannot change that", if *versioned { "versioned" } else { "version-neutral" })]
    StateKindMismatch { state_id: String, versioned: bool },

    /// Over a limit of the server or the backend.
    #[error("too large: {field}: {limit}")]
    TooLarge { field: String, limit: String },

    /// The backend has no room to store more (a full disk, Redis at `maxmemory`); nothing was
    /// stored. Not retryable: an operator must make room.
    #[error("storage full: {0}")]
    StorageFull(String),

    /// The backend refuses writes (a read-only database, a replica); nothing was stored.
    /// Retryable: a failover ends it.
    #[error("read-only: {0}")]
    ReadOnly(String),

    #[error("unauthenticated: {0}")]
    Unauthenticated(String),

    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// The server or its backend cannot be reached, or the connection broke; retrying can help.
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// The call was made on a client after [`crate::Client::close`], or a read or
    /// subscription it had begun went on after it. Trying again cannot help.
    #[error("the client is closed")]
    Closed,

    /// A subscription's reader took nothing for the server's stall timeout; the server ended
    /// it. Subscribing again after `position` loses nothing (a [`crate::Subscription`] does).
    #[error("the subscriber fell behind; resume after position {position}")]
    FellBehind { position: u64 },

    /// The caller's reducer or decide function failed; the error is the caller's own.
    #[error("{0}")]
    Rejected(#[source] BoxError),

    /// A bug or corrupt data; retrying will not help.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The kind of an [`Error`], stable across languages: bindings raise one error class per code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    VersionConflict,
    Duplicate,
    StateKindMismatch,
    TooLarge,
    StorageFull,
    ReadOnly,
    Unauthenticated,
    PermissionDenied,
    Unavailable,
    Closed,
    FellBehind,
    Rejected,
    Internal,
}

impl ErrorCode {
    /// The code's name as the wire's reasons spell it (`VERSION_CONFLICT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::NotFound => "NOT_FOUND",
            Self::VersionConflict => "VERSION_CONFLICT",
            Self::Duplicate => "DUPLICATE_EVENT",
            Self::StateKindMismatch => "STATE_KIND_MISMATCH",
            Self::TooLarge => "TOO_LARGE",
            Self::StorageFull => "STORAGE_FULL",
            Self::ReadOnly => "READ_ONLY",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Closed => "CLOSED",
            Self::FellBehind => "FELL_BEHIND",
            Self::Rejected => "REJECTED",
            Self::Internal => "INTERNAL",
        }
    }
}

impl Error {
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), rule: rule.into() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::VersionConflict { .. } => ErrorCode::VersionConflict,
            Self::Duplicate { .. } => ErrorCode::Duplicate,
            Self::StateKindMismatch { .. } => ErrorCode::StateKindMismatch,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::StorageFull(_) => ErrorCode::StorageFull,
            Self::ReadOnly(_) => ErrorCode::ReadOnly,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Closed => ErrorCode::Closed,
            Self::FellBehind { .. } => ErrorCode::FellBehind,
            Self::Rejected(_) => ErrorCode::Rejected,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether the same call may succeed if sent again unchanged (the client re-sends appends
    /// itself: their event ids make that safe; a subscription resumes after what it delivered).
    /// A conflict needs a reload first, so it is not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::ReadOnly(_) | Self::FellBehind { .. })
    }

    /// The field an invalid argument names.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidArgument { field, .. } | Self::TooLarge { field, .. } => {
                Some(field.as_str()).filter(|f| !f.is_empty())
            }
            _ => None,
        }
    }

    /// The state a conflict, a duplicate or a kind mismatch is about: in an append to several
    /// states, the part that failed.
    pub fn state_id(&self) -> Option<&str> {
        match self {
            Self::VersionConflict { state_id, .. }
            | Self::Duplicate { state_id, .. }
            | Self::StateKindMismatch { state_id, .. } => Some(state_id),
            _ => None,
        }
    }

    /// The state's current version, for a conflict.
    pub fn actual_version(&self) -> Option<u64> {
        match self {
            Self::VersionConflict { actual_version, .. } => Some(*actual_version),
            _ => None,
        }
    }

    /// The error a server's status stands for. Reads the reason and its metadata, never the
    /// message. A status with no Flipbook reason that is UNKNOWN, or carries the transport's
    /// error as its source (tonic makes an INTERNAL of an HTTP/2 stream cut mid-body), comes
    /// from the connection: unavailable, so an append is re-sent and a read resumed.
    pub(crate) fn from_status(status: &Status) -> Self {
        let reason = reason_of(status);
        if reason.is_none() && std::error::Error::source(status).is_some() {
            return Self::Unavailable(format!("transport: {}", status.message()));
        }
        match (reason.as_deref(), status.code()) {
            (Some(reason::NOT_FOUND), _) | (None, Code::NotFound) => Self::NotFound(status.message().to_owned()),
            (_, Code::Unauthenticated) => Self::Unauthenticated(status.message().to_owned()),
            (_, Code::PermissionDenied) => Self::PermissionDenied(status.message().to_owned()),
            (None, Code::Unknown) => Self::Unavailable(format!("transport: {}", status.message())),
            _ => from_status(status).into(),
        }
    }
}

impl From<flipbook_model::Error> for Error {
    fn from(error: flipbook_model::Error) -> Self {
        use flipbook_model::Error as E;
        match error {
            E::InvalidArgument { field, rule } => Self::InvalidArgument { field, rule },
            E::VersionConflict { state_id, actual_version } => Self::VersionConflict { state_id, actual_version },
            E::Duplicate { state_id, event_id } => Self::Duplicate { state_id, event_id },
            E::StateKindMismatch { state_id, stored } => {
                Self::StateKindMismatch { state_id, versioned: stored == flipbook_model::StateKind::Versioned }
            }
            E::TooLarge { field, limit } => Self::TooLarge { field, limit },
            E::StorageFull(message) => Self::StorageFull(message),
            E::ReadOnly(message) => Self::ReadOnly(message),
            E::Unavailable(message) => Self::Unavailable(message),
            E::FellBehind { position, .. } => Self::FellBehind { position },
            E::Internal(message) => Self::Internal(message),
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Self::from_status(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds_by_reason_and_code() {
        let conflict = flipbook_proto::status::to_status(&flipbook_model::Error::VersionConflict {
            state_id: "s".into(),
            actual_version: 7,
        });
        assert_eq!(Error::from(conflict).actual_version(), Some(7));
        assert_eq!(Error::from(Status::unauthenticated("no token")).code(), ErrorCode::Unauthenticated);
        assert_eq!(Error::from(Status::permission_denied("no")).code(), ErrorCode::PermissionDenied);
        let reset = Error::from(Status::unknown("h2 protocol error: connection reset"));
        assert!(reset.is_retryable(), "{reset}");
        // What tonic makes of a connection cut while a stream's body is coming.
        let mut cut = Status::internal("h2 protocol error: http2 error");
        cut.set_source(std::sync::Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert_eq!(Error::from(cut).code(), ErrorCode::Unavailable);
        let not_found = flipbook_proto::status::not_found("head", "s");
        assert_eq!(Error::from(not_found).code(), ErrorCode::NotFound);
        assert_eq!(Error::invalid("state_id", "must not be empty").field(), Some("state_id"));
        let status = |error| flipbook_proto::status::to_status(&error);
        let full = Error::from(status(flipbook_model::Error::StorageFull("disk".into())));
        assert_eq!((full.code().as_str(), full.is_retryable()), ("STORAGE_FULL", false));
        let read_only = Error::from(status(flipbook_model::Error::ReadOnly("a replica".into())));
        assert_eq!((read_only.code().as_str(), read_only.is_retryable()), ("READ_ONLY", true));
        let server_bug = Error::from(status(flipbook_model::Error::Internal("a bug".into())));
        assert_eq!(server_bug.code(), ErrorCode::Internal);
    }
}
