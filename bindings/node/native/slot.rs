//! What a read, a subscription or a session shares with TypeScript: the core's object, until it
//! ends or TypeScript closes it. Closing never waits: a call in flight is dropped at once (with
//! it the core's future, and so the server's stream or the call), which is how an
//! `AbortSignal` or a `for await` loop left early really cancels the work.

use futures::future::BoxFuture;
use tokio::sync::{Mutex, watch};

pub(crate) struct Slot<T> {
    value: Mutex<Option<T>>,
    closing: watch::Sender<bool>,
}

impl<T: Send> Slot<T> {
    pub(crate) fn new(value: T) -> Self {
        Self { value: Mutex::new(Some(value)), closing: watch::Sender::new(false) }
    }

    /// Runs one step on the value; `None` when the slot is (or gets) closed or emptied first.
    pub(crate) async fn run<R>(&self, step: impl for<'a> FnOnce(&'a mut T) -> BoxFuture<'a, R>) -> Option<R> {
        let mut guard = self.value.lock().await;
        if self.is_closed() {
            *guard = None;
        }
        let value = guard.as_mut()?;
        let outcome = self.until_closed(step(value)).await;
        if outcome.is_none() {
            *guard = None;
        }
        outcome
    }

    /// Awaits `work` unless the slot is closed first (then `work` is dropped: `None`).
    pub(crate) async fn until_closed<R>(&self, work: impl Future<Output = R>) -> Option<R> {
        let mut closed = self.closing.subscribe();
        tokio::select! {
            biased;
            _ = closed.wait_for(|closed| *closed) => None,
            outcome = work => Some(outcome),
        }
    }

    /// Takes the value out (to finish it, or because it ended): later steps find nothing.
    pub(crate) async fn take(&self) -> Option<T> {
        self.value.lock().await.take()
    }

    /// Calls `f` on the value now; `None` when it is gone, or busy in a step (TypeScript makes
    /// one call at a time, so that is a closed or finished one).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.value.try_lock().ok()?.as_mut().map(f)
    }

    /// Ends it: a step in flight returns `None` now; the value is dropped here or by that step.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
        if let Ok(mut value) = self.value.try_lock() {
            *value = None;
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closing.borrow()
    }
}
