//! A request as the server takes it: the first byte picks the method, the rest is its message's
//! bytes, decoded as the server's decoder does (an undecodable one is an invalid argument),
//! converted to the model and validated. Whatever the bytes, an answer and no panic.
#![no_main]

use flipbook_model::validate::{self, Limits};
use flipbook_model::{AllQuery, StateQuery, SubscriptionQuery, Timestamp};
use flipbook_proto::convert::{parts_from_wire, snapshot_to_store};
use flipbook_proto::request::undecodable;
use flipbook_proto::v1;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn decode<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    match M::decode(bytes) {
        Ok(message) => Some(message),
        Err(error) => {
            let _ = flipbook_proto::status::to_status(&undecodable(&error));
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&method, bytes)) = data.split_first() else { return };
    let limits = Limits::default();
    let _ = match method % 8 {
        0 => decode::<v1::AppendRequest>(bytes)
            .map(|r| flipbook_model::AppendRequest::try_from(r).and_then(|r| validate::append(&r, &limits))),
        1 => decode::<v1::AppendStatesRequest>(bytes)
            .map(|r| parts_from_wire(r).and_then(|parts| validate::append_states(&parts, &limits))),
        2 => decode::<v1::ReadStateRequest>(bytes)
            .map(|r| StateQuery::try_from(r).and_then(|q| validate::state_query(&q))),
        3 => decode::<v1::ReadAllRequest>(bytes).map(|r| AllQuery::try_from(r).and_then(|q| validate::all_query(&q))),
        4 => decode::<v1::SubscribeRequest>(bytes).map(|r| validate::subscription(&SubscriptionQuery::from(r))),
        5 => decode::<v1::PutSnapshotRequest>(bytes).map(|r| {
            snapshot_to_store(r.snapshot, Timestamp::from_unix_nanos(0)).and_then(|s| validate::snapshot(&s, &limits))
        }),
        6 => decode::<v1::GetSnapshotRequest>(bytes)
            .map(|r| validate::snapshot_query(&flipbook_model::SnapshotQuery::from(r))),
        _ => decode::<v1::GetHeadRequest>(bytes).map(|r| validate::head(&r.state_id)),
    }
    .map(|result| result.map_err(|error| flipbook_proto::status::to_status(&error)));
});
