//! `flipbook._native`: the Python binding's native half. Thin by design: every behaviour is
//! `flipbook-sdk-core`'s; this converts values and hands the core's session protocol (see
//! `bindings/README.md`) to the Python package, which folds pages and decides in Python.
//!
//! Threads: every call that waits releases the GIL and blocks on the process's one tokio
//! runtime. After `fork()` the child builds a runtime of its own and reconnects its clients
//! (a runtime's threads do not survive a fork). The asyncio API (`flipbook/aio.py`) runs these
//! blocking calls on a thread pool, so no Rust thread ever calls into Python.

mod client;
mod errors;
mod reads;
mod runtime;
mod session;
mod subscriptions;
mod values;

use pyo3::prelude::*;

use crate::client::NativeClient;
use crate::reads::Pages;
use crate::session::{PyMultiSession, PySession, PyStateSession};
use crate::subscriptions::NativeSubscription;
use crate::values::PyRecordedEvent;

/// Events are decoded on the runtime's threads and their objects freed on the interpreter's:
/// glibc frees across threads under the allocating arena's lock; mimalloc does it without one
/// (loads with a Python reducer +10-20 %, `benchmarks/bench.py`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_class::<PySession>()?;
    m.add_class::<PyMultiSession>()?;
    m.add_class::<PyStateSession>()?;
    m.add_class::<Pages>()?;
    m.add_class::<NativeSubscription>()?;
    m.add_class::<PyRecordedEvent>()?;
    Ok(())
}
