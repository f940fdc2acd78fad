//! Subscriptions: the store's events after a position, stored ones first, then live ones, a
//! page at a time. The core resumes after broken connections by itself.

use std::ffi::c_void;

use flipbook_sdk_core::{Delivery, Subscription};

use crate::call::{FbCall, Outcome, UserData};
use crate::client::FbClient;
use crate::error::{FbError, guarded};
use crate::held::{Held, borrow, free, null_handle, start};
use crate::values::{FbPage, FbSubscriptionQuery, PageViews};

/// A subscription; freed with `fb_subscription_free`.
#[derive(Debug)]
pub struct FbSubscription(Held<Subscription>);

/// One message: a page of events, or a checkpoint (every event at or below `checkpoint` has
/// been delivered or filtered out: where to resume from).
#[repr(C)]
#[derive(Debug)]
pub struct FbMessage {
    pub is_checkpoint: bool,
    pub checkpoint: u64,
    /// The events (none for a checkpoint).
    pub page: FbPage,
}

/// Completes a message: the message (borrowed until the callback returns; null once the
/// subscription ended) or the error that ends it.
pub type FbMessageDone = extern "C" fn(user_data: *mut c_void, message: *const FbMessage, error: *mut FbError);

/// Starts a subscription, lazily: `fb_subscription_next` begins it. Answers null, with the error
/// in `error_out` (the caller's to free), when an argument cannot be read.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_subscribe(
    target: *const FbClient,
    query: *const FbSubscriptionQuery,
    error_out: *mut *mut FbError,
) -> *mut FbSubscription {
    guarded(std::ptr::null_mut(), || {
        start(target, error_out, |client, runtime| {
            let query = borrow(query).ok_or_else(|| FbError::invalid("query", "must not be null"))?;
            Ok(FbSubscription(Held::new(client.subscribe(query.to_query()?), runtime)))
        })
    })
}

/// Waits for the next message and hands it to `done`. One at a time per subscription; cancel
/// the call (`fb_call_cancel`) to stop waiting: the subscription stays usable.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_subscription_next(
    subscription: *const FbSubscription,
    done: FbMessageDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let deliver = move |outcome: Outcome<Option<Delivery>>| match outcome {
            Ok(Some(Delivery::Events(events))) => {
                let views = PageViews::of(&events);
                let message = FbMessage { is_checkpoint: false, checkpoint: 0, page: views.page() };
                done(user_data.get(), &message, std::ptr::null_mut());
            }
            Ok(Some(Delivery::Checkpoint(position))) => {
                let page = PageViews::of(&[]).page();
                let message = FbMessage { is_checkpoint: true, checkpoint: position, page };
                done(user_data.get(), &message, std::ptr::null_mut());
            }
            Ok(None) => done(user_data.get(), std::ptr::null(), std::ptr::null_mut()),
            Err(error) => done(user_data.get(), std::ptr::null(), error.into_raw()),
        };
        let Some(FbSubscription(subscription)) = borrow(subscription) else {
            return null_handle("subscription", deliver);
        };
        subscription.next(deliver)
    })
}

/// Ends the subscription and frees it (once a message being waited for arrives or its call is
/// cancelled). Null does nothing.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_subscription_free(subscription: *mut FbSubscription) {
    guarded((), || free(subscription));
}
