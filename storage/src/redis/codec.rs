//! The byte layout of events and snapshots in Redis values: fields in a fixed order, each
//! length-prefixed (u32, big endian), numbers as 8 bytes. Small, fast, and no dependency.
//!
//! An event's value ends with its body encoded as the API sends it ([`crate::wire`]), so a read
//! of a state copies it into the response instead of decoding and encoding the event.

use flipbook_model::{Error, ProposedEvent, RecordedEvent, Result, Snapshot, Timestamp};

use crate::encoding::metadata_from_json;
use crate::wire::{BODY_OVERHEAD, decode_body, encode_proposed};

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(value);
        self
    }

    fn number(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn optional(&mut self, value: Option<i64>) -> &mut Self {
        self.0.push(u8::from(value.is_some()));
        self.number(value.unwrap_or_default())
    }
}

struct Reader<'a>(&'a [u8]);

fn corrupt() -> Error {
    Error::Internal("a corrupt value in Redis".to_owned())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| corrupt())?);
        self.take(len as usize)
    }

    fn text(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt())
    }

    fn number(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().map_err(|_| corrupt())?))
    }

    fn optional(&mut self) -> Result<Option<i64>> {
        let present = self.take(1)?[0] == 1;
        let value = self.number()?;
        Ok(present.then_some(value))
    }
}

/// Marks an event's value as [`encode_event`] writes it. Values written before bodies were
/// stored encoded begin with a state id's length (a `u32`, big endian: a zero byte for any id
/// the server accepts), and are still read ([`decode_event`]).
const WITH_BODY: u8 = 0xFB;

/// An event without its global position (the key it is stored under): the marker, its version,
/// its state, then its body as appended at `recorded_at`.
pub(super) fn encode_event(
    state_id: &str,
    version: Option<u64>,
    event: &ProposedEvent,
    recorded_at: Timestamp,
) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(1 + 9 + 4 + state_id.len() + BODY_OVERHEAD + event.payload.len()));
    w.0.push(WITH_BODY);
    w.optional(version.map(|v| i64::try_from(v).unwrap_or(i64::MAX))).bytes(state_id.as_bytes());
    encode_proposed(event, recorded_at, &mut w.0);
    w.0
}

/// An event's value, split but not decoded.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StoredEvent<'a> {
    pub version: Option<u64>,
    pub state_id: &'a str,
    /// Encoded as the API sends it.
    pub body: &'a [u8],
}

/// An event's parts, borrowed from its value; `None` for a value written before bodies were
/// stored encoded.
pub(super) fn split_event(value: &[u8]) -> Result<Option<StoredEvent<'_>>> {
    let Some((&WITH_BODY, rest)) = value.split_first() else { return Ok(None) };
    let mut r = Reader(rest);
    let version = r.optional()?.map(|v| u64::try_from(v).unwrap_or_default());
    let state_id = std::str::from_utf8(r.bytes()?).map_err(|_| corrupt())?;
    Ok(Some(StoredEvent { version, state_id, body: r.0 }))
}

pub(super) fn decode_event(global_position: u64, value: &[u8]) -> Result<RecordedEvent> {
    match split_event(value)? {
        Some(stored) => decode_body(stored.body, stored.state_id.to_owned(), stored.version, global_position),
        None => decode_event_without_body(global_position, value),
    }
}

/// A value from before bodies were stored encoded: every field in the codec's own layout.
fn decode_event_without_body(global_position: u64, value: &[u8]) -> Result<RecordedEvent> {
    let mut r = Reader(value);
    Ok(RecordedEvent {
        global_position,
        state_id: r.text()?,
        version: r.optional()?.map(|v| u64::try_from(v).unwrap_or_default()),
        event_id: uuid::Uuid::from_slice(r.bytes()?).map_err(|_| corrupt())?,
        name: r.text()?,
        payload: r.bytes()?.to_vec(),
        content_type: r.text()?,
        timestamp: r.optional()?.map(Timestamp::from_unix_nanos),
        recorded_at: Timestamp::from_unix_nanos(r.number()?),
        metadata: metadata_from_json(&r.text()?)?,
    })
}

/// A snapshot's value; its state, revision and version are in its key.
pub(super) fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(snapshot.content_type.as_bytes()).number(snapshot.created_at.unix_nanos()).bytes(&snapshot.payload);
    w.0
}

/// Content type, created at, payload.
pub(super) fn decode_snapshot(value: &[u8]) -> Result<(String, Timestamp, Vec<u8>)> {
    let mut r = Reader(value);
    Ok((r.text()?, Timestamp::from_unix_nanos(r.number()?), r.bytes()?.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> RecordedEvent {
        RecordedEvent {
            state_id: "wallet/1".into(),
            version: Some(7),
            global_position: 42,
            event_id: uuid::Uuid::new_v4(),
            name: "Deposited".into(),
            payload: vec![0, 1, 2, 255],
            content_type: "application/octet-stream".into(),
            timestamp: Some(Timestamp::from_unix_nanos(-5)),
            recorded_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
            metadata: [("trace".to_owned(), "abc".to_owned())].into(),
        }
    }

    fn encode(event: &RecordedEvent) -> Vec<u8> {
        encode_event(&event.state_id, event.version, &event.as_proposed(), event.recorded_at)
    }

    #[test]
    fn events_round_trip() {
        let event = event();
        assert_eq!(decode_event(42, &encode(&event)).expect("decode"), event);
        let neutral = RecordedEvent { version: None, timestamp: None, metadata: Default::default(), ..event };
        assert_eq!(decode_event(42, &encode(&neutral)).expect("decode"), neutral);
        assert!(decode_event(1, &encode(&neutral)[..10]).is_err());
    }

    /// Values written before bodies were stored encoded are read as they were.
    #[test]
    fn values_without_a_body_are_still_read() {
        let event = event();
        let mut w = Writer::default();
        w.bytes(event.state_id.as_bytes())
            .optional(Some(7))
            .bytes(event.event_id.as_bytes())
            .bytes(event.name.as_bytes())
            .bytes(&event.payload)
            .bytes(event.content_type.as_bytes())
            .optional(Some(-5))
            .number(event.recorded_at.unix_nanos())
            .bytes(br#"{"trace":"abc"}"#);
        assert_eq!(split_event(&w.0).expect("a value"), None);
        assert_eq!(decode_event(42, &w.0).expect("decode"), event);
    }
}
