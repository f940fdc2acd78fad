//! The byte layout of a chunk: the events of (part of) one append, in one binary attribute.
//! What the events share is written once (state, kind, first sequence number and position,
//! recorded-at); each event is its id and its fields, each length-prefixed (u32, big endian).

use flipbook_model::{Error, ProposedEvent, RecordedEvent, Result, Timestamp};
use uuid::Uuid;

use crate::encoding::{metadata_from_json, metadata_json};

const FORMAT: u8 = 1;

/// What the events of a chunk share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChunkHead {
    pub versioned: bool,
    pub first_seq: u64,
    pub first_position: u64,
    pub recorded_at: Timestamp,
}

fn corrupt() -> Error {
    Error::Internal("a corrupt event chunk in DynamoDB".to_owned())
}

fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(value);
}

/// One event's part of a chunk; its size is what the append checks against an item's limit.
pub(super) fn encode_event(event: &ProposedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + event.payload.len());
    out.extend_from_slice(event.event_id.as_bytes());
    bytes(&mut out, event.name.as_bytes());
    bytes(&mut out, &event.payload);
    bytes(&mut out, event.content_type.as_bytes());
    out.push(u8::from(event.timestamp.is_some()));
    out.extend_from_slice(&event.timestamp.map_or(0, Timestamp::unix_nanos).to_be_bytes());
    bytes(&mut out, metadata_json(&event.metadata).as_bytes());
    out
}

/// A chunk from its head, state and encoded events.
pub(super) fn encode_chunk(head: ChunkHead, state_id: &str, events: &[Vec<u8>]) -> Vec<u8> {
    let size: usize = events.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(40 + state_id.len() + size);
    out.push(FORMAT);
    out.push(u8::from(head.versioned));
    out.extend_from_slice(&head.first_seq.to_be_bytes());
    out.extend_from_slice(&head.first_position.to_be_bytes());
    out.extend_from_slice(&head.recorded_at.unix_nanos().to_be_bytes());
    bytes(&mut out, state_id.as_bytes());
    out.extend_from_slice(&u32::try_from(events.len()).unwrap_or(u32::MAX).to_be_bytes());
    for event in events {
        out.extend_from_slice(event);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| corrupt())?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| corrupt())?))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().map_err(|_| corrupt())?))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn text(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt())
    }
}

/// A chunk's first sequence number and its events, in sequence order.
pub(super) fn decode_chunk(value: &[u8]) -> Result<(u64, Vec<RecordedEvent>)> {
    let mut r = Reader(value);
    if r.u8()? != FORMAT {
        return Err(corrupt());
    }
    let versioned = r.u8()? == 1;
    let first_seq = r.u64()?;
    let first_position = r.u64()?;
    let recorded_at = Timestamp::from_unix_nanos(r.i64()?);
    let state_id = r.text()?;
    let count = r.u32()? as u64;
    let mut events = Vec::with_capacity(count.min(1024) as usize);
    for i in 0..count {
        let event_id = Uuid::from_slice(r.take(16)?).map_err(|_| corrupt())?;
        let name = r.text()?;
        let payload = r.bytes()?.to_vec();
        let content_type = r.text()?;
        let has_timestamp = r.u8()? == 1;
        let timestamp = r.i64()?;
        let metadata = metadata_from_json(&r.text()?)?;
        events.push(RecordedEvent {
            state_id: state_id.clone(),
            version: versioned.then_some(first_seq + i),
            global_position: first_position + i,
            event_id,
            name,
            payload,
            content_type,
            timestamp: has_timestamp.then_some(Timestamp::from_unix_nanos(timestamp)),
            recorded_at,
            metadata,
        });
    }
    Ok((first_seq, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip() {
        let mut first = ProposedEvent::new("Deposited", vec![0, 1, 255]);
        first.timestamp = Some(Timestamp::from_unix_nanos(-5));
        first.metadata = [("trace".to_owned(), "abc".to_owned())].into();
        let second = ProposedEvent::new("Withdrawn", b"{}".to_vec());
        let head =
            ChunkHead { versioned: true, first_seq: 7, first_position: 42, recorded_at: Timestamp::from_unix_nanos(9) };
        let chunk = encode_chunk(head, "wallet/1", &[encode_event(&first), encode_event(&second)]);
        let (first_seq, events) = decode_chunk(&chunk).expect("decode");
        assert_eq!(first_seq, 7);
        assert_eq!(events.len(), 2);
        assert!(first.is_recorded_as(&events[0]) && second.is_recorded_as(&events[1]));
        assert_eq!((events[1].version, events[1].global_position), (Some(8), 43));
        assert_eq!(events[0].recorded_at, Timestamp::from_unix_nanos(9));
        assert_eq!(events[0].state_id, "wallet/1");

        let neutral = encode_chunk(ChunkHead { versioned: false, ..head }, "s", &[encode_event(&second)]);
        assert_eq!(decode_chunk(&neutral).expect("decode").1[0].version, None);
        assert!(decode_chunk(&chunk[..chunk.len() - 3]).is_err());
    }
}
