//! The calls that answer once: appends, heads, snapshots, server info.

use std::ffi::c_void;

use flipbook_sdk_core::{AppendOutcome, SnapshotQuery};

use crate::call::{FbCall, Outcome, UserData, error_of};
use crate::client::{FbClient, FbDone, on_client, text_arg};
use crate::error::{FbError, guarded};
use crate::held::borrow;
use crate::values::{
    FbAppendInput, FbAppendOutcome, FbHead, FbLogHead, FbServerInfo, FbSnapshot, FbView, HeadViews, items,
};

/// Completes an append: the outcome (borrowed until the callback returns) or the error.
pub type FbAppendDone = extern "C" fn(user_data: *mut c_void, outcome: *const FbAppendOutcome, error: *mut FbError);

/// Completes an append to several states: one outcome per part, in the order sent (borrowed
/// until the callback returns), or the error.
pub type FbAppendStatesDone =
    extern "C" fn(user_data: *mut c_void, outcomes: *const FbAppendOutcome, count: usize, error: *mut FbError);

/// Completes a head: the head (borrowed until the callback returns) or the error.
pub type FbHeadDone = extern "C" fn(user_data: *mut c_void, head: *const FbHead, error: *mut FbError);

/// Completes a log head: the head (borrowed until the callback returns) or the error.
pub type FbLogHeadDone = extern "C" fn(user_data: *mut c_void, head: *const FbLogHead, error: *mut FbError);

/// Completes a server info: the info (borrowed until the callback returns) or the error.
pub type FbServerInfoDone = extern "C" fn(user_data: *mut c_void, info: *const FbServerInfo, error: *mut FbError);

/// Completes a snapshot get: the snapshot (borrowed until the callback returns; null when there
/// is none) or the error.
pub type FbSnapshotDone = extern "C" fn(user_data: *mut c_void, snapshot: *const FbSnapshot, error: *mut FbError);

/// Completes a call that answers a count, or the error.
pub type FbCountDone = extern "C" fn(user_data: *mut c_void, count: u64, error: *mut FbError);

/// Hands a borrowed view of a value, or the error, to a callback of the `(user_data, value,
/// error)` shape.
fn answer<T, V: 'static>(
    done: extern "C" fn(*mut c_void, *const V, *mut FbError),
    user_data: UserData,
    view: impl FnOnce(&T) -> V + Send + 'static,
) -> impl FnOnce(Outcome<T>) + Send + 'static {
    move |outcome| match outcome {
        Ok(value) => done(user_data.get(), &view(&value), std::ptr::null_mut()),
        Err(error) => done(user_data.get(), std::ptr::null(), error.into_raw()),
    }
}

fn core_error(error: flipbook_sdk_core::Error) -> Box<FbError> {
    FbError::new(&error)
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
                let input = borrow(input).ok_or_else(|| FbError::invalid("input", "must not be null"))?;
                let request = input.to_request("")?;
                Ok(async move { client.append(request).await.map_err(core_error) })
            },
            answer(done, user_data, FbAppendOutcome::of),
        )
    })
}

/// Appends to several states in one atomic append: every part is stored, or none is. A lost
/// answer is re-sent with the same event ids.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_append_states(
    target: *const FbClient,
    parts: *const FbAppendInput,
    count: usize,
    done: FbAppendStatesDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| {
                let parts = items(parts, count)
                    .iter()
                    .enumerate()
                    .map(|(i, part)| part.to_request(&format!("parts[{i}].")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(async move { client.append_states(parts).await.map_err(core_error) })
            },
            move |outcome: Outcome<Vec<AppendOutcome>>| match outcome {
                Ok(outcomes) => {
                    let views: Vec<FbAppendOutcome> = outcomes.iter().map(FbAppendOutcome::of).collect();
                    done(user_data.get(), views.as_ptr(), views.len(), std::ptr::null_mut());
                }
                Err(error) => done(user_data.get(), std::ptr::null(), 0, error.into_raw()),
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
                Ok(async move { client.head(&state_id).await.map(HeadViews::of).map_err(core_error) })
            },
            answer(done, user_data, HeadViews::view),
        )
    })
}

/// The whole log's head: how far it is settled.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_log_head(
    target: *const FbClient,
    done: FbLogHeadDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| Ok(async move { client.log_head().await.map_err(core_error) }),
            answer(done, user_data, |head| FbLogHead::from(*head)),
        )
    })
}

/// What the server (or the embedded store) runs on and accepts.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_server_info(
    target: *const FbClient,
    done: FbServerInfoDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| Ok(async move { client.server_info().await.map_err(core_error) }),
            answer(done, user_data, FbServerInfo::of),
        )
    })
}

/// Saves a snapshot (its `created_at_nanos` is ignored: the core stamps it).
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_put_snapshot(
    target: *const FbClient,
    snapshot: *const FbSnapshot,
    done: FbDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| {
                let snapshot = borrow(snapshot).ok_or_else(|| FbError::invalid("snapshot", "must not be null"))?;
                let snapshot = snapshot.to_snapshot()?;
                Ok(async move { client.put_snapshot(snapshot).await.map_err(core_error) })
            },
            move |outcome: Outcome<()>| done(user_data.get(), error_of(outcome)),
        )
    })
}

/// The newest snapshot of the revision at or below `max_version` (with `has_max_version`);
/// null to the callback when there is none.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_get_snapshot(
    target: *const FbClient,
    state_id: FbView,
    reducer_revision: FbView,
    has_max_version: bool,
    max_version: u64,
    done: FbSnapshotDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| {
                let query = SnapshotQuery {
                    state_id: text_arg(state_id, "state_id")?,
                    reducer_revision: text_arg(reducer_revision, "reducer_revision")?,
                    max_version: has_max_version.then_some(max_version),
                };
                Ok(async move { client.get_snapshot(query).await.map_err(core_error) })
            },
            move |outcome| match outcome {
                Ok(Some(snapshot)) => done(user_data.get(), &FbSnapshot::of(&snapshot), std::ptr::null_mut()),
                Ok(None) => done(user_data.get(), std::ptr::null(), std::ptr::null_mut()),
                Err(error) => done(user_data.get(), std::ptr::null(), error.into_raw()),
            },
        )
    })
}

/// Deletes a state's snapshots (every revision); the callback gets how many there were.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_delete_snapshots(
    target: *const FbClient,
    state_id: FbView,
    done: FbCountDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        on_client(
            target,
            |client| {
                let state_id = text_arg(state_id, "state_id")?;
                Ok(async move { client.delete_snapshots(&state_id).await.map_err(core_error) })
            },
            move |outcome: Outcome<u64>| match outcome {
                Ok(count) => done(user_data.get(), count, std::ptr::null_mut()),
                Err(error) => done(user_data.get(), 0, error.into_raw()),
            },
        )
    })
}
