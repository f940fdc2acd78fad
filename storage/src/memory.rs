//! Stores in process memory. [`MemoryEventStore`]: events for the SDK's in-memory mode and for
//! tests, gone with the process. [`MemorySnapshotStore`]: snapshots for a single server whose
//! snapshots may vanish on restart (they are a cache), and for tests of the layers above storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Error, Metadata, RecordedEvent, Result, Snapshot, SnapshotQuery,
    StateHead, StateKind, StateQuery, Timestamp,
};
use uuid::Uuid;

use crate::store::{
    Checked, Decision, EventStore, Page, SnapshotStore, Tip, decide, merged_metadata, plan_append, replayed,
};

/// Events in process memory, with the semantics of the SQLite backend. One lock guards
/// everything; it is never held across an await.
#[derive(Debug, Default)]
pub struct MemoryEventStore {
    inner: Mutex<Events>,
}

#[derive(Debug, Default)]
struct Events {
    /// Every event in global-position order: position `p` is at index `p - 1`.
    log: Vec<RecordedEvent>,
    states: HashMap<String, State>,
}

#[derive(Debug)]
struct State {
    head: StateHead,
    /// Index in the log of each event, in sequence order: sequence number `s` is at `s - 1`.
    log_at: Vec<usize>,
    /// Sequence number of each event id.
    seq_of: HashMap<Uuid, u64>,
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn events(&self) -> Result<MutexGuard<'_, Events>> {
        self.inner.lock().map_err(|_| Error::Internal("event store lock poisoned".to_owned()))
    }
}

impl Events {
    /// Decides one part against what is stored; its plan is where its events go and the
    /// state's metadata after it (`None`: unchanged).
    fn check(&self, request: &AppendRequest) -> Result<Checked<(u64, Option<Metadata>)>> {
        let state = self.states.get(&request.state_id);
        // A stored event id first: a re-send or a duplicate, whatever the tip.
        if let Some(state) = state
            && let Some(first) = request.events.iter().filter_map(|e| state.seq_of.get(&e.event_id)).min()
        {
            let from = usize::try_from(*first - 1).unwrap_or(usize::MAX);
            let stored: Vec<_> =
                state.log_at.iter().skip(from).take(request.events.len()).map(|&at| self.log[at].clone()).collect();
            return replayed(request, &stored).map(Checked::Replay);
        }
        let tip = state.map(|s| Tip { kind: s.head.kind, last_seq: s.head.event_count });
        let first_seq = plan_append(tip, request)?;
        let metadata = if request.state_metadata.is_empty() {
            None
        } else {
            Some(merged_metadata(state.map(|s| s.head.metadata.clone()).unwrap_or_default(), request)?)
        };
        Ok(Checked::Write((first_seq, metadata)))
    }

    /// Writes a checked part at the end of the log.
    fn write(
        &mut self,
        request: AppendRequest,
        first_seq: u64,
        metadata: Option<Metadata>,
        now: Timestamp,
    ) -> AppendOutcome {
        let Events { log, states } = self;
        let versioned = request.kind == StateKind::Versioned;
        let state = states.entry(request.state_id.clone()).or_insert_with(|| State {
            head: StateHead {
                state_id: request.state_id.clone(),
                kind: request.kind,
                event_count: 0,
                last_global_position: 0,
                first_recorded_at: now,
                last_recorded_at: now,
                metadata: Metadata::new(),
            },
            log_at: Vec::new(),
            seq_of: HashMap::new(),
        });
        let mut positions = Vec::with_capacity(request.events.len());
        for (seq, event) in (first_seq..).zip(request.events) {
            let position = log.len() as u64 + 1;
            state.log_at.push(log.len());
            state.seq_of.insert(event.event_id, seq);
            log.push(RecordedEvent {
                state_id: request.state_id.clone(),
                version: versioned.then_some(seq),
                global_position: position,
                event_id: event.event_id,
                name: event.name,
                payload: event.payload,
                content_type: event.content_type,
                timestamp: event.timestamp,
                recorded_at: now,
                metadata: event.metadata,
            });
            positions.push(position);
        }
        let head = &mut state.head;
        head.event_count = state.log_at.len() as u64;
        head.last_global_position = positions.last().copied().unwrap_or(head.last_global_position);
        head.last_recorded_at = now;
        if let Some(metadata) = metadata {
            head.metadata = metadata;
        }
        AppendOutcome {
            last_version: versioned.then_some(head.event_count),
            global_positions: positions,
            recorded_at: now,
        }
    }
}

/// A page from `(cursor, event)` pairs: a page shorter than asked is the last one.
fn page(rows: Vec<(u64, RecordedEvent)>, max: usize) -> Page {
    let next = match rows.last() {
        Some((cursor, _)) if rows.len() >= max => Some(*cursor),
        _ => None,
    };
    Page { events: rows.into_iter().map(|(_, event)| event).collect(), next }
}

fn named(names: &[String], event: &RecordedEvent) -> bool {
    names.is_empty() || names.contains(&event.name)
}

#[async_trait]
impl EventStore for MemoryEventStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn durable(&self) -> bool {
        false
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        let mut guard = self.events()?;
        let events = &mut *guard;
        let checks = parts.iter().map(|part| events.check(part)).collect::<Result<Vec<_>>>()?;
        let plans = match decide(&parts, checks)? {
            Decision::Replay(outcomes) => return Ok(outcomes),
            Decision::Write(plans) => plans,
        };
        let now = Timestamp::now();
        Ok(parts
            .into_iter()
            .zip(plans)
            .map(|(part, (first_seq, metadata))| events.write(part, first_seq, metadata, now))
            .collect())
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        Ok(self.events()?.states.get(state_id).map(|state| state.head.clone()))
    }

    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page> {
        let events = self.events()?;
        let Some(state) = events.states.get(&query.state_id) else { return Ok(Page::default()) };
        // The sequence numbers `low..=high` the bounds and the cursor leave (forward: after the
        // cursor; backward: before it), whatever the direction.
        let count = state.head.event_count;
        let (mut low, mut high) =
            (query.min_version.unwrap_or(1).max(1), query.max_version.unwrap_or(count).min(count));
        match (query.direction, after) {
            (Direction::Forward, Some(after)) => low = low.max(after.saturating_add(1)),
            (Direction::Backward, Some(after)) => high = high.min(after.saturating_sub(1)),
            (_, None) => {}
        }
        if low > high {
            return Ok(Page::default());
        }
        // `high <= count`, so both fit the state's vector.
        let window = state.log_at[(low - 1) as usize..high as usize].iter().enumerate();
        let numbered = window.map(|(i, &at)| (low + i as u64, &events.log[at]));
        let ordered: Box<dyn Iterator<Item = _>> = match query.direction {
            Direction::Forward => Box::new(numbered),
            Direction::Backward => Box::new(numbered.rev()),
        };
        let rows = ordered
            .filter(|(_, e)| query.as_of.is_none_or(|as_of| e.timestamp.is_none_or(|t| t <= as_of)))
            .filter(|(_, e)| named(&query.names, e))
            .take(max)
            .map(|(seq, e)| (seq, e.clone()))
            .collect();
        Ok(page(rows, max))
    }

    /// Positions are the log's indexes plus one, so the window is a slice of it.
    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page> {
        let events = self.events()?;
        let (low, high) = query.window(cursor);
        let index = |position: u64| usize::try_from(position).unwrap_or(usize::MAX).min(events.log.len());
        let window = &events.log[index(low).min(index(high))..index(high)];
        let wanted = |e: &&RecordedEvent| e.state_id.starts_with(&query.state_id_prefix) && named(&query.names, e);
        let row = |e: &RecordedEvent| (e.global_position, e.clone());
        let rows = match query.direction {
            Direction::Forward => window.iter().filter(wanted).take(max).map(row).collect(),
            Direction::Backward => window.iter().rev().filter(wanted).take(max).map(row).collect(),
        };
        Ok(page(rows, max))
    }

    /// Appends take the lock that reads take: an event is visible once it has a position.
    async fn settled_position(&self) -> Result<u64> {
        Ok(self.events()?.log.len() as u64)
    }

    /// Positions are dense: the log's indexes plus one.
    async fn event_count(&self, until: u64) -> Result<u64> {
        Ok(until.min(self.events()?.log.len() as u64))
    }
}

type ByVersion = BTreeMap<u64, Snapshot>;

#[derive(Debug, Default)]
pub struct MemorySnapshotStore {
    /// state id -> reducer revision -> version -> snapshot.
    states: Mutex<HashMap<String, HashMap<String, ByVersion>>>,
}

impl MemorySnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn states(&self) -> Result<MutexGuard<'_, HashMap<String, HashMap<String, ByVersion>>>> {
        self.states.lock().map_err(|_| Error::Internal("snapshot store lock poisoned".to_owned()))
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshotStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn put(&self, snapshot: Snapshot) -> Result<()> {
        self.states()?
            .entry(snapshot.state_id.clone())
            .or_default()
            .entry(snapshot.reducer_revision.clone())
            .or_default()
            .insert(snapshot.version, snapshot);
        Ok(())
    }

    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        let states = self.states()?;
        let newest = states
            .get(&query.state_id)
            .and_then(|revisions| revisions.get(&query.reducer_revision))
            .and_then(|versions| versions.range(..=query.max_version.unwrap_or(u64::MAX)).next_back());
        Ok(newest.map(|(_, snapshot)| snapshot.clone()))
    }

    async fn delete(&self, state_id: &str) -> Result<u64> {
        let removed = self.states()?.remove(state_id);
        Ok(removed.map_or(0, |revisions| revisions.values().map(|v| v.len() as u64).sum()))
    }
}
