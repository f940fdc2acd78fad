//! Values crossing the boundary: what TypeScript passes in (appends, queries, snapshots) and
//! what comes back (outcomes, heads). Versions, positions and times are bigints.

use std::collections::HashMap;

use flipbook_sdk_core::{
    AppendOutcome, AppendRequest, Expectation, Metadata, ProposedEvent, StateHead, StateKind, Timestamp,
};
use napi::bindgen_prelude::{BigInt, Buffer};
use napi_derive::napi;

use crate::errors::invalid;

/// A bigint the core holds as a `u64`.
pub(crate) fn unsigned(value: &BigInt, field: &str) -> napi::Result<u64> {
    let (negative, value, lossless) = value.get_u64();
    if negative || !lossless {
        return Err(invalid(field, "must be an integer from 0 to 2^64 - 1"));
    }
    Ok(value)
}

pub(crate) fn unsigned_opt(value: Option<&BigInt>, field: &str) -> napi::Result<Option<u64>> {
    value.map(|v| unsigned(v, field)).transpose()
}

pub(crate) fn nanos(value: &BigInt, field: &str) -> napi::Result<Timestamp> {
    let (nanos, lossless) = value.get_i64();
    if !lossless {
        return Err(invalid(field, "must be nanoseconds since the Unix epoch that fit 64 bits"));
    }
    Ok(Timestamp::from_unix_nanos(nanos))
}

pub(crate) fn big(value: u64) -> BigInt {
    BigInt::from(value)
}

fn metadata(map: Option<HashMap<String, String>>) -> Metadata {
    map.map(|m| m.into_iter().collect()).unwrap_or_default()
}

/// An event to append.
#[napi(object)]
pub struct EventInput {
    /// A UUID; the core makes one when absent.
    pub event_id: Option<String>,
    pub name: String,
    pub payload: Buffer,
    pub content_type: String,
    pub timestamp_nanos: Option<BigInt>,
    pub metadata: Option<HashMap<String, String>>,
    pub version: Option<BigInt>,
}

/// One state's part of an append.
#[napi(object)]
pub struct AppendInput {
    pub state_id: String,
    pub events: Vec<EventInput>,
    /// `"any"`, `"no_state"`, or `"exactly"` with `version`.
    pub expected: String,
    pub version: Option<BigInt>,
    pub version_neutral: bool,
    pub state_metadata: Option<HashMap<String, String>>,
}

impl AppendInput {
    pub(crate) fn into_request(self) -> napi::Result<AppendRequest> {
        let expected = match self.expected.as_str() {
            "any" => Expectation::Any,
            "no_state" => Expectation::NoState,
            "exactly" => Expectation::Exactly(
                unsigned_opt(self.version.as_ref(), "expected")?
                    .ok_or_else(|| invalid("expected", "needs a version"))?,
            ),
            _ => return Err(invalid("expected", "must be ANY, NO_STATE or a version")),
        };
        let events = proposed_all("events", self.events)?;
        let mut request = AppendRequest::new(self.state_id, expected, events);
        if self.version_neutral {
            request.kind = StateKind::VersionNeutral;
        }
        request.state_metadata = metadata(self.state_metadata);
        Ok(request)
    }
}

/// Events to append; errors name the field under `path` (`events[2].version`).
pub(crate) fn proposed_all(path: &str, events: Vec<EventInput>) -> napi::Result<Vec<ProposedEvent>> {
    events.into_iter().enumerate().map(|(i, event)| proposed(&format!("{path}[{i}]"), event)).collect()
}

fn proposed(path: &str, event: EventInput) -> napi::Result<ProposedEvent> {
    let mut proposed = ProposedEvent::new(event.name, event.payload.to_vec());
    if let Some(id) = event.event_id {
        proposed.event_id = id.parse().map_err(|_| invalid(&format!("{path}.event_id"), "must be a UUID"))?;
    }
    proposed.content_type = event.content_type;
    proposed.timestamp = event.timestamp_nanos.as_ref().map(|t| nanos(t, &format!("{path}.timestamp"))).transpose()?;
    proposed.metadata = metadata(event.metadata);
    proposed.version = unsigned_opt(event.version.as_ref(), &format!("{path}.version"))?;
    Ok(proposed)
}

/// What an append stored.
#[napi(object)]
pub struct AppendResult {
    /// Absent for a version-neutral state.
    pub last_version: Option<BigInt>,
    pub global_positions: Vec<BigInt>,
    pub recorded_at_nanos: BigInt,
}

impl From<AppendOutcome> for AppendResult {
    fn from(outcome: AppendOutcome) -> Self {
        Self {
            last_version: outcome.last_version.map(big),
            global_positions: outcome.global_positions.into_iter().map(big).collect(),
            recorded_at_nanos: BigInt::from(outcome.recorded_at.unix_nanos()),
        }
    }
}

/// A state's head.
#[napi(object)]
pub struct HeadResult {
    pub state_id: String,
    pub version_neutral: bool,
    pub event_count: BigInt,
    pub last_global_position: BigInt,
    pub first_recorded_at_nanos: BigInt,
    pub last_recorded_at_nanos: BigInt,
    pub metadata: HashMap<String, String>,
}

impl From<StateHead> for HeadResult {
    fn from(head: StateHead) -> Self {
        Self {
            version_neutral: head.kind == StateKind::VersionNeutral,
            event_count: big(head.event_count),
            last_global_position: big(head.last_global_position),
            first_recorded_at_nanos: BigInt::from(head.first_recorded_at.unix_nanos()),
            last_recorded_at_nanos: BigInt::from(head.last_recorded_at.unix_nanos()),
            metadata: head.metadata.into_iter().collect(),
            state_id: head.state_id,
        }
    }
}

/// Which events of one state to read.
#[napi(object)]
pub struct StateQueryInput {
    pub state_id: String,
    pub backward: bool,
    pub min_version: Option<BigInt>,
    pub max_version: Option<BigInt>,
    pub limit: Option<BigInt>,
    pub names: Vec<String>,
    pub as_of_nanos: Option<BigInt>,
}

/// Which events of the whole store to read.
#[napi(object)]
pub struct AllQueryInput {
    pub after: BigInt,
    pub until: Option<BigInt>,
    pub prefix: String,
    pub names: Vec<String>,
    pub limit: Option<BigInt>,
    pub backward: bool,
}

impl StateQueryInput {
    pub(crate) fn into_query(self) -> napi::Result<flipbook_sdk_core::StateQuery> {
        Ok(flipbook_sdk_core::StateQuery {
            direction: direction(self.backward),
            min_version: unsigned_opt(self.min_version.as_ref(), "min_version")?,
            max_version: unsigned_opt(self.max_version.as_ref(), "max_version")?,
            limit: unsigned_opt(self.limit.as_ref(), "limit")?,
            names: self.names,
            as_of: self.as_of_nanos.as_ref().map(|t| nanos(t, "as_of")).transpose()?,
            state_id: self.state_id,
        })
    }
}

impl AllQueryInput {
    pub(crate) fn into_query(self) -> napi::Result<flipbook_sdk_core::AllQuery> {
        Ok(flipbook_sdk_core::AllQuery {
            after_position: unsigned(&self.after, "after")?,
            until_position: unsigned_opt(self.until.as_ref(), "until")?,
            state_id_prefix: self.prefix,
            names: self.names,
            limit: unsigned_opt(self.limit.as_ref(), "limit")?,
            direction: direction(self.backward),
        })
    }
}

fn direction(backward: bool) -> flipbook_sdk_core::Direction {
    if backward { flipbook_sdk_core::Direction::Backward } else { flipbook_sdk_core::Direction::Forward }
}

/// The log's head.
#[napi(object)]
pub struct LogHeadResult {
    pub settled_position: BigInt,
    pub event_count: BigInt,
}

/// A snapshot, put or got.
#[napi(object)]
pub struct SnapshotValue {
    pub state_id: String,
    pub version: BigInt,
    pub reducer_revision: String,
    pub payload: Buffer,
    pub content_type: String,
    pub created_at_nanos: Option<BigInt>,
}

/// What the server (or the embedded store) says of itself.
#[napi(object)]
pub struct ServerInfoResult {
    pub server_version: String,
    pub event_backend: String,
    pub snapshot_backend: String,
    pub durable: bool,
    pub max_events_per_append: u32,
    pub max_states_per_append: u32,
    pub max_payload_bytes: BigInt,
    pub max_snapshot_bytes: BigInt,
}

/// How a client retries and caches (the core's defaults where absent).
#[napi(object)]
pub struct ClientSettings {
    pub max_tries: Option<u32>,
    pub max_resends: Option<u32>,
    /// Seconds.
    pub resume_for: Option<f64>,
    pub first_delay: Option<f64>,
    pub max_delay: Option<f64>,
    pub cache_entries: Option<u32>,
    pub cache_bytes: Option<f64>,
    /// Events folded since the newest snapshot before a session writes one; 0: never.
    pub snapshot_every: Option<u32>,
}

/// How a client reaches a server.
#[napi(object)]
pub struct ConnectSettings {
    pub token: Option<String>,
    pub ca_certificate: Option<Buffer>,
    pub tls_domain: Option<String>,
    /// Seconds.
    pub connect_timeout: Option<f64>,
    pub request_timeout: Option<f64>,
}

/// Where a subscription starts and what it delivers.
#[napi(object)]
pub struct SubscriptionInput {
    /// `"beginning"`, `"now"`, or `"after"` with `after`.
    pub start: String,
    pub after: Option<BigInt>,
    pub prefix: String,
    pub names: Vec<String>,
}

/// One state of a command over several.
#[napi(object)]
pub struct SessionTarget {
    pub state_id: String,
    pub reducer_revision: String,
}
