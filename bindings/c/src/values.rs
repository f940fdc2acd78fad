//! What crosses the ABI: borrowed views in (`FbView` and the input structs, read before the call
//! returns), and borrowed views out (the structs handed to callbacks, valid until they return).

use std::collections::BTreeMap;

use flipbook_sdk_core::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Expectation, LogHead, ProposedEvent, RecordedEvent, ServerInfo,
    Snapshot, StateHead, StateKind, SubscriptionQuery, SubscriptionStart, Timestamp,
};

use crate::error::FbError;

/// Bytes the other side owns: `len` bytes at `data` (`data` may be null when `len` is 0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FbView {
    pub data: *const u8,
    pub len: usize,
}

impl FbView {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        Self { data: bytes.as_ptr(), len: bytes.len() }
    }

    pub(crate) const EMPTY: Self = Self { data: std::ptr::null(), len: 0 };

    /// The bytes. The caller of the export promised they are valid for the call.
    pub(crate) fn bytes<'a>(self) -> &'a [u8] {
        if self.data.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: a view passed in is `len` readable bytes that outlive the call (the header's rule).
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    pub(crate) fn text<'a>(self, field: &str) -> Result<&'a str, Box<FbError>> {
        std::str::from_utf8(self.bytes()).map_err(|_| FbError::invalid(field, "must be UTF-8"))
    }
}

/// An array the caller passed in: `count` items at `items` (null when `count` is 0).
pub(crate) fn items<'a, T>(items: *const T, count: usize) -> &'a [T] {
    if items.is_null() || count == 0 {
        return &[];
    }
    // SAFETY: the caller passes `count` readable items that outlive the call (the header's rule).
    unsafe { std::slice::from_raw_parts(items, count) }
}

/// What an append expects of the state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FbExpected {
    /// Whatever its version.
    FbExpectAny = 0,
    /// No events yet.
    FbExpectNoState = 1,
    /// Exactly `expected_version`.
    FbExpectExactly = 2,
}

/// An event to append.
#[repr(C)]
#[derive(Debug)]
pub struct FbEventInput {
    pub name: FbView,
    pub payload: FbView,
    /// Empty: `application/json`.
    pub content_type: FbView,
    /// 16 bytes of a UUID, or null: the core makes one. The same id re-sends the same event.
    pub event_id: *const u8,
    pub has_timestamp: bool,
    /// Domain time in nanoseconds since the Unix epoch (with `has_timestamp`).
    pub timestamp_nanos: i64,
    /// A JSON object of strings, or empty.
    pub metadata_json: FbView,
    pub has_version: bool,
    pub version: u64,
}

/// One state's append.
#[repr(C)]
#[derive(Debug)]
pub struct FbAppendInput {
    pub state_id: FbView,
    pub events: *const FbEventInput,
    pub event_count: usize,
    pub expected: FbExpected,
    pub expected_version: u64,
    pub version_neutral: bool,
    /// A JSON object of strings merged into the state's metadata, or empty.
    pub state_metadata_json: FbView,
}

pub(crate) fn metadata(view: FbView, field: &str) -> Result<BTreeMap<String, String>, Box<FbError>> {
    if view.len == 0 {
        return Ok(BTreeMap::new());
    }
    serde_json::from_slice(view.bytes()).map_err(|_| FbError::invalid(field, "must be a JSON object of strings"))
}

impl FbAppendInput {
    /// The request; `prefix` is where it sits in the caller's input (`parts[1].`, or empty),
    /// to name a field at fault the way the core does.
    pub(crate) fn to_request(&self, prefix: &str) -> Result<AppendRequest, Box<FbError>> {
        let expected = match self.expected {
            FbExpected::FbExpectAny => Expectation::Any,
            FbExpected::FbExpectNoState => Expectation::NoState,
            FbExpected::FbExpectExactly => Expectation::Exactly(self.expected_version),
        };
        let events = proposed_all(self.events, self.event_count, &format!("{prefix}events"))?;
        let state_id = self.state_id.text(&format!("{prefix}state_id"))?.to_owned();
        let mut request = AppendRequest::new(state_id, expected, events);
        if self.version_neutral {
            request.kind = StateKind::VersionNeutral;
        }
        request.state_metadata =
            metadata(self.state_metadata_json, &format!("{prefix}state_metadata"))?.into_iter().collect();
        Ok(request)
    }
}

/// Events the caller passed in; `field[i]` names one at fault.
pub(crate) fn proposed_all(
    events: *const FbEventInput,
    count: usize,
    field: &str,
) -> Result<Vec<ProposedEvent>, Box<FbError>> {
    items(events, count).iter().enumerate().map(|(i, event)| event.to_proposed(&format!("{field}[{i}]"))).collect()
}

impl FbEventInput {
    fn to_proposed(&self, path: &str) -> Result<ProposedEvent, Box<FbError>> {
        let mut event =
            ProposedEvent::new(self.name.text(&format!("{path}.name"))?.to_owned(), self.payload.bytes().to_vec());
        if !self.event_id.is_null() {
            // SAFETY: a non-null `event_id` is 16 readable bytes (the header's rule).
            let id: [u8; 16] = unsafe { self.event_id.cast::<[u8; 16]>().read_unaligned() };
            event.event_id = uuid::Uuid::from_bytes(id);
        }
        if self.content_type.len > 0 {
            event.content_type = self.content_type.text(&format!("{path}.content_type"))?.to_owned();
        }
        event.timestamp = self.has_timestamp.then(|| Timestamp::from_unix_nanos(self.timestamp_nanos));
        event.metadata = metadata(self.metadata_json, &format!("{path}.metadata"))?.into_iter().collect();
        event.version = self.has_version.then_some(self.version);
        Ok(event)
    }
}

/// What an append stored; borrowed until the callback returns.
#[repr(C)]
#[derive(Debug)]
pub struct FbAppendOutcome {
    /// False for a version-neutral state.
    pub has_last_version: bool,
    pub last_version: u64,
    /// The stored events' global positions, in the order sent.
    pub global_positions: *const u64,
    pub count: usize,
    pub recorded_at_nanos: i64,
}

impl FbAppendOutcome {
    /// Nothing appended.
    pub(crate) fn none() -> Self {
        Self {
            has_last_version: false,
            last_version: 0,
            global_positions: std::ptr::null(),
            count: 0,
            recorded_at_nanos: 0,
        }
    }

    pub(crate) fn of(outcome: &AppendOutcome) -> Self {
        Self {
            has_last_version: outcome.last_version.is_some(),
            last_version: outcome.last_version.unwrap_or(0),
            global_positions: outcome.global_positions.as_ptr(),
            count: outcome.global_positions.len(),
            recorded_at_nanos: outcome.recorded_at.unix_nanos(),
        }
    }
}

/// An event as stored; every view borrowed until the callback that handed it out returns.
#[repr(C)]
#[derive(Debug)]
pub struct FbEvent {
    pub state_id: FbView,
    /// False for a version-neutral state's events.
    pub has_version: bool,
    pub version: u64,
    pub global_position: u64,
    pub event_id: [u8; 16],
    pub name: FbView,
    pub payload: FbView,
    pub content_type: FbView,
    pub has_timestamp: bool,
    pub timestamp_nanos: i64,
    pub recorded_at_nanos: i64,
    /// A JSON object of strings; empty when the event has none.
    pub metadata_json: FbView,
}

/// A page of events: `count` at `events`.
#[repr(C)]
#[derive(Debug)]
pub struct FbPage {
    pub events: *const FbEvent,
    pub count: usize,
}

/// A page's events as views, and the metadata JSON they point into.
pub(crate) struct PageViews {
    pub(crate) events: Vec<FbEvent>,
    _metadata: Vec<String>,
}

impl PageViews {
    pub(crate) fn of(page: &[RecordedEvent]) -> Self {
        let metadata: Vec<String> = page
            .iter()
            .map(|e| {
                if e.metadata.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(&e.metadata).unwrap_or_default()
                }
            })
            .collect();
        let events = page
            .iter()
            .zip(&metadata)
            .map(|(e, metadata)| FbEvent {
                state_id: FbView::of(e.state_id.as_bytes()),
                has_version: e.version.is_some(),
                version: e.version.unwrap_or(0),
                global_position: e.global_position,
                event_id: *e.event_id.as_bytes(),
                name: FbView::of(e.name.as_bytes()),
                payload: FbView::of(&e.payload),
                content_type: FbView::of(e.content_type.as_bytes()),
                has_timestamp: e.timestamp.is_some(),
                timestamp_nanos: e.timestamp.map_or(0, |t| t.unix_nanos()),
                recorded_at_nanos: e.recorded_at.unix_nanos(),
                metadata_json: if metadata.is_empty() { FbView::EMPTY } else { FbView::of(metadata.as_bytes()) },
            })
            .collect();
        Self { events, _metadata: metadata }
    }

    pub(crate) fn page(&self) -> FbPage {
        FbPage { events: self.events.as_ptr(), count: self.events.len() }
    }
}

/// Texts the caller passed in, each checked UTF-8 (`field[i]` names the one that is not).
fn texts(views: *const FbView, count: usize, field: &str) -> Result<Vec<String>, Box<FbError>> {
    items(views, count)
        .iter()
        .enumerate()
        .map(|(i, view)| view.text(&format!("{field}[{i}]")).map(str::to_owned))
        .collect()
}

fn direction(backward: bool) -> Direction {
    if backward { Direction::Backward } else { Direction::Forward }
}

/// Which events of one state to read.
#[repr(C)]
#[derive(Debug)]
pub struct FbStateQuery {
    pub state_id: FbView,
    pub backward: bool,
    pub has_min_version: bool,
    pub min_version: u64,
    pub has_max_version: bool,
    pub max_version: u64,
    pub has_limit: bool,
    pub limit: u64,
    pub names: *const FbView,
    pub name_count: usize,
    pub has_as_of: bool,
    pub as_of_nanos: i64,
}

impl FbStateQuery {
    pub(crate) fn to_query(&self) -> Result<flipbook_sdk_core::StateQuery, Box<FbError>> {
        let names = texts(self.names, self.name_count, "names")?;
        Ok(flipbook_sdk_core::StateQuery {
            state_id: self.state_id.text("state_id")?.to_owned(),
            direction: direction(self.backward),
            min_version: self.has_min_version.then_some(self.min_version),
            max_version: self.has_max_version.then_some(self.max_version),
            limit: self.has_limit.then_some(self.limit),
            names,
            as_of: self.has_as_of.then(|| Timestamp::from_unix_nanos(self.as_of_nanos)),
        })
    }
}

/// A state's head; borrowed until the callback returns.
#[repr(C)]
#[derive(Debug)]
pub struct FbHead {
    pub state_id: FbView,
    pub version_neutral: bool,
    /// The last version of a versioned state; its event count either way.
    pub event_count: u64,
    pub last_global_position: u64,
    pub first_recorded_at_nanos: i64,
    pub last_recorded_at_nanos: i64,
    /// A JSON object of strings.
    pub metadata_json: FbView,
}

/// A state's head as views into it.
pub(crate) struct HeadViews {
    head: StateHead,
    metadata: String,
}

impl HeadViews {
    pub(crate) fn of(head: StateHead) -> Self {
        let metadata = serde_json::to_string(&head.metadata).unwrap_or_default();
        Self { head, metadata }
    }

    pub(crate) fn view(&self) -> FbHead {
        let head = &self.head;
        FbHead {
            state_id: FbView::of(head.state_id.as_bytes()),
            version_neutral: head.kind == StateKind::VersionNeutral,
            event_count: head.event_count,
            last_global_position: head.last_global_position,
            first_recorded_at_nanos: head.first_recorded_at.unix_nanos(),
            last_recorded_at_nanos: head.last_recorded_at.unix_nanos(),
            metadata_json: FbView::of(self.metadata.as_bytes()),
        }
    }
}

/// Which events of the whole store to read, in global-position order.
#[repr(C)]
#[derive(Debug)]
pub struct FbAllQuery {
    /// Exclusive; 0 reads from the beginning.
    pub after_position: u64,
    pub has_until_position: bool,
    /// Inclusive (with `has_until_position`).
    pub until_position: u64,
    /// Only states whose id starts with it; empty: every state.
    pub state_id_prefix: FbView,
    pub names: *const FbView,
    pub name_count: usize,
    pub has_limit: bool,
    pub limit: u64,
    pub backward: bool,
}

impl FbAllQuery {
    pub(crate) fn to_query(&self) -> Result<AllQuery, Box<FbError>> {
        Ok(AllQuery {
            after_position: self.after_position,
            until_position: self.has_until_position.then_some(self.until_position),
            state_id_prefix: self.state_id_prefix.text("state_id_prefix")?.to_owned(),
            names: texts(self.names, self.name_count, "names")?,
            limit: self.has_limit.then_some(self.limit),
            direction: direction(self.backward),
        })
    }
}

/// Where a subscription starts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FbStart {
    /// Every stored event first.
    FbStartBeginning = 0,
    /// Events after `after_position` (exclusive): a saved checkpoint.
    FbStartAfter = 1,
    /// Only events settled after the subscription starts.
    FbStartNow = 2,
}

/// What a subscription delivers.
#[repr(C)]
#[derive(Debug)]
pub struct FbSubscriptionQuery {
    pub start: FbStart,
    pub after_position: u64,
    pub state_id_prefix: FbView,
    pub names: *const FbView,
    pub name_count: usize,
}

impl FbSubscriptionQuery {
    pub(crate) fn to_query(&self) -> Result<SubscriptionQuery, Box<FbError>> {
        Ok(SubscriptionQuery {
            start: match self.start {
                FbStart::FbStartBeginning => SubscriptionStart::Beginning,
                FbStart::FbStartAfter => SubscriptionStart::After(self.after_position),
                FbStart::FbStartNow => SubscriptionStart::Now,
            },
            state_id_prefix: self.state_id_prefix.text("state_id_prefix")?.to_owned(),
            names: texts(self.names, self.name_count, "names")?,
        })
    }
}

/// The whole log's head.
#[repr(C)]
#[derive(Debug)]
pub struct FbLogHead {
    /// Every event at or below it is visible, and none can still appear there (0: none).
    pub settled_position: u64,
    /// Events at or below the settled position.
    pub event_count: u64,
}

impl From<LogHead> for FbLogHead {
    fn from(head: LogHead) -> Self {
        Self { settled_position: head.settled_position, event_count: head.event_count }
    }
}

/// What the server (or the embedded store) runs on and accepts; borrowed until the callback
/// returns.
#[repr(C)]
#[derive(Debug)]
pub struct FbServerInfo {
    pub server_version: FbView,
    pub event_backend: FbView,
    pub snapshot_backend: FbView,
    pub durable: bool,
    pub max_events_per_append: u32,
    pub max_states_per_append: u32,
    pub max_payload_bytes: u64,
    pub max_snapshot_bytes: u64,
}

impl FbServerInfo {
    pub(crate) fn of(info: &ServerInfo) -> Self {
        Self {
            server_version: FbView::of(info.server_version.as_bytes()),
            event_backend: FbView::of(info.event_backend.as_bytes()),
            snapshot_backend: FbView::of(info.snapshot_backend.as_bytes()),
            durable: info.durable,
            max_events_per_append: info.limits.max_events_per_append,
            max_states_per_append: info.limits.max_states_per_append,
            max_payload_bytes: info.limits.max_payload_bytes,
            max_snapshot_bytes: info.limits.max_snapshot_bytes,
        }
    }
}

/// A reduced state saved at a version by one reducer revision: an input (`created_at_nanos`
/// ignored: the core stamps it) and, borrowed until the callback returns, an output.
#[repr(C)]
#[derive(Debug)]
pub struct FbSnapshot {
    pub state_id: FbView,
    pub version: u64,
    pub reducer_revision: FbView,
    pub payload: FbView,
    /// Empty: `application/json`.
    pub content_type: FbView,
    pub created_at_nanos: i64,
}

impl FbSnapshot {
    pub(crate) fn of(snapshot: &Snapshot) -> Self {
        Self {
            state_id: FbView::of(snapshot.state_id.as_bytes()),
            version: snapshot.version,
            reducer_revision: FbView::of(snapshot.reducer_revision.as_bytes()),
            payload: FbView::of(&snapshot.payload),
            content_type: FbView::of(snapshot.content_type.as_bytes()),
            created_at_nanos: snapshot.created_at.unix_nanos(),
        }
    }

    pub(crate) fn to_snapshot(&self) -> Result<Snapshot, Box<FbError>> {
        let content_type = match self.content_type.len {
            0 => flipbook_sdk_core::DEFAULT_CONTENT_TYPE.to_owned(),
            _ => self.content_type.text("content_type")?.to_owned(),
        };
        Ok(Snapshot {
            state_id: self.state_id.text("state_id")?.to_owned(),
            version: self.version,
            reducer_revision: self.reducer_revision.text("reducer_revision")?.to_owned(),
            payload: self.payload.bytes().to_vec(),
            content_type,
            created_at: Timestamp::now(),
        })
    }
}
