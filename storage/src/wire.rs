//! Events in the form the API sends them: the protobuf encoding of `flipbook.v1.RecordedEvent`
//! (`proto/flipbook/v1/flipbook.proto`; the field numbers below are that message's).
//!
//! An event splits in two. Its *body* is fixed when it is appended (id, name, payload, content
//! type, timestamp, recorded-at, metadata); the store places it (state, version, global
//! position). A backend may keep the body encoded ([`Body::encode`]), so a read hands the stored
//! bytes on instead of decoding a row into an event and encoding it again: reading a state is
//! then mostly a copy ([`WirePage`]). Protobuf lets a message's fields come in any order, and a
//! message is the concatenation of its fields, so the placing fields are simply written ahead of
//! the stored body.
//!
//! The proto crate's tests check that these bytes decode as `flipbook.v1` messages.

use std::ops::Range;

use flipbook_model::{Error, Metadata, ProposedEvent, RecordedEvent, Result, Timestamp};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use uuid::Uuid;

use crate::store::Page;

/// `flipbook.v1.RecordedEvent`'s placing fields.
const STATE_ID: u32 = 1;
const VERSION: u32 = 2;
const GLOBAL_POSITION: u32 = 3;

/// The body's fields, as [`Body`] declares them (its derive needs literal tags); a test checks
/// that [`encode_body`] and `Body` agree.
const EVENT_ID: u32 = 4;
const NAME: u32 = 5;
const PAYLOAD: u32 = 6;
const CONTENT_TYPE: u32 = 7;
const TIMESTAMP: u32 = 8;
const RECORDED_AT: u32 = 9;
const METADATA: u32 = 10;

/// `events`, field 1 of both `ReadStateResponse` and `ReadAllResponse`.
const EVENTS: u32 = 1;

/// About what a body adds to its payload when its metadata is small: the id, name, content type
/// and times with their keys.
pub const BODY_OVERHEAD: usize = 128;

/// An event's body: the fields of `flipbook.v1.RecordedEvent` that its append fixes.
#[derive(Clone, PartialEq, Message)]
pub struct Body {
    /// Hyphenated, as the API carries it.
    #[prost(string, tag = "4")]
    pub event_id: String,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(bytes = "vec", tag = "6")]
    pub payload: Vec<u8>,
    #[prost(string, tag = "7")]
    pub content_type: String,
    #[prost(message, optional, tag = "8")]
    pub timestamp: Option<WireTimestamp>,
    #[prost(message, optional, tag = "9")]
    pub recorded_at: Option<WireTimestamp>,
    #[prost(btree_map = "string, string", tag = "10")]
    pub metadata: Metadata,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct WireTimestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl From<Timestamp> for WireTimestamp {
    fn from(timestamp: Timestamp) -> Self {
        let (seconds, nanos) = timestamp.parts();
        Self { seconds, nanos }
    }
}

fn timestamp(wire: WireTimestamp) -> Result<Timestamp> {
    Timestamp::from_parts(wire.seconds, wire.nanos).ok_or_else(|| corrupt("a timestamp out of range"))
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("corrupt stored event: {what}"))
}

impl Body {
    /// The body of `event` as appended at `recorded_at`.
    pub fn of(event: &ProposedEvent, recorded_at: Timestamp) -> Self {
        Self {
            event_id: event.event_id.hyphenated().to_string(),
            name: event.name.clone(),
            payload: event.payload.clone(),
            content_type: event.content_type.clone(),
            timestamp: event.timestamp.map(WireTimestamp::from),
            recorded_at: Some(recorded_at.into()),
            metadata: event.metadata.clone(),
        }
    }

    /// A stored body, decoded.
    pub fn decode_stored(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes).map_err(corrupt)
    }

    /// The event this body is, placed in its state.
    pub fn into_event(self, state_id: String, version: Option<u64>, global_position: u64) -> Result<RecordedEvent> {
        Ok(RecordedEvent {
            state_id,
            version,
            global_position,
            event_id: Uuid::parse_str(&self.event_id).map_err(corrupt)?,
            name: self.name,
            payload: self.payload,
            content_type: self.content_type,
            timestamp: self.timestamp.map(timestamp).transpose()?,
            recorded_at: timestamp(self.recorded_at.unwrap_or_default())?,
            metadata: self.metadata,
        })
    }
}

/// One page of a read as the body of a `ReadStateResponse` (or `ReadAllResponse`): each event
/// as an `events` field. Where each event ends is kept, so the page can be cut into messages of
/// a bounded size.
#[derive(Debug, Default)]
pub struct WirePage {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// The cursor for the next page, as [`Page::next`].
    pub next: Option<u64>,
}

impl WirePage {
    pub fn with_capacity(events: usize, bytes: usize) -> Self {
        Self { bytes: Vec::with_capacity(bytes), ends: Vec::with_capacity(events), next: None }
    }

    /// Adds an event from its placing fields and its stored, encoded body.
    pub fn push(&mut self, state_id: &str, version: Option<u64>, global_position: u64, body: &[u8]) {
        let placing = placing_len(state_id, version, global_position);
        let buf = &mut self.bytes;
        encode_key(EVENTS, WireType::LengthDelimited, buf);
        encode_varint((placing + body.len()) as u64, buf);
        if !state_id.is_empty() {
            length_delimited(STATE_ID, state_id.as_bytes(), buf);
        }
        if let Some(version) = version {
            encode_key(VERSION, WireType::Varint, buf);
            encode_varint(version, buf);
        }
        if global_position != 0 {
            encode_key(GLOBAL_POSITION, WireType::Varint, buf);
            encode_varint(global_position, buf);
        }
        buf.extend_from_slice(body);
        self.ends.push(buf.len());
    }

    /// Adds a decoded event.
    pub fn push_event(&mut self, event: &RecordedEvent) {
        let mut body = Vec::with_capacity(BODY_OVERHEAD + event.payload.len());
        encode_body(event, &mut body);
        self.push(&event.state_id, event.version, event.global_position, &body);
    }

    /// How many events the page holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded size of the page.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Where to cut the page into messages of at most `max_bytes` each; an event larger than
    /// that is a message of its own.
    pub fn messages(&self, max_bytes: usize) -> Vec<Range<usize>> {
        let mut messages = Vec::new();
        let mut start = 0;
        let mut last_end = 0;
        for &end in &self.ends {
            if end - start > max_bytes && last_end > start {
                messages.push(start..last_end);
                start = last_end;
            }
            last_end = end;
        }
        if last_end > start {
            messages.push(start..last_end);
        }
        messages
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A page of decoded events, encoded: what a backend that keeps no encoded bodies answers.
impl From<Page> for WirePage {
    fn from(page: Page) -> Self {
        let mut wire = Self::with_capacity(page.events.len(), 0);
        for event in &page.events {
            wire.push_event(event);
        }
        wire.next = page.next;
        wire
    }
}

/// An event's body, borrowed from the event: what [`Body`] holds, encoded without building one
/// (no copies of the payload, name or metadata, no formatted id).
struct BodyRef<'a> {
    event_id: Uuid,
    name: &'a str,
    payload: &'a [u8],
    content_type: &'a str,
    timestamp: Option<Timestamp>,
    recorded_at: Timestamp,
    metadata: &'a Metadata,
}

impl BodyRef<'_> {
    /// Appends the body to `buf`, byte for byte as [`Body`] encodes it.
    fn encode(&self, buf: &mut Vec<u8>) {
        use prost::encoding::{btree_map, message, string};
        let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
        length_delimited(EVENT_ID, self.event_id.hyphenated().encode_lower(&mut id).as_bytes(), buf);
        // Empty strings and bytes are left out, as proto3 (and `Body`) does.
        for (tag, value) in
            [(NAME, self.name.as_bytes()), (PAYLOAD, self.payload), (CONTENT_TYPE, self.content_type.as_bytes())]
        {
            if !value.is_empty() {
                length_delimited(tag, value, buf);
            }
        }
        if let Some(timestamp) = self.timestamp {
            message::encode(TIMESTAMP, &WireTimestamp::from(timestamp), buf);
        }
        message::encode(RECORDED_AT, &WireTimestamp::from(self.recorded_at), buf);
        btree_map::encode(
            string::encode,
            string::encoded_len,
            string::encode,
            string::encoded_len,
            METADATA,
            self.metadata,
            buf,
        );
    }
}

/// A string or bytes field.
fn length_delimited(tag: u32, value: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
}

/// The body of a decoded event, as [`Body`] encodes it, appended to `buf`.
pub(crate) fn encode_body(event: &RecordedEvent, buf: &mut Vec<u8>) {
    BodyRef {
        event_id: event.event_id,
        name: &event.name,
        payload: &event.payload,
        content_type: &event.content_type,
        timestamp: event.timestamp,
        recorded_at: event.recorded_at,
        metadata: &event.metadata,
    }
    .encode(buf);
}

/// The body of `event` appended at `recorded_at`, as `Body::of(event, recorded_at)` encodes it,
/// appended to `buf`: what a backend stores.
pub fn encode_proposed(event: &ProposedEvent, recorded_at: Timestamp, buf: &mut Vec<u8>) {
    BodyRef {
        event_id: event.event_id,
        name: &event.name,
        payload: &event.payload,
        content_type: &event.content_type,
        timestamp: event.timestamp,
        recorded_at,
        metadata: &event.metadata,
    }
    .encode(buf);
}

/// [`encode_proposed`] into a buffer of its own.
pub fn proposed_body(event: &ProposedEvent, recorded_at: Timestamp) -> Vec<u8> {
    let mut body = Vec::with_capacity(BODY_OVERHEAD + event.payload.len());
    encode_proposed(event, recorded_at, &mut body);
    body
}

fn placing_len(state_id: &str, version: Option<u64>, global_position: u64) -> usize {
    let key = 1; // field numbers below 16 take one byte
    let state = if state_id.is_empty() { 0 } else { key + encoded_len_varint(state_id.len() as u64) + state_id.len() };
    let version = version.map_or(0, |v| key + encoded_len_varint(v));
    let position = if global_position == 0 { 0 } else { key + encoded_len_varint(global_position) };
    state + version + position
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, payload: usize) -> RecordedEvent {
        let mut proposed = ProposedEvent::new("Deposited", vec![7; payload]);
        proposed.timestamp = Some(Timestamp::from_unix_nanos(-1_500_000_001));
        proposed.metadata.insert("user".into(), "ana".into());
        Body::of(&proposed, Timestamp::from_unix_nanos(1_700_000_000_123_456_789))
            .into_event("wallet-1".into(), Some(seq), 1 << 20 | seq)
            .expect("a body from an event decodes")
    }

    fn body_of(event: &RecordedEvent) -> Vec<u8> {
        let mut body = Vec::new();
        encode_body(event, &mut body);
        body
    }

    #[test]
    fn a_body_keeps_every_field_of_its_event() {
        let original = event(3, 10);
        let bytes = body_of(&original);
        let back = Body::decode_stored(&bytes).and_then(|b| b.into_event("wallet-1".into(), Some(3), 1 << 20 | 3));
        assert_eq!(back.expect("decodes"), original);
        assert!(Body::decode_stored(&[0xff, 0xff]).is_err(), "garbage is an error, not an event");
    }

    /// What a backend stores ([`Body::encode`], [`proposed_body`]) and what a decoded page is
    /// encoded with agree to the byte, time-neutral and empty fields too.
    #[test]
    fn encode_body_writes_what_body_encodes() {
        let mut neutral = ProposedEvent::new("", Vec::new());
        neutral.content_type = String::new();
        let recorded_at = Timestamp::from_unix_nanos(5);
        let placed = Body::of(&neutral, recorded_at).into_event("s".into(), None, 1).expect("decodes");
        for event in [event(1, 0), event(2, 300), placed] {
            let stored = Body::of(&event.as_proposed(), event.recorded_at).encode_to_vec();
            assert_eq!(body_of(&event), stored);
            assert_eq!(proposed_body(&event.as_proposed(), event.recorded_at), stored);
        }
    }

    #[test]
    fn messages_stay_under_the_bound_except_a_single_large_event() {
        let mut page = WirePage::default();
        for (seq, payload) in [(1, 100), (2, 100), (3, 5000), (4, 100)] {
            let event = event(seq, payload);
            page.push(&event.state_id, event.version, event.global_position, &body_of(&event));
        }
        let messages = page.messages(1000);
        let sizes: Vec<usize> = messages.iter().map(|r| r.len()).collect();
        assert_eq!(messages.len(), 3, "{sizes:?}");
        assert!(sizes[0] <= 1000 && sizes[1] > 1000 && sizes[2] <= 1000, "{sizes:?}");
        assert_eq!(messages.last().map(|r| r.end), Some(page.byte_len()));
        assert_eq!(page.messages(usize::MAX), vec![0..page.byte_len()]);
    }
}
