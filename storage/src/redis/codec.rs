//! The byte layout of events and snapshots in Redis values: fields in a fixed order, each
//! length-prefixed (u32, big endian), numbers as 8 bytes. Small, fast, and no dependency.

use crate::encoding::{metadata_from_json, metadata_json};
use crate::error::{Error, Result};
use crate::model::{RecordedEvent, Snapshot, Timestamp};

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

/// An event without its global position (the key it is stored under).
pub(super) fn encode_event(event: &RecordedEvent) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(event.state_id.as_bytes())
        .optional(event.version.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
        .bytes(event.event_id.as_bytes())
        .bytes(event.name.as_bytes())
        .bytes(&event.payload)
        .bytes(event.content_type.as_bytes())
        .optional(event.timestamp.map(Timestamp::unix_nanos))
        .number(event.recorded_at.unix_nanos())
        .bytes(metadata_json(&event.metadata).as_bytes());
    w.0
}

pub(super) fn decode_event(global_position: u64, value: &[u8]) -> Result<RecordedEvent> {
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

    #[test]
    fn events_round_trip() {
        let event = RecordedEvent {
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
        };
        assert_eq!(decode_event(42, &encode_event(&event)).expect("decode"), event);
        let neutral = RecordedEvent { version: None, timestamp: None, metadata: Default::default(), ..event };
        assert_eq!(decode_event(42, &encode_event(&neutral)).expect("decode"), neutral);
        assert!(decode_event(1, &encode_event(&neutral)[..10]).is_err());
    }
}
