//! Subscriptions: deliveries handed to Python a page at a time, waiting with the GIL released
//! and waking for signals (Ctrl-C).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use flipbook_sdk_core::{Delivery, Error, Subscription};
use futures::StreamExt;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;

use crate::client::seconds;
use crate::errors::{OrRaise, locked, to_py};
use crate::reads::same_process;
use crate::runtime::runtime;
use crate::values::page_to_py;

/// The longest a `next` waits with the GIL released before it looks at the process's signals
/// (Ctrl-C reaches a thread blocked in `next(None)` within this).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// A subscription of the core: events a page at a time, and checkpoints. The core resumes it
/// after broken connections; this only waits for its messages and converts them.
#[pyclass(frozen, module = "flipbook._native")]
pub struct NativeSubscription {
    /// `None` once closed, or ended (after the error that ended it was raised).
    subscription: Mutex<Option<Subscription>>,
    /// Set by `close()`; wakes a `next` waiting in another thread without taking the lock.
    closing: tokio::sync::watch::Sender<bool>,
    closed: AtomicBool,
    /// The core's position after the last message `next` returned (a copy, so reading it never
    /// waits for a `next` in progress).
    position: Mutex<Option<u64>>,
    pid: u32,
}

impl std::fmt::Debug for NativeSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeSubscription").field("closed", &self.closed.load(Ordering::Relaxed)).finish()
    }
}

/// What one wait of `next` came to.
enum Waited {
    Message(Option<Result<Delivery, Error>>),
    Closed,
    TimedOut,
}

impl NativeSubscription {
    pub(crate) fn new(subscription: Subscription) -> Self {
        Self {
            subscription: Mutex::new(Some(subscription)),
            closing: tokio::sync::watch::Sender::new(false),
            closed: AtomicBool::new(false),
            position: Mutex::new(None),
            pid: std::process::id(),
        }
    }

    /// Waits up to `slice` for the next message, with the GIL released.
    fn wait_for(&self, py: Python<'_>, runtime: &tokio::runtime::Runtime, slice: Duration) -> PyResult<Waited> {
        py.detach(|| {
            let mut guard = locked(&self.subscription)?;
            let Some(subscription) = guard.as_mut() else { return Ok(Waited::Closed) };
            let mut closing = self.closing.subscribe();
            let waited = runtime.block_on(async {
                // A timed-out `next()` is dropped between polls: the stream keeps its place.
                tokio::select! {
                    biased;
                    _ = closing.wait_for(|closed| *closed) => Waited::Closed,
                    message = subscription.next() => Waited::Message(message),
                    () = tokio::time::sleep(slice) => Waited::TimedOut,
                }
            });
            let ended = matches!(waited, Waited::Closed | Waited::Message(None | Some(Err(_))));
            if ended || self.closed.load(Ordering::SeqCst) {
                *guard = None;
            } else if matches!(waited, Waited::Message(_)) {
                *locked(&self.position)? = subscription.position();
            }
            Ok(waited)
        })
    }
}

fn ended() -> PyErr {
    PyStopIteration::new_err("the subscription is closed or has ended")
}

#[pymethods]
impl NativeSubscription {
    /// The next message: `("events", [RecordedEvent, ...])` (a page), `("checkpoint", position)`,
    /// or `None` when `timeout_seconds` passed first (`None`: wait as long as it takes). Raises
    /// the error that ends the subscription, then `StopIteration` (also once closed).
    #[pyo3(signature = (timeout_seconds=None))]
    fn next<'py>(&self, py: Python<'py>, timeout_seconds: Option<f64>) -> PyResult<Option<Bound<'py, PyAny>>> {
        same_process(self.pid)?;
        let timeout = timeout_seconds.map(|t| seconds(t, "timeout_seconds")).transpose().or_raise(py)?;
        // Too far to represent: as good as no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let runtime = runtime()?;
        loop {
            let slice =
                deadline.map_or(SIGNAL_CHECK, |d| d.saturating_duration_since(Instant::now()).min(SIGNAL_CHECK));
            match self.wait_for(py, &runtime, slice)? {
                Waited::Message(Some(Ok(Delivery::Events(events)))) => {
                    return Ok(Some(("events", page_to_py(py, events)?).into_pyobject(py)?.into_any()));
                }
                Waited::Message(Some(Ok(Delivery::Checkpoint(position)))) => {
                    return Ok(Some(("checkpoint", position).into_pyobject(py)?.into_any()));
                }
                Waited::Message(Some(Err(error))) => return Err(to_py(py, error)),
                Waited::Message(None) | Waited::Closed => return Err(ended()),
                Waited::TimedOut => {
                    py.check_signals()?;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The last position handed out (an event's or a checkpoint's): every event at or below it
    /// was delivered or filtered out. `None` before the first message.
    #[getter]
    fn position(&self) -> PyResult<Option<u64>> {
        Ok(*locked(&self.position)?)
    }

    /// Ends the subscription: a `next` waiting in another thread raises `StopIteration`. Never
    /// waits (the stream is dropped here or by that `next`).
    fn close(&self) -> PyResult<()> {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.send_replace(true);
        let taken = match self.subscription.try_lock() {
            Ok(mut guard) => guard.take(),
            Err(TryLockError::WouldBlock) => None, // the waiting `next` drops it
            Err(TryLockError::Poisoned(_)) => return Err(PyRuntimeError::new_err("a previous call panicked")),
        };
        if self.pid != std::process::id() {
            // Begun before fork(): its tasks belong to the parent's runtime.
            std::mem::forget(taken);
        }
        Ok(())
    }
}
