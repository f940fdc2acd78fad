//! `flipbook._native`: the Python binding's native half. Thin by design: every behaviour is
//! `flipbook-sdk-core`'s; this converts values and hands the core's session protocol (see
//! `bindings/README.md`) to the Python package, which folds pages and decides in Python.
//!
//! Threads: every call that waits releases the GIL and blocks on the process's one tokio
//! runtime. After `fork()` the child builds a runtime of its own and reconnects its clients
//! (a runtime's threads do not survive a fork). The asyncio API (`flipbook/aio.py`) runs these
//! blocking calls on a thread pool, so no Rust thread ever calls into Python.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use flipbook_sdk_core::{
    AllQuery, AppendOutcome, AppendRequest, Client, ClientOptions, ConnectOptions, Delivery, Direction, Error,
    EventPages, Expectation, Metadata, ProposedEvent, RecordedEvent, Session, Snapshot, SnapshotQuery, StateKind,
    StateQuery, Subscription, SubscriptionQuery, SubscriptionStart, Timestamp,
};
use futures::StreamExt;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use uuid::Uuid;

/// Events are decoded on the runtime's threads and their objects freed on the interpreter's:
/// glibc frees across threads under the allocating arena's lock; mimalloc does it without one
/// (loads with a Python reducer +10-20 %, `benchmarks/bench.py`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// ---- the runtime ---------------------------------------------------------------------------

/// The process's runtime and the process it was built in.
static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);

fn runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    let mut slot = RUNTIME.lock().map_err(|_| PyRuntimeError::new_err("runtime lock poisoned"))?;
    let pid = std::process::id();
    match slot.as_ref() {
        Some((built_in, runtime)) if *built_in == pid => Ok(Arc::clone(runtime)),
        stale => {
            if let Some((_, inherited)) = stale {
                // A copy from the parent: its threads do not exist here, so it must not be
                // dropped (that would wait for them). It is left as it is.
                std::mem::forget(Arc::clone(inherited));
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("flipbook")
                .enable_all()
                .build()
                .map_err(|e| PyRuntimeError::new_err(format!("starting the runtime: {e}")))?;
            let runtime = Arc::new(runtime);
            *slot = Some((pid, Arc::clone(&runtime)));
            Ok(runtime)
        }
    }
}

/// Runs a future to completion with the GIL released.
fn wait<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = runtime()?;
    Ok(py.detach(|| runtime.block_on(future)))
}

// ---- errors --------------------------------------------------------------------------------

/// The Python exception for a core error: the class of `flipbook.errors` named by its code,
/// with `code`, `field`, `actual_version` set. A caller's own error never passes through here:
/// user code runs in Python.
fn to_py(py: Python<'_>, error: Error) -> PyErr {
    let raise = || -> PyResult<PyErr> {
        let errors = py.import("flipbook.errors")?;
        let class = errors.getattr("class_for_code")?.call1((error.code().as_str(),))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("code", error.code().as_str())?;
        kwargs.set_item("field", error.field())?;
        kwargs.set_item("actual_version", error.actual_version())?;
        Ok(PyErr::from_value(class.call((error.to_string(),), Some(&kwargs))?))
    };
    raise().unwrap_or_else(|e| e)
}

trait OrRaise<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

fn locked<T>(mutex: &Mutex<T>) -> PyResult<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| PyRuntimeError::new_err("a previous call panicked"))
}

// ---- values --------------------------------------------------------------------------------

/// An event as the store recorded it. Built once per event of a page; fields convert when read.
/// An event as Python sees it. Its text and bytes are Python objects made once, when the page
/// crosses over, and read as plain attributes (no conversion per access); consecutive events
/// share their `state_id`, `name` and `content_type` objects when the text repeats. Nothing of
/// it is on Rust's heap unless it has metadata, so freeing a page of them is Python's work.
#[pyclass(frozen, module = "flipbook", name = "RecordedEvent")]
#[derive(Debug)]
pub struct PyRecordedEvent {
    #[pyo3(get)]
    state_id: Py<PyString>,
    #[pyo3(get)]
    name: Py<PyString>,
    #[pyo3(get)]
    payload: Py<PyBytes>,
    #[pyo3(get)]
    content_type: Py<PyString>,
    /// `None` for version-neutral states.
    #[pyo3(get)]
    version: Option<u64>,
    #[pyo3(get)]
    global_position: u64,
    event_id: Uuid,
    timestamp: Option<Timestamp>,
    recorded_at: Timestamp,
    metadata: Metadata,
}

#[pymethods]
impl PyRecordedEvent {
    #[getter]
    fn event_id(&self) -> String {
        self.event_id.hyphenated().to_string()
    }
    /// When it happened in the domain, in nanoseconds since the Unix epoch; `None`: time-neutral.
    #[getter]
    fn timestamp_nanos(&self) -> Option<i64> {
        self.timestamp.map(Timestamp::unix_nanos)
    }
    #[getter]
    fn recorded_at_nanos(&self) -> i64 {
        self.recorded_at.unix_nanos()
    }
    #[getter]
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    /// The payload parsed as JSON.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.getattr("loads")?.call1((self.payload.clone_ref(py),))
    }
    fn __repr__(&self) -> String {
        let version = self.version.map_or("-".to_owned(), |v| v.to_string());
        let (state_id, name) = (self.state_id.to_string(), self.name.to_string());
        format!("RecordedEvent({state_id:?} v{version} {name:?} @{})", self.global_position)
    }
}

/// A proposed event as the Python package passes it.
type EventTuple = (Option<String>, String, Vec<u8>, String, Option<i64>, Option<Metadata>);

fn proposed(
    index: usize,
    (event_id, name, payload, content_type, timestamp, metadata): EventTuple,
) -> Result<ProposedEvent, Error> {
    let mut event = ProposedEvent::new(name, payload);
    if let Some(id) = event_id {
        event.event_id =
            id.parse().map_err(|_| Error::invalid(format!("events[{index}].event_id"), "must be a UUID"))?;
    }
    event.content_type = content_type;
    event.timestamp = timestamp.map(Timestamp::from_unix_nanos);
    event.metadata = metadata.unwrap_or_default();
    Ok(event)
}

fn proposed_all(events: Vec<EventTuple>) -> Result<Vec<ProposedEvent>, Error> {
    events.into_iter().enumerate().map(|(i, e)| proposed(i, e)).collect()
}

/// `(last_version, global_positions, recorded_at_nanos)`.
type OutcomeTuple = (Option<u64>, Vec<u64>, i64);

fn outcome_tuple(outcome: AppendOutcome) -> OutcomeTuple {
    (outcome.last_version, outcome.global_positions, outcome.recorded_at.unix_nanos())
}

fn page_to_py(py: Python<'_>, events: Vec<RecordedEvent>) -> PyResult<Vec<Py<PyRecordedEvent>>> {
    let (mut state_id, mut name, mut content_type) = (Shared::default(), Shared::default(), Shared::default());
    let mut converted = Vec::with_capacity(events.len());
    for event in events {
        let event = PyRecordedEvent {
            state_id: state_id.get(py, event.state_id),
            name: name.get(py, event.name),
            payload: PyBytes::new(py, &event.payload).unbind(),
            content_type: content_type.get(py, event.content_type),
            version: event.version,
            global_position: event.global_position,
            event_id: event.event_id,
            timestamp: event.timestamp,
            recorded_at: event.recorded_at,
            metadata: event.metadata,
        };
        converted.push(Py::new(py, event)?);
    }
    Ok(converted)
}

/// The Python string made for the previous event, reused while the text repeats: the events of
/// a page mostly share their state id and a few names.
#[derive(Default)]
struct Shared(Option<(String, Py<PyString>)>);

impl Shared {
    fn get(&mut self, py: Python<'_>, text: String) -> Py<PyString> {
        match &self.0 {
            Some((last, object)) if *last == text => object.clone_ref(py),
            _ => {
                let object = PyString::new(py, &text).unbind();
                self.0 = Some((text, object.clone_ref(py)));
                object
            }
        }
    }
}

// ---- reads ---------------------------------------------------------------------------------

/// A read in progress: pages of events, fetched as Python asks for them.
#[pyclass(frozen, module = "flipbook._native")]
pub struct Pages {
    pages: Mutex<EventPages>,
    /// The process it began in: its connection is that process's.
    pid: u32,
}

impl Pages {
    fn new(pages: EventPages) -> Self {
        Self { pages: Mutex::new(pages), pid: std::process::id() }
    }
}

/// A read, session or subscription begun before `fork()` lives on the parent's runtime, which
/// has no threads in the child: continuing it there would wait forever.
fn same_process(pid: u32) -> PyResult<()> {
    if pid == std::process::id() {
        Ok(())
    } else {
        Err(PyRuntimeError::new_err(
            "this read, session or subscription began before fork(); begin it again in this process",
        ))
    }
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages")
    }
}

#[pymethods]
impl Pages {
    /// The next page, or `None` at the end.
    fn next_page(&self, py: Python<'_>) -> PyResult<Option<Vec<Py<PyRecordedEvent>>>> {
        same_process(self.pid)?;
        let runtime = runtime()?;
        // Locked with the GIL released: a thread waiting for the lock must not hold the GIL
        // the holder needs to return.
        let next = py.detach(|| locked(&self.pages).map(|mut pages| runtime.block_on(pages.next())))?;
        match next {
            Some(page) => Ok(Some(page_to_py(py, page.or_raise(py)?)?)),
            None => Ok(None),
        }
    }
}

// ---- subscriptions -------------------------------------------------------------------------

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
    fn new(subscription: Subscription) -> Self {
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

// ---- sessions ------------------------------------------------------------------------------

/// The core's load / execute conversation (`bindings/README.md`).
#[pyclass(frozen, module = "flipbook._native", name = "Session")]
#[derive(Debug)]
pub struct PySession {
    session: Mutex<Option<Session>>,
    pid: u32,
}

type Step<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl PySession {
    fn new(session: Session) -> Self {
        Self { session: Mutex::new(Some(session)), pid: std::process::id() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Session) -> T) -> PyResult<T> {
        let mut session = locked(&self.session)?;
        let session = session.as_mut().ok_or_else(|| PyRuntimeError::new_err("the session has finished"))?;
        Ok(f(session))
    }

    /// Runs one of the session's waits with the GIL released, the lock taken without the GIL.
    fn wait_with<T: Send>(
        &self,
        py: Python<'_>,
        step: impl for<'a> FnOnce(&'a mut Session) -> Step<'a, T> + Send,
    ) -> PyResult<T> {
        same_process(self.pid)?;
        let runtime = runtime()?;
        py.detach(|| {
            let mut session = locked(&self.session)?;
            let session = session.as_mut().ok_or_else(|| PyRuntimeError::new_err("the session has finished"))?;
            Ok(runtime.block_on(step(session)))
        })
    }
}

#[pymethods]
impl PySession {
    /// `(version, encoded state)` to start from, or `None`: the reducer's initial state.
    fn base<'py>(&self, py: Python<'py>) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
        self.with(|s| s.base().map(|b| (b.version, PyBytes::new(py, &b.state))))
    }

    fn discard_base(&self) -> PyResult<()> {
        self.with(Session::discard_base)
    }

    fn version(&self) -> PyResult<u64> {
        self.with(|s| s.version())
    }

    fn next_page(&self, py: Python<'_>) -> PyResult<Option<Vec<Py<PyRecordedEvent>>>> {
        match self.wait_with(py, |session| Box::pin(session.next_page()))?.or_raise(py)? {
            Some(page) => Ok(Some(page_to_py(py, page)?)),
            None => Ok(None),
        }
    }

    fn is_decided(&self) -> PyResult<bool> {
        self.with(|s| s.is_decided())
    }

    fn submit(&self, py: Python<'_>, events: Vec<EventTuple>) -> PyResult<()> {
        let events = proposed_all(events).or_raise(py)?;
        self.wait_with(py, move |session| Box::pin(session.submit(events)))?.or_raise(py)
    }

    fn wants_state(&self) -> PyResult<bool> {
        self.with(|s| s.wants_state())
    }

    /// Ends the session: `(version, appended outcome or None, tries)`.
    #[pyo3(signature = (state=None))]
    fn finish(&self, py: Python<'_>, state: Option<Vec<u8>>) -> PyResult<(u64, Option<OutcomeTuple>, u32)> {
        same_process(self.pid)?;
        let session = py.detach(|| locked(&self.session).map(|mut s| s.take()))?;
        let session = session.ok_or_else(|| PyRuntimeError::new_err("the session has finished"))?;
        let finished = wait(py, session.finish(state))?.or_raise(py)?;
        Ok((finished.version, finished.appended.map(outcome_tuple), finished.tries))
    }
}

// ---- the client ----------------------------------------------------------------------------

/// How a client was made, so a forked child can make it again.
#[derive(Debug)]
enum Origin {
    Server(ConnectOptions),
    Embedded(PathBuf),
    /// Nothing of it lives on the runtime: the child keeps (a copy of) it as it is.
    Memory,
}

#[pyclass(frozen, module = "flipbook._native")]
#[derive(Debug)]
pub struct NativeClient {
    origin: Origin,
    options: ClientOptions,
    current: Mutex<(u32, Client)>,
}

async fn open(origin: &Origin, options: ClientOptions) -> Result<Client, Error> {
    match origin {
        Origin::Server(connect) => Client::connect_with(connect.clone(), options).await,
        Origin::Embedded(path) => Client::open_embedded(path, options).await,
        Origin::Memory => Ok(Client::in_memory(options)),
    }
}

fn seconds(value: f64, field: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(value).map_err(|_| Error::invalid(field, "must be a non-negative number of seconds"))
}

/// `(max_tries, max_resends, first_delay, max_delay, snapshot_every, cache_entries,
/// cache_bytes)`, as `flipbook.Options.to_native()` gives it.
type OptionsTuple = (u32, u32, f64, f64, Option<u64>, usize, u64);

fn client_options(
    (max_tries, max_resends, first_delay, max_delay, snapshot_every, cache_entries, cache_bytes): OptionsTuple,
) -> Result<ClientOptions, Error> {
    let mut options = ClientOptions::default();
    options.retry.max_tries = max_tries.max(1);
    options.retry.max_resends = max_resends;
    options.retry.first_delay = seconds(first_delay, "first_delay")?;
    options.retry.max_delay = seconds(max_delay, "max_delay")?;
    options.snapshots.every = snapshot_every;
    options.cache.max_entries = cache_entries;
    options.cache.max_bytes = cache_bytes;
    Ok(options)
}

/// Why a client could not be made again after a fork.
enum Reopen {
    Lock(PyErr),
    Core(Error),
}

impl From<PyErr> for Reopen {
    fn from(error: PyErr) -> Self {
        Self::Lock(error)
    }
}

impl From<Error> for Reopen {
    fn from(error: Error) -> Self {
        Self::Core(error)
    }
}

impl NativeClient {
    /// The client for this process: made again after a fork.
    fn client(&self, py: Python<'_>) -> PyResult<Client> {
        let pid = std::process::id();
        {
            let current = locked(&self.current)?;
            if current.0 == pid || matches!(self.origin, Origin::Memory) {
                return Ok(current.1.clone());
            }
        }
        let runtime = runtime()?;
        let reopened = py.detach(|| {
            let mut current = locked(&self.current)?;
            if current.0 != pid {
                let client = runtime.block_on(open(&self.origin, self.options.clone()))?;
                // The parent's client holds tasks of the parent's runtime: never dropped here.
                std::mem::forget(std::mem::replace(&mut current.1, client));
                current.0 = pid;
            }
            Ok::<_, Reopen>(current.1.clone())
        });
        match reopened {
            Ok(client) => Ok(client),
            Err(Reopen::Lock(error)) => Err(error),
            Err(Reopen::Core(error)) => Err(to_py(py, error)),
        }
    }

    fn make(py: Python<'_>, origin: Origin, options: ClientOptions) -> PyResult<Self> {
        let client = wait(py, open(&origin, options.clone()))?.or_raise(py)?;
        Ok(Self { origin, options, current: Mutex::new((std::process::id(), client)) })
    }
}

#[pymethods]
impl NativeClient {
    #[staticmethod]
    #[pyo3(signature = (endpoint, token, ca_certificate, tls_domain, connect_timeout, request_timeout, options))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        py: Python<'_>,
        endpoint: String,
        token: Option<String>,
        ca_certificate: Option<Vec<u8>>,
        tls_domain: Option<String>,
        connect_timeout: f64,
        request_timeout: f64,
        options: OptionsTuple,
    ) -> PyResult<Self> {
        let options = client_options(options).or_raise(py)?;
        let mut connect = ConnectOptions::new(endpoint);
        connect.token = token;
        connect.ca_certificate = ca_certificate;
        connect.tls_domain = tls_domain;
        connect.connect_timeout = seconds(connect_timeout, "connect_timeout").or_raise(py)?;
        connect.request_timeout = seconds(request_timeout, "request_timeout").or_raise(py)?;
        Self::make(py, Origin::Server(connect), options)
    }

    #[staticmethod]
    fn open_embedded(py: Python<'_>, path: PathBuf, options: OptionsTuple) -> PyResult<Self> {
        let options = client_options(options).or_raise(py)?;
        Self::make(py, Origin::Embedded(path), options)
    }

    #[staticmethod]
    fn in_memory(py: Python<'_>, options: OptionsTuple) -> PyResult<Self> {
        let options = client_options(options).or_raise(py)?;
        Self::make(py, Origin::Memory, options)
    }

    /// `expected`: "any", "no_state", or "exactly" with `version`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (state_id, events, expected, version, neutral, state_metadata))]
    fn append(
        &self,
        py: Python<'_>,
        state_id: String,
        events: Vec<EventTuple>,
        expected: &str,
        version: u64,
        neutral: bool,
        state_metadata: Option<Metadata>,
    ) -> PyResult<OutcomeTuple> {
        let expected = match expected {
            "any" => Expectation::Any,
            "no_state" => Expectation::NoState,
            "exactly" => Expectation::Exactly(version),
            other => return Err(to_py(py, Error::invalid("expected", format!("unknown expectation {other:?}")))),
        };
        let mut request = AppendRequest::new(state_id, expected, proposed_all(events).or_raise(py)?);
        if neutral {
            request.kind = StateKind::VersionNeutral;
        }
        request.state_metadata = state_metadata.unwrap_or_default();
        let client = self.client(py)?;
        wait(py, client.append_resending(request))?.or_raise(py).map(outcome_tuple)
    }

    /// `(kind "versioned"|"neutral", event_count, last_global_position, first_recorded_at_nanos,
    /// last_recorded_at_nanos, metadata)`.
    fn head(&self, py: Python<'_>, state_id: String) -> PyResult<(String, u64, u64, i64, i64, Metadata)> {
        let client = self.client(py)?;
        let head = wait(py, async move { client.head(&state_id).await })?.or_raise(py)?;
        let kind = if head.kind == StateKind::Versioned { "versioned" } else { "neutral" };
        Ok((
            kind.to_owned(),
            head.event_count,
            head.last_global_position,
            head.first_recorded_at.unix_nanos(),
            head.last_recorded_at.unix_nanos(),
            head.metadata,
        ))
    }

    #[pyo3(signature = (state_id, backward, min_version, max_version, limit, names, as_of_nanos))]
    #[allow(clippy::too_many_arguments)]
    fn read_state(
        &self,
        py: Python<'_>,
        state_id: String,
        backward: bool,
        min_version: Option<u64>,
        max_version: Option<u64>,
        limit: Option<u64>,
        names: Vec<String>,
        as_of_nanos: Option<i64>,
    ) -> PyResult<Pages> {
        let query = StateQuery {
            state_id,
            direction: if backward { Direction::Backward } else { Direction::Forward },
            min_version,
            max_version,
            limit: limit.filter(|&n| n > 0),
            names,
            as_of: as_of_nanos.map(Timestamp::from_unix_nanos),
        };
        Ok(Pages::new(self.client(py)?.read_state(query)))
    }

    #[pyo3(signature = (after_position, prefix, names, limit))]
    fn read_all(
        &self,
        py: Python<'_>,
        after_position: u64,
        prefix: String,
        names: Vec<String>,
        limit: Option<u64>,
    ) -> PyResult<Pages> {
        let query = AllQuery { after_position, state_id_prefix: prefix, names, limit: limit.filter(|&n| n > 0) };
        Ok(Pages::new(self.client(py)?.read_all(query)))
    }

    fn put_snapshot(
        &self,
        py: Python<'_>,
        state_id: String,
        version: u64,
        reducer_revision: String,
        payload: Vec<u8>,
        content_type: String,
    ) -> PyResult<()> {
        let snapshot =
            Snapshot { state_id, version, reducer_revision, payload, content_type, created_at: Timestamp::now() };
        let client = self.client(py)?;
        wait(py, async move { client.put_snapshot(snapshot).await })?.or_raise(py)
    }

    /// `(version, reducer_revision, payload, content_type, created_at_nanos)` or `None`.
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (state_id, reducer_revision, max_version))]
    fn get_snapshot<'py>(
        &self,
        py: Python<'py>,
        state_id: String,
        reducer_revision: String,
        max_version: Option<u64>,
    ) -> PyResult<Option<(u64, String, Bound<'py, PyBytes>, String, i64)>> {
        let client = self.client(py)?;
        let query = SnapshotQuery { state_id, reducer_revision, max_version };
        let found = wait(py, async move { client.get_snapshot(query).await })?.or_raise(py)?;
        Ok(found.map(|s| {
            (s.version, s.reducer_revision, PyBytes::new(py, &s.payload), s.content_type, s.created_at.unix_nanos())
        }))
    }

    fn delete_snapshots(&self, py: Python<'_>, state_id: String) -> PyResult<u64> {
        let client = self.client(py)?;
        wait(py, async move { client.delete_snapshots(&state_id).await })?.or_raise(py)
    }

    /// `(server_version, event_backend, snapshot_backend, durable, max_events_per_append,
    /// max_payload_bytes, max_snapshot_bytes, max_request_bytes)`.
    #[allow(clippy::type_complexity)]
    fn server_info(&self, py: Python<'_>) -> PyResult<(String, String, String, bool, u32, u64, u64, u64)> {
        let client = self.client(py)?;
        let info = wait(py, async move { client.server_info().await })?.or_raise(py)?;
        let l = info.limits;
        Ok((
            info.server_version,
            info.event_backend,
            info.snapshot_backend,
            info.durable,
            l.max_events_per_append,
            l.max_payload_bytes,
            l.max_snapshot_bytes,
            l.max_request_bytes,
        ))
    }

    #[pyo3(signature = (state_id, reducer_revision, as_of_nanos))]
    fn load_session(
        &self,
        py: Python<'_>,
        state_id: String,
        reducer_revision: String,
        as_of_nanos: Option<i64>,
    ) -> PyResult<PySession> {
        let client = self.client(py)?;
        let as_of = as_of_nanos.map(Timestamp::from_unix_nanos);
        let session =
            wait(py, async move { client.load_session(&state_id, &reducer_revision, as_of).await })?.or_raise(py)?;
        Ok(PySession::new(session))
    }

    fn execute_session(&self, py: Python<'_>, state_id: String, reducer_revision: String) -> PyResult<PySession> {
        let client = self.client(py)?;
        let session =
            wait(py, async move { client.execute_session(&state_id, &reducer_revision).await })?.or_raise(py)?;
        Ok(PySession::new(session))
    }

    /// `start_kind`: "beginning", "now", or "after" with `after`.
    #[pyo3(signature = (start_kind, after, state_id_prefix, names))]
    fn subscribe(
        &self,
        py: Python<'_>,
        start_kind: &str,
        after: u64,
        state_id_prefix: String,
        names: Vec<String>,
    ) -> PyResult<NativeSubscription> {
        let start = match start_kind {
            "beginning" => SubscriptionStart::Beginning,
            "now" => SubscriptionStart::Now,
            "after" => SubscriptionStart::After(after),
            other => return Err(to_py(py, Error::invalid("start", format!("unknown start {other:?}")))),
        };
        let query = SubscriptionQuery { start, state_id_prefix, names };
        Ok(NativeSubscription::new(self.client(py)?.subscribe(query)))
    }

    /// Waits for the snapshots this client's sessions are writing in the background.
    fn flush_snapshots(&self, py: Python<'_>) -> PyResult<()> {
        let client = self.client(py)?;
        wait(py, async move { client.flush_snapshots().await })
    }

    /// `(entries, bytes)` in the local state cache.
    fn cache_usage(&self, py: Python<'_>) -> PyResult<(usize, u64)> {
        Ok(self.client(py)?.cache_usage())
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_class::<PySession>()?;
    m.add_class::<Pages>()?;
    m.add_class::<NativeSubscription>()?;
    m.add_class::<PyRecordedEvent>()?;
    Ok(())
}
