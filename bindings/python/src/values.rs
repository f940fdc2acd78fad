//! Values crossing the boundary: recorded events as Python objects (built a page at a time),
//! proposed events and outcomes as tuples.

use flipbook_sdk_core::{AppendOutcome, Error, Metadata, ProposedEvent, RecordedEvent, Timestamp};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use uuid::Uuid;

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

/// A proposed event as the Python package passes it: `(event_id, name, payload, content_type,
/// timestamp_nanos, metadata, version)`.
pub(crate) type EventTuple = (Option<String>, String, Vec<u8>, String, Option<i64>, Option<Metadata>, Option<i64>);

fn proposed(
    index: usize,
    (event_id, name, payload, content_type, timestamp, metadata, version): EventTuple,
) -> Result<ProposedEvent, Error> {
    let mut event = ProposedEvent::new(name, payload);
    if let Some(id) = event_id {
        event.event_id =
            id.parse().map_err(|_| Error::invalid(format!("events[{index}].event_id"), "must be a UUID"))?;
    }
    event.content_type = content_type;
    event.timestamp = timestamp.map(Timestamp::from_unix_nanos);
    event.metadata = metadata.unwrap_or_default();
    // Signed here so a negative version is the core's kind of error, naming the field, rather
    // than an OverflowError of the conversion; the core checks the rest (from 1, no gaps).
    event.version = version
        .map(|v| {
            u64::try_from(v).map_err(|_| Error::invalid(format!("events[{index}].version"), "versions start at 1"))
        })
        .transpose()?;
    Ok(event)
}

pub(crate) fn proposed_all(events: Vec<EventTuple>) -> Result<Vec<ProposedEvent>, Error> {
    events.into_iter().enumerate().map(|(i, e)| proposed(i, e)).collect()
}

/// An invalid argument found in a part of a request, named within it (`events[0].version` of
/// `parts[1]` is `parts[1].events[0].version`), as the core names what it checks itself.
pub(crate) fn within(prefix: &str, error: Error) -> Error {
    match error {
        Error::InvalidArgument { field, rule } => Error::InvalidArgument { field: format!("{prefix}.{field}"), rule },
        other => other,
    }
}

/// `(last_version, global_positions, recorded_at_nanos)`.
pub(crate) type OutcomeTuple = (Option<u64>, Vec<u64>, i64);

pub(crate) fn outcome_tuple(outcome: AppendOutcome) -> OutcomeTuple {
    (outcome.last_version, outcome.global_positions, outcome.recorded_at.unix_nanos())
}

pub(crate) fn page_to_py(py: Python<'_>, events: Vec<RecordedEvent>) -> PyResult<Vec<Py<PyRecordedEvent>>> {
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
