//! The client: every call of the low-level API, the session starts, reconnecting after
//! `fork()`, and closing.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use flipbook_sdk_core::{
    AllQuery, AppendRequest, Client, ClientOptions, ConnectOptions, Direction, Error, Expectation, Metadata, Snapshot,
    SnapshotQuery, StateKind, StateQuery, SubscriptionQuery, SubscriptionStart, Timestamp,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{OrRaise, locked, to_py};
use crate::reads::Pages;
use crate::runtime::{runtime, wait};
use crate::session::{PyMultiSession, PySession};
use crate::subscriptions::NativeSubscription;
use crate::values::{EventTuple, OutcomeTuple, outcome_tuple, proposed_all, within};

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
    /// The process the client is that of, and the client: `None` once closed in a process
    /// that inherited it by fork() (a client closed where it was made stays, and refuses).
    current: Mutex<(u32, Option<Client>)>,
}

async fn open(origin: &Origin, options: ClientOptions) -> Result<Client, Error> {
    match origin {
        Origin::Server(connect) => Client::connect_with(connect.clone(), options).await,
        Origin::Embedded(path) => Client::open_embedded(path, options).await,
        Origin::Memory => Ok(Client::in_memory(options)),
    }
}

pub(crate) fn seconds(value: f64, field: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(value).map_err(|_| Error::invalid(field, "must be a non-negative number of seconds"))
}

/// `(max_tries, max_resends, resume_for, first_delay, max_delay, snapshot_every,
/// cache_entries, cache_bytes)`, as `flipbook.Options.to_native()` gives it.
type OptionsTuple = (u32, u32, f64, f64, f64, Option<u64>, usize, u64);

fn client_options(
    (max_tries, max_resends, resume_for, first_delay, max_delay, snapshot_every, cache_entries, cache_bytes): OptionsTuple,
) -> Result<ClientOptions, Error> {
    let mut options = ClientOptions::default();
    options.retry.max_tries = max_tries.max(1);
    options.retry.max_resends = max_resends;
    options.retry.resume_for = seconds(resume_for, "resume_for")?;
    options.retry.first_delay = seconds(first_delay, "first_delay")?;
    options.retry.max_delay = seconds(max_delay, "max_delay")?;
    options.snapshots.every = snapshot_every;
    options.cache.max_entries = cache_entries;
    options.cache.max_bytes = cache_bytes;
    Ok(options)
}

/// `(state_id, events, expected, version, neutral, state_metadata)`: one append, as
/// `flipbook.AppendPart` gives it. `expected`: "any", "no_state", or "exactly" with `version`.
type PartTuple = (String, Vec<EventTuple>, String, u64, bool, Option<Metadata>);

fn append_request(
    (state_id, events, expected, version, neutral, state_metadata): PartTuple,
) -> Result<AppendRequest, Error> {
    let expected = match expected.as_str() {
        "any" => Expectation::Any,
        "no_state" => Expectation::NoState,
        "exactly" => Expectation::Exactly(version),
        other => return Err(Error::invalid("expected", format!("unknown expectation {other:?}"))),
    };
    let mut request = AppendRequest::new(state_id, expected, proposed_all(events)?);
    if neutral {
        request.kind = StateKind::VersionNeutral;
    }
    request.state_metadata = state_metadata.unwrap_or_default();
    Ok(request)
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
            let Some(client) = &current.1 else { return Err(to_py(py, Error::Closed)) };
            if current.0 == pid || matches!(self.origin, Origin::Memory) || client.is_closed() {
                return Ok(client.clone());
            }
        }
        let runtime = runtime()?;
        let reopened = py.detach(|| {
            let mut current = locked(&self.current)?;
            if current.0 != pid && current.1.is_some() {
                let client = runtime.block_on(open(&self.origin, self.options.clone()))?;
                // The parent's client holds tasks of the parent's runtime: never dropped here.
                std::mem::forget(current.1.replace(client));
                current.0 = pid;
            }
            Ok::<_, Reopen>(current.1.clone())
        });
        match reopened {
            Ok(Some(client)) => Ok(client),
            Ok(None) => Err(to_py(py, Error::Closed)), // closed by another thread meanwhile
            Err(Reopen::Lock(error)) => Err(error),
            Err(Reopen::Core(error)) => Err(to_py(py, error)),
        }
    }

    fn make(py: Python<'_>, origin: Origin, options: ClientOptions) -> PyResult<Self> {
        let client = wait(py, open(&origin, options.clone()))?.or_raise(py)?;
        Ok(Self { origin, options, current: Mutex::new((std::process::id(), Some(client))) })
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

    /// The core's close: calls after it, and reads and subscriptions begun before, raise
    /// `CLOSED`; it returns once the snapshots being written are and the embedded file is
    /// released. Closing again does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let client = {
            let mut current = locked(&self.current)?;
            if current.0 != std::process::id() {
                // The parent's client, inherited by fork(): its tasks and threads are the
                // parent's, so there is nothing here to wait for or release.
                std::mem::forget(current.1.take());
                return Ok(());
            }
            current.1.clone()
        };
        match client {
            Some(client) => wait(py, async move { client.close().await }),
            None => Ok(()),
        }
    }

    /// `expected`: "any", "no_state", or "exactly" with `version`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (state_id, events, expected, version, neutral, state_metadata))]
    fn append(
        &self,
        py: Python<'_>,
        state_id: String,
        events: Vec<EventTuple>,
        expected: String,
        version: u64,
        neutral: bool,
        state_metadata: Option<Metadata>,
    ) -> PyResult<OutcomeTuple> {
        let request = append_request((state_id, events, expected, version, neutral, state_metadata)).or_raise(py)?;
        let client = self.client(py)?;
        wait(py, client.append(request))?.or_raise(py).map(outcome_tuple)
    }

    /// Appends to several states atomically (every part or none): one outcome per part.
    fn append_states(&self, py: Python<'_>, parts: Vec<PartTuple>) -> PyResult<Vec<OutcomeTuple>> {
        let parts = parts
            .into_iter()
            .enumerate()
            .map(|(p, part)| append_request(part).map_err(|e| within(&format!("parts[{p}]"), e)))
            .collect::<Result<Vec<_>, _>>()
            .or_raise(py)?;
        let client = self.client(py)?;
        let outcomes = wait(py, client.append_states(parts))?.or_raise(py)?;
        Ok(outcomes.into_iter().map(outcome_tuple).collect())
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

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (after_position, until_position, prefix, names, limit, backward))]
    fn read_all(
        &self,
        py: Python<'_>,
        after_position: u64,
        until_position: Option<u64>,
        prefix: String,
        names: Vec<String>,
        limit: Option<u64>,
        backward: bool,
    ) -> PyResult<Pages> {
        let query = AllQuery {
            after_position,
            until_position,
            state_id_prefix: prefix,
            names,
            limit: limit.filter(|&n| n > 0),
            direction: if backward { Direction::Backward } else { Direction::Forward },
        };
        Ok(Pages::new(self.client(py)?.read_all(query)))
    }

    /// `(settled_position, event_count)`.
    fn log_head(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        let client = self.client(py)?;
        let head = wait(py, async move { client.log_head().await })?.or_raise(py)?;
        Ok((head.settled_position, head.event_count))
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
    /// max_payload_bytes, max_snapshot_bytes, max_request_bytes, max_states_per_append)`.
    #[allow(clippy::type_complexity)]
    fn server_info(&self, py: Python<'_>) -> PyResult<(String, String, String, bool, u32, u64, u64, u64, u32)> {
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
            l.max_states_per_append,
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

    /// A command over several states: `targets` are `(state_id, reducer_revision)` pairs.
    fn execute_states_session(&self, py: Python<'_>, targets: Vec<(String, String)>) -> PyResult<PyMultiSession> {
        let client = self.client(py)?;
        let command = wait(py, async move {
            let targets: Vec<(&str, &str)> =
                targets.iter().map(|(id, revision)| (id.as_str(), revision.as_str())).collect();
            client.execute_states_session(&targets).await
        })?
        .or_raise(py)?;
        Ok(PyMultiSession::new(command))
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
        wait(py, async move { client.flush_snapshots().await })?.or_raise(py)
    }

    /// `(entries, bytes)` in the local state cache.
    fn cache_usage(&self, py: Python<'_>) -> PyResult<(usize, u64)> {
        self.client(py)?.cache_usage().or_raise(py)
    }
}
