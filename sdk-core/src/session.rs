//! Loading a state and executing a command on it, as a conversation between the core and the
//! code that owns the reducer (a Rust [`Repository`](crate::Repository), or a binding in Python,
//! TypeScript or Go). The core never calls user code: it hands out a starting point and pages of
//! events, the caller folds them in its own language, decides, and hands back new events and,
//! when asked, its encoded state. Every policy stays here: where a load starts (local cache,
//! snapshot store, nothing), when to retry a conflict and how long to wait, which event ids a
//! re-send reuses, when to write a snapshot.
//!
//! ```text
//! let mut session = client.execute_session(id, revision).await?;
//! let mut state = session.base() decoded, or the reducer's initial state;
//! loop {
//!     while let Some(page) = session.next_page().await? { fold page into state }
//!     if session.is_decided() { break }
//!     session.submit(decide(&state)?).await?;   // a conflict queues the events to fold again
//! }
//! session.finish(session.wants_state().then(|| encode(&state))).await?
//! ```

use std::sync::Arc;

use flipbook_model::{
    AppendOutcome, AppendRequest, DEFAULT_CONTENT_TYPE, Expectation, ProposedEvent, RecordedEvent, Snapshot,
    SnapshotQuery, StateQuery, Timestamp, validate,
};
use futures::StreamExt;

use crate::backend::EventPages;
use crate::cache::CachedState;
use crate::client::Client;
use crate::error::{Error, Result};

/// Where the caller's state starts: a reduced state, encoded by the caller's reducer, at a
/// version. No base: start from the reducer's initial state at version 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub version: u64,
    pub state: Arc<[u8]>,
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The version the caller's state is at: the last event folded.
    pub version: u64,
    /// What the command appended; `None` for a load, or a decision with no events.
    pub appended: Option<AppendOutcome>,
    /// Decide-and-append rounds the command took (0 for a load).
    pub tries: u32,
}

/// One load or one command on one state. See the module documentation for the protocol.
#[derive(Debug)]
pub struct Session {
    client: Client,
    state_id: String,
    revision: String,
    as_of: Option<Timestamp>,
    command: bool,
    base: Option<Base>,
    /// The version the caller's state is at once it has folded every page handed out.
    version: u64,
    /// The newest snapshot's version known, for the snapshot policy.
    snapshot_version: u64,
    pages: Option<Pages>,
    /// The events the command appended, to fold before finishing.
    committed: Option<Vec<RecordedEvent>>,
    tries: u32,
    decided: bool,
    appended: Option<AppendOutcome>,
}

/// A stream of pages (its `Debug` says only that it is one).
struct Pages(EventPages);

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages")
    }
}

impl Client {
    /// Starts loading a state: from the local cache, else the newest snapshot of `revision`,
    /// else the beginning; then the events after it. With `as_of`, only events whose timestamp
    /// is at or before it count, so no snapshot or cache entry can be used.
    pub async fn load_session(&self, state_id: &str, revision: &str, as_of: Option<Timestamp>) -> Result<Session> {
        Session::begin(self, state_id, revision, as_of, false).await
    }

    /// Starts a command on a state. From a cached state the caller decides at once and the
    /// append checks that the state has not moved (one round trip when it has not); otherwise
    /// as [`Client::load_session`].
    pub async fn execute_session(&self, state_id: &str, revision: &str) -> Result<Session> {
        Session::begin(self, state_id, revision, None, true).await
    }
}

impl Session {
    async fn begin(
        client: &Client,
        state_id: &str,
        revision: &str,
        as_of: Option<Timestamp>,
        command: bool,
    ) -> Result<Self> {
        validate::head(state_id)?;
        validate::reducer_revision("reducer_revision", revision)?;
        let mut session = Self {
            client: client.clone(),
            state_id: state_id.to_owned(),
            revision: revision.to_owned(),
            as_of,
            command,
            base: None,
            version: 0,
            snapshot_version: 0,
            pages: None,
            committed: None,
            tries: 0,
            decided: false,
            appended: None,
        };
        let cached = if as_of.is_none() { client.inner.cache.get(state_id, revision) } else { None };
        let optimistic = command && cached.is_some();
        match cached {
            Some(hit) => {
                session.base = Some(Base { version: hit.version, state: hit.state });
                session.snapshot_version = hit.snapshot_version;
            }
            None if as_of.is_none() => session.base = session.stored_snapshot().await,
            None => {}
        }
        session.version = session.base.as_ref().map_or(0, |b| b.version);
        // A command from a cached state decides at once: the append's expectation catches a
        // state that moved since, and the conflict brings the events to fold.
        if !optimistic {
            session.read_after_version();
        }
        Ok(session)
    }

    /// The newest snapshot of the revision, if the snapshot store has one and answers. Snapshots
    /// are a cache: a failing snapshot store slows a load, never fails it.
    async fn stored_snapshot(&mut self) -> Option<Base> {
        let query = SnapshotQuery {
            state_id: self.state_id.clone(),
            reducer_revision: self.revision.clone(),
            max_version: None,
        };
        match self.client.get_snapshot(query).await {
            Ok(Some(snapshot)) => {
                self.snapshot_version = snapshot.version;
                Some(Base { version: snapshot.version, state: snapshot.payload.into() })
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, state_id = %self.state_id, "snapshot store failed; loading from the events");
                None
            }
        }
    }

    fn read_after_version(&mut self) {
        let query = StateQuery {
            min_version: Some(self.version + 1),
            as_of: self.as_of,
            ..StateQuery::all(self.state_id.clone())
        };
        self.pages = Some(Pages(self.client.read_state(query)));
    }

    pub fn state_id(&self) -> &str {
        &self.state_id
    }

    /// Where the caller's state starts; `None`: from the reducer's initial state.
    pub fn base(&self) -> Option<&Base> {
        self.base.as_ref()
    }

    /// The caller could not decode the base (a reducer changed without a new revision): start
    /// again from the beginning of the state, before folding anything.
    pub fn discard_base(&mut self) {
        tracing::warn!(state_id = %self.state_id, revision = %self.revision, "undecodable base state; reading every event");
        self.client.inner.cache.remove(&self.state_id, &self.revision);
        self.base = None;
        self.version = 0;
        self.snapshot_version = 0;
        self.read_after_version();
    }

    /// The version the caller's state is at once it has folded every page handed out so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The next page of events to fold, in version order; `None` when the caller's state is
    /// up to date and it may decide (or finish).
    pub async fn next_page(&mut self) -> Result<Option<Vec<RecordedEvent>>> {
        if let Some(events) = self.committed.take() {
            self.advance(&events);
            return Ok(Some(events));
        }
        let mut failures = 0;
        loop {
            let Some(Pages(pages)) = &mut self.pages else { return Ok(None) };
            match pages.next().await {
                Some(Ok(events)) => {
                    self.advance(&events);
                    return Ok(Some(events));
                }
                // A broken read resumes after the last version handed out: nothing is missed,
                // nothing is handed out twice.
                Some(Err(error)) if error.is_retryable() && failures < self.client.inner.options.retry.max_resends => {
                    failures += 1;
                    tracing::debug!(%error, failures, state_id = %self.state_id, "resuming a broken read");
                    tokio::time::sleep(self.client.inner.options.retry.delay(failures)).await;
                    self.read_after_version();
                }
                Some(Err(error)) => {
                    self.pages = None;
                    return Err(error);
                }
                None => {
                    self.pages = None;
                    return Ok(None);
                }
            }
        }
    }

    fn advance(&mut self, events: &[RecordedEvent]) {
        for event in events {
            // A version-neutral state counts its events.
            self.version = event.version.unwrap_or(self.version + 1);
        }
    }

    /// Whether the command's decision is stored (or was to append nothing): fold what
    /// [`Session::next_page`] still gives, then finish.
    pub fn is_decided(&self) -> bool {
        self.decided
    }

    /// The caller's decision on the state it folded: these events are appended with the
    /// expectation that the state is still at [`Session::version`]. An append whose answer is
    /// lost is re-sent with the same event ids. On a conflict this waits the retry policy's
    /// delay and queues the events that moved the state: fold them and decide again. After
    /// the policy's last try the conflict is the error.
    pub async fn submit(&mut self, events: Vec<ProposedEvent>) -> Result<()> {
        self.ready_to_submit()?;
        self.tries += 1;
        if events.is_empty() {
            self.decided = true;
            return Ok(());
        }
        let request = self.append_request(events);
        match self.client.append(request.clone()).await {
            Ok(outcome) => {
                self.committed(request, outcome);
                Ok(())
            }
            Err(error) => self.conflicted(error).await,
        }
    }

    fn ready_to_submit(&self) -> Result<()> {
        if !self.command || self.decided {
            return Err(Error::Internal("submit belongs to a command that has not decided yet".to_owned()));
        }
        if self.pages.is_some() || self.committed.is_some() {
            return Err(Error::Internal("fold every page before deciding".to_owned()));
        }
        Ok(())
    }

    /// The decision as an append that expects the state still at the version folded.
    fn append_request(&self, events: Vec<ProposedEvent>) -> AppendRequest {
        AppendRequest::new(self.state_id.clone(), Expectation::Exactly(self.version), events)
    }

    /// The decision is stored: its events are the last page to fold.
    fn committed(&mut self, request: AppendRequest, outcome: AppendOutcome) {
        self.committed = Some(as_recorded(request, &outcome));
        self.appended = Some(outcome);
        self.decided = true;
    }

    /// After a failed append: a conflict that a reload can resolve, within the policy's tries,
    /// waits its delay and queues the events that moved the state (`Ok`: fold and decide
    /// again); anything else is the error.
    async fn conflicted(&mut self, error: Error) -> Result<()> {
        let policy = &self.client.inner.options.retry;
        match error {
            Error::VersionConflict { actual_version, .. }
                if actual_version > self.version && self.tries < policy.max_tries =>
            {
                tokio::time::sleep(policy.delay(self.tries)).await;
                self.read_after_version();
                Ok(())
            }
            error => {
                if error.actual_version().is_some_and(|actual| actual < self.version) {
                    // The store is behind what this client cached (restored from a backup?).
                    self.client.inner.cache.remove(&self.state_id, &self.revision);
                }
                Err(error)
            }
        }
    }

    /// Whether [`Session::finish`] wants the caller's encoded state: for the local cache, or
    /// because the snapshot policy asks for a snapshot now.
    pub fn wants_state(&self) -> bool {
        self.as_of.is_none() && self.version > 0 && (self.client.inner.cache.enabled() || self.snapshot_due())
    }

    fn snapshot_due(&self) -> bool {
        let every = self.client.inner.options.snapshots.every;
        every.is_some_and(|n| self.version.saturating_sub(self.snapshot_version) >= n.max(1))
    }

    /// Ends the session. `state` is the caller's state encoded by its reducer (JSON by
    /// convention), at [`Session::version`]: it goes to the local cache and, when the snapshot
    /// policy says so, to the snapshot store, in the background
    /// ([`Client::flush_snapshots`] waits for those writes). A failed snapshot write is logged,
    /// never an error.
    pub async fn finish(mut self, state: Option<Vec<u8>>) -> Result<Finished> {
        if self.command && !self.decided {
            return Err(Error::Internal("a command finishes after it decided".to_owned()));
        }
        if let Some(state) = state.filter(|_| self.as_of.is_none() && self.version > 0) {
            if self.snapshot_due() {
                self.write_snapshot(state.clone());
            }
            let entry =
                CachedState { version: self.version, state: state.into(), snapshot_version: self.snapshot_version };
            self.client.inner.cache.put(&self.state_id, &self.revision, entry);
        }
        Ok(Finished { version: self.version, appended: self.appended, tries: self.tries })
    }

    /// Writes the snapshot in the background: a command never waits for a cache to be filled.
    /// When too many writes are in flight already (a slow snapshot store), this one is skipped
    /// and the next session that finds a snapshot due writes it.
    fn write_snapshot(&mut self, state: Vec<u8>) {
        let writes = &self.client.inner.snapshot_writes;
        if !writes.try_start() {
            return;
        }
        let snapshot = Snapshot {
            state_id: self.state_id.clone(),
            version: self.version,
            reducer_revision: self.revision.clone(),
            payload: state,
            content_type: DEFAULT_CONTENT_TYPE.to_owned(),
            created_at: Timestamp::now(),
        };
        self.snapshot_version = self.version;
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(error) = client.put_snapshot_begun(snapshot).await {
                tracing::warn!(%error, "snapshot not written");
            }
            client.inner.snapshot_writes.done();
        });
    }
}

/// One command over several states, whose decision is stored in one atomic append to all the
/// states it writes (see [`Client::append_states`]). Each state is a [`Session`] of its own
/// (its base, its pages, its snapshot policy); the decision and the retry are shared:
///
/// ```text
/// let mut command = client.execute_states_session(&[(id_a, revision), (id_b, revision)]).await?;
/// let mut states = each command.session(i).base() decoded, or the reducer's initial state;
/// loop {
///     for each i: while let Some(page) = command.session(i).next_page().await? { fold into states[i] }
///     if command.is_decided() { break }
///     command.submit(decide(&states)?).await?;   // one list of events per state
/// }
/// command.finish(states encoded where command.session(i).wants_state()).await?
/// ```
///
/// A conflict on any state re-reads every state from the version it was folded to (a state
/// that did not move answers an empty read), so the next decision sees all of them up to date.
/// A state the decision gives no events is not written, and so not checked either.
#[derive(Debug)]
pub struct MultiStateSession {
    sessions: Vec<Session>,
    tries: u32,
    decided: bool,
}

impl Client {
    /// Starts a command over several states, each with its reducer's revision: each loads as
    /// [`Client::execute_session`] does.
    pub async fn execute_states_session(&self, states: &[(&str, &str)]) -> Result<MultiStateSession> {
        let mut sessions = Vec::with_capacity(states.len());
        for &(state_id, revision) in states {
            if sessions.iter().any(|s: &Session| s.state_id == state_id) {
                return Err(Error::InvalidArgument {
                    field: "state_ids".to_owned(),
                    rule: format!("must not repeat a state ({state_id:?} twice)"),
                });
            }
            sessions.push(Session::begin(self, state_id, revision, None, true).await?);
        }
        if sessions.is_empty() {
            return Err(Error::InvalidArgument { field: "state_ids".to_owned(), rule: "must name a state".to_owned() });
        }
        Ok(MultiStateSession { sessions, tries: 0, decided: false })
    }
}

impl MultiStateSession {
    /// How many states the command is over.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The `i`-th state's session: its base, its pages to fold, its version. (Its `submit`
    /// and `finish` belong to this command: use the command's.)
    pub fn session(&mut self, i: usize) -> &mut Session {
        &mut self.sessions[i]
    }

    pub fn is_decided(&self) -> bool {
        self.decided
    }

    /// The decision: `decisions[i]` are the events for the `i`-th state (empty: that state is
    /// not written). All of them are appended at once, each state expected at the version
    /// folded; on a conflict this waits the retry policy's delay and queues every state's new
    /// events: fold them and decide again.
    pub async fn submit(&mut self, decisions: Vec<Vec<ProposedEvent>>) -> Result<()> {
        if decisions.len() != self.sessions.len() {
            return Err(Error::InvalidArgument {
                field: "decisions".to_owned(),
                rule: format!(
                    "must hold one list of events per state ({}), holds {}",
                    self.sessions.len(),
                    decisions.len()
                ),
            });
        }
        for session in &self.sessions {
            session.ready_to_submit()?;
        }
        self.tries += 1;
        let mut written = Vec::new();
        let mut parts = Vec::new();
        for (i, (session, events)) in self.sessions.iter_mut().zip(decisions).enumerate() {
            session.tries = self.tries;
            if events.is_empty() {
                continue;
            }
            written.push(i);
            parts.push(session.append_request(events));
        }
        if parts.is_empty() {
            self.decide();
            return Ok(());
        }
        match self.sessions[0].client.append_states(parts.clone()).await {
            Ok(outcomes) => {
                for ((i, part), outcome) in written.into_iter().zip(parts).zip(outcomes) {
                    self.sessions[i].committed(part, outcome);
                }
                self.decide();
                Ok(())
            }
            Err(error) => {
                let state_id = error.state_id().map(str::to_owned);
                let conflicted = self.sessions.iter().position(|s| Some(&s.state_id) == state_id.as_ref());
                let Some(conflicted) = conflicted else { return Err(error) };
                self.sessions[conflicted].conflicted(error).await?;
                // The others may have moved too: read each from where it was folded.
                for (i, session) in self.sessions.iter_mut().enumerate() {
                    if i != conflicted {
                        session.read_after_version();
                    }
                }
                Ok(())
            }
        }
    }

    fn decide(&mut self) {
        self.decided = true;
        self.sessions.iter_mut().for_each(|s| s.decided = true);
    }

    /// Ends the command: `states[i]` is the `i`-th state encoded, where its session
    /// [`Session::wants_state`]. One outcome per state, in order.
    pub async fn finish(self, states: Vec<Option<Vec<u8>>>) -> Result<Vec<Finished>> {
        if !self.decided {
            return Err(Error::Internal("a command finishes after it decided".to_owned()));
        }
        let mut finished = Vec::with_capacity(self.sessions.len());
        let states = states.into_iter().chain(std::iter::repeat(None));
        for (session, state) in self.sessions.into_iter().zip(states) {
            finished.push(session.finish(state).await?);
        }
        Ok(finished)
    }
}

/// The appended events as the store recorded them, built from the request and its outcome so
/// the caller folds them without reading them back.
fn as_recorded(request: AppendRequest, outcome: &AppendOutcome) -> Vec<RecordedEvent> {
    let first = outcome.last_version.unwrap_or_default() + 1 - request.events.len() as u64;
    request
        .events
        .into_iter()
        .zip(&outcome.global_positions)
        .enumerate()
        .map(|(i, (event, &global_position))| RecordedEvent {
            state_id: request.state_id.clone(),
            version: Some(first + i as u64),
            global_position,
            event_id: event.event_id,
            name: event.name,
            payload: event.payload,
            content_type: event.content_type,
            timestamp: event.timestamp,
            recorded_at: outcome.recorded_at,
            metadata: event.metadata,
        })
        .collect()
}
