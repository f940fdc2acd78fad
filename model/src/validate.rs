//! The input rules of `docs/spec.md`, checked at the edge (the server) before anything reaches a
//! backend, and again in the SDK where that saves a round trip. Each failure names the field
//! (`events[2].name`) and the rule it broke. One rule for size (spec §2, "Limits"): data over a
//! limit (a payload, a metadata map, the events or parts of a request) is [`Error::TooLarge`];
//! an identifier over its length (a state id, a name) is malformed, [`Error::InvalidArgument`].

use std::collections::HashSet;
use std::fmt::{self, Display};

use crate::error::{Error, Result};
use crate::{
    AllQuery, AppendRequest, Expectation, Metadata, Snapshot, SnapshotQuery, StateKind, StateQuery, SubscriptionQuery,
    SubscriptionStart,
};

/// What the server accepts. Reported by server info; configurable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events in one request, counting every part of an append to several states.
    pub max_events_per_append: u32,
    /// Parts (states) in one append to several states.
    pub max_states_per_append: u32,
    pub max_payload_bytes: u64,
    /// By default a snapshot's answer fits the 4 MiB a gRPC client accepts unless told more, so
    /// any client generated from the proto reads back every snapshot the server took.
    pub max_snapshot_bytes: u64,
    /// The largest gRPC message the server decodes; a request above it is refused whole.
    pub max_request_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events_per_append: 1000,
            max_states_per_append: 64,
            max_payload_bytes: 1024 * 1024,
            max_snapshot_bytes: 4 * 1024 * 1024 - 64 * 1024,
            max_request_bytes: 32 * 1024 * 1024,
        }
    }
}

pub const MAX_STATE_ID_BYTES: usize = 256;
pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_CONTENT_TYPE_BYTES: usize = 128;
pub const MAX_REVISION_BYTES: usize = 128;
pub const MAX_METADATA_KEY_BYTES: usize = 128;
/// Keys and values of one metadata map together.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// The largest version, position or snapshot version a request may name: what a signed 64-bit
/// integer holds, as every backend stores them (above it SQLite and PostgreSQL would clamp, and
/// arithmetic on it could overflow).
pub const MAX_VERSION: u64 = i64::MAX as u64;

fn version(field: impl Display, value: u64) -> Result<()> {
    if value > MAX_VERSION {
        return Err(Error::invalid(field, format!("must be at most {MAX_VERSION} (2^63 - 1)")));
    }
    Ok(())
}

/// A field's name is a `Display`, spelled out only when its rule fails: formatting every event's
/// field names up front cost more than the checks (4 % of a server's CPU on ten-event appends).
fn text(field: impl Display, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(Error::invalid(field, format!("must be at most {max} bytes (is {})", value.len())));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

pub fn state_id(field: impl Display, value: &str) -> Result<()> {
    text(field, value, MAX_STATE_ID_BYTES)
}

pub fn event_name(field: impl Display, value: &str) -> Result<()> {
    text(field, value, MAX_NAME_BYTES)
}

fn names(field: &str, values: &[String]) -> Result<()> {
    values.iter().enumerate().try_for_each(|(i, name)| event_name(format_args!("{field}[{i}]"), name))
}

fn content_type(field: impl Display, value: &str) -> Result<()> {
    text(field, value, MAX_CONTENT_TYPE_BYTES)
}

fn metadata(field: impl Display, map: &Metadata) -> Result<()> {
    let mut size = 0;
    for (key, value) in map {
        text(format_args!("{field}[{key:?}]"), key, MAX_METADATA_KEY_BYTES)?;
        size += key.len() + value.len();
    }
    if size > MAX_METADATA_BYTES {
        return Err(Error::too_large(
            field,
            format!("at most {MAX_METADATA_BYTES} bytes of keys and values (holds {size})"),
        ));
    }
    Ok(())
}

fn payload(field: impl Display, len: usize, max: u64) -> Result<()> {
    if len as u64 > max {
        return Err(Error::too_large(field, format!("at most {max} bytes (is {len})")));
    }
    Ok(())
}

/// A field of an append's event, by its index: `events[2].name`.
struct EventField(usize, &'static str);

impl Display for EventField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "events[{}].{}", self.0, self.1)
    }
}

pub fn append(request: &AppendRequest, limits: &Limits) -> Result<()> {
    state_id("state_id", &request.state_id)?;
    let count = request.events.len();
    if count == 0 {
        return Err(Error::invalid("events", "must hold at least one event"));
    }
    if count > limits.max_events_per_append as usize {
        return Err(Error::too_large(
            "events",
            format!("at most {} events per append (holds {count})", limits.max_events_per_append),
        ));
    }
    let neutral = request.kind == StateKind::VersionNeutral;
    if neutral && matches!(request.expected, Expectation::Exactly(_)) {
        return Err(Error::invalid("expected", "only any and no_state apply to version-neutral appends"));
    }
    metadata("state_metadata", &request.state_metadata)?;
    if let Expectation::Exactly(n) = request.expected {
        version("exact_version", n)?;
    }

    let explicit = request.events[0].version;
    let mut ids = HashSet::with_capacity(count);
    for (i, event) in request.events.iter().enumerate() {
        let field = |name| EventField(i, name);
        if !ids.insert(event.event_id) {
            return Err(Error::invalid(field("event_id"), "must be unique within the append"));
        }
        event_name(field("name"), &event.name)?;
        content_type(field("content_type"), &event.content_type)?;
        payload(field("payload"), event.payload.len(), limits.max_payload_bytes)?;
        metadata(field("metadata"), &event.metadata)?;
        match (neutral, explicit, event.version) {
            (true, _, Some(_)) => {
                return Err(Error::invalid(field("version"), "must be absent on version-neutral appends"));
            }
            (false, None, Some(_)) | (false, Some(_), None) => {
                return Err(Error::invalid(field("version"), "every event must have a version, or none"));
            }
            (false, Some(first), Some(explicit)) => {
                version(field("version"), explicit)?;
                if first == 0 {
                    return Err(Error::invalid(field("version"), "versions start at 1"));
                }
                if Some(explicit) != first.checked_add(i as u64) {
                    return Err(Error::invalid(field("version"), "versions must continue without gaps"));
                }
            }
            _ => {}
        }
    }
    match (request.expected, explicit) {
        (Expectation::Exactly(n), Some(first)) if Some(first) != n.checked_add(1) => {
            Err(Error::invalid("events[0].version", "must be the expected version + 1"))
        }
        (Expectation::NoState, Some(first)) if first != 1 => {
            Err(Error::invalid("events[0].version", "must be 1 when the state must not exist"))
        }
        _ => Ok(()),
    }
}

/// An append to several states: each part as [`append`] checks one (a failure names the part:
/// `parts[1].events[0].name`), each state in one part only, each event id once in the request,
/// and the request's size bounded as a whole.
pub fn append_states(parts: &[AppendRequest], limits: &Limits) -> Result<()> {
    if parts.is_empty() {
        return Err(Error::invalid("parts", "must hold at least one part"));
    }
    if parts.len() > limits.max_states_per_append as usize {
        return Err(Error::too_large(
            "parts",
            format!("at most {} states per append (holds {})", limits.max_states_per_append, parts.len()),
        ));
    }
    let events: usize = parts.iter().map(|p| p.events.len()).sum();
    if events > limits.max_events_per_append as usize {
        return Err(Error::too_large(
            "parts",
            format!("at most {} events per append in all its parts (hold {events})", limits.max_events_per_append),
        ));
    }
    let (mut states, mut ids) = (HashSet::with_capacity(parts.len()), HashSet::with_capacity(events));
    for (p, part) in parts.iter().enumerate() {
        append(part, limits).map_err(|error| error.within(format_args!("parts[{p}]")))?;
        if !states.insert(part.state_id.as_str()) {
            return Err(Error::invalid(format_args!("parts[{p}].state_id"), "must not repeat an earlier part's state"));
        }
        for (i, event) in part.events.iter().enumerate() {
            if !ids.insert(event.event_id) {
                return Err(Error::invalid(
                    format_args!("parts[{p}].events[{i}].event_id"),
                    "must be unique within the request",
                ));
            }
        }
    }
    Ok(())
}

pub fn state_query(query: &StateQuery) -> Result<()> {
    state_id("state_id", &query.state_id)?;
    query.min_version.map_or(Ok(()), |v| version("min_version", v))?;
    query.max_version.map_or(Ok(()), |v| version("max_version", v))?;
    if let (Some(min), Some(max)) = (query.min_version, query.max_version)
        && min > max
    {
        return Err(Error::invalid("min_version", "must not exceed max_version"));
    }
    names("names", &query.names)
}

pub fn head(id: &str) -> Result<()> {
    state_id("state_id", id)
}

pub fn all_query(query: &AllQuery) -> Result<()> {
    version("after_position", query.after_position)?;
    query.until_position.map_or(Ok(()), |v| version("until_position", v))?;
    filters(&query.state_id_prefix, &query.names)
}

/// The same filters as read-all.
pub fn subscription(query: &SubscriptionQuery) -> Result<()> {
    if let SubscriptionStart::After(position) = query.start {
        version("after_position", position)?;
    }
    filters(&query.state_id_prefix, &query.names)
}

fn filters(state_id_prefix: &str, event_names: &[String]) -> Result<()> {
    if state_id_prefix.len() > MAX_STATE_ID_BYTES {
        return Err(Error::invalid("state_id_prefix", format!("must be at most {MAX_STATE_ID_BYTES} bytes")));
    }
    if state_id_prefix.chars().any(char::is_control) {
        return Err(Error::invalid("state_id_prefix", "must not contain control characters"));
    }
    names("names", event_names)
}

pub fn snapshot(snapshot: &Snapshot, limits: &Limits) -> Result<()> {
    state_id("snapshot.state_id", &snapshot.state_id)?;
    text("snapshot.reducer_revision", &snapshot.reducer_revision, MAX_REVISION_BYTES)?;
    if snapshot.version == 0 {
        return Err(Error::invalid("snapshot.version", "must be at least 1 (a snapshot folds at least one event)"));
    }
    version("snapshot.version", snapshot.version)?;
    content_type("snapshot.content_type", &snapshot.content_type)?;
    payload("snapshot.payload", snapshot.payload.len(), limits.max_snapshot_bytes)
}

pub fn snapshot_query(query: &SnapshotQuery) -> Result<()> {
    state_id("state_id", &query.state_id)?;
    query.max_version.map_or(Ok(()), |v| version("max_version", v))?;
    reducer_revision("reducer_revision", &query.reducer_revision)
}

pub fn reducer_revision(field: impl Display, value: &str) -> Result<()> {
    text(field, value, MAX_REVISION_BYTES)
}
