//! Sessions: the core's load-and-execute conversation (`bindings/README.md`), driven step by
//! step by the caller, which folds and decides in its own language. One handle serves a load,
//! a command on one state and a command on several: every per-state call takes the state's
//! index (0 for one state).

use std::ffi::c_void;

use flipbook_sdk_core::{Finished, MultiStateSession, ProposedEvent, Session, Timestamp};

use crate::call::{FbCall, Outcome, UserData, error_of};
use crate::client::{FbClient, on_client, text_arg};
use crate::error::{FbError, guarded};
use crate::held::{Held, alive, borrow, free, null_handle};
use crate::reads::{FbPageDone, page_delivery};
use crate::values::{FbAppendOutcome, FbEventInput, FbView, items, proposed_all};

/// A load or command on one state, or a command on several.
enum Conversation {
    One(Session),
    Many(MultiStateSession),
}

impl Conversation {
    fn state(&mut self, index: usize) -> Outcome<&mut Session> {
        match self {
            Self::One(session) if index == 0 => Ok(session),
            Self::Many(command) if index < command.len() => Ok(command.session(index)),
            _ => Err(FbError::invalid("index", "is not one of the session's states")),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(command) => command.len(),
        }
    }
}

/// A session in progress; freed with `fb_session_free` (an unfinished command appends nothing
/// more).
#[derive(Debug)]
pub struct FbSession(Held<Conversation>);

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conversation")
    }
}

/// A state a command works on, and the revision of the reducer that folds it.
#[repr(C)]
#[derive(Debug)]
pub struct FbSessionTarget {
    pub state_id: FbView,
    pub reducer_revision: FbView,
}

/// Where a state's fold starts: its encoded state at a version (`has_base`), else the
/// reducer's initial state at version 0. `state` is borrowed until the next call on the session.
#[repr(C)]
#[derive(Debug)]
pub struct FbBase {
    pub has_base: bool,
    pub version: u64,
    pub state: FbView,
}

/// One state's events of a decision.
#[repr(C)]
#[derive(Debug)]
pub struct FbDecision {
    pub events: *const FbEventInput,
    pub event_count: usize,
}

/// A state's encoded state at the end (`has_state`), for the cache or a snapshot.
#[repr(C)]
#[derive(Debug)]
pub struct FbEncodedState {
    pub has_state: bool,
    pub state: FbView,
}

/// How a session ended, for one state.
#[repr(C)]
#[derive(Debug)]
pub struct FbFinished {
    /// The version the caller's state is at: the last event folded.
    pub version: u64,
    /// What the command appended to the state (`has_appended`).
    pub has_appended: bool,
    pub appended: FbAppendOutcome,
    /// Decide-and-append rounds the command took (0 for a load).
    pub tries: u32,
}

/// Completes a session's start: the session (the caller's, to free with `fb_session_free`) or
/// the error.
pub type FbSessionDone = extern "C" fn(user_data: *mut c_void, session: *mut FbSession, error: *mut FbError);

/// Completes a finish: one result per state (borrowed until the callback returns) or the error.
pub type FbFinishDone =
    extern "C" fn(user_data: *mut c_void, finished: *const FbFinished, count: usize, error: *mut FbError);

fn begin<F: Future<Output = flipbook_sdk_core::Result<Conversation>> + Send + 'static>(
    target: *const FbClient,
    work: impl FnOnce(flipbook_sdk_core::Client) -> Outcome<F>,
    done: FbSessionDone,
    user_data: UserData,
) -> *mut FbCall {
    // The session's calls run on its client's runtime.
    let Some(runtime) = borrow(target).and_then(FbClient::handle).cloned() else {
        return null_handle("client", move |failure| done(user_data.get(), std::ptr::null_mut(), error_of(failure)));
    };
    on_client(
        target,
        |client| {
            let started = work(client)?;
            Ok(async move { started.await.map_err(|e| FbError::new(&e)) })
        },
        move |outcome: Outcome<Conversation>| match outcome {
            Ok(conversation) => {
                let session = FbSession(Held::new(conversation, runtime));
                done(user_data.get(), Box::into_raw(Box::new(session)), std::ptr::null_mut());
            }
            Err(error) => done(user_data.get(), std::ptr::null_mut(), error.into_raw()),
        },
    )
}

/// Starts loading a state; as of a time (`has_as_of`): no cache, no snapshot.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_load_session(
    target: *const FbClient,
    state_id: FbView,
    reducer_revision: FbView,
    has_as_of: bool,
    as_of_nanos: i64,
    done: FbSessionDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let work = |client: flipbook_sdk_core::Client| {
            let state_id = text_arg(state_id, "state_id")?;
            let revision = text_arg(reducer_revision, "reducer_revision")?;
            let as_of = has_as_of.then(|| Timestamp::from_unix_nanos(as_of_nanos));
            Ok(async move { client.load_session(&state_id, &revision, as_of).await.map(Conversation::One) })
        };
        begin(target, work, done, user_data)
    })
}

/// Starts a command on one state.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_execute_session(
    target: *const FbClient,
    state_id: FbView,
    reducer_revision: FbView,
    done: FbSessionDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let work = |client: flipbook_sdk_core::Client| {
            let state_id = text_arg(state_id, "state_id")?;
            let revision = text_arg(reducer_revision, "reducer_revision")?;
            Ok(async move { client.execute_session(&state_id, &revision).await.map(Conversation::One) })
        };
        begin(target, work, done, user_data)
    })
}

/// Starts a command on several states, whose decision is appended to all of them atomically.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_execute_states_session(
    target: *const FbClient,
    targets: *const FbSessionTarget,
    count: usize,
    done: FbSessionDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let work = |client: flipbook_sdk_core::Client| {
            let targets = items(targets, count)
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let state_id = text_arg(t.state_id, &format!("targets[{i}].state_id"))?;
                    Ok((state_id, text_arg(t.reducer_revision, &format!("targets[{i}].reducer_revision"))?))
                })
                .collect::<Outcome<Vec<(String, String)>>>()?;
            Ok(async move {
                let targets: Vec<(&str, &str)> = targets.iter().map(|(s, r)| (s.as_str(), r.as_str())).collect();
                client.execute_states_session(&targets).await.map(Conversation::Many)
            })
        };
        begin(target, work, done, user_data)
    })
}

/// Runs `work` on the session now; its error (or null) is the caller's.
fn now(session: *const FbSession, work: impl FnOnce(&mut Conversation) -> Outcome<()>) -> *mut FbError {
    let Some(FbSession(session)) = borrow(session) else {
        return FbError::invalid("session", "must not be null").into_raw();
    };
    session.now(work).err().map_or(std::ptr::null_mut(), FbError::into_raw)
}

/// Writes an answer to the caller's `out`, unless it is null.
fn write<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: a non-null `out` has room for one `T` (the header's rule).
        unsafe { out.write(value) };
    }
}

/// Writes the state's starting point to `out`. Answers the error (the caller's) or null.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_base(session: *const FbSession, index: usize, out: *mut FbBase) -> *mut FbError {
    guarded(FbError::internal("a panic in the core").into_raw(), || {
        now(session, |c| {
            let base =
                c.state(index)?.base().map_or(FbBase { has_base: false, version: 0, state: FbView::EMPTY }, |b| {
                    FbBase { has_base: true, version: b.version, state: FbView::of(&b.state) }
                });
            write(out, base);
            Ok(())
        })
    })
}

/// The base could not be decoded: the state folds from the beginning instead.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_discard_base(session: *const FbSession, index: usize) -> *mut FbError {
    guarded(FbError::internal("a panic in the core").into_raw(), || {
        now(session, |c| {
            c.state(index)?.discard_base();
            Ok(())
        })
    })
}

/// Writes to `out` whether the last pages folded were the command's own events: decide no
/// more, finish.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_is_decided(session: *const FbSession, out: *mut bool) -> *mut FbError {
    guarded(FbError::internal("a panic in the core").into_raw(), || {
        now(session, |c| {
            let decided = match c {
                Conversation::One(session) => session.is_decided(),
                Conversation::Many(command) => command.is_decided(),
            };
            write(out, decided);
            Ok(())
        })
    })
}

/// Writes to `out` whether `fb_session_finish` should get the state's encoded state (for the
/// cache or a snapshot).
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_wants_state(
    session: *const FbSession,
    index: usize,
    out: *mut bool,
) -> *mut FbError {
    guarded(FbError::internal("a panic in the core").into_raw(), || {
        now(session, |c| {
            write(out, c.state(index)?.wants_state());
            Ok(())
        })
    })
}

/// Fetches the state's next page of events to fold (null at the end of what there is to fold).
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_next_page(
    session: *const FbSession,
    index: usize,
    done: FbPageDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let deliver = page_delivery(done, user_data);
        let Some(FbSession(session)) = borrow(session) else { return null_handle("session", deliver) };
        session.call(
            move |mut held| async move {
                let state = alive(&mut held)?.state(index)?;
                state.next_page().await.map_err(|e| FbError::new(&e))
            },
            deliver,
        )
    })
}

/// Appends the decision, one list of events per state (in the order the session's states were
/// given); a conflict queues pages to fold, and then to decide again.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_submit(
    session: *const FbSession,
    decisions: *const FbDecision,
    count: usize,
    done: crate::client::FbDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let deliver = move |outcome: Outcome<()>| {
            done(user_data.get(), error_of(outcome));
        };
        let Some(FbSession(session)) = borrow(session) else { return null_handle("session", deliver) };
        let decisions = items(decisions, count)
            .iter()
            .enumerate()
            .map(|(i, d)| proposed_all(d.events, d.event_count, &format!("decisions[{i}]")))
            .collect::<Outcome<Vec<Vec<ProposedEvent>>>>();
        session.call(
            move |mut held| async move {
                let mut decisions = decisions?;
                let conversation = alive(&mut held)?;
                if decisions.len() != conversation.len() {
                    return Err(FbError::invalid("decisions", "must hold one list of events per state"));
                }
                let submitted = match conversation {
                    Conversation::One(session) => session.submit(decisions.swap_remove(0)).await,
                    Conversation::Many(command) => command.submit(decisions).await,
                };
                submitted.map_err(|e| FbError::new(&e))
            },
            deliver,
        )
    })
}

/// Ends the session with each state's encoded state (where it has one): the handle stays to be
/// freed; calls on it fail with `FB_ERROR_CLOSED`.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_finish(
    session: *const FbSession,
    states: *const FbEncodedState,
    count: usize,
    done: FbFinishDone,
    user_data: *mut c_void,
) -> *mut FbCall {
    let user_data = UserData(user_data);
    guarded(std::ptr::null_mut(), move || {
        let deliver = move |outcome: Outcome<Vec<Finished>>| match outcome {
            Ok(finished) => {
                let views: Vec<FbFinished> = finished
                    .iter()
                    .map(|f| FbFinished {
                        version: f.version,
                        has_appended: f.appended.is_some(),
                        appended: f.appended.as_ref().map_or_else(FbAppendOutcome::none, FbAppendOutcome::of),
                        tries: f.tries,
                    })
                    .collect();
                done(user_data.get(), views.as_ptr(), views.len(), std::ptr::null_mut());
            }
            Err(error) => done(user_data.get(), std::ptr::null(), 0, error.into_raw()),
        };
        let Some(FbSession(session)) = borrow(session) else { return null_handle("session", deliver) };
        let mut states: Vec<Option<Vec<u8>>> =
            items(states, count).iter().map(|s| s.has_state.then(|| s.state.bytes().to_vec())).collect();
        session.call(
            move |mut held| async move {
                let conversation = held.take().ok_or_else(crate::held::ended)?;
                if states.len() != conversation.len() {
                    *held = Some(conversation);
                    return Err(FbError::invalid("states", "must hold one state (or none) per state"));
                }
                let finished = match conversation {
                    Conversation::One(session) => session.finish(states.swap_remove(0)).await.map(|f| vec![f]),
                    Conversation::Many(command) => command.finish(states).await,
                };
                finished.map_err(|e| FbError::new(&e))
            },
            deliver,
        )
    })
}

/// Frees the session (once a call in flight on it ends): an unfinished command appends
/// nothing more. Null does nothing.
///
/// # Safety
///
/// Every pointer as the header's rules say: null only where the function allows it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fb_session_free(session: *mut FbSession) {
    guarded((), || free(session));
}
