//! The process's one tokio runtime, rebuilt after `fork()`, and `wait`: a call that blocks on it
//! with the GIL released.

use std::future::Future;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The process's runtime and the process it was built in.
static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);

pub(crate) fn runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
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
pub(crate) fn wait<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = runtime()?;
    Ok(py.detach(|| runtime.block_on(future)))
}
