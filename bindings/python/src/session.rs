//! Sessions: the core's load-and-execute protocol, driven step by step from Python, which folds
//! and decides in its own language.

use std::future::Future;
use std::sync::Mutex;

use flipbook_sdk_core::Session;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{OrRaise, locked};
use crate::reads::same_process;
use crate::runtime::{runtime, wait};
use crate::values::{EventTuple, OutcomeTuple, PyRecordedEvent, outcome_tuple, page_to_py, proposed_all};

/// The core's load / execute conversation (`bindings/README.md`).
#[pyclass(frozen, module = "flipbook._native", name = "Session")]
#[derive(Debug)]
pub struct PySession {
    session: Mutex<Option<Session>>,
    pid: u32,
}

type Step<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl PySession {
    pub(crate) fn new(session: Session) -> Self {
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
