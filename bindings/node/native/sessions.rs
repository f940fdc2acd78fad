//! Sessions: the core's load-and-execute conversation (`bindings/README.md`), driven step by
//! step from TypeScript, which folds and decides in JavaScript. One class serves a command on
//! one state and on several: every per-state call takes the state's index.

use flipbook_sdk_core::{Finished, MultiStateSession, ProposedEvent, Session};
use napi::bindgen_prelude::{BigInt, Buffer};
use napi_derive::napi;

use crate::errors::{OrThrow, invalid, to_js};
use crate::pages::pack;
use crate::slot::Slot;
use crate::values::{AppendResult, EventInput, big, proposed_all};

/// A load or command on one state, or a command on several.
pub(crate) enum Conversation {
    One(Session),
    Many(MultiStateSession),
}

impl Conversation {
    fn state(&mut self, index: u32) -> napi::Result<&mut Session> {
        let index = index as usize;
        match self {
            Self::One(session) if index == 0 => Ok(session),
            Self::Many(command) if index < command.len() => Ok(command.session(index)),
            _ => Err(invalid("index", "is not one of the session's states")),
        }
    }
}

/// Where a state's fold starts: its encoded state at a version.
#[napi(object)]
pub struct BaseValue {
    pub version: BigInt,
    pub state: Buffer,
}

/// How a session ended, for one state.
#[napi(object)]
pub struct FinishedValue {
    pub version: BigInt,
    pub appended: Option<AppendResult>,
    pub tries: u32,
}

impl From<Finished> for FinishedValue {
    fn from(finished: Finished) -> Self {
        Self {
            version: big(finished.version),
            appended: finished.appended.map(AppendResult::from),
            tries: finished.tries,
        }
    }
}

#[napi]
pub struct NativeSession(Slot<Conversation>);

impl NativeSession {
    pub(crate) fn new(conversation: Conversation) -> Self {
        Self(Slot::new(conversation))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Conversation) -> napi::Result<R>) -> napi::Result<R> {
        self.0.with(f).unwrap_or_else(|| Err(finished()))
    }
}

fn finished() -> napi::Error {
    to_js(&flipbook_sdk_core::Error::Closed)
}

#[napi]
impl NativeSession {
    /// The state's encoded starting point, or `null`: the reducer's initial state.
    #[napi]
    pub fn base(&self, index: u32) -> napi::Result<Option<BaseValue>> {
        self.with(|c| {
            let base = c.state(index)?.base();
            Ok(base.map(|b| BaseValue { version: big(b.version), state: Buffer::from(b.state.to_vec()) }))
        })
    }

    /// The base could not be decoded: fold from the beginning instead.
    #[napi]
    pub fn discard_base(&self, index: u32) -> napi::Result<()> {
        self.with(|c| {
            c.state(index)?.discard_base();
            Ok(())
        })
    }

    /// The state's next page of events to fold, packed; `null` when there is none.
    #[napi]
    pub async fn next_page(&self, index: u32) -> napi::Result<Option<Buffer>> {
        let page = self
            .0
            .run(|c| {
                Box::pin(async move {
                    match c.state(index) {
                        Ok(session) => session.next_page().await.or_throw(),
                        Err(error) => Err(error),
                    }
                })
            })
            .await
            .ok_or_else(finished)??;
        Ok(page.map(|page| pack(&page).into()))
    }

    /// Whether the last pages folded were the command's own events: decide no more.
    #[napi]
    pub fn is_decided(&self) -> napi::Result<bool> {
        self.with(|c| {
            Ok(match c {
                Conversation::One(session) => session.is_decided(),
                Conversation::Many(command) => command.is_decided(),
            })
        })
    }

    /// Appends the decision, one list of events per state; a conflict queues pages to fold and
    /// decide again.
    #[napi]
    pub async fn submit(&self, decisions: Vec<Vec<EventInput>>) -> napi::Result<()> {
        let mut decisions = decisions
            .into_iter()
            .enumerate()
            .map(|(i, events)| proposed_all(&format!("decisions[{i}]"), events))
            .collect::<napi::Result<Vec<Vec<ProposedEvent>>>>()?;
        self.0
            .run(|c| {
                Box::pin(async move {
                    match c {
                        Conversation::One(session) if decisions.len() == 1 => {
                            session.submit(decisions.swap_remove(0)).await.or_throw()
                        }
                        Conversation::Many(command) if decisions.len() == command.len() => {
                            command.submit(decisions).await.or_throw()
                        }
                        _ => Err(invalid("decisions", "must hold one list of events per state")),
                    }
                })
            })
            .await
            .ok_or_else(finished)?
    }

    /// Whether `finish` should get the state's encoded state (for the cache or a snapshot).
    #[napi]
    pub fn wants_state(&self, index: u32) -> napi::Result<bool> {
        self.with(|c| Ok(c.state(index)?.wants_state()))
    }

    /// Ends the session with each state's encoded state (or `null`).
    #[napi]
    pub async fn finish(&self, states: Vec<Option<Buffer>>) -> napi::Result<Vec<FinishedValue>> {
        let mut states: Vec<Option<Vec<u8>>> = states.into_iter().map(|s| s.map(|b| b.to_vec())).collect();
        let conversation = self.0.take().await.ok_or_else(finished)?;
        let finished_all = match conversation {
            Conversation::One(session) if states.len() == 1 => {
                self.0.until_closed(async { session.finish(states.swap_remove(0)).await.map(|f| vec![f]) }).await
            }
            Conversation::Many(command) if states.len() == command.len() => {
                self.0.until_closed(command.finish(states)).await
            }
            _ => return Err(invalid("states", "must hold one state (or null) per state")),
        };
        let finished_all = finished_all.ok_or_else(finished)?.or_throw()?;
        Ok(finished_all.into_iter().map(FinishedValue::from).collect())
    }

    /// Drops an unfinished session (an abort, a throwing reducer): nothing more is appended.
    #[napi]
    pub fn close(&self) {
        self.0.close();
    }
}
