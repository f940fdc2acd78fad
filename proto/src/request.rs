//! Requests as the server decodes them. A message that does not decode (a string that is not
//! UTF-8, a truncated field, a wrong wire type) is the client's mistake, not a bug: it answers
//! INVALID_ARGUMENT naming the field prost was decoding, where tonic's own decoder answers
//! INTERNAL with no details. Clients keep tonic's codec.

use std::marker::PhantomData;

use flipbook_model::Error;
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use crate::status::to_status;

/// Decodes requests of type `U` with prost, refusing undecodable ones as invalid arguments.
#[derive(Debug)]
pub struct RequestDecoder<U>(PhantomData<U>);

impl<U> Default for RequestDecoder<U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| to_status(&undecodable(&error)))
    }
}

/// The server's codec for every method that answers with generated messages: prost's encoder,
/// [`RequestDecoder`].
#[derive(Debug)]
pub struct RequestCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T: Message + Send + 'static, U: Message + Default + Send + 'static> Codec for RequestCodec<T, U> {
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder::default()
    }
}

/// The invalid argument for a decode error. prost keeps the path of the field it was decoding
/// as `(message, field)` pairs, innermost first, and shows it only in its message:
/// `failed to decode Protobuf message: ProposedEvent.name: AppendRequest.events: invalid string
/// value: data is not UTF-8 encoded` names `events.name` (the index of a repeated field is not
/// known there).
pub fn undecodable(error: &prost::DecodeError) -> Error {
    let text = error.to_string();
    let mut rest = text.strip_prefix("failed to decode Protobuf message: ").unwrap_or(&text);
    let mut path = Vec::new();
    while let Some((segment, after)) = rest.split_once(": ")
        && let Some((message, field)) = segment.split_once('.')
        && is_identifier(message)
        && is_identifier(field)
    {
        path.push(field);
        rest = after;
    }
    path.reverse();
    Error::invalid(path.join("."), format!("does not decode: {rest}"))
}

fn is_identifier(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    fn decode<U: Message + Default + std::fmt::Debug>(bytes: &[u8]) -> Error {
        let error = U::decode(bytes).expect_err("does not decode");
        undecodable(&error)
    }

    #[test]
    fn a_string_that_is_not_utf8_names_its_field() {
        let event = v1::ProposedEvent { name: "Deposited".into(), ..Default::default() };
        let mut bytes =
            v1::AppendRequest { state_id: "s".into(), events: vec![event], ..Default::default() }.encode_to_vec();
        let at = bytes.windows(9).position(|w| w == b"Deposited").expect("the name");
        bytes[at] = 0xff;
        let Error::InvalidArgument { field, rule } = decode::<v1::AppendRequest>(&bytes) else { panic!() };
        assert_eq!(field, "events.name");
        assert!(rule.starts_with("does not decode: invalid string value"), "{rule}");

        let mut top = v1::GetHeadRequest { state_id: "wallet".into() }.encode_to_vec();
        top[2] = 0xc3; // a lone lead byte
        let Error::InvalidArgument { field, .. } = decode::<v1::GetHeadRequest>(&top) else { panic!() };
        assert_eq!(field, "state_id");
    }

    #[test]
    fn a_truncated_message_is_an_invalid_argument() {
        let bytes = v1::GetHeadRequest { state_id: "wallet".into() }.encode_to_vec();
        let Error::InvalidArgument { rule, .. } = decode::<v1::GetHeadRequest>(&bytes[..4]) else { panic!() };
        assert!(rule.starts_with("does not decode"), "{rule}");
    }
}
