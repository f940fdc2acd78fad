//! The client: one per `FbClient`, each with a runtime of its own, so freeing the client leaves
//! no thread behind.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flipbook_sdk_core::{Client, ClientOptions, ConnectOptions};
use tokio::runtime::{Handle, Runtime};

use crate::call::{FbCall, Outcome, UserData, error_of, failed, spawn};
use crate::error::{FbError, guarded};
use crate::held::borrow;
use crate::values::FbView;

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
    /// The name the server's certificate must carry, when not the URL's host; or empty.
    pub tls_domain: FbView,
    pub connect_timeout_millis: u64,
    pub request_timeout_millis: u64,
}

/// Completes a connect or open: the client (the caller's, to free with `fb_client_free`) or
/// the error (the caller's, to free with `fb_error_free`).
pub type FbClientDone = extern "C" fn(user_data: *mut c_void, client: *mut FbClient, error: *mut FbError);

/// Completes a call that answers nothing but success.
pub type FbDone = extern "C" fn(user_data: *mut c_void, error: *mut FbError);

/// Everything about a client but where it connects. Start from `fb_client_options_default`
/// (the core's defaults) and change what you need.
#[repr(C)]
#[derive(Debug)]
pub struct FbClientOptions {
    /// Decide-and-append rounds before a command gives up with the conflict (at least 1).
    pub max_tries: u32,
    /// Times one append is re-sent, with the same event ids, when its answer is lost.
    pub max_resends: u32,
    /// How long a subscription keeps resuming while every attempt fails.
    pub resume_for_millis: u64,
    pub first_delay_millis: u64,
    pub max_delay_millis: u64,
    /// Reduced states the client caches (0: no cache) and their bytes at most.
    pub cache_entries: u64,
    pub cache_bytes: u64,
    /// A snapshot once this many events were folded since the last one; 0: never.
    pub snapshot_every: u64,
}

impl FbClientOptions {
    fn of(options: &ClientOptions) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            max_tries: options.retry.max_tries,
            max_resends: options.retry.max_resends,
            resume_for_millis: millis(options.retry.resume_for),
            first_delay_millis: millis(options.retry.first_delay),
            max_delay_millis: millis(options.retry.max_delay),
            cache_entries: options.cache.max_entries as u64,
            cache_bytes: options.cache.max_bytes,
            snapshot_every: options.snapshots.every.unwrap_or(0),
        }
    }

    fn to_options(&self) -> ClientOptions {
        let mut options = ClientOptions::default();
        options.retry.max_tries = self.max_tries.max(1);
        options.retry.max_resends = self.max_resends;
        options.retry.resume_for = Duration::from_millis(self.resume_for_millis);
        options.retry.first_delay = Duration::from_millis(self.first_delay_millis);
        options.retry.max_delay = Duration::from_millis(self.max_delay_millis);
        options.cache.max_entries = usize::try_from(self.cache_entries).unwrap_or(usize::MAX);
        options.cache.max_bytes = self.cache_bytes;
        options.snapshots.every = (self.snapshot_every > 0).then_some(self.snapshot_every);
        options
    }
}

/// The options a null pointer stands for.
fn options_or_default(options: *const FbClientOptions) -> ClientOptions {
    borrow(options).map_or_else(ClientOptions::default, FbClientOptions::to_options)
}

/// Writes the core's default options to `out`.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_options_default(out: *mut FbClientOptions) {
    guarded((), || {
        if !out.is_null() {
            // SAFETY: a non-null `out` has room for the options (the header's rule).
            unsafe { out.write(FbClientOptions::of(&ClientOptions::default())) };
        }
    });
}

/// Blocks SIGPIPE on the calling thread: a write to a connection the peer closed then fails
/// with EPIPE instead of killing the process. A Rust binary ignores SIGPIPE before `main`; a
/// static library linked into another program (Go's runtime forwards a signal raised on a
/// foreign thread to the default action) must do it for the threads it makes.
fn block_sigpipe() {
    #[cfg(unix)]
    // SAFETY: a signal set on the stack, initialised by sigemptyset before use; changing the
    // calling thread's own mask.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Threads the clients' runtimes run now: what `fb_live_threads` answers.
static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

fn new_runtime() -> Result<Runtime, Box<FbError>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flipbook")
        .on_thread_start(|| {
            block_sigpipe();
            LIVE_THREADS.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_stop(|| {
            LIVE_THREADS.fetch_sub(1, Ordering::SeqCst);
        })
        .enable_all()
        .build()
        .map_err(|e| FbError::internal(&format!("no runtime: {e}")))
}

/// Makes a client on a new runtime and hands it to `done`. The runtime runs the work that makes
/// the client, so it is held by the delivery, never by that work: a cancelled connect drops its
/// work inside the runtime, and a runtime dropped on its own thread panics. Delivered with an
/// error, it is dropped on a thread of its own.
fn open<F: Future<Output = Outcome<Client>> + Send + 'static>(
    make: Outcome<F>,
    done: FbClientDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    let reply = move |client: *mut FbClient, error: *mut FbError| done(user_data.get(), client, error);
    let (make, runtime) = match make.and_then(|make| Ok((make, new_runtime()?))) {
        Ok(both) => both,
        Err(error) => {
            return failed(error, move |failure: Outcome<()>| {
                reply(std::ptr::null_mut(), error_of(failure));
            });
        }
    };
    let handle = runtime.handle().clone();
    let deliver = move |outcome: Outcome<Client>| match outcome {
        Ok(client) => reply(Box::into_raw(Box::new(FbClient { client, runtime: Some(runtime) })), std::ptr::null_mut()),
        Err(error) => {
            std::thread::spawn(move || drop(runtime));
            reply(std::ptr::null_mut(), error.into_raw());
        }
    };
    spawn(&handle, make, deliver)
}

pub(crate) fn text_arg(view: FbView, field: &str) -> Result<String, Box<FbError>> {
    view.text(field).map(str::to_owned)
}

/// Connects to a server (`http://host:7420`, or `https://` with a CA). Null `connect` or
/// `options`: the defaults.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_connect(
    url: FbView,
    connect: *const FbConnectOptions,
    options: *const FbClientOptions,
    done: FbClientDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    guarded(std::ptr::null_mut(), || {
        let options = options_or_default(options);
        let how = (|| {
            let mut how = ConnectOptions::new(text_arg(url, "url")?);
            if let Some(options) = borrow(connect) {
                if options.token.len > 0 {
                    how.token = Some(text_arg(options.token, "token")?);
                }
                if options.ca_certificate.len > 0 {
                    how.ca_certificate = Some(options.ca_certificate.bytes().to_vec());
                }
                if options.tls_domain.len > 0 {
                    how.tls_domain = Some(text_arg(options.tls_domain, "tls_domain")?);
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
        let make = how.map(|how| async move { Client::connect_with(how, options).await.map_err(|e| FbError::new(&e)) });
        open(make, done, user_data)
    })
}

/// Opens (or creates) an embedded store in an SQLite file: no server. Null `options`: the
/// defaults.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_open_embedded(
    path: FbView,
    options: *const FbClientOptions,
    done: FbClientDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    guarded(std::ptr::null_mut(), || {
        let options = options_or_default(options);
        let make = text_arg(path, "path")
            .map(|path| async move { Client::open_embedded(path, options).await.map_err(|e| FbError::new(&e)) });
        open(make, done, user_data)
    })
}

/// A store in this process's memory, gone with the client: for tests. Null `options`: the
/// defaults.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_client_in_memory(
    options: *const FbClientOptions,
    done: FbClientDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    guarded(std::ptr::null_mut(), || {
        let options = options_or_default(options);
        open(Ok(async { Ok(Client::in_memory(options)) }), done, user_data)
    })
}

/// Runs `work` on the client's runtime; a null client fails at once.
pub(crate) fn on_client<T: Send + 'static, F: Future<Output = Outcome<T>> + Send + 'static>(
    target: *const FbClient,
    work: impl FnOnce(Client) -> Result<F, Box<FbError>>,
    deliver: impl FnOnce(Outcome<T>) + Send + 'static,
) -> *mut FbCall {
    let Some(target) = borrow(target) else { return failed(FbError::invalid("client", "must not be null"), deliver) };
    let Some(handle) = target.handle() else {
        return failed(FbError::new(&flipbook_sdk_core::Error::Closed), deliver);
    };
    match work(target.client.clone()) {
        Ok(work) => spawn(handle, work, deliver),
        Err(error) => failed(error, deliver),
    }
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
            move |outcome: Outcome<()>| done(user_data.get(), error_of(outcome)),
        )
    })
}

/// The threads every client's runtime runs now (each client has its own; a freed client's stop
/// with it): for tests and diagnostics that check nothing is left behind.
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_live_threads() -> usize {
    LIVE_THREADS.load(Ordering::SeqCst)
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
