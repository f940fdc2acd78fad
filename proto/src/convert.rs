//! Wire messages to domain types and back. Conversions that can fail (an event id that is not a
//! UUID, a timestamp out of range) fail with `InvalidArgument` naming the field.

use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, DEFAULT_CONTENT_TYPE, Delivery, Direction, Error, Expectation,
    ProposedEvent, RecordedEvent, Snapshot, SnapshotQuery, StateHead, StateKind, StateQuery, SubscriptionQuery,
    SubscriptionStart, Timestamp,
};
use uuid::Uuid;

use crate::v1;

type Result<T> = std::result::Result<T, Error>;

fn timestamp(field: &str, value: Option<prost_types::Timestamp>) -> Result<Option<Timestamp>> {
    value
        .map(|t| {
            Timestamp::from_parts(t.seconds, t.nanos)
                .ok_or_else(|| Error::invalid(field, "must be a valid timestamp between 1677 and 2262"))
        })
        .transpose()
}

fn wire_timestamp(value: Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = value.parts();
    prost_types::Timestamp { seconds, nanos }
}

fn content_type(value: String) -> String {
    if value.is_empty() { DEFAULT_CONTENT_TYPE.to_owned() } else { value }
}

/// An event id from the wire; empty means "make one" (the append is then not idempotent).
fn event_id(field: &str, value: &str) -> Result<Uuid> {
    if value.is_empty() {
        return Ok(Uuid::new_v4());
    }
    Uuid::parse_str(value).map_err(|_| Error::invalid(field, "must be a UUID"))
}

// ---- server side: requests in, results out ---------------------------------------------------

impl TryFrom<v1::AppendRequest> for AppendRequest {
    type Error = Error;

    fn try_from(request: v1::AppendRequest) -> Result<Self> {
        use v1::append_request::Expected;
        let expected = match request.expected {
            None | Some(Expected::Any(())) => Expectation::Any,
            Some(Expected::NoState(())) => Expectation::NoState,
            Some(Expected::ExactVersion(n)) => Expectation::Exactly(n),
        };
        let events = request
            .events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                Ok(ProposedEvent {
                    event_id: event_id(&format!("events[{i}].event_id"), &e.event_id)?,
                    name: e.name,
                    payload: e.payload,
                    content_type: content_type(e.content_type),
                    timestamp: timestamp(&format!("events[{i}].timestamp"), e.timestamp)?,
                    metadata: e.metadata,
                    version: e.version,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            state_id: request.state_id,
            events,
            expected,
            kind: if request.version_neutral { StateKind::VersionNeutral } else { StateKind::Versioned },
            state_metadata: request.state_metadata,
        })
    }
}

/// The parts of an append to several states; a part's failure names it (`parts[1].events[0]...`).
pub fn parts_from_wire(request: v1::AppendStatesRequest) -> Result<Vec<AppendRequest>> {
    request
        .parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| AppendRequest::try_from(part).map_err(|error| error.within(format_args!("parts[{i}]"))))
        .collect()
}

impl TryFrom<v1::ReadStateRequest> for StateQuery {
    type Error = Error;

    fn try_from(request: v1::ReadStateRequest) -> Result<Self> {
        Ok(Self {
            state_id: request.state_id,
            direction: direction(request.direction)?,
            min_version: request.min_version,
            max_version: request.max_version,
            limit: request.limit.filter(|&n| n > 0),
            names: request.names,
            as_of: timestamp("as_of", request.as_of)?,
        })
    }
}

impl TryFrom<v1::ReadAllRequest> for AllQuery {
    type Error = Error;

    fn try_from(request: v1::ReadAllRequest) -> Result<Self> {
        Ok(Self {
            after_position: request.after_position,
            until_position: request.until_position,
            state_id_prefix: request.state_id_prefix,
            names: request.names,
            limit: request.limit.filter(|&n| n > 0),
            direction: direction(request.direction)?,
        })
    }
}

fn direction(wire: i32) -> Result<Direction> {
    match v1::Direction::try_from(wire) {
        Ok(v1::Direction::Forward) => Ok(Direction::Forward),
        Ok(v1::Direction::Backward) => Ok(Direction::Backward),
        Err(_) => Err(Error::invalid("direction", "must be DIRECTION_FORWARD or DIRECTION_BACKWARD")),
    }
}

fn wire_direction(direction: Direction) -> i32 {
    let wire = match direction {
        Direction::Forward => v1::Direction::Forward,
        Direction::Backward => v1::Direction::Backward,
    };
    wire as i32
}

/// No start is the beginning (position 0), as proto3 reads an unset field.
impl From<v1::SubscribeRequest> for SubscriptionQuery {
    fn from(request: v1::SubscribeRequest) -> Self {
        use v1::subscribe_request::Start;
        let start = match request.start {
            None | Some(Start::Beginning(())) | Some(Start::AfterPosition(0)) => SubscriptionStart::Beginning,
            Some(Start::AfterPosition(position)) => SubscriptionStart::After(position),
            Some(Start::Now(())) => SubscriptionStart::Now,
        };
        Self { start, state_id_prefix: request.state_id_prefix, names: request.names }
    }
}

impl From<Delivery> for v1::SubscribeResponse {
    fn from(delivery: Delivery) -> Self {
        use v1::subscribe_response::Message;
        let message = match delivery {
            Delivery::Events(events) => {
                Message::Events(v1::EventPage { events: events.into_iter().map(Into::into).collect() })
            }
            Delivery::Checkpoint(position) => Message::Checkpoint(v1::Checkpoint { position }),
        };
        Self { message: Some(message) }
    }
}

impl From<v1::GetSnapshotRequest> for SnapshotQuery {
    fn from(request: v1::GetSnapshotRequest) -> Self {
        Self {
            state_id: request.state_id,
            reducer_revision: request.reducer_revision,
            max_version: request.max_version,
        }
    }
}

/// A snapshot to store; `created_at` is the server's clock unless the client sent one.
pub fn snapshot_to_store(snapshot: Option<v1::Snapshot>, now: Timestamp) -> Result<Snapshot> {
    let snapshot = snapshot.ok_or_else(|| Error::invalid("snapshot", "must be set"))?;
    Ok(Snapshot {
        state_id: snapshot.state_id,
        version: snapshot.version,
        reducer_revision: snapshot.reducer_revision,
        payload: snapshot.payload,
        content_type: content_type(snapshot.content_type),
        created_at: timestamp("snapshot.created_at", snapshot.created_at)?.unwrap_or(now),
    })
}

impl From<AppendOutcome> for v1::AppendResponse {
    fn from(outcome: AppendOutcome) -> Self {
        Self {
            last_version: outcome.last_version,
            global_positions: outcome.global_positions,
            recorded_at: Some(wire_timestamp(outcome.recorded_at)),
        }
    }
}

impl From<RecordedEvent> for v1::RecordedEvent {
    fn from(event: RecordedEvent) -> Self {
        Self {
            state_id: event.state_id,
            version: event.version,
            global_position: event.global_position,
            event_id: event.event_id.hyphenated().to_string(),
            name: event.name,
            payload: event.payload,
            content_type: event.content_type,
            timestamp: event.timestamp.map(wire_timestamp),
            recorded_at: Some(wire_timestamp(event.recorded_at)),
            metadata: event.metadata,
        }
    }
}

impl From<StateHead> for v1::StateHead {
    fn from(head: StateHead) -> Self {
        Self {
            last_version: head.last_version(),
            state_id: head.state_id,
            version_neutral: head.kind == StateKind::VersionNeutral,
            event_count: head.event_count,
            last_global_position: head.last_global_position,
            first_recorded_at: Some(wire_timestamp(head.first_recorded_at)),
            last_recorded_at: Some(wire_timestamp(head.last_recorded_at)),
            metadata: head.metadata,
        }
    }
}

impl From<Snapshot> for v1::Snapshot {
    fn from(snapshot: Snapshot) -> Self {
        Self {
            state_id: snapshot.state_id,
            version: snapshot.version,
            reducer_revision: snapshot.reducer_revision,
            payload: snapshot.payload,
            content_type: snapshot.content_type,
            created_at: Some(wire_timestamp(snapshot.created_at)),
        }
    }
}

// ---- client side: requests out, results in ---------------------------------------------------

impl From<AppendRequest> for v1::AppendRequest {
    fn from(request: AppendRequest) -> Self {
        use v1::append_request::Expected;
        Self {
            state_id: request.state_id,
            events: request
                .events
                .into_iter()
                .map(|e| v1::ProposedEvent {
                    event_id: e.event_id.hyphenated().to_string(),
                    name: e.name,
                    payload: e.payload,
                    content_type: e.content_type,
                    timestamp: e.timestamp.map(wire_timestamp),
                    metadata: e.metadata,
                    version: e.version,
                })
                .collect(),
            expected: Some(match request.expected {
                Expectation::Any => Expected::Any(()),
                Expectation::NoState => Expected::NoState(()),
                Expectation::Exactly(n) => Expected::ExactVersion(n),
            }),
            version_neutral: request.kind == StateKind::VersionNeutral,
            state_metadata: request.state_metadata,
        }
    }
}

impl From<StateQuery> for v1::ReadStateRequest {
    fn from(query: StateQuery) -> Self {
        Self {
            state_id: query.state_id,
            direction: wire_direction(query.direction),
            min_version: query.min_version,
            max_version: query.max_version,
            limit: query.limit,
            names: query.names,
            as_of: query.as_of.map(wire_timestamp),
        }
    }
}

impl From<AllQuery> for v1::ReadAllRequest {
    fn from(query: AllQuery) -> Self {
        Self {
            after_position: query.after_position,
            until_position: query.until_position,
            state_id_prefix: query.state_id_prefix,
            names: query.names,
            limit: query.limit,
            direction: wire_direction(query.direction),
        }
    }
}

impl From<SubscriptionQuery> for v1::SubscribeRequest {
    fn from(query: SubscriptionQuery) -> Self {
        use v1::subscribe_request::Start;
        let start = match query.start {
            SubscriptionStart::Beginning => Start::Beginning(()),
            SubscriptionStart::After(position) => Start::AfterPosition(position),
            SubscriptionStart::Now => Start::Now(()),
        };
        Self { start: Some(start), state_id_prefix: query.state_id_prefix, names: query.names }
    }
}

impl TryFrom<v1::SubscribeResponse> for Delivery {
    type Error = Error;

    fn try_from(response: v1::SubscribeResponse) -> Result<Self> {
        use v1::subscribe_response::Message;
        match required(response.message, "subscription message")? {
            Message::Events(page) => {
                Ok(Self::Events(page.events.into_iter().map(RecordedEvent::try_from).collect::<Result<_>>()?))
            }
            Message::Checkpoint(checkpoint) => Ok(Self::Checkpoint(checkpoint.position)),
        }
    }
}

/// A response field the server must send; its absence is a broken server, not bad input.
fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| Error::Internal(format!("the server sent no {field}")))
}

fn received_timestamp(value: Option<prost_types::Timestamp>, field: &str) -> Result<Timestamp> {
    timestamp(field, value).and_then(|t| required(t, field)).map_err(|e| Error::Internal(e.to_string()))
}

impl TryFrom<v1::AppendResponse> for AppendOutcome {
    type Error = Error;

    fn try_from(response: v1::AppendResponse) -> Result<Self> {
        Ok(Self {
            recorded_at: received_timestamp(response.recorded_at, "recorded_at")?,
            last_version: response.last_version,
            global_positions: response.global_positions,
        })
    }
}

impl TryFrom<v1::RecordedEvent> for RecordedEvent {
    type Error = Error;

    fn try_from(event: v1::RecordedEvent) -> Result<Self> {
        Ok(Self {
            event_id: Uuid::parse_str(&event.event_id).map_err(|e| Error::Internal(format!("event id: {e}")))?,
            timestamp: timestamp("timestamp", event.timestamp).map_err(|e| Error::Internal(e.to_string()))?,
            recorded_at: received_timestamp(event.recorded_at, "recorded_at")?,
            state_id: event.state_id,
            version: event.version,
            global_position: event.global_position,
            name: event.name,
            payload: event.payload,
            content_type: event.content_type,
            metadata: event.metadata,
        })
    }
}

impl TryFrom<v1::StateHead> for StateHead {
    type Error = Error;

    fn try_from(head: v1::StateHead) -> Result<Self> {
        Ok(Self {
            first_recorded_at: received_timestamp(head.first_recorded_at, "first_recorded_at")?,
            last_recorded_at: received_timestamp(head.last_recorded_at, "last_recorded_at")?,
            state_id: head.state_id,
            kind: if head.version_neutral { StateKind::VersionNeutral } else { StateKind::Versioned },
            event_count: head.event_count,
            last_global_position: head.last_global_position,
            metadata: head.metadata,
        })
    }
}

impl TryFrom<v1::Snapshot> for Snapshot {
    type Error = Error;

    fn try_from(snapshot: v1::Snapshot) -> Result<Self> {
        Ok(Self {
            created_at: received_timestamp(snapshot.created_at, "created_at")?,
            state_id: snapshot.state_id,
            version: snapshot.version,
            reducer_revision: snapshot.reducer_revision,
            payload: snapshot.payload,
            content_type: snapshot.content_type,
        })
    }
}

impl From<SnapshotQuery> for v1::GetSnapshotRequest {
    fn from(query: SnapshotQuery) -> Self {
        Self { state_id: query.state_id, reducer_revision: query.reducer_revision, max_version: query.max_version }
    }
}
