//! The two storage traits every backend implements, and the append rules they share.
//!
//! A backend stores, per state, a sequence number for each event (1, 2, 3 … without gaps, also
//! for version-neutral states, where it is never shown as a version) and a tip: the state's kind
//! and last sequence number. Checking an append against the tip is the same logic everywhere and
//! lives here ([`plan_append`], [`replayed`]); a backend only has to read the tip and write the
//! events atomically, with its own way of refusing a concurrent writer.

use std::fmt::Debug;

use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Error, Expectation, Metadata, RecordedEvent, Result, Snapshot,
    SnapshotQuery, StateHead, StateKind, StateQuery, validate::MAX_METADATA_BYTES,
};

use crate::wire::WirePage;

/// One page of a read, and where the next one starts.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<RecordedEvent>,
    /// The cursor to pass for the next page; `None` when the read is exhausted. For a state it
    /// is the last sequence number read; for read-all, the last global position read.
    pub next: Option<u64>,
}

/// What a backend can hold, where it is less than the server's own limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendLimits {
    pub max_events_per_append: Option<u32>,
    pub max_states_per_append: Option<u32>,
}

#[async_trait]
pub trait EventStore: Send + Sync + Debug + 'static {
    /// `"sqlite"`, `"postgres"`, …: for server info, logs and metrics.
    fn backend(&self) -> &'static str;

    /// Whether an acknowledged append survives a crash, as configured.
    fn durable(&self) -> bool;

    fn limits(&self) -> BackendLimits {
        BackendLimits::default()
    }

    /// Stores every part's events or none: one atomic write across the parts' states, whose
    /// global positions are contiguous and in part order. Each part is decided with the shared
    /// rules ([`plan_append`]; a re-send with [`replayed`], the request as a whole with
    /// [`decide`]). The parts have passed [`flipbook_model::validate::append_states`]; the
    /// answer holds one outcome per part, in their order.
    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>>;

    /// An append to one state: a request of one part.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        let mut outcomes = self.append_states(vec![request]).await?;
        outcomes.pop().ok_or_else(|| Error::Internal("an append answered no outcome".to_owned()))
    }

    /// `None` for a state that has no events.
    async fn head(&self, state_id: &str) -> Result<Option<StateHead>>;

    /// At most `max` events of the query's state after the cursor (before it, backward), in
    /// sequence order, with the query's filters applied. `after` is `None` on the first page.
    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page>;

    /// The same page, encoded as the API sends it. A backend that stores events encoded
    /// overrides this to copy them instead of decoding and encoding each one.
    async fn read_state_wire_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<WirePage> {
        Ok(self.read_state_page(query, after, max).await?.into())
    }

    /// At most `max` events with a global position in the query's window past the cursor
    /// ([`AllQuery::window`]), in global-position order (descending, backward), with the
    /// query's filters applied. `cursor` is `None` on the first page.
    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page>;

    /// The same page, encoded as the API sends it (see [`EventStore::read_state_wire_page`]).
    async fn read_all_wire_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<WirePage> {
        Ok(self.read_all_page(query, cursor, max).await?.into())
    }

    /// The highest global position that is *settled*: every event at or below it is visible
    /// now, and no event at or below it can become visible later (0 when there is none). The
    /// event bus never hands out a position above it, which is what makes subscriptions unable
    /// to skip an event that commits late (see [`crate::bus`]).
    async fn settled_position(&self) -> Result<u64>;

    /// How many events have a global position at or below `until`.
    async fn event_count(&self, until: u64) -> Result<u64>;

    /// Whether the backend answers now: `Unavailable` if it cannot be reached. The engine's
    /// probe asks it (see [`crate::engine::Engine::watch_backends`]); it must not queue behind
    /// the store's own calls (a busy pool is not an unreachable database). The default, for
    /// backends in this process, always answers.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// Releases what the store holds in this process (threads, connections, files) once the
    /// calls running now have ended, even while clones of it live on; calls after it fail with
    /// `Unavailable`. The default does nothing: network pools close as their last clone drops.
    async fn close(&self) {}
}

#[async_trait]
pub trait SnapshotStore: Send + Sync + Debug + 'static {
    fn backend(&self) -> &'static str;

    /// Stores the snapshot, replacing one of the same state, revision and version.
    async fn put(&self, snapshot: Snapshot) -> Result<()>;

    /// The newest snapshot of the state for exactly this revision, at or below `max_version`.
    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>>;

    /// Deletes every snapshot of the state, of every revision; returns how many.
    async fn delete(&self, state_id: &str) -> Result<u64>;

    /// See [`EventStore::ping`].
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// See [`EventStore::close`].
    async fn close(&self) {}
}

/// A state's kind and last sequence number, as a backend reads it before appending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub kind: StateKind,
    pub last_seq: u64,
}

/// Checks an append against the state's tip (`None`: the state has no events) and answers the
/// sequence number of its first event. Nothing here is a race: the backend holds the tip
/// stable (a transaction, a condition, a script) until the events are written.
pub fn plan_append(tip: Option<Tip>, request: &AppendRequest) -> Result<u64> {
    let conflict = |actual_version| Error::VersionConflict { state_id: request.state_id.clone(), actual_version };
    let last = tip.map_or(0, |t| t.last_seq);
    if let Some(tip) = tip
        && tip.kind != request.kind
    {
        return Err(Error::StateKindMismatch { state_id: request.state_id.clone(), stored: tip.kind });
    }
    match request.expected {
        Expectation::Any => {}
        Expectation::NoState if tip.is_some() => return Err(conflict(last)),
        Expectation::NoState => {}
        Expectation::Exactly(n) if n != last => return Err(conflict(last)),
        Expectation::Exactly(_) => {}
    }
    // Explicit versions must continue the state (the validator checked they have no gaps).
    match request.events.first().and_then(|e| e.version) {
        Some(first) if first != last + 1 => Err(conflict(last)),
        _ => Ok(last + 1),
    }
}

/// The state's metadata after an append: what is stored, with the append's entries over it.
/// Bounded as one map is ([`MAX_METADATA_BYTES`] of keys and values), or appends that each add
/// keys would grow it without end: every append reads and rewrites it, and DynamoDB holds it in
/// an item of at most 400 KB. Checked after [`plan_append`], before anything is written.
pub fn merged_metadata(mut stored: Metadata, request: &AppendRequest) -> Result<Metadata> {
    if request.state_metadata.is_empty() {
        return Ok(stored);
    }
    stored.extend(request.state_metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    let size: usize = stored.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_METADATA_BYTES {
        return Err(Error::TooLarge {
            field: "state_metadata".to_owned(),
            limit: format!(
                "the state's metadata with these entries would total {size} bytes of keys and values, \
                 more than {MAX_METADATA_BYTES}"
            ),
        });
    }
    Ok(stored)
}

/// Decides a re-sent append. `stored` holds the state's recorded events from the one whose
/// event id equals the request's first event id, in sequence order, at most as many as the
/// request has (the backend reads them when that id is already stored). The append is a replay,
/// answered with the original outcome, when those are exactly the request's events in the same
/// places; anything else is a duplicate.
pub fn replayed(request: &AppendRequest, stored: &[RecordedEvent]) -> Result<AppendOutcome> {
    let duplicate = |event_id| Error::Duplicate { state_id: request.state_id.clone(), event_id };
    if stored.len() != request.events.len() {
        return Err(duplicate(request.events[stored.len().min(request.events.len() - 1)].event_id));
    }
    let versioned = request.kind == StateKind::Versioned;
    for (proposed, recorded) in request.events.iter().zip(stored) {
        if !proposed.is_recorded_as(recorded) || recorded.version.is_some() != versioned {
            return Err(duplicate(proposed.event_id));
        }
    }
    // Not empty: a request has at least one event, and `stored` as many.
    let last = &stored[stored.len() - 1];
    Ok(AppendOutcome {
        last_version: last.version,
        global_positions: stored.iter().map(|e| e.global_position).collect(),
        recorded_at: last.recorded_at,
    })
}

/// What checking one part of a request found, before anything is written.
#[derive(Debug)]
pub enum Checked<P> {
    /// Its events are stored as it has them: the original outcome (see [`replayed`]).
    Replay(AppendOutcome),
    /// Nothing of it is stored; the backend's plan for writing it.
    Write(P),
}

/// What a whole request does, from its parts' checks ([`decide`]).
#[derive(Debug)]
pub enum Decision<P> {
    /// A re-send: answer the original outcomes, write nothing.
    Replay(Vec<AppendOutcome>),
    /// Write every part, by these plans.
    Write(Vec<P>),
}

/// Decides a request from its parts' checks, in request order. Every part stored: a re-send.
/// No part stored: write them all. Some stored and others not: not a re-send (the original
/// request stored all of its parts or none), so a duplicate naming the first stored event id.
pub fn decide<P>(parts: &[AppendRequest], checks: Vec<Checked<P>>) -> Result<Decision<P>> {
    let replays = checks.iter().filter(|c| matches!(c, Checked::Replay(_))).count();
    if replays == 0 {
        return Ok(Decision::Write(
            checks.into_iter().filter_map(|c| if let Checked::Write(p) = c { Some(p) } else { None }).collect(),
        ));
    }
    if replays < checks.len() {
        let stored = checks.iter().position(|c| matches!(c, Checked::Replay(_))).unwrap_or_default();
        let part = &parts[stored];
        return Err(Error::Duplicate { state_id: part.state_id.clone(), event_id: part.events[0].event_id });
    }
    Ok(Decision::Replay(
        checks.into_iter().filter_map(|c| if let Checked::Replay(o) = c { Some(o) } else { None }).collect(),
    ))
}
