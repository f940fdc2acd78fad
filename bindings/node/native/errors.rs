//! The core's errors as the TypeScript layer reads them: a JSON object after a marker in the
//! message, from which `src/errors.ts` throws the error class of its code.

use flipbook_sdk_core::Error;

/// Starts the message of every error that is the core's (anything else is napi's own).
const MARKER: &str = "flipbook:";

pub(crate) fn to_js(error: &Error) -> napi::Error {
    let detail = serde_json::json!({
        "code": error.code().as_str(),
        "message": error.to_string(),
        "field": error.field(),
        "stateId": error.state_id(),
        // A string: versions are bigints on the TypeScript side.
        "actualVersion": error.actual_version().map(|v| v.to_string()),
        "retryable": error.is_retryable(),
    });
    napi::Error::new(napi::Status::GenericFailure, format!("{MARKER}{detail}"))
}

pub(crate) trait OrThrow<T> {
    fn or_throw(self) -> napi::Result<T>;
}

impl<T> OrThrow<T> for Result<T, Error> {
    fn or_throw(self) -> napi::Result<T> {
        self.map_err(|error| to_js(&error))
    }
}

/// An argument the core's types cannot hold (a negative version, a bigint over 64 bits).
pub(crate) fn invalid(field: &str, rule: &str) -> napi::Error {
    to_js(&Error::invalid(field, rule))
}
