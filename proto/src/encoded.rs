//! Response messages the server holds already encoded (the stores keep events in this API's
//! encoding: `flipbook_storage::wire`), and the codec that sends them as they are. The server's `ReadState` answers with them
//! ([`crate::server`]); clients decode the same bytes as `ReadStateResponse`.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};

use crate::request::RequestDecoder;

/// One response message, encoded: its events (field 1, shared with the page they were cut from)
/// and what follows them (later fields, such as ReadAll's settled position; often empty).
#[derive(Clone, Debug)]
pub struct Encoded {
    pub events: Bytes,
    pub trailer: Bytes,
}

/// Sends [`Encoded`] messages and decodes requests of type `U` as every server method does
/// ([`RequestDecoder`]).
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
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder::default()
    }
}

#[derive(Debug)]
pub struct EncodedEncoder;

impl Encoder for EncodedEncoder {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item.events);
        buf.put(item.trailer);
        Ok(())
    }
}
