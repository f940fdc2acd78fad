//! The JSON Lines forms of events, snapshots and the parts of an append to several states, one
//! JSON object a line: what `flipbook export` writes and `import` reads (so a store moves to
//! another byte for byte), what `read --json` and `snapshot get` print, and what `append-states`
//! reads. Feature `jsonl`. Parsing answers [`Error::InvalidArgument`] naming the line and the
//! field (`line 3: events[0].payload`), never a panic: `fuzz/` runs it on arbitrary input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    AppendRequest, DEFAULT_CONTENT_TYPE, Error, Expectation, Metadata, ProposedEvent, RecordedEvent, Snapshot,
    Timestamp,
};

/// One event of `export`, `import` and `read --json`.
#[derive(Serialize, Deserialize, Debug)]
pub struct EventLine {
    state_id: String,
    /// Absent for version-neutral events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    /// Ignored by import: the store gives new positions.
    #[serde(default)]
    global_position: u64,
    event_id: String,
    name: String,
    content_type: String,
    /// The JSON payload as it is stored, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    payload: Option<Box<RawValue>>,
    /// Any other payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_nanos: Option<i64>,
    /// Ignored by import: the store records its own time.
    #[serde(default)]
    recorded_at_nanos: i64,
    #[serde(default)]
    metadata: Metadata,
}

/// A snapshot, as `snapshot get` prints it.
#[derive(Serialize, Debug)]
pub struct SnapshotLine {
    state_id: String,
    reducer_revision: String,
    version: u64,
    content_type: String,
    created_at_nanos: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

impl From<Snapshot> for SnapshotLine {
    fn from(snapshot: Snapshot) -> Self {
        let (payload, payload_base64) = encode_payload(&snapshot.content_type, &snapshot.payload);
        Self {
            state_id: snapshot.state_id,
            reducer_revision: snapshot.reducer_revision,
            version: snapshot.version,
            content_type: snapshot.content_type,
            created_at_nanos: snapshot.created_at.unix_nanos(),
            payload,
            payload_base64,
        }
    }
}

/// A present `payload`, even `null`, is `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

impl From<RecordedEvent> for EventLine {
    fn from(event: RecordedEvent) -> Self {
        let (payload, payload_base64) = encode_payload(&event.content_type, &event.payload);
        Self {
            state_id: event.state_id,
            version: event.version,
            global_position: event.global_position,
            event_id: event.event_id.to_string(),
            name: event.name,
            content_type: event.content_type,
            payload,
            payload_base64,
            timestamp_nanos: event.timestamp.map(Timestamp::unix_nanos),
            recorded_at_nanos: event.recorded_at.unix_nanos(),
            metadata: event.metadata,
        }
    }
}

impl EventLine {
    /// Line `number` of an import: its state id and the event to append.
    pub fn parse(line: &str, number: usize) -> Result<(String, ProposedEvent), Error> {
        let invalid = |field: &str, rule: String| Error::invalid(format!("line {number}: {field}"), rule);
        let line: Self = serde_json::from_str(line).map_err(|e| invalid("event", e.to_string()))?;
        let payload = decode_payload(line.payload, line.payload_base64, &invalid)?;
        let event = ProposedEvent {
            event_id: Uuid::parse_str(&line.event_id).map_err(|e| invalid("event_id", e.to_string()))?,
            name: line.name,
            payload,
            content_type: line.content_type,
            timestamp: line.timestamp_nanos.map(Timestamp::from_unix_nanos),
            metadata: line.metadata,
            version: line.version,
        };
        Ok((line.state_id, event))
    }
}

/// One state's part of `append-states`: the expectation defaults to `any`, each event's id to
/// a new one and its content type to JSON (which must then be JSON).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PartLine {
    state_id: String,
    /// `"any"`, `"no-state"` or the version the state must be at.
    #[serde(default)]
    expect: Option<Value>,
    /// A version-neutral state.
    #[serde(default)]
    neutral: bool,
    events: Vec<PartEvent>,
    #[serde(default)]
    state_metadata: Metadata,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PartEvent {
    name: String,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default = "json_content_type")]
    content_type: String,
    #[serde(default, deserialize_with = "present")]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    timestamp_nanos: Option<i64>,
    #[serde(default)]
    metadata: Metadata,
}

fn json_content_type() -> String {
    DEFAULT_CONTENT_TYPE.to_owned()
}

impl PartLine {
    /// Line `number` of `append-states`: the part it asks for.
    pub fn parse(line: &str, number: usize) -> Result<AppendRequest, Error> {
        let invalid = |field: &str, rule: String| Error::invalid(format!("line {number}: {field}"), rule);
        let line: Self = serde_json::from_str(line).map_err(|e| invalid("part", e.to_string()))?;
        let expect = match line.expect {
            None => Expectation::Any,
            Some(Value::String(text)) => expectation(&text).map_err(|rule| invalid("expect", rule))?,
            Some(Value::Number(version)) => Expectation::Exactly(
                version.as_u64().ok_or_else(|| invalid("expect", "must be a version (0 or more)".into()))?,
            ),
            Some(_) => return Err(invalid("expect", "expected \"any\", \"no-state\" or a version".into())),
        };
        let mut events = Vec::with_capacity(line.events.len());
        for (i, event) in line.events.into_iter().enumerate() {
            let field = |name: &str| format!("events[{i}].{name}");
            let payload =
                decode_payload(event.payload, event.payload_base64, &|name, rule| invalid(&field(name), rule))?;
            let event_id = match event.event_id {
                Some(id) => Uuid::parse_str(&id).map_err(|e| invalid(&field("event_id"), e.to_string()))?,
                None => Uuid::new_v4(),
            };
            events.push(ProposedEvent {
                event_id,
                payload: labelled(payload, &event.content_type, &format!("line {number}: {}", field("payload")))?,
                content_type: event.content_type,
                timestamp: event.timestamp_nanos.map(Timestamp::from_unix_nanos),
                metadata: event.metadata,
                ..ProposedEvent::new(event.name, Vec::new())
            });
        }
        let mut part = if line.neutral {
            AppendRequest::neutral(line.state_id, expect, events)
        } else {
            AppendRequest::new(line.state_id, expect, events)
        };
        part.state_metadata = line.state_metadata;
        Ok(part)
    }
}

/// Exactly one of a JSON payload and a base64 one.
fn decode_payload(
    json: Option<Box<RawValue>>,
    base64: Option<String>,
    invalid: &dyn Fn(&str, String) -> Error,
) -> Result<Vec<u8>, Error> {
    match (json, base64) {
        (Some(json), None) => Ok(json.get().as_bytes().to_vec()),
        (None, Some(encoded)) => BASE64.decode(encoded).map_err(|e| invalid("payload_base64", e.to_string())),
        _ => Err(invalid("payload", "exactly one of payload and payload_base64 is required".into())),
    }
}

/// A JSON payload as itself when it is JSON that fits on one line exactly as stored (so an
/// import gives back the same bytes); anything else as base64.
fn encode_payload(content_type: &str, payload: &[u8]) -> (Option<Box<RawValue>>, Option<String>) {
    let json = (content_type == DEFAULT_CONTENT_TYPE)
        .then(|| std::str::from_utf8(payload).ok())
        .flatten()
        .filter(|text| !text.contains(['\n', '\r']))
        .and_then(|text| RawValue::from_string(text.to_owned()).ok().filter(|raw| raw.get() == text));
    match json {
        Some(raw) => (Some(raw), None),
        None => (None, Some(BASE64.encode(payload))),
    }
}

/// A payload labelled JSON must be JSON: the store never parses payloads, so a typo would be
/// stored for every reader to trip on.
pub fn labelled(payload: Vec<u8>, content_type: &str, field: &str) -> Result<Vec<u8>, Error> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case(DEFAULT_CONTENT_TYPE) {
        serde_json::from_slice::<serde::de::IgnoredAny>(&payload).map_err(|e| {
            Error::invalid(field, format!("is not JSON, yet its content type is {content_type:?}: {e}"))
        })?;
    }
    Ok(payload)
}

pub fn expectation(text: &str) -> Result<Expectation, String> {
    match text {
        "any" => Ok(Expectation::Any),
        "no-state" => Ok(Expectation::NoState),
        version => version.parse().map(Expectation::Exactly).map_err(|_| "expected any, no-state or a version".into()),
    }
}
