//! What crosses the ABI: borrowed views in (`FbView` and the input structs, read before the call
//! returns), and borrowed views out (the structs handed to callbacks, valid until they return).

use std::collections::BTreeMap;

use flipbook_sdk_core::{
    AppendOutcome, AppendRequest, Expectation, ProposedEvent, RecordedEvent, StateKind, Timestamp,
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
fn items<'a, T>(items: *const T, count: usize) -> &'a [T] {
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

fn metadata(view: FbView, field: &str) -> Result<BTreeMap<String, String>, Box<FbError>> {
    if view.len == 0 {
        return Ok(BTreeMap::new());
    }
    serde_json::from_slice(view.bytes()).map_err(|_| FbError::invalid(field, "must be a JSON object of strings"))
}

impl FbAppendInput {
    pub(crate) fn to_request(&self) -> Result<AppendRequest, Box<FbError>> {
        let expected = match self.expected {
            FbExpected::FbExpectAny => Expectation::Any,
            FbExpected::FbExpectNoState => Expectation::NoState,
            FbExpected::FbExpectExactly => Expectation::Exactly(self.expected_version),
        };
        let events = items(self.events, self.event_count)
            .iter()
            .enumerate()
            .map(|(i, event)| event.to_proposed(&format!("events[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut request = AppendRequest::new(self.state_id.text("state_id")?.to_owned(), expected, events);
        if self.version_neutral {
            request.kind = StateKind::VersionNeutral;
        }
        request.state_metadata = metadata(self.state_metadata_json, "state_metadata")?.into_iter().collect();
        Ok(request)
    }
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
        let names = items(self.names, self.name_count)
            .iter()
            .enumerate()
            .map(|(i, name)| name.text(&format!("names[{i}]")).map(str::to_owned))
            .collect::<Result<_, _>>()?;
        Ok(flipbook_sdk_core::StateQuery {
            state_id: self.state_id.text("state_id")?.to_owned(),
            direction: if self.backward {
                flipbook_sdk_core::Direction::Backward
            } else {
                flipbook_sdk_core::Direction::Forward
            },
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
