//! Bad input at the edge: one test per rule. Each asserts INVALID_ARGUMENT (or, for data over a
//! limit, RESOURCE_EXHAUSTED / TOO_LARGE), the reason, the field named in `google.rpc.BadRequest`,
//! that nothing was stored, and that the server goes on serving.

mod common;

use std::collections::BTreeMap;

use common::{assert_invalid, assert_too_large};
use flipbook_proto::v1::event_store_client::EventStoreClient;
use flipbook_proto::v1::snapshot_store_client::SnapshotStoreClient;
use flipbook_proto::v1::{self, append_request::Expected};
use tonic::Code;
use tonic::transport::Channel;

struct Fixture {
    channel: Channel,
    events: EventStoreClient<Channel>,
    snapshots: SnapshotStoreClient<Channel>,
}

async fn fixture() -> Fixture {
    let server = common::start_server().await;
    let channel = common::channel(server.addr).await;
    let max = 64 * 1024 * 1024;
    Fixture {
        events: EventStoreClient::new(channel.clone()).max_encoding_message_size(max),
        snapshots: SnapshotStoreClient::new(channel.clone()).max_encoding_message_size(max),
        channel,
    }
}

const STATE: &str = "wallet-1";

fn event(n: u32) -> v1::ProposedEvent {
    v1::ProposedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        name: "Deposited".into(),
        payload: format!("{{\"amount\":{n}}}").into_bytes(),
        ..Default::default()
    }
}

fn append(events: Vec<v1::ProposedEvent>) -> v1::AppendRequest {
    v1::AppendRequest { state_id: STATE.into(), events, ..Default::default() }
}

impl Fixture {
    /// Nothing reached the store, and a good append still works afterwards.
    async fn assert_nothing_stored_and_still_serving(&mut self) {
        let all = self.events.read_all(v1::ReadAllRequest::default()).await.expect("read all");
        let mut stream = all.into_inner();
        while let Some(message) = stream.message().await.expect("a message") {
            assert!(message.events.is_empty(), "nothing stored");
        }
        let head = self.events.get_head(v1::GetHeadRequest { state_id: STATE.into() }).await;
        assert_eq!(head.expect_err("no head").code(), Code::NotFound);
        let ok = self.events.append(append(vec![event(1)])).await.expect("the server still serves");
        assert_eq!(ok.into_inner().last_version, Some(1));
    }

    async fn refuse_append(&mut self, request: v1::AppendRequest, field: &str) {
        assert_invalid(self.events.append(request).await, field);
        self.assert_nothing_stored_and_still_serving().await;
    }

    async fn refuse_too_large(&mut self, request: v1::AppendRequest, field: &str) {
        assert_too_large(self.events.append(request).await, field);
        self.assert_nothing_stored_and_still_serving().await;
    }
}

macro_rules! bad_append {
    ($refuse:ident { $($name:ident: $request:expr => $field:expr;)+ }) => {
        $(
            #[tokio::test]
            async fn $name() {
                let mut fixture = fixture().await;
                fixture.$refuse($request, $field).await;
            }
        )+
    };
}

fn with_event(change: impl FnOnce(&mut v1::ProposedEvent)) -> v1::AppendRequest {
    let mut e = event(1);
    change(&mut e);
    append(vec![event(0), e])
}

fn versioned(versions: &[Option<u64>]) -> Vec<v1::ProposedEvent> {
    versions.iter().map(|&version| v1::ProposedEvent { version, ..event(1) }).collect()
}

bad_append! { refuse_append {
    state_id_empty: v1::AppendRequest { state_id: String::new(), ..append(vec![event(1)]) } => "state_id";
    state_id_too_long: v1::AppendRequest { state_id: "s".repeat(257), ..append(vec![event(1)]) } => "state_id";
    state_id_control_character: v1::AppendRequest { state_id: "wallet\n1".into(), ..append(vec![event(1)]) } => "state_id";
    no_events: append(vec![]) => "events";
    event_id_not_a_uuid: with_event(|e| e.event_id = "not-a-uuid".into()) => "events[1].event_id";
    event_id_twice_in_one_append: {
        let e = event(1);
        append(vec![e.clone(), e])
    } => "events[1].event_id";
    name_empty: with_event(|e| e.name = String::new()) => "events[1].name";
    name_too_long: with_event(|e| e.name = "n".repeat(129)) => "events[1].name";
    name_control_character: with_event(|e| e.name = "Depo\u{7}sited".into()) => "events[1].name";
    content_type_control_character: with_event(|e| e.content_type = "text/\tplain".into()) => "events[1].content_type";
    timestamp_out_of_range: with_event(|e| e.timestamp = Some(prost_types::Timestamp { seconds: 0, nanos: -5 })) => "events[1].timestamp";
    timestamp_past_2262: with_event(|e| e.timestamp = Some(prost_types::Timestamp { seconds: i64::MAX / 2, nanos: 0 })) => "events[1].timestamp";
    metadata_empty_key: with_event(|e| e.metadata = BTreeMap::from([(String::new(), "v".into())])) => "events[1].metadata[\"\"]";
    versions_on_some_events_only: append(versioned(&[Some(1), None])) => "events[1].version";
    version_zero: append(versioned(&[Some(0)])) => "events[0].version";
    versions_with_a_gap: append(versioned(&[Some(1), Some(3)])) => "events[1].version";
    versions_not_after_expected: v1::AppendRequest {
        expected: Some(Expected::ExactVersion(4)),
        ..append(versioned(&[Some(4)]))
    } => "events[0].version";
    version_on_a_neutral_append: v1::AppendRequest { version_neutral: true, ..append(versioned(&[Some(1)])) } => "events[0].version";
    exact_version_on_a_neutral_append: v1::AppendRequest {
        version_neutral: true,
        expected: Some(Expected::ExactVersion(0)),
        ..append(vec![event(1)])
    } => "expected";
    state_metadata_control_character_key: v1::AppendRequest {
        state_metadata: BTreeMap::from([("own\u{0}er".into(), "ada".into())]),
        ..append(vec![event(1)])
    } => "state_metadata[\"own\\0er\"]";
}}

// Data over a limit: one rule, TOO_LARGE naming the field (docs/spec.md §2, "Limits").
bad_append! { refuse_too_large {
    too_many_events: append((0..1001).map(event).collect()) => "events";
    payload_too_large: with_event(|e| e.payload = vec![b'x'; 1024 * 1024 + 1]) => "events[1].payload";
    metadata_too_large: with_event(|e| e.metadata = BTreeMap::from([("k".into(), "v".repeat(70_000))])) => "events[1].metadata";
    state_metadata_too_large: v1::AppendRequest {
        state_metadata: BTreeMap::from([("k".into(), "v".repeat(70_000))]),
        ..append(vec![event(1)])
    } => "state_metadata";
}}

fn parts(parts: Vec<v1::AppendRequest>) -> v1::AppendStatesRequest {
    v1::AppendStatesRequest { parts }
}

fn part(state_id: &str, events: Vec<v1::ProposedEvent>) -> v1::AppendRequest {
    v1::AppendRequest { state_id: state_id.into(), events, ..Default::default() }
}

/// An append to several states is refused whole when any part breaks a rule (the field names
/// the part), when parts repeat a state or an event id, or when it holds too much.
#[tokio::test]
async fn bad_appends_to_several_states_are_refused() {
    let mut fixture = fixture().await;
    let shared = event(7);
    let cases = [
        (parts(vec![]), "parts"),
        (parts(vec![part(STATE, vec![event(1)]), part("other", vec![])]), "parts[1].events"),
        (parts(vec![part(STATE, vec![event(1)]), part("", vec![event(2)])]), "parts[1].state_id"),
        (
            parts(vec![
                part(STATE, vec![event(1)]),
                part("other", vec![v1::ProposedEvent { name: String::new(), ..event(2) }]),
            ]),
            "parts[1].events[0].name",
        ),
        (
            parts(vec![
                part(STATE, vec![event(1)]),
                part("other", vec![v1::ProposedEvent { event_id: "x".into(), ..event(2) }]),
            ]),
            "parts[1].events[0].event_id",
        ),
        (parts(vec![part(STATE, vec![event(1)]), part(STATE, vec![event(2)])]), "parts[1].state_id"),
        (parts(vec![part(STATE, vec![shared.clone()]), part("other", vec![shared])]), "parts[1].events[0].event_id"),
    ];
    let too_large = [
        (parts((0..65).map(|i| part(&format!("s{i}"), vec![event(i)])).collect()), "parts"),
        (
            parts(vec![part(STATE, (0..600).map(event).collect()), part("other", (0..401).map(event).collect())]),
            "parts",
        ),
        (
            parts(vec![
                part(STATE, vec![event(1)]),
                part("other", vec![v1::ProposedEvent { payload: vec![0; 1024 * 1024 + 1], ..event(2) }]),
            ]),
            "parts[1].events[0].payload",
        ),
    ];
    for (request, field) in cases {
        assert_invalid(fixture.events.append_states(request).await, field);
        fixture.assert_nothing_stored_and_still_serving().await;
        // What the check left behind is removed so the next case starts from nothing.
        fixture = self::fixture().await;
    }
    for (request, field) in too_large {
        assert_too_large(fixture.events.append_states(request).await, field);
        fixture.assert_nothing_stored_and_still_serving().await;
        fixture = self::fixture().await;
    }
}

#[tokio::test]
async fn bad_reads_are_refused() {
    let mut f = fixture().await;
    let read = |change: fn(&mut v1::ReadStateRequest)| {
        let mut request = v1::ReadStateRequest { state_id: STATE.into(), ..Default::default() };
        change(&mut request);
        request
    };
    assert_invalid(f.events.read_state(read(|r| r.state_id.clear())).await, "state_id");
    assert_invalid(f.events.read_state(read(|r| r.state_id = "x".repeat(300))).await, "state_id");
    assert_invalid(
        f.events
            .read_state(read(|r| {
                r.min_version = Some(5);
                r.max_version = Some(4);
            }))
            .await,
        "min_version",
    );
    assert_invalid(f.events.read_state(read(|r| r.direction = 7)).await, "direction");
    assert_invalid(f.events.read_state(read(|r| r.names = vec![String::new()])).await, "names[0]");
    assert_invalid(
        f.events
            .read_state(read(|r| r.as_of = Some(prost_types::Timestamp { seconds: 1, nanos: 2_000_000_000 })))
            .await,
        "as_of",
    );
    // The year 2300: past what nanoseconds in a signed 64-bit integer hold (docs/spec.md).
    assert_invalid(
        f.events
            .read_state(read(|r| r.as_of = Some(prost_types::Timestamp { seconds: 10_413_792_000, nanos: 0 })))
            .await,
        "as_of",
    );
    assert_invalid(f.events.get_head(v1::GetHeadRequest { state_id: String::new() }).await, "state_id");
    let all = |change: fn(&mut v1::ReadAllRequest)| {
        let mut request = v1::ReadAllRequest::default();
        change(&mut request);
        request
    };
    assert_invalid(f.events.read_all(all(|r| r.state_id_prefix = "p".repeat(257))).await, "state_id_prefix");
    assert_invalid(f.events.read_all(all(|r| r.names = vec!["ok".into(), "\n".into()])).await, "names[1]");
    assert_invalid(f.events.read_all(all(|r| r.direction = 2)).await, "direction");
    f.assert_nothing_stored_and_still_serving().await;
}

fn snapshot(change: impl FnOnce(&mut v1::Snapshot)) -> v1::PutSnapshotRequest {
    let mut snapshot = v1::Snapshot {
        state_id: STATE.into(),
        version: 3,
        reducer_revision: "wallet-v1".into(),
        payload: b"{\"balance\":3}".to_vec(),
        ..Default::default()
    };
    change(&mut snapshot);
    v1::PutSnapshotRequest { snapshot: Some(snapshot) }
}

#[tokio::test]
async fn bad_snapshots_are_refused_and_not_stored() {
    let mut f = fixture().await;
    let puts = [
        (v1::PutSnapshotRequest { snapshot: None }, "snapshot"),
        (snapshot(|s| s.state_id.clear()), "snapshot.state_id"),
        (snapshot(|s| s.reducer_revision.clear()), "snapshot.reducer_revision"),
        (snapshot(|s| s.reducer_revision = "r".repeat(129)), "snapshot.reducer_revision"),
        (snapshot(|s| s.version = 0), "snapshot.version"),
        (snapshot(|s| s.content_type = "\u{1b}[31m".into()), "snapshot.content_type"),
        (snapshot(|s| s.created_at = Some(prost_types::Timestamp { seconds: 0, nanos: -1 })), "snapshot.created_at"),
    ];
    for (request, field) in puts {
        assert_invalid(f.snapshots.put_snapshot(request).await, field);
    }
    let over = snapshot(|s| s.payload = vec![0; 4 * 1024 * 1024 - 64 * 1024 + 1]);
    assert_too_large(f.snapshots.put_snapshot(over).await, "snapshot.payload");
    let get =
        v1::GetSnapshotRequest { state_id: STATE.into(), reducer_revision: "wallet-v1".into(), max_version: None };
    assert_eq!(f.snapshots.get_snapshot(get.clone()).await.expect_err("nothing stored").code(), Code::NotFound);
    let no_revision = v1::GetSnapshotRequest { reducer_revision: String::new(), ..get.clone() };
    assert_invalid(f.snapshots.get_snapshot(no_revision).await, "reducer_revision");
    assert_invalid(
        f.snapshots.delete_snapshots(v1::DeleteSnapshotsRequest { state_id: String::new() }).await,
        "state_id",
    );

    f.snapshots.put_snapshot(snapshot(|_| {})).await.expect("a good snapshot is stored");
    assert_eq!(
        f.snapshots.get_snapshot(get).await.expect("stored").into_inner().snapshot.expect("a snapshot").version,
        3
    );
}

#[tokio::test]
async fn a_request_above_the_message_limit_is_refused_whole() {
    let mut f = fixture().await;
    // 40 events of 1 MiB: each within the payload limit, together above max_request_bytes.
    let big: Vec<_> = (0..40).map(|n| v1::ProposedEvent { payload: vec![b'x'; 1024 * 1024], ..event(n) }).collect();
    let status = f.events.append(append(big)).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(flipbook_proto::status::reason_of(&status).as_deref(), Some("TOO_LARGE"));
    let details = tonic_types::StatusExt::get_error_details(&status);
    let limit = details.error_info().and_then(|info| info.metadata.get("limit").cloned()).unwrap_or_default();
    assert!(limit.contains(&(32 * 1024 * 1024).to_string()), "names max_request_bytes: {status:?}");
    assert!(details.bad_request().is_none(), "a whole request names no field: {status:?}");
    // The same on a streaming method's request.
    let huge_prefix = v1::SubscribeRequest { state_id_prefix: "p".repeat(33 * 1024 * 1024), ..Default::default() };
    let mut bus = v1::event_bus_client::EventBusClient::new(f.channel.clone()).max_encoding_message_size(64 << 20);
    let status = bus.subscribe(huge_prefix).await.expect_err("too large");
    assert_eq!(flipbook_proto::status::reason_of(&status).as_deref(), Some("TOO_LARGE"), "{status:?}");
    f.assert_nothing_stored_and_still_serving().await;
}

/// Sends bytes as they are, as a broken or hostile client would; decodes the answer as `T`.
#[derive(Debug)]
struct RawCodec<T>(std::marker::PhantomData<T>);

impl<T: prost::Message + Default + Send + 'static> tonic::codec::Codec for RawCodec<T> {
    type Encode = Vec<u8>;
    type Decode = T;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<T>;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

#[derive(Debug)]
struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

/// A raw call's answer: the status of a unary call, or of a stream's first message.
async fn raw_call<T: prost::Message + Default + Send + 'static>(
    channel: Channel,
    path: &'static str,
    body: Vec<u8>,
    streaming: bool,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let codec = RawCodec::<T>(std::marker::PhantomData);
    if streaming {
        let mut stream = grpc.server_streaming(tonic::Request::new(body), path, codec).await?.into_inner();
        stream.message().await.map(drop)
    } else {
        grpc.unary(tonic::Request::new(body), path, codec).await.map(drop)
    }
}

/// Bytes that are not a message of the method's request type: INVALID_ARGUMENT naming the field
/// prost was decoding (never INTERNAL, which says "bug"), on every service; nothing stored.
#[tokio::test]
async fn requests_that_do_not_decode_are_invalid_arguments() {
    use prost::Message;
    let mut f = fixture().await;
    let not_utf8 = |message: Vec<u8>, text: &[u8]| {
        let mut bytes = message;
        let at = bytes.windows(text.len()).position(|w| w == text).expect("the text");
        bytes[at] = 0xff;
        bytes
    };
    let append = append(vec![v1::ProposedEvent { name: "Deposited".into(), ..event(1) }]).encode_to_vec();
    let head = v1::GetHeadRequest { state_id: STATE.into() }.encode_to_vec();
    let put = snapshot(|_| {}).encode_to_vec();
    let subscribe = v1::SubscribeRequest { state_id_prefix: "wallet".into(), ..Default::default() }.encode_to_vec();
    let cases = [
        ("/flipbook.v1.EventStore/Append", not_utf8(append.clone(), b"Deposited"), "events.name", false),
        ("/flipbook.v1.EventStore/Append", append[..append.len() - 3].to_vec(), "events", false),
        ("/flipbook.v1.EventStore/GetHead", not_utf8(head.clone(), STATE.as_bytes()), "state_id", false),
        ("/flipbook.v1.EventStore/ReadState", not_utf8(head, STATE.as_bytes()), "state_id", true),
        ("/flipbook.v1.SnapshotStore/PutSnapshot", not_utf8(put, b"wallet-v1"), "snapshot.reducer_revision", false),
        ("/flipbook.v1.EventBus/Subscribe", not_utf8(subscribe, b"wallet"), "state_id_prefix", true),
        ("/flipbook.v1.ServerInfo/GetServerInfo", vec![0x0a, 0xff], "", false),
    ];
    for (path, body, field, streaming) in cases {
        let status = raw_call::<v1::AppendResponse>(f.channel.clone(), path, body, streaming).await.expect_err(path);
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert_eq!(flipbook_proto::status::reason_of(&status).as_deref(), Some("INVALID_ARGUMENT"), "{path}");
        let details = tonic_types::StatusExt::get_error_details(&status);
        let named = details.bad_request().map(|b| b.field_violations[0].field.clone()).unwrap_or_default();
        assert_eq!(named, field, "{path}: {status:?}");
        assert!(status.message().contains("does not decode"), "{path}: {status:?}");
    }
    f.assert_nothing_stored_and_still_serving().await;
}
