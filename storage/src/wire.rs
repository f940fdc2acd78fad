//! Events in the form the API sends them: the protobuf encoding of `flipbook.v1.RecordedEvent`,
//! written and read with the message prost generates from `proto/flipbook/v1/flipbook.proto`,
//! the one owner of the format.
//!
//! An event splits in two. Its *body* is fixed when it is appended (id, name, payload, content
//! type, timestamp, recorded-at, metadata); the store places it (state, version, global
//! position). A backend may keep the body encoded ([`proposed_body`]: the event's message with
//! no placing fields, which proto3 leaves out), so a read hands the stored bytes on instead of
//! decoding a row into an event and encoding it again: reading a state is then mostly a copy
//! ([`WirePage`]). Protobuf lets a message's fields come in any order, and a message is the
//! concatenation of its fields, so the placing fields are simply written ahead of the stored
//! body; a test checks that such a page decodes as the API's `ReadStateResponse`.

use std::ops::Range;

use flipbook_model::{Error, ProposedEvent, RecordedEvent, Result, Timestamp};
use flipbook_proto::v1;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::store::Page;

/// `flipbook.v1.RecordedEvent`'s placing fields, written ahead of a stored body without
/// building a message per event (the page test checks them against the generated message).
const STATE_ID: u32 = 1;
const VERSION: u32 = 2;
const GLOBAL_POSITION: u32 = 3;

/// `events`, field 1 of both `ReadStateResponse` and `ReadAllResponse`.
const EVENTS: u32 = 1;

/// About what a body adds to its payload when its metadata is small: the id, name, content type
/// and times with their keys.
pub const BODY_OVERHEAD: usize = 128;

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("corrupt stored event: {what}"))
}

/// The body of `event` appended at `recorded_at`, appended to `buf`: what a backend stores.
pub fn encode_proposed(event: &ProposedEvent, recorded_at: Timestamp, buf: &mut Vec<u8>) {
    let unplaced = RecordedEvent {
        state_id: String::new(),
        version: None,
        global_position: 0,
        event_id: event.event_id,
        name: event.name.clone(),
        payload: event.payload.clone(),
        content_type: event.content_type.clone(),
        timestamp: event.timestamp,
        recorded_at,
        metadata: event.metadata.clone(),
    };
    v1::RecordedEvent::from(unplaced).encode_raw(buf);
}

/// [`encode_proposed`] into a buffer of its own.
pub fn proposed_body(event: &ProposedEvent, recorded_at: Timestamp) -> Vec<u8> {
    let mut body = Vec::with_capacity(BODY_OVERHEAD + event.payload.len());
    encode_proposed(event, recorded_at, &mut body);
    body
}

/// A stored body, decoded and placed in its state.
pub fn decode_body(body: &[u8], state_id: String, version: Option<u64>, global_position: u64) -> Result<RecordedEvent> {
    let mut message = v1::RecordedEvent::decode(body).map_err(corrupt)?;
    message.state_id = state_id;
    message.version = version;
    message.global_position = global_position;
    RecordedEvent::try_from(message).map_err(|error| match error {
        Error::Internal(what) => corrupt(what),
        other => corrupt(other),
    })
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
    pub fn push_event(&mut self, event: RecordedEvent) {
        let message = v1::RecordedEvent::from(event);
        encode_key(EVENTS, WireType::LengthDelimited, &mut self.bytes);
        encode_varint(message.encoded_len() as u64, &mut self.bytes);
        message.encode_raw(&mut self.bytes);
        self.ends.push(self.bytes.len());
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
        for event in page.events {
            wire.push_event(event);
        }
        wire.next = page.next;
        wire
    }
}

/// A string or bytes field.
fn length_delimited(tag: u32, value: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
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
        let body = proposed_body(&proposed, Timestamp::from_unix_nanos(1_700_000_000_123_456_789));
        decode_body(&body, "wallet-1".into(), Some(seq), 1 << 20 | seq).expect("a body from an event decodes")
    }

    #[test]
    fn a_body_keeps_every_field_of_its_event() {
        let mut neutral = ProposedEvent::new("", Vec::new());
        neutral.content_type = String::new();
        for (proposed, recorded_at) in [
            (event(3, 10).as_proposed(), Timestamp::from_unix_nanos(1_700_000_000_123_456_789)),
            (neutral, Timestamp::from_unix_nanos(5)),
        ] {
            let body = proposed_body(&proposed, recorded_at);
            let back = decode_body(&body, "wallet-1".into(), None, 9).expect("decodes");
            assert_eq!(back.as_proposed(), proposed);
            assert_eq!((back.state_id.as_str(), back.version, back.global_position), ("wallet-1", None, 9));
            assert_eq!(back.recorded_at, recorded_at);
        }
        assert!(decode_body(&[0xff, 0xff], "s".into(), None, 1).is_err(), "garbage is an error, not an event");
    }

    /// Stored bodies behind their placing fields, and decoded events encoded whole, decode as
    /// the `ReadStateResponse` the API defines, field for field: what keeps the placing fields
    /// and the proto together.
    #[test]
    fn a_wire_page_is_a_read_state_response() {
        let mut timed = ProposedEvent::new("Deposited", br#"{"amount":5}"#.to_vec());
        timed.timestamp = Some(Timestamp::from_unix_nanos(-42));
        timed.metadata.insert("correlation-id".into(), "c-1".into());
        let mut binary = ProposedEvent::new("Blob", vec![0; 70_000]);
        binary.content_type = "application/octet-stream".into();
        let recorded_at = Timestamp::from_unix_nanos(1_764_000_000_000_000_007);
        let placed = [(Some(1), 1 << 16), (Some(2), (1 << 16) + 1), (None, 1 << 40)];
        let proposed = [timed, binary, ProposedEvent::new("Neutral", Vec::new())];
        let mut stored = WirePage::default();
        let mut events = Vec::new();
        for ((version, position), event) in placed.into_iter().zip(&proposed) {
            let body = proposed_body(event, recorded_at);
            stored.push("wallet-7", version, position, &body);
            events.push(decode_body(&body, "wallet-7".into(), version, position).expect("decodes"));
        }
        let decoded = WirePage::from(Page { events: events.clone(), next: None });
        let expected = v1::ReadStateResponse { events: events.into_iter().map(v1::RecordedEvent::from).collect() };
        for page in [stored, decoded] {
            assert_eq!(v1::ReadStateResponse::decode(page.into_bytes().as_slice()).expect("decodes"), expected);
        }
    }

    #[test]
    fn messages_stay_under_the_bound_except_a_single_large_event() {
        let mut page = WirePage::default();
        for (seq, payload) in [(1, 100), (2, 100), (3, 5000), (4, 100)] {
            let event = event(seq, payload);
            page.push(
                &event.state_id,
                event.version,
                event.global_position,
                &proposed_body(&event.as_proposed(), event.recorded_at),
            );
        }
        let messages = page.messages(1000);
        let sizes: Vec<usize> = messages.iter().map(|r| r.len()).collect();
        assert_eq!(messages.len(), 3, "{sizes:?}");
        assert!(sizes[0] <= 1000 && sizes[1] > 1000 && sizes[2] <= 1000, "{sizes:?}");
        assert_eq!(messages.last().map(|r| r.end), Some(page.byte_len()));
        assert_eq!(page.messages(usize::MAX), vec![0..page.byte_len()]);
    }
}
