//! Asynchronous calls: work spawned on a client's runtime, its outcome handed to the caller's
//! callback exactly once — when it completes, when `fb_call_cancel` ends it, or (as
//! `FB_ERROR_CANCELLED`) when the client's runtime shuts down under it.

use std::ffi::c_void;

use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::error::{FbError, guarded};

/// The caller's `user_data`, handed back to its callback untouched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UserData(pub(crate) *mut c_void);

impl UserData {
    /// The pointer (a method, so a closure captures the whole `UserData`, which is `Send`).
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: the library never reads through the pointer; it only hands it back to the caller's
// callback, on whichever thread completes the call (the header says callbacks run on the
// client's threads).
unsafe impl Send for UserData {}

pub(crate) type Outcome<T> = Result<T, Box<FbError>>;

/// Delivers an outcome once; dropped undelivered (a runtime shutting down drops its tasks), it
/// delivers a cancellation, or an internal error while a panic unwinds.
struct Once<T> {
    deliver: Option<Box<dyn FnOnce(Outcome<T>) + Send>>,
}

impl<T> Once<T> {
    fn complete(&mut self, outcome: Outcome<T>) {
        if let Some(deliver) = self.deliver.take() {
            deliver(outcome);
        }
    }
}

impl<T> Drop for Once<T> {
    fn drop(&mut self) {
        let error =
            if std::thread::panicking() { FbError::internal("a panic in the core") } else { FbError::cancelled() };
        self.complete(Err(error));
    }
}

/// A call in flight. `fb_call_cancel` ends it; `fb_call_free` only releases the handle.
#[derive(Debug)]
pub struct FbCall {
    cancel: watch::Sender<bool>,
}

/// Runs `work` on `runtime` and hands its outcome to `deliver`, exactly once.
pub(crate) fn spawn<T: Send + 'static>(
    runtime: &Handle,
    work: impl Future<Output = Outcome<T>> + Send + 'static,
    deliver: impl FnOnce(Outcome<T>) + Send + 'static,
) -> *mut FbCall {
    let (cancel, mut cancelled) = watch::channel(false);
    let mut once = Once { deliver: Some(Box::new(deliver)) };
    runtime.spawn(async move {
        let outcome = tokio::select! {
            biased;
            // Err: the handle was freed, which does not cancel; the branch is disabled.
            Ok(_) = cancelled.wait_for(|cancelled| *cancelled) => Err(FbError::cancelled()),
            outcome = work => outcome,
        };
        once.complete(outcome);
    });
    Box::into_raw(Box::new(FbCall { cancel }))
}

/// The error a call that answers nothing but success hands its callback: null on success.
pub(crate) fn error_of(outcome: Outcome<()>) -> *mut FbError {
    outcome.err().map_or(std::ptr::null_mut(), FbError::into_raw)
}

/// A call that failed before it began: its callback runs now, on the caller's thread.
pub(crate) fn failed<T>(error: Box<FbError>, deliver: impl FnOnce(Outcome<T>)) -> *mut FbCall {
    deliver(Err(error));
    Box::into_raw(Box::new(FbCall { cancel: watch::Sender::new(true) }))
}

/// Ends the call: unless it already completed, its callback gets `FB_ERROR_CANCELLED` and its
/// work is dropped (a read's server stream with it). An append already sent may still be stored:
/// re-send it with the same event ids to know. Null does nothing.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_call_cancel(call: *const FbCall) {
    guarded((), || {
        // SAFETY: the caller passes null or a call it has not freed.
        if let Some(call) = unsafe { call.as_ref() } {
            call.cancel.send_replace(true);
        }
    });
}

/// Releases the handle (the call goes on; its callback still runs). Null does nothing.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_call_free(call: *mut FbCall) {
    guarded((), || {
        if !call.is_null() {
            // SAFETY: the caller hands back a call this library made, once.
            drop(unsafe { Box::from_raw(call) });
        }
    });
}
