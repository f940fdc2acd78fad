//! Sessions: the core's load-and-execute protocol, driven step by step from Python, which folds
//! and decides in its own language. A command over several states is one `MultiSession`; each of
//! its states is a `StateSession`, folded with the same calls as a `Session`.

use std::future::Future;
use std::sync::{Arc, Mutex};

use flipbook_sdk_core::{Finished, MultiStateSession, RecordedEvent, Session};
use pyo3::exceptions::{PyIndexError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{OrRaise, locked};
use crate::reads::same_process;
use crate::runtime::{runtime, wait};
use crate::values::{EventTuple, OutcomeTuple, PyRecordedEvent, outcome_tuple, page_to_py, proposed_all, within};

type Step<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `(version, appended outcome or None, tries)`.
type FinishedTuple = (u64, Option<OutcomeTuple>, u32);

fn finished_tuple(finished: Finished) -> FinishedTuple {
    (finished.version, finished.appended.map(outcome_tuple), finished.tries)
}

/// What the Python objects share: a session (or a command's sessions) until it finishes, and the
/// process it began in.
#[derive(Debug)]
struct Shared<T> {
    slot: Arc<Mutex<Option<T>>>,
    pid: u32,
}

impl<T: Send> Shared<T> {
    fn new(value: T) -> Self {
        Self { slot: Arc::new(Mutex::new(Some(value))), pid: std::process::id() }
    }

    fn same(&self) -> Self {
        Self { slot: Arc::clone(&self.slot), pid: self.pid }
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> PyResult<R> {
        let mut slot = locked(&self.slot)?;
        Ok(f(slot.as_mut().ok_or_else(finished)?))
    }

    /// Runs one of the session's waits with the GIL released, the lock taken without the GIL.
    fn wait_with<R: Send>(
        &self,
        py: Python<'_>,
        step: impl for<'a> FnOnce(&'a mut T) -> Step<'a, R> + Send,
    ) -> PyResult<R> {
        same_process(self.pid)?;
        let runtime = runtime()?;
        py.detach(|| {
            let mut slot = locked(&self.slot)?;
            Ok(runtime.block_on(step(slot.as_mut().ok_or_else(finished)?)))
        })
    }

    /// Takes the session out to finish it: every later call says it has finished.
    fn take(&self, py: Python<'_>) -> PyResult<T> {
        same_process(self.pid)?;
        py.detach(|| locked(&self.slot).map(|mut s| s.take()))?.ok_or_else(finished)
    }
}

fn finished() -> PyErr {
    PyRuntimeError::new_err("the session has finished")
}

/// The core's load / execute conversation (`bindings/README.md`).
#[pyclass(frozen, module = "flipbook._native", name = "Session")]
#[derive(Debug)]
pub struct PySession(Shared<Session>);

impl PySession {
    pub(crate) fn new(session: Session) -> Self {
        Self(Shared::new(session))
    }
}

fn base<'py>(py: Python<'py>, session: &Session) -> Option<(u64, Bound<'py, PyBytes>)> {
    session.base().map(|b| (b.version, PyBytes::new(py, &b.state)))
}

fn next_page(py: Python<'_>, page: Option<Vec<RecordedEvent>>) -> PyResult<Option<Vec<Py<PyRecordedEvent>>>> {
    page.map(|page| page_to_py(py, page)).transpose()
}

#[pymethods]
impl PySession {
    /// `(version, encoded state)` to start from, or `None`: the reducer's initial state.
    fn base<'py>(&self, py: Python<'py>) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
        self.0.with(|s| base(py, s))
    }

    fn discard_base(&self) -> PyResult<()> {
        self.0.with(Session::discard_base)
    }

    fn version(&self) -> PyResult<u64> {
        self.0.with(|s| s.version())
    }

    fn next_page(&self, py: Python<'_>) -> PyResult<Option<Vec<Py<PyRecordedEvent>>>> {
        next_page(py, self.0.wait_with(py, |s| Box::pin(s.next_page()))?.or_raise(py)?)
    }

    fn is_decided(&self) -> PyResult<bool> {
        self.0.with(|s| s.is_decided())
    }

    fn submit(&self, py: Python<'_>, events: Vec<EventTuple>) -> PyResult<()> {
        let events = proposed_all(events).or_raise(py)?;
        self.0.wait_with(py, move |s| Box::pin(s.submit(events)))?.or_raise(py)
    }

    fn wants_state(&self) -> PyResult<bool> {
        self.0.with(|s| s.wants_state())
    }

    /// Ends the session: `(version, appended outcome or None, tries)`.
    #[pyo3(signature = (state=None))]
    fn finish(&self, py: Python<'_>, state: Option<Vec<u8>>) -> PyResult<FinishedTuple> {
        let session = self.0.take(py)?;
        wait(py, session.finish(state))?.or_raise(py).map(finished_tuple)
    }
}

/// One command over several states (the core's `MultiStateSession`): fold each state through
/// `session(i)`, submit one list of events per state, finish with one encoded state per state.
#[pyclass(frozen, module = "flipbook._native", name = "MultiSession")]
#[derive(Debug)]
pub struct PyMultiSession {
    command: Shared<MultiStateSession>,
    len: usize,
}

impl PyMultiSession {
    pub(crate) fn new(command: MultiStateSession) -> Self {
        let len = command.len();
        Self { command: Shared::new(command), len }
    }
}

#[pymethods]
impl PyMultiSession {
    fn __len__(&self) -> usize {
        self.len
    }

    /// The `index`-th state's session: its base and pages to fold.
    fn session(&self, index: usize) -> PyResult<PyStateSession> {
        if index >= self.len {
            return Err(PyIndexError::new_err(format!("the command is over {} states", self.len)));
        }
        Ok(PyStateSession { command: self.command.same(), index })
    }

    fn is_decided(&self) -> PyResult<bool> {
        self.command.with(|c| c.is_decided())
    }

    /// `decisions[i]`: the events for the `i`-th state (empty: not written), appended at once.
    fn submit(&self, py: Python<'_>, decisions: Vec<Vec<EventTuple>>) -> PyResult<()> {
        let decisions = decisions
            .into_iter()
            .enumerate()
            .map(|(i, events)| proposed_all(events).map_err(|e| within(&format!("decisions[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()
            .or_raise(py)?;
        self.command.wait_with(py, move |c| Box::pin(c.submit(decisions)))?.or_raise(py)
    }

    /// Ends the command: one `(version, appended outcome or None, tries)` per state.
    fn finish(&self, py: Python<'_>, states: Vec<Option<Vec<u8>>>) -> PyResult<Vec<FinishedTuple>> {
        let command = self.command.take(py)?;
        let finished = wait(py, command.finish(states))?.or_raise(py)?;
        Ok(finished.into_iter().map(finished_tuple).collect())
    }
}

/// One state of a `MultiSession`: what a `Session` offers for folding it (its `submit` and
/// `finish` are the command's).
#[pyclass(frozen, module = "flipbook._native", name = "StateSession")]
#[derive(Debug)]
pub struct PyStateSession {
    command: Shared<MultiStateSession>,
    index: usize,
}

#[pymethods]
impl PyStateSession {
    fn base<'py>(&self, py: Python<'py>) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
        self.command.with(|c| base(py, c.session(self.index)))
    }

    fn discard_base(&self) -> PyResult<()> {
        self.command.with(|c| c.session(self.index).discard_base())
    }

    fn version(&self) -> PyResult<u64> {
        self.command.with(|c| c.session(self.index).version())
    }

    fn next_page(&self, py: Python<'_>) -> PyResult<Option<Vec<Py<PyRecordedEvent>>>> {
        let index = self.index;
        next_page(py, self.command.wait_with(py, move |c| Box::pin(c.session(index).next_page()))?.or_raise(py)?)
    }

    fn wants_state(&self) -> PyResult<bool> {
        self.command.with(|c| c.session(self.index).wants_state())
    }
}
