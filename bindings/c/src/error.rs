//! Errors: the core's codes as a C enum, with the message, the field at fault, the state and
//! its actual version where the error names them.

use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use flipbook_sdk_core::{Error, ErrorCode};

/// The kinds of failure, the same in every binding (`docs/spec.md` §7), and the C ABI's own:
/// a cancelled call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FbErrorCode {
    FbErrorInvalidArgument = 1,
    FbErrorNotFound = 2,
    FbErrorVersionConflict = 3,
    FbErrorDuplicateEvent = 4,
    FbErrorStateKindMismatch = 5,
    FbErrorTooLarge = 6,
    FbErrorStorageFull = 7,
    FbErrorReadOnly = 8,
    FbErrorUnauthenticated = 9,
    FbErrorPermissionDenied = 10,
    FbErrorUnavailable = 11,
    FbErrorClosed = 12,
    FbErrorFellBehind = 13,
    FbErrorRejected = 14,
    FbErrorInternal = 15,
    /// `fb_call_cancel` ended the call before it completed.
    FbErrorCancelled = 100,
}

impl From<ErrorCode> for FbErrorCode {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InvalidArgument => Self::FbErrorInvalidArgument,
            ErrorCode::NotFound => Self::FbErrorNotFound,
            ErrorCode::VersionConflict => Self::FbErrorVersionConflict,
            ErrorCode::Duplicate => Self::FbErrorDuplicateEvent,
            ErrorCode::StateKindMismatch => Self::FbErrorStateKindMismatch,
            ErrorCode::TooLarge => Self::FbErrorTooLarge,
            ErrorCode::StorageFull => Self::FbErrorStorageFull,
            ErrorCode::ReadOnly => Self::FbErrorReadOnly,
            ErrorCode::Unauthenticated => Self::FbErrorUnauthenticated,
            ErrorCode::PermissionDenied => Self::FbErrorPermissionDenied,
            ErrorCode::Unavailable => Self::FbErrorUnavailable,
            ErrorCode::Closed => Self::FbErrorClosed,
            ErrorCode::FellBehind => Self::FbErrorFellBehind,
            ErrorCode::Rejected => Self::FbErrorRejected,
            ErrorCode::Internal => Self::FbErrorInternal,
        }
    }
}

/// A failure. Owned by whoever it was handed to; freed with `fb_error_free`.
#[derive(Debug)]
pub struct FbError {
    code: FbErrorCode,
    name: &'static std::ffi::CStr,
    message: CString,
    field: Option<CString>,
    state_id: Option<CString>,
    actual_version: Option<u64>,
    retryable: bool,
}

fn c_string(text: &str) -> CString {
    // A NUL inside a message (from a state id, say) would end it early: shown as U+FFFD.
    CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default()
}

impl FbError {
    pub(crate) fn new(error: &Error) -> Box<Self> {
        let code = error.code();
        Box::new(Self {
            code: code.into(),
            name: code_name(code.into()),
            message: c_string(&error.to_string()),
            field: error.field().map(c_string),
            state_id: error.state_id().map(c_string),
            actual_version: error.actual_version(),
            retryable: error.is_retryable(),
        })
    }

    pub(crate) fn cancelled() -> Box<Self> {
        Box::new(Self {
            code: FbErrorCode::FbErrorCancelled,
            name: code_name(FbErrorCode::FbErrorCancelled),
            message: c_string("the call was cancelled"),
            field: None,
            state_id: None,
            actual_version: None,
            retryable: false,
        })
    }

    pub(crate) fn invalid(field: &str, rule: &str) -> Box<Self> {
        Self::new(&Error::invalid(field, rule))
    }

    pub(crate) fn internal(what: &str) -> Box<Self> {
        Self::new(&Error::Internal(what.to_owned()))
    }

    pub(crate) fn into_raw(self: Box<Self>) -> *mut FbError {
        Box::into_raw(self)
    }
}

fn code_name(code: FbErrorCode) -> &'static std::ffi::CStr {
    match code {
        FbErrorCode::FbErrorInvalidArgument => c"INVALID_ARGUMENT",
        FbErrorCode::FbErrorNotFound => c"NOT_FOUND",
        FbErrorCode::FbErrorVersionConflict => c"VERSION_CONFLICT",
        FbErrorCode::FbErrorDuplicateEvent => c"DUPLICATE_EVENT",
        FbErrorCode::FbErrorStateKindMismatch => c"STATE_KIND_MISMATCH",
        FbErrorCode::FbErrorTooLarge => c"TOO_LARGE",
        FbErrorCode::FbErrorStorageFull => c"STORAGE_FULL",
        FbErrorCode::FbErrorReadOnly => c"READ_ONLY",
        FbErrorCode::FbErrorUnauthenticated => c"UNAUTHENTICATED",
        FbErrorCode::FbErrorPermissionDenied => c"PERMISSION_DENIED",
        FbErrorCode::FbErrorUnavailable => c"UNAVAILABLE",
        FbErrorCode::FbErrorClosed => c"CLOSED",
        FbErrorCode::FbErrorFellBehind => c"FELL_BEHIND",
        FbErrorCode::FbErrorRejected => c"REJECTED",
        FbErrorCode::FbErrorInternal => c"INTERNAL",
        FbErrorCode::FbErrorCancelled => c"CANCELLED",
    }
}

/// Runs an export's body; a panic becomes `fallback` (nothing unwinds into C).
pub(crate) fn guarded<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Borrows the error a caller passes back. Null: none.
fn borrowed<'a>(error: *const FbError) -> Option<&'a FbError> {
    // SAFETY: the caller passes null or an error this library made and has not freed.
    unsafe { error.as_ref() }
}

/// The error's code.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_code(error: *const FbError) -> FbErrorCode {
    guarded(FbErrorCode::FbErrorInternal, || borrowed(error).map_or(FbErrorCode::FbErrorInternal, |e| e.code))
}

/// The code's name (`"VERSION_CONFLICT"`): static, never freed.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_code_name(error: *const FbError) -> *const c_char {
    guarded(ptr::null(), || borrowed(error).map_or(c"INTERNAL".as_ptr(), |e| e.name.as_ptr()))
}

/// The message, borrowed until `fb_error_free`.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_message(error: *const FbError) -> *const c_char {
    guarded(ptr::null(), || borrowed(error).map_or(ptr::null(), |e| e.message.as_ptr()))
}

/// The argument at fault (`INVALID_ARGUMENT`, `TOO_LARGE`), or null; borrowed until `fb_error_free`.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_field(error: *const FbError) -> *const c_char {
    guarded(ptr::null(), || borrowed(error).and_then(|e| e.field.as_ref()).map_or(ptr::null(), |f| f.as_ptr()))
}

/// The state the error names, or null; borrowed until `fb_error_free`.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_state_id(error: *const FbError) -> *const c_char {
    guarded(ptr::null(), || borrowed(error).and_then(|e| e.state_id.as_ref()).map_or(ptr::null(), |s| s.as_ptr()))
}

/// Whether the error names the state's actual version (`VERSION_CONFLICT`), written to `out`.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_actual_version(error: *const FbError, out: *mut u64) -> bool {
    guarded(false, || match (borrowed(error).and_then(|e| e.actual_version), out.is_null()) {
        (Some(version), false) => {
            // SAFETY: `out` is not null and the caller gave it for one u64.
            unsafe { out.write(version) };
            true
        }
        _ => false,
    })
}

/// Whether the same call may succeed later (the core has already retried what it could).
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_retryable(error: *const FbError) -> bool {
    guarded(false, || borrowed(error).is_some_and(|e| e.retryable))
}

/// Frees an error handed to the caller. Null does nothing.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_error_free(error: *mut FbError) {
    guarded((), || {
        if !error.is_null() {
            // SAFETY: the caller hands back an error this library made, once.
            drop(unsafe { Box::from_raw(error) });
        }
    });
}
