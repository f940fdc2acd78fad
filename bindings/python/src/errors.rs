//! The core's errors as the Python package's exception classes (`flipbook.errors`), by code.

use std::sync::{Mutex, MutexGuard};

use flipbook_sdk_core::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The Python exception for a core error: the class of `flipbook.errors` named by its code,
/// with `code`, `field`, `state_id`, `actual_version` set. A caller's own error never passes
/// through here: user code runs in Python.
pub(crate) fn to_py(py: Python<'_>, error: Error) -> PyErr {
    let code = error.code().as_str();
    exception(py, code, &error.to_string(), error.field(), error.state_id(), error.actual_version())
}

fn exception(
    py: Python<'_>,
    code: &str,
    message: &str,
    field: Option<&str>,
    state_id: Option<&str>,
    actual_version: Option<u64>,
) -> PyErr {
    let raise = || -> PyResult<PyErr> {
        let errors = py.import("flipbook.errors")?;
        let class = errors.getattr("class_for_code")?.call1((code,))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("code", code)?;
        kwargs.set_item("field", field)?;
        kwargs.set_item("state_id", state_id)?;
        kwargs.set_item("actual_version", actual_version)?;
        Ok(PyErr::from_value(class.call((message,), Some(&kwargs))?))
    };
    raise().unwrap_or_else(|e| e)
}

pub(crate) trait OrRaise<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

pub(crate) fn locked<T>(mutex: &Mutex<T>) -> PyResult<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| PyRuntimeError::new_err("a previous call panicked"))
}
