//! The words of `docs/spec.md` as Rust types: states, events, versions, expectations,
//! queries, snapshots; the input rules ([`validate`], with the [`Limits`] they are checked
//! against); and the one [`Error`] every layer speaks, which says whether a retry can help.
//!
//! The client, the server, the stores and every binding stand on this crate. It does no I/O
//! and knows no backend and no wire format: the gRPC messages and their conversions live in
//! `flipbook-proto`, the stores in `flipbook-storage`. Feature `jsonl` adds the JSON Lines form
//! of events and snapshots that tools export and import ([`jsonl`]).

mod error;
#[cfg(feature = "jsonl")]
pub mod jsonl;
pub mod validate;

pub use error::{Error, Result};
pub use validate::Limits;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// String map for correlation id, causation id, user, trace context. Ordered, so two maps with
/// the same entries compare and serialize the same (idempotent re-appends compare them).
pub type Metadata = BTreeMap<String, String>;

/// The content type of a payload when the client names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// A point in time, as nanoseconds since the Unix epoch (1677-09-21 to 2262-04-11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// From seconds and nanoseconds as protobuf carries them; `None` when out of range.
    pub fn from_parts(seconds: i64, nanos: i32) -> Option<Self> {
        if !(0..1_000_000_000).contains(&nanos) {
            return None;
        }
        let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        i64::try_from(total).ok().map(Self)
    }

    /// Seconds and nanoseconds (0..1e9), as protobuf carries them.
    pub fn parts(self) -> (i64, i32) {
        (self.0.div_euclid(1_000_000_000), self.0.rem_euclid(1_000_000_000) as i32)
    }

    /// The store's clock.
    pub fn now() -> Self {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// Whether a state's events carry versions. Fixed by the state's first append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StateKind {
    #[default]
    Versioned,
    /// Events carry no version, never conflict and are ordered by global position only.
    VersionNeutral,
}

/// What an append expects of the state's current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Expectation {
    /// No check.
    #[default]
    Any,
    /// The state must not exist yet.
    NoState,
    /// The state's last version must be this; 0 means "no events yet". Versioned states only.
    Exactly(u64),
}

/// An event as a client proposes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposedEvent {
    pub event_id: Uuid,
    pub name: String,
    pub payload: Vec<u8>,
    pub content_type: String,
    pub timestamp: Option<Timestamp>,
    pub metadata: Metadata,
    /// Explicit version: all events of an append have one, or none has.
    pub version: Option<u64>,
}

impl ProposedEvent {
    /// A JSON event with a fresh id, no timestamp and no metadata.
    pub fn new(name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            name: name.into(),
            payload: payload.into(),
            content_type: DEFAULT_CONTENT_TYPE.to_owned(),
            timestamp: None,
            metadata: Metadata::new(),
            version: None,
        }
    }

    /// Whether `recorded` is this event, stored: what makes a re-sent append a replay rather
    /// than a duplicate. An explicit version must match too; an assigned one cannot differ.
    pub fn is_recorded_as(&self, recorded: &RecordedEvent) -> bool {
        self.event_id == recorded.event_id
            && self.name == recorded.name
            && self.payload == recorded.payload
            && self.content_type == recorded.content_type
            && self.timestamp == recorded.timestamp
            && self.metadata == recorded.metadata
            && (self.version.is_none() || self.version == recorded.version)
    }
}

/// One atomic append to one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRequest {
    pub state_id: String,
    pub events: Vec<ProposedEvent>,
    pub expected: Expectation,
    pub kind: StateKind,
    /// Merged into the state's metadata when the append stores its events.
    pub state_metadata: Metadata,
}

impl AppendRequest {
    /// A versioned append with no state metadata.
    pub fn new(state_id: impl Into<String>, expected: Expectation, events: Vec<ProposedEvent>) -> Self {
        Self {
            state_id: state_id.into(),
            events,
            expected,
            kind: StateKind::Versioned,
            state_metadata: Metadata::new(),
        }
    }

    /// A version-neutral append with no state metadata.
    pub fn neutral(state_id: impl Into<String>, expected: Expectation, events: Vec<ProposedEvent>) -> Self {
        Self { kind: StateKind::VersionNeutral, ..Self::new(state_id, expected, events) }
    }
}

/// What a successful append answers (the same again for an idempotent re-append).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The state's last version after the append; `None` for version-neutral states.
    pub last_version: Option<u64>,
    /// The stored events' global positions, in request order.
    pub global_positions: Vec<u64>,
    /// The store's clock when the append committed: the `recorded_at` its events carry.
    pub recorded_at: Timestamp,
}

/// An event as the store recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub state_id: String,
    /// `None` for version-neutral states.
    pub version: Option<u64>,
    pub global_position: u64,
    pub event_id: Uuid,
    pub name: String,
    pub payload: Vec<u8>,
    pub content_type: String,
    pub timestamp: Option<Timestamp>,
    pub recorded_at: Timestamp,
    pub metadata: Metadata,
}

impl RecordedEvent {
    /// The event as it was proposed (its version aside): what appending it again would send.
    pub fn as_proposed(&self) -> ProposedEvent {
        ProposedEvent {
            event_id: self.event_id,
            name: self.name.clone(),
            payload: self.payload.clone(),
            content_type: self.content_type.clone(),
            timestamp: self.timestamp,
            metadata: self.metadata.clone(),
            version: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// Which events of one state to read. Bounds are inclusive whatever the direction; on a
/// version-neutral state they count the state's events (1 is its first).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StateQuery {
    pub state_id: String,
    pub direction: Direction,
    pub min_version: Option<u64>,
    pub max_version: Option<u64>,
    pub limit: Option<u64>,
    /// Only these event names; empty means all.
    pub names: Vec<String>,
    /// Only events whose timestamp is at or before this; time-neutral events always pass.
    pub as_of: Option<Timestamp>,
}

impl StateQuery {
    /// Every event of the state, forward.
    pub fn all(state_id: impl Into<String>) -> Self {
        Self { state_id: state_id.into(), ..Self::default() }
    }
}

/// Which events of the whole store to read, in global-position order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AllQuery {
    /// Exclusive; 0 reads from the beginning.
    pub after_position: u64,
    /// Inclusive. The engine lowers it to the settled position read when the read starts, so a
    /// read never shows an event that a position below it could still join.
    pub until_position: Option<u64>,
    pub state_id_prefix: String,
    pub names: Vec<String>,
    pub limit: Option<u64>,
    /// Backward: newest first, from `until_position` down to `after_position`.
    pub direction: Direction,
}

impl AllQuery {
    /// The highest position the read may show.
    pub fn last_position(&self) -> u64 {
        self.until_position.unwrap_or(u64::MAX)
    }

    /// The positions `(low, high]` a page may show, given the position the page before ended
    /// at (`None` for the first page): forward the cursor raises `low`, backward it lowers
    /// `high`. Empty when `low >= high`.
    pub fn window(&self, cursor: Option<u64>) -> (u64, u64) {
        match self.direction {
            Direction::Forward => {
                (cursor.unwrap_or(self.after_position).max(self.after_position), self.last_position())
            }
            Direction::Backward => {
                let high = cursor.map_or(self.last_position(), |c| c.saturating_sub(1).min(self.last_position()));
                (self.after_position, high)
            }
        }
    }
}

/// The head of the whole log: how far it is settled, and how many events that covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LogHead {
    /// Every event at or below it is visible, and none can still appear there (0: none).
    pub settled_position: u64,
    /// Events at or below the settled position.
    pub event_count: u64,
}

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SubscriptionStart {
    /// Every stored event first.
    #[default]
    Beginning,
    /// Events after this position (exclusive): a subscriber's saved checkpoint.
    After(u64),
    /// Only events settled after the subscription starts.
    Now,
}

/// What a subscription delivers: events of the whole store in global-position order, with the
/// filters of [`AllQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SubscriptionQuery {
    pub start: SubscriptionStart,
    pub state_id_prefix: String,
    pub names: Vec<String>,
}

/// One message of a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Events in strictly increasing global position, each after everything delivered before.
    Events(Vec<RecordedEvent>),
    /// Every event at or below this position has been delivered or filtered out: where to
    /// resume from.
    Checkpoint(u64),
}

/// A state's head ("version 0").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateHead {
    pub state_id: String,
    pub kind: StateKind,
    /// How many events the state has; for a versioned state also its last version.
    pub event_count: u64,
    pub last_global_position: u64,
    pub first_recorded_at: Timestamp,
    pub last_recorded_at: Timestamp,
    pub metadata: Metadata,
}

impl StateHead {
    /// The last version; `None` for a version-neutral state.
    pub fn last_version(&self) -> Option<u64> {
        (self.kind == StateKind::Versioned).then_some(self.event_count)
    }
}

/// A reduced state saved at a version by one reducer revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub state_id: String,
    pub version: u64,
    pub reducer_revision: String,
    pub payload: Vec<u8>,
    pub content_type: String,
    pub created_at: Timestamp,
}

/// Which snapshot to get: the newest of the revision, at or below `max_version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotQuery {
    pub state_id: String,
    pub reducer_revision: String,
    pub max_version: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_parts_round_trip_including_before_the_epoch() {
        for nanos in [0, 1, 999_999_999, 1_000_000_000, -1, -1_000_000_001, i64::MAX, i64::MIN] {
            let t = Timestamp::from_unix_nanos(nanos);
            let (s, n) = t.parts();
            assert_eq!(Timestamp::from_parts(s, n), Some(t), "{nanos}");
        }
        assert_eq!(Timestamp::from_parts(i64::MAX, 0), None);
        assert_eq!(Timestamp::from_parts(0, 1_000_000_000), None);
        assert_eq!(Timestamp::from_parts(0, -1), None);
    }
}
