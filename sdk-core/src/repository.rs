//! The typed Rust API: a [`Reducer`] folds events into a state; a [`Repository`] loads states
//! and executes commands with it, over the core's [`Session`](crate::Session).

use flipbook_model::{AppendOutcome, ProposedEvent, RecordedEvent, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::{BoxError, Error, Result};
use crate::session::Session;

/// The application's `(state, event) -> state`, run client-side.
///
/// The state is encoded as JSON for snapshots and the local cache. Change
/// [`Reducer::REVISION`] whenever `apply` or the state's shape changes: snapshots of other
/// revisions are then ignored, never misread.
pub trait Reducer: Send + Sync + 'static {
    type State: Serialize + DeserializeOwned + Send;

    /// Tags the snapshots this reducer writes and reads.
    const REVISION: &'static str;

    /// The state of a state id with no events.
    fn initial(&self) -> Self::State;

    /// Folds one event into the state. An error stops the load and comes back as
    /// [`Error::Rejected`] with this error inside.
    fn apply(&self, state: &mut Self::State, event: &RecordedEvent) -> Result<(), BoxError>;
}

/// A state as loaded: the reducer's state at a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded<S> {
    pub state: S,
    /// The last version folded (0: no events).
    pub version: u64,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed<S> {
    /// The state after the command's events.
    pub state: S,
    pub version: u64,
    /// `None` when the decision was to append nothing.
    pub appended: Option<AppendOutcome>,
    /// Decide-and-append rounds it took: more than one means conflicts were retried.
    pub tries: u32,
}

/// Loads and changes states with one reducer.
///
/// ```
/// use flipbook_sdk_core::{BoxError, Client, ClientOptions, ProposedEvent, RecordedEvent, Reducer, Repository};
///
/// struct Counter;
///
/// impl Reducer for Counter {
///     type State = i64;
///     const REVISION: &'static str = "counter-1";
///     fn initial(&self) -> i64 {
///         0
///     }
///     fn apply(&self, total: &mut i64, event: &RecordedEvent) -> Result<(), BoxError> {
///         *total += serde_json::from_slice::<i64>(&event.payload)?;
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let counters = Repository::new(Client::in_memory(ClientOptions::default()), Counter);
/// counters.execute("counter-7", |_total| Ok(vec![ProposedEvent::new("Added", "5")])).await?;
/// let done = counters.execute("counter-7", |total| Ok(vec![ProposedEvent::new("Added", (total * 2).to_string())])).await?;
/// assert_eq!((done.state, done.version), (15, 2));
/// # Ok::<(), flipbook_sdk_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Repository<R> {
    client: Client,
    reducer: R,
}

impl<R: Reducer> Repository<R> {
    pub fn new(client: Client, reducer: R) -> Self {
        Self { client, reducer }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The state now.
    pub async fn load(&self, state_id: &str) -> Result<Loaded<R::State>> {
        let session = self.client.load_session(state_id, R::REVISION, None).await?;
        self.load_with(session).await
    }

    /// The state as it was (or will be) at `as_of`: only events whose timestamp is at or
    /// before it, and time-neutral ones.
    pub async fn load_as_of(&self, state_id: &str, as_of: Timestamp) -> Result<Loaded<R::State>> {
        let session = self.client.load_session(state_id, R::REVISION, Some(as_of)).await?;
        self.load_with(session).await
    }

    async fn load_with(&self, mut session: Session) -> Result<Loaded<R::State>> {
        let mut state = self.start(&mut session);
        self.fold(&mut session, &mut state).await?;
        let finished = self.finish(session, &state).await?;
        Ok(Loaded { state, version: finished.version })
    }

    /// Runs a command: `decide` sees the current state and answers the events to append (none
    /// is fine). On a version conflict the state is brought up to date and `decide` runs again,
    /// as the client's retry policy says; an error from `decide` ends the command as
    /// [`Error::Rejected`], appending nothing.
    pub async fn execute<F>(&self, state_id: &str, mut decide: F) -> Result<Executed<R::State>>
    where
        F: FnMut(&R::State) -> Result<Vec<ProposedEvent>, BoxError>,
    {
        let mut session = self.client.execute_session(state_id, R::REVISION).await?;
        let mut state = self.start(&mut session);
        loop {
            self.fold(&mut session, &mut state).await?;
            if session.is_decided() {
                break;
            }
            let events = decide(&state).map_err(Error::Rejected)?;
            session.submit(events).await?;
        }
        let finished = self.finish(session, &state).await?;
        Ok(Executed { state, version: finished.version, appended: finished.appended, tries: finished.tries })
    }

    /// Runs a command over several states of this reducer (a transfer between two accounts):
    /// `decide` sees every state, in the order of `state_ids`, and answers the events for each
    /// (an empty list leaves that state unwritten). They are appended at once, all or none; on
    /// a conflict every state is brought up to date and `decide` runs again, as
    /// [`Repository::execute`] does for one.
    pub async fn execute_states<F>(&self, state_ids: &[&str], mut decide: F) -> Result<Vec<Executed<R::State>>>
    where
        F: FnMut(&[R::State]) -> Result<Vec<Vec<ProposedEvent>>, BoxError>,
    {
        let targets: Vec<(&str, &str)> = state_ids.iter().map(|&id| (id, R::REVISION)).collect();
        let mut command = self.client.execute_states_session(&targets).await?;
        let mut states: Vec<R::State> = (0..command.len()).map(|i| self.start(command.session(i))).collect();
        loop {
            for (i, state) in states.iter_mut().enumerate() {
                self.fold(command.session(i), state).await?;
            }
            if command.is_decided() {
                break;
            }
            let decisions = decide(&states).map_err(Error::Rejected)?;
            command.submit(decisions).await?;
        }
        let mut encoded = Vec::with_capacity(states.len());
        for (i, state) in states.iter().enumerate() {
            encoded.push(self.encoded(command.session(i), state)?);
        }
        let finished = command.finish(encoded).await?;
        Ok(states
            .into_iter()
            .zip(finished)
            .map(|(state, f)| Executed { state, version: f.version, appended: f.appended, tries: f.tries })
            .collect())
    }

    fn start(&self, session: &mut Session) -> R::State {
        if let Some(base) = session.base() {
            match serde_json::from_slice(&base.state) {
                Ok(state) => return state,
                Err(error) => tracing::warn!(%error, "cannot decode the base state"),
            }
            session.discard_base();
        }
        self.reducer.initial()
    }

    async fn fold(&self, session: &mut Session, state: &mut R::State) -> Result<()> {
        while let Some(page) = session.next_page().await? {
            for event in &page {
                self.reducer.apply(state, event).map_err(Error::Rejected)?;
            }
        }
        Ok(())
    }

    async fn finish(&self, session: Session, state: &R::State) -> Result<crate::session::Finished> {
        let encoded = self.encoded(&session, state)?;
        session.finish(encoded).await
    }

    /// The state encoded for the cache and snapshots, when the session wants it.
    fn encoded(&self, session: &Session, state: &R::State) -> Result<Option<Vec<u8>>> {
        if !session.wants_state() {
            return Ok(None);
        }
        serde_json::to_vec(state).map(Some).map_err(|e| Error::Rejected(Box::new(e)))
    }
}
