//! Reads: pages of events, fetched as Python iterates them.

use std::sync::Mutex;

use flipbook_sdk_core::EventPages;
use futures::StreamExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::{OrRaise, locked};
use crate::runtime::runtime;
use crate::values::{PyRecordedEvent, page_to_py};

/// A read in progress: pages of events, fetched as Python asks for them.
#[pyclass(frozen, module = "flipbook._native")]
pub struct Pages {
    pages: Mutex<EventPages>,
    /// The process it began in: its connection is that process's.
    pid: u32,
}

impl Pages {
    pub(crate) fn new(pages: EventPages) -> Self {
        Self { pages: Mutex::new(pages), pid: std::process::id() }
    }
}

/// A read, session or subscription begun before `fork()` lives on the parent's runtime, which
/// has no threads in the child: continuing it there would wait forever.
pub(crate) fn same_process(pid: u32) -> PyResult<()> {
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
