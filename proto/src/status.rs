//! Errors on the wire: one exhaustive mapping from the storage error to a gRPC status carrying a
//! `google.rpc.ErrorInfo` (a stable reason and metadata) and, for invalid or too large input, a
//! `google.rpc.BadRequest` naming the field; and back, for clients.

use std::collections::HashMap;

use flipbook_model::{Error, StateKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Flipbook error.
pub const DOMAIN: &str = "flipbook.dev";

/// The stable reasons (`ErrorInfo.reason`) clients switch on.
pub mod reason {
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const VERSION_CONFLICT: &str = "VERSION_CONFLICT";
    pub const DUPLICATE_EVENT: &str = "DUPLICATE_EVENT";
    pub const STATE_KIND_MISMATCH: &str = "STATE_KIND_MISMATCH";
    pub const TOO_LARGE: &str = "TOO_LARGE";
    pub const STORAGE_FULL: &str = "STORAGE_FULL";
    pub const READ_ONLY: &str = "READ_ONLY";
    pub const FELL_BEHIND: &str = "FELL_BEHIND";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
}

fn status(code: Code, message: String, reason: &str, metadata: &[(&str, String)]) -> Status {
    let metadata: HashMap<String, String> = metadata.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, DOMAIN, metadata))
}

/// A status about one field of the request: `field` and `detail` in the `ErrorInfo`, and the two
/// in a `google.rpc.BadRequest` too, so generic gRPC tooling shows them (unless no field is
/// named: a whole request over its limit, a message that does not decode at its top).
fn field_status(code: Code, message: String, reason: &str, field: &str, detail: (&str, &str)) -> Status {
    let (key, value) = detail;
    let metadata = HashMap::from([("field".to_owned(), field.to_owned()), (key.to_owned(), value.to_owned())]);
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, metadata);
    if !field.is_empty() {
        details.add_bad_request_violation(field, value);
    }
    Status::with_error_details(code, message, details)
}

/// The gRPC code of a storage error. Exhaustive on purpose: a new error kind does not compile
/// until it has a code.
pub fn code_of(error: &Error) -> Code {
    match error {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::VersionConflict { .. } => Code::Aborted,
        Error::Duplicate { .. } => Code::AlreadyExists,
        Error::StateKindMismatch { .. } => Code::FailedPrecondition,
        Error::TooLarge { .. } => Code::ResourceExhausted,
        Error::StorageFull(_) => Code::ResourceExhausted,
        Error::FellBehind { .. } => Code::ResourceExhausted,
        Error::ReadOnly(_) | Error::Unavailable(_) => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    }
}

/// The status for a storage error, with its reason and metadata.
pub fn to_status(error: &Error) -> Status {
    let (code, message) = (code_of(error), error.to_string());
    match error {
        Error::InvalidArgument { field, rule } => {
            field_status(code, message, reason::INVALID_ARGUMENT, field, ("rule", rule))
        }
        Error::VersionConflict { state_id, actual_version } => status(
            code,
            message,
            reason::VERSION_CONFLICT,
            &[("state_id", state_id.clone()), ("actual_version", actual_version.to_string())],
        ),
        Error::Duplicate { state_id, event_id } => status(
            code,
            message,
            reason::DUPLICATE_EVENT,
            &[("state_id", state_id.clone()), ("event_id", event_id.to_string())],
        ),
        Error::StateKindMismatch { state_id, stored } => status(
            code,
            message,
            reason::STATE_KIND_MISMATCH,
            &[("state_id", state_id.clone()), ("versioned", (*stored == StateKind::Versioned).to_string())],
        ),
        Error::TooLarge { field, limit } => field_status(code, message, reason::TOO_LARGE, field, ("limit", limit)),
        Error::FellBehind { position, waited_ms } => status(
            code,
            message,
            reason::FELL_BEHIND,
            &[("position", position.to_string()), ("waited_ms", waited_ms.to_string())],
        ),
        Error::StorageFull(_) => status(code, message, reason::STORAGE_FULL, &[]),
        Error::ReadOnly(_) => status(code, message, reason::READ_ONLY, &[]),
        Error::Unavailable(_) => status(code, message, reason::UNAVAILABLE, &[]),
        Error::Internal(_) => status(code, message, reason::INTERNAL, &[]),
    }
}

/// NOT_FOUND for an unknown state (its head) or a missing snapshot.
pub fn not_found(what: &str, state_id: &str) -> Status {
    status(
        Code::NotFound,
        format!("{what} of state {state_id:?} not found"),
        reason::NOT_FOUND,
        &[("state_id", state_id.to_owned())],
    )
}

/// UNAUTHENTICATED: no bearer token, or not the server's.
pub fn unauthenticated(message: &str) -> Status {
    status(Code::Unauthenticated, message.to_owned(), reason::UNAUTHENTICATED, &[])
}

/// The reason of a Flipbook status, if it carries one.
pub fn reason_of(status: &Status) -> Option<String> {
    status.get_error_details().error_info().filter(|info| info.domain == DOMAIN).map(|info| info.reason.clone())
}

/// The storage error a status stands for, on the client side. Reads the reason and metadata,
/// never the message. NOT_FOUND has no storage error: callers handle it before.
pub fn from_status(status: &Status) -> Error {
    let details = status.get_error_details();
    let info = details.error_info().filter(|info| info.domain == DOMAIN);
    let meta = |key: &str| info.and_then(|i| i.metadata.get(key)).cloned().unwrap_or_default();
    let message = status.message().to_owned();
    match info.map(|i| i.reason.as_str()) {
        Some(reason::INVALID_ARGUMENT) => Error::InvalidArgument { field: meta("field"), rule: meta("rule") },
        Some(reason::VERSION_CONFLICT) => Error::VersionConflict {
            state_id: meta("state_id"),
            actual_version: meta("actual_version").parse().unwrap_or_default(),
        },
        Some(reason::DUPLICATE_EVENT) => {
            Error::Duplicate { state_id: meta("state_id"), event_id: meta("event_id").parse().unwrap_or_default() }
        }
        Some(reason::STATE_KIND_MISMATCH) => Error::StateKindMismatch {
            state_id: meta("state_id"),
            stored: if meta("versioned") == "true" { StateKind::Versioned } else { StateKind::VersionNeutral },
        },
        Some(reason::TOO_LARGE) => Error::TooLarge { field: meta("field"), limit: meta("limit") },
        Some(reason::STORAGE_FULL) => Error::StorageFull(message),
        Some(reason::READ_ONLY) => Error::ReadOnly(message),
        Some(reason::FELL_BEHIND) => Error::FellBehind {
            position: meta("position").parse().unwrap_or_default(),
            waited_ms: meta("waited_ms").parse().unwrap_or_default(),
        },
        _ => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Error::Unavailable(message),
            Code::InvalidArgument => Error::InvalidArgument { field: String::new(), rule: message },
            Code::ResourceExhausted | Code::OutOfRange => Error::TooLarge { field: String::new(), limit: message },
            _ => Error::Internal(format!("{:?}: {message}", status.code())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_wire() {
        let errors = [
            Error::invalid("events[2].name", "must not be empty"),
            Error::VersionConflict { state_id: "s".into(), actual_version: 42 },
            Error::Duplicate { state_id: "s".into(), event_id: uuid::Uuid::new_v4() },
            Error::StateKindMismatch { state_id: "s".into(), stored: StateKind::VersionNeutral },
            Error::StateKindMismatch { state_id: "s".into(), stored: StateKind::Versioned },
            Error::TooLarge { field: "events".into(), limit: "100".into() },
            Error::FellBehind { position: 1 << 40, waited_ms: 30_000 },
        ];
        for error in errors {
            let status = to_status(&error);
            // Through the binary header, as a client receives it.
            let mut headers = tonic::metadata::MetadataMap::new().into_headers();
            status.add_header(&mut headers).expect("headers");
            let received = Status::from_header_map(&headers).expect("a status");
            assert_eq!(from_status(&received), error);
        }
        let unavailable = to_status(&Error::Unavailable("down".into()));
        assert!(matches!(from_status(&unavailable), Error::Unavailable(m) if m.contains("down")));
        assert!(from_status(&unavailable).is_retryable());
        let full = to_status(&Error::StorageFull("no space left on device".into()));
        assert_eq!((full.code(), reason_of(&full).as_deref()), (Code::ResourceExhausted, Some(reason::STORAGE_FULL)));
        assert!(matches!(from_status(&full), Error::StorageFull(m) if m.contains("no space")));
        assert!(!from_status(&full).is_retryable());
        let read_only = to_status(&Error::ReadOnly("a replica".into()));
        assert_eq!((read_only.code(), reason_of(&read_only).as_deref()), (Code::Unavailable, Some(reason::READ_ONLY)));
        assert!(matches!(from_status(&read_only), Error::ReadOnly(m) if m.contains("replica")));
        assert!(from_status(&read_only).is_retryable());
        let internal = to_status(&Error::Internal("boom".into()));
        assert_eq!(internal.code(), Code::Internal);
        assert_eq!(reason_of(&internal).as_deref(), Some(reason::INTERNAL));
    }

    #[test]
    fn invalid_argument_names_the_field_in_bad_request() {
        let status = to_status(&Error::invalid("state_id", "must not be empty"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("a BadRequest").field_violations;
        assert_eq!(violations[0].field, "state_id");
        assert_eq!(violations[0].description, "must not be empty");
    }
}
