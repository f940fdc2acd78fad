//! Reads: a state's events a page at a time, fetched as the caller asks for the next.

use std::ffi::c_void;
use std::sync::Arc;

use flipbook_sdk_core::EventPages;
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::Mutex;

use crate::call::{FbCall, Outcome, UserData, failed, spawn};
use crate::client::FbClient;
use crate::error::{FbError, guarded};
use crate::values::{FbPage, FbStateQuery, PageViews};

/// A read in progress; freed with `fb_pages_free` (which ends the server's stream).
pub struct FbPages {
    pages: Arc<Mutex<Option<EventPages>>>,
    runtime: Handle,
}

impl std::fmt::Debug for FbPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FbPages")
    }
}

/// Completes a page: the page (borrowed until the callback returns; null at the end of the
/// read) or the error.
pub type FbPageDone = extern "C" fn(user_data: *mut c_void, page: *const FbPage, error: *mut FbError);

/// Starts reading one state. The read is lazy: `fb_pages_next` fetches, and a query the
/// contract refuses fails there (before any round trip). Answers null, with the error in
/// `error_out` (the caller's to free), when an argument cannot be read (a null, not UTF-8).
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_read_state(
    target: *const FbClient,
    query: *const FbStateQuery,
    error_out: *mut *mut FbError,
) -> *mut FbPages {
    guarded(std::ptr::null_mut(), || {
        let started = (|| -> Result<FbPages, Box<FbError>> {
            // SAFETY: null, or a client this library made and the caller has not freed.
            let target = unsafe { target.as_ref() }.ok_or_else(|| FbError::invalid("client", "must not be null"))?;
            let handle = target.handle().ok_or_else(|| FbError::new(&flipbook_sdk_core::Error::Closed))?.clone();
            // SAFETY: null, or a query readable for the call (the header's rule).
            let query = unsafe { query.as_ref() }.ok_or_else(|| FbError::invalid("query", "must not be null"))?;
            let pages = target.client.read_state(query.to_query()?);
            Ok(FbPages { pages: Arc::new(Mutex::new(Some(pages))), runtime: handle })
        })();
        match started {
            Ok(pages) => Box::into_raw(Box::new(pages)),
            Err(error) => {
                if !error_out.is_null() {
                    // SAFETY: a non-null `error_out` has room for one pointer (the header's rule).
                    unsafe { error_out.write(error.into_raw()) };
                }
                std::ptr::null_mut()
            }
        }
    })
}

/// Fetches the next page and hands it to `done` (null at the end). One at a time per read.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_pages_next(pages: *const FbPages, done: FbPageDone, user_data: *mut c_void) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let deliver = move |outcome: Outcome<Option<Vec<flipbook_sdk_core::RecordedEvent>>>| match outcome {
            Ok(Some(page)) => {
                let views = PageViews::of(&page);
                let page = FbPage { events: views.events.as_ptr(), count: views.events.len() };
                done(user_data.get(), &page, std::ptr::null_mut());
            }
            Ok(None) => done(user_data.get(), std::ptr::null(), std::ptr::null_mut()),
            Err(error) => done(user_data.get(), std::ptr::null(), error.into_raw()),
        };
        // SAFETY: null, or a read this library made and the caller has not freed.
        let Some(read) = (unsafe { pages.as_ref() }) else {
            return failed(FbError::invalid("pages", "must not be null"), deliver);
        };
        let pages = Arc::clone(&read.pages);
        let work = async move {
            let mut pages = pages.lock().await;
            let Some(stream) = pages.as_mut() else { return Ok(None) };
            match stream.next().await {
                Some(Ok(page)) => Ok(Some(page)),
                Some(Err(error)) => {
                    *pages = None;
                    Err(FbError::new(&error))
                }
                None => {
                    *pages = None;
                    Ok(None)
                }
            }
        };
        spawn(&read.runtime, work, deliver)
    })
}

/// Ends the read and frees it: the stream, and the server's, are dropped (once a page being
/// fetched arrives or its call is cancelled). Null does nothing.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_pages_free(pages: *mut FbPages) {
    guarded((), || {
        if pages.is_null() {
            return;
        }
        // SAFETY: the caller hands back a read this library made, once.
        let read = unsafe { Box::from_raw(pages) };
        if let Ok(mut stream) = read.pages.try_lock() {
            *stream = None;
        }
    });
}
