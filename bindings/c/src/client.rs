//! The client: one per `FbClient`, each with a runtime of its own, so freeing the client leaves
//! no thread behind.

use std::ffi::c_void;
use std::time::Duration;

use flipbook_sdk_core::{Client, ClientOptions, ConnectOptions, StateHead, StateKind};
use tokio::runtime::{Handle, Runtime};

use crate::call::{FbCall, Outcome, UserData, failed, spawn};
use crate::error::{FbError, guarded};
use crate::values::{FbAppendInput, FbAppendOutcome, FbHead, FbView};

/// A client of a server, an embedded store or memory. Safe to use from several threads at once.
#[derive(Debug)]
pub struct FbClient {
    pub(crate) client: Client,
    runtime: Option<Runtime>,
}

impl FbClient {
    pub(crate) fn handle(&self) -> Option<&Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }
}

/// How a client reaches a server. Zero durations keep the core's defaults.
#[repr(C)]
#[derive(Debug)]
pub struct FbConnectOptions {
    /// A bearer token (the server's `--auth-token`), or empty.
    pub token: FbView,
    /// A PEM CA certificate to trust for `https://`, or empty.
    pub ca_certificate: FbView,
    pub connect_timeout_millis: u64,
    pub request_timeout_millis: u64,
}

/// Completes a connect or open: the client (the caller's, to free with `fb_client_free`) or
/// the error (the caller's, to free with `fb_error_free`).
pub type FbClientDone = extern "C" fn(user_data: *mut c_void, client: *mut FbClient, error: *mut FbError);

/// Completes a call that answers nothing but success.
pub type FbDone = extern "C" fn(user_data: *mut c_void, error: *mut FbError);

/// Completes an append: the outcome (borrowed until the callback returns) or the error.
pub type FbAppendDone = extern "C" fn(user_data: *mut c_void, outcome: *const FbAppendOutcome, error: *mut FbError);

/// Completes a head: the head (borrowed until the callback returns) or the error.
pub type FbHeadDone = extern "C" fn(user_data: *mut c_void, head: *const FbHead, error: *mut FbError);

fn new_runtime() -> Result<Runtime, Box<FbError>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flipbook")
        .enable_all()
        .build()
        .map_err(|e| FbError::internal(&format!("no runtime: {e}")))
}

/// Makes a client on a new runtime and hands it to `done`. The runtime runs the work it is
/// moved into; dropped on its own thread it would block there, so a failure frees it on a
/// thread of its own.
fn open<F: Future<Output = Outcome<Client>> + Send + 'static>(
    make: Outcome<F>,
    done: FbClientDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    let deliver = move |outcome: Outcome<FbClient>| match outcome {
        Ok(client) => done(user_data.get(), Box::into_raw(Box::new(client)), std::ptr::null_mut()),
        Err(error) => done(user_data.get(), std::ptr::null_mut(), error.into_raw()),
    };
    let (make, runtime) = match make.and_then(|make| Ok((make, new_runtime()?))) {
        Ok(both) => both,
        Err(error) => return failed(error, deliver),
    };
    let handle = runtime.handle().clone();
    let work = async move {
        match make.await {
            Ok(client) => Ok(FbClient { client, runtime: Some(runtime) }),
            Err(error) => {
                std::thread::spawn(move || drop(runtime));
                Err(error)
            }
        }
    };
    spawn(&handle, work, deliver)
}

fn text_arg(view: FbView, field: &str) -> Result<String, Box<FbError>> {
    view.text(field).map(str::to_owned)
}

/// Connects to a server (`http://host:7420`, or `https://` with a CA).
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_connect(
    url: FbView,
    options: *const FbConnectOptions,
    done: FbClientDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: null, or options readable for the call (the header's rule).
        let options = unsafe { options.as_ref() };
        let how = (|| {
            let mut how = ConnectOptions::new(text_arg(url, "url")?);
            if let Some(options) = options {
                if options.token.len > 0 {
                    how.token = Some(text_arg(options.token, "token")?);
                }
                if options.ca_certificate.len > 0 {
                    how.ca_certificate = Some(options.ca_certificate.bytes().to_vec());
                }
                if options.connect_timeout_millis > 0 {
                    how.connect_timeout = Duration::from_millis(options.connect_timeout_millis);
                }
                if options.request_timeout_millis > 0 {
                    how.request_timeout = Duration::from_millis(options.request_timeout_millis);
                }
            }
            Ok(how)
        })();
        let make = how.map(|how| async move {
            Client::connect_with(how, ClientOptions::default()).await.map_err(|e| FbError::new(&e))
        });
        open(make, done, user_data)
    })
}

/// Opens (or creates) an embedded store in an SQLite file: no server.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_open_embedded(
    path: FbView,
    done: FbClientDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    guarded(std::ptr::null_mut(), || {
        let make = text_arg(path, "path").map(|path| async move {
            Client::open_embedded(path, ClientOptions::default()).await.map_err(|e| FbError::new(&e))
        });
        open(make, done, user_data)
    })
}

/// A store in this process's memory, gone with the client: for tests.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_in_memory(done: FbClientDone, user_data: *mut c_void) -> *mut FbCall {
    guarded(std::ptr::null_mut(), || {
        open(Ok(async { Ok(Client::in_memory(ClientOptions::default())) }), done, user_data)
    })
}

/// Borrows the client a caller passes in.
fn client<'a>(client: *const FbClient) -> Option<&'a FbClient> {
    // SAFETY: the caller passes null or a client this library made and has not freed.
    unsafe { client.as_ref() }
}

/// Runs `work` on the client's runtime; a null or freed-runtime client fails at once.
fn on_client<T: Send + 'static, F: Future<Output = Outcome<T>> + Send + 'static>(
    target: *const FbClient,
    work: impl FnOnce(Client) -> Result<F, Box<FbError>>,
    deliver: impl FnOnce(Outcome<T>) + Send + 'static,
) -> *mut FbCall {
    let Some(target) = client(target) else { return failed(FbError::invalid("client", "must not be null"), deliver) };
    let Some(handle) = target.handle() else {
        return failed(FbError::new(&flipbook_sdk_core::Error::Closed), deliver);
    };
    match work(target.client.clone()) {
        Ok(work) => spawn(handle, work, deliver),
        Err(error) => failed(error, deliver),
    }
}

/// Appends events to one state, atomically; a lost answer is re-sent with the same event ids.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_append(
    target: *const FbClient,
    input: *const FbAppendInput,
    done: FbAppendDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| {
                // SAFETY: null, or an input readable for the call (the header's rule).
                let input = unsafe { input.as_ref() }.ok_or_else(|| FbError::invalid("input", "must not be null"))?;
                let request = input.to_request()?;
                Ok(async move { client.append(request).await.map_err(|e| FbError::new(&e)) })
            },
            move |outcome| match outcome {
                Ok(outcome) => done(user_data.get(), &FbAppendOutcome::of(&outcome), std::ptr::null_mut()),
                Err(error) => done(user_data.get(), std::ptr::null(), error.into_raw()),
            },
        )
    })
}

/// A state's head; `FB_ERROR_NOT_FOUND` when it has no events.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_head(
    target: *const FbClient,
    state_id: FbView,
    done: FbHeadDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| {
                let state_id = text_arg(state_id, "state_id")?;
                Ok(async move { client.head(&state_id).await.map_err(|e| FbError::new(&e)) })
            },
            move |outcome: Outcome<StateHead>| match outcome {
                Ok(head) => {
                    let metadata = serde_json::to_string(&head.metadata).unwrap_or_default();
                    let view = FbHead {
                        state_id: FbView::of(head.state_id.as_bytes()),
                        version_neutral: head.kind == StateKind::VersionNeutral,
                        event_count: head.event_count,
                        last_global_position: head.last_global_position,
                        first_recorded_at_nanos: head.first_recorded_at.unix_nanos(),
                        last_recorded_at_nanos: head.last_recorded_at.unix_nanos(),
                        metadata_json: FbView::of(metadata.as_bytes()),
                    };
                    done(user_data.get(), &view, std::ptr::null_mut());
                }
                Err(error) => done(user_data.get(), std::ptr::null(), error.into_raw()),
            },
        )
    })
}

/// Closes the client: calls after it fail with `FB_ERROR_CLOSED`; `done` runs once the
/// snapshots being written are and an embedded file is released. Free it afterwards.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_close(target: *const FbClient, done: FbDone, user_data: *mut c_void) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| {
                Ok(async move {
                    client.close().await;
                    Ok(())
                })
            },
            move |outcome: Outcome<()>| {
                done(user_data.get(), outcome.err().map_or(std::ptr::null_mut(), FbError::into_raw))
            },
        )
    })
}

/// Frees the client and stops its threads (waiting up to 10 s for calls in flight to end:
/// their callbacks get `FB_ERROR_CANCELLED`). Never call it from a callback. Null does nothing.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_free(target: *mut FbClient) {
    guarded((), || {
        if target.is_null() {
            return;
        }
        // SAFETY: the caller hands back a client this library made, once.
        let mut freed = unsafe { Box::from_raw(target) };
        let runtime = freed.runtime.take();
        {
            // The core's client lets go of its connections and tasks inside its runtime.
            let _inside = runtime.as_ref().map(Runtime::enter);
            drop(freed);
        }
        if let Some(runtime) = runtime {
            if Handle::try_current().is_ok() {
                runtime.shutdown_background(); // on a runtime's thread after all: never block it
            } else {
                runtime.shutdown_timeout(Duration::from_secs(10));
            }
        }
    });
}
