//! What a handle holds across calls — a read's pages, a subscription, a session — and the calls
//! that use it, one at a time, on the client's runtime.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::{Mutex, OwnedMutexGuard};

use flipbook_sdk_core::Client;
use futures::{Stream, StreamExt};

use crate::call::{FbCall, Outcome, failed, spawn};
use crate::client::FbClient;
use crate::error::FbError;

/// The thing (until it ends) and the runtime its calls run on. Freeing the handle drops it, or,
/// with a call in flight, drops it when that call ends (cancel the call to end it sooner).
pub(crate) struct Held<T> {
    thing: Arc<Mutex<Option<T>>>,
    runtime: Handle,
}

impl<T> std::fmt::Debug for Held<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

/// The thing ended (a session finished) or its client closed.
pub(crate) fn ended() -> Box<FbError> {
    FbError::new(&flipbook_sdk_core::Error::Closed)
}

impl<T: Send + 'static> Held<T> {
    pub(crate) fn new(thing: T, runtime: Handle) -> Self {
        Self { thing: Arc::new(Mutex::new(Some(thing))), runtime }
    }

    /// Runs `work` on the thing, after the call before it ends; `work` may end the thing by
    /// taking it out of the `Option`.
    pub(crate) fn call<R: Send + 'static, F: Future<Output = Outcome<R>> + Send + 'static>(
        &self,
        work: impl FnOnce(OwnedMutexGuard<Option<T>>) -> F + Send + 'static,
        deliver: impl FnOnce(Outcome<R>) + Send + 'static,
    ) -> *mut FbCall {
        let thing = Arc::clone(&self.thing);
        spawn(&self.runtime, async move { work(thing.lock_owned().await).await }, deliver)
    }

    /// Runs `work` on the thing now, on the caller's thread: for the calls that do not wait.
    /// Fails when a call is in flight on it (the calls on one handle are sequential).
    pub(crate) fn now<R>(&self, work: impl FnOnce(&mut T) -> Outcome<R>) -> Outcome<R> {
        let mut thing = self
            .thing
            .try_lock()
            .map_err(|_| FbError::invalid("handle", "has a call in flight: wait for its callback first"))?;
        work(thing.as_mut().ok_or_else(ended)?)
    }
}

impl<S, T> Held<S>
where
    S: Stream<Item = flipbook_sdk_core::Result<T>> + Unpin + Send + 'static,
    T: Send + 'static,
{
    /// The stream's next item: `None` at its end, and after the end or an error that ended it.
    pub(crate) fn next(&self, deliver: impl FnOnce(Outcome<Option<T>>) + Send + 'static) -> *mut FbCall {
        self.call(
            |mut held| async move {
                let Some(stream) = held.as_mut() else { return Ok(None) };
                let next = stream.next().await;
                if !matches!(next, Some(Ok(_))) {
                    *held = None;
                }
                next.transpose().map_err(|e| FbError::new(&e))
            },
            deliver,
        )
    }
}

/// A call on a handle that was null.
pub(crate) fn null_handle<R>(field: &str, deliver: impl FnOnce(Outcome<R>)) -> *mut FbCall {
    failed(FbError::invalid(field, "must not be null"), deliver)
}

/// The thing, or the error a call on an ended one gets.
pub(crate) fn alive<T>(thing: &mut Option<T>) -> Outcome<&mut T> {
    thing.as_mut().ok_or_else(ended)
}

/// Borrows a handle the caller passes in.
pub(crate) fn borrow<'a, T>(handle: *const T) -> Option<&'a T> {
    // SAFETY: the caller passes null or a handle this library made and has not freed.
    unsafe { handle.as_ref() }
}

/// Frees a handle the caller hands back. Null does nothing.
pub(crate) fn free<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: the caller hands back a handle this library made, once.
        drop(unsafe { Box::from_raw(handle) });
    }
}

/// Makes a handle that calls on the client will use, or answers null with the error in
/// `error_out` (the caller's to free) when an argument cannot be read (a null, not UTF-8).
pub(crate) fn start<T>(
    target: *const FbClient,
    error_out: *mut *mut FbError,
    make: impl FnOnce(&Client, Handle) -> Outcome<T>,
) -> *mut T {
    let started = borrow(target).ok_or_else(|| FbError::invalid("client", "must not be null")).and_then(|target| {
        let runtime = target.handle().ok_or_else(ended)?.clone();
        make(&target.client, runtime)
    });
    match started {
        Ok(thing) => Box::into_raw(Box::new(thing)),
        Err(error) => {
            if !error_out.is_null() {
                // SAFETY: a non-null `error_out` has room for one pointer (the header's rule).
                unsafe { error_out.write(error.into_raw()) };
            }
            std::ptr::null_mut()
        }
    }
}
