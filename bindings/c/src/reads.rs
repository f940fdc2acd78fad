//! Reads: a state's events, or the whole store's, a page at a time, fetched as the caller asks
//! for the next.

use std::ffi::c_void;

use flipbook_sdk_core::{EventPages, RecordedEvent};

use crate::call::{FbCall, Outcome, UserData};
use crate::client::FbClient;
use crate::error::{FbError, guarded};
use crate::held::{Held, borrow, free, null_handle, start};
use crate::values::{FbAllQuery, FbPage, FbStateQuery, PageViews};

/// A read in progress; freed with `fb_pages_free` (which ends the server's stream).
#[derive(Debug)]
pub struct FbPages(Held<EventPages>);

/// Completes a page: the page (borrowed until the callback returns; null at the end of the
/// read) or the error.
pub type FbPageDone = extern "C" fn(user_data: *mut c_void, page: *const FbPage, error: *mut FbError);

/// Hands a page (or the end, or the error) to the caller's callback.
pub(crate) fn page_delivery(
    done: FbPageDone,
    user_data: UserData,
) -> impl FnOnce(Outcome<Option<Vec<RecordedEvent>>>) + Send + 'static {
    move |outcome| match outcome {
        Ok(Some(page)) => {
            let views = PageViews::of(&page);
            done(user_data.get(), &views.page(), std::ptr::null_mut());
        }
        Ok(None) => done(user_data.get(), std::ptr::null(), std::ptr::null_mut()),
        Err(error) => done(user_data.get(), std::ptr::null(), error.into_raw()),
    }
}

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
        start(target, error_out, |client, runtime| {
            let query = borrow(query).ok_or_else(|| FbError::invalid("query", "must not be null"))?;
            Ok(FbPages(Held::new(client.read_state(query.to_query()?), runtime)))
        })
    })
}

/// Starts reading the whole store in global-position order, as `fb_read_state` does one state.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_read_all(
    target: *const FbClient,
    query: *const FbAllQuery,
    error_out: *mut *mut FbError,
) -> *mut FbPages {
    guarded(std::ptr::null_mut(), || {
        start(target, error_out, |client, runtime| {
            let query = borrow(query).ok_or_else(|| FbError::invalid("query", "must not be null"))?;
            Ok(FbPages(Held::new(client.read_all(query.to_query()?), runtime)))
        })
    })
}

/// Fetches the next page and hands it to `done` (null at the end, and after it). One at a time
/// per read: a second call waits for the first.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_pages_next(pages: *const FbPages, done: FbPageDone, user_data: *mut c_void) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let deliver = page_delivery(done, user_data);
        let Some(FbPages(read)) = borrow(pages) else { return null_handle("pages", deliver) };
        read.next(deliver)
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
    guarded((), || free(pages));
}
