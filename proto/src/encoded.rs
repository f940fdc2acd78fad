//! Response messages the server holds already encoded (by the stores: `flipbook_storage::wire`), and the
//! codec that sends them as they are. The server's `ReadState` answers with them
//! ([`crate::server`]); clients decode the same bytes as `ReadStateResponse`.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// One response message, encoded.
#[derive(Clone, Debug)]
pub struct Encoded(pub Bytes);

/// Sends [`Encoded`] messages and decodes requests of type `U` with prost.
#[derive(Debug)]
pub struct EncodedCodec<U>(PhantomData<U>);

impl<U> Default for EncodedCodec<U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<U: prost::Message + Default + Send + 'static> Codec for EncodedCodec<U> {
    type Encode = Encoded;
    type Decode = U;
    type Encoder = EncodedEncoder;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

#[derive(Debug)]
pub struct EncodedEncoder;

impl Encoder for EncodedEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use flipbook_model::{ProposedEvent, RecordedEvent, Timestamp};
    use flipbook_storage::Page;
    use flipbook_storage::wire::{Body, WirePage};
    use prost::Message;

    use crate::v1;

    fn recorded(version: Option<u64>, position: u64, mut event: ProposedEvent) -> RecordedEvent {
        event.metadata.insert("correlation-id".into(), "c-1".into());
        Body::of(&event, Timestamp::from_unix_nanos(1_764_000_000_000_000_007))
            .into_event("wallet-7".into(), version, position)
            .expect("a fresh body decodes")
    }

    /// Stored bodies behind their placing fields decode as the `ReadStateResponse` the API
    /// defines, field for field: what keeps `flipbook_storage::wire` and the proto together.
    #[test]
    fn a_wire_page_is_a_read_state_response() {
        let mut timed = ProposedEvent::new("Deposited", br#"{"amount":5}"#.to_vec());
        timed.timestamp = Some(Timestamp::from_unix_nanos(-42));
        let mut binary = ProposedEvent::new("Blob", vec![0; 70_000]);
        binary.content_type = "application/octet-stream".into();
        let events = vec![
            recorded(Some(1), 1 << 16, timed),
            recorded(Some(2), (1 << 16) + 1, binary),
            recorded(None, 1 << 40, ProposedEvent::new("Neutral", Vec::new())),
        ];
        let page = WirePage::from(Page { events: events.clone(), next: None });
        let decoded = v1::ReadStateResponse::decode(page.into_bytes().as_slice()).expect("decodes");
        let expected = v1::ReadStateResponse { events: events.into_iter().map(v1::RecordedEvent::from).collect() };
        assert_eq!(decoded, expected);
    }
}
