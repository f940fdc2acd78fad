//! The client: every call of the low-level API as a promise, and the subscriptions and
//! sessions (load, execute) that TypeScript drives.

use std::time::Duration;

use flipbook_sdk_core::{
    Client, ClientOptions, ConnectOptions, Snapshot, SnapshotQuery, SubscriptionQuery, SubscriptionStart, Timestamp,
};
use napi::bindgen_prelude::{BigInt, Buffer};
use napi_derive::napi;

use crate::errors::{OrThrow, invalid};
use crate::pages::NativePages;
use crate::sessions::{Conversation, NativeSession};
use crate::subscriptions::NativeSubscription;
use crate::values::{
    AllQueryInput, AppendInput, AppendResult, ClientSettings, ConnectSettings, HeadResult, LogHeadResult,
    ServerInfoResult, SessionTarget, SnapshotValue, StateQueryInput, SubscriptionInput, big, nanos, unsigned,
    unsigned_opt,
};

fn seconds(value: Option<f64>, field: &str) -> napi::Result<Option<Duration>> {
    value
        .map(|s| Duration::try_from_secs_f64(s).map_err(|_| invalid(field, "must be a non-negative number of seconds")))
        .transpose()
}

fn client_options(settings: ClientSettings) -> napi::Result<ClientOptions> {
    let mut options = ClientOptions::default();
    let retry = &mut options.retry;
    retry.max_tries = settings.max_tries.map_or(retry.max_tries, |t| t.max(1));
    retry.max_resends = settings.max_resends.unwrap_or(retry.max_resends);
    retry.resume_for = seconds(settings.resume_for, "resumeFor")?.unwrap_or(retry.resume_for);
    retry.first_delay = seconds(settings.first_delay, "firstDelay")?.unwrap_or(retry.first_delay);
    retry.max_delay = seconds(settings.max_delay, "maxDelay")?.unwrap_or(retry.max_delay);
    if let Some(entries) = settings.cache_entries {
        options.cache.max_entries = entries as usize;
    }
    if let Some(bytes) = settings.cache_bytes {
        if !(bytes >= 0.0 && bytes.fract() == 0.0 && bytes < 2f64.powi(53)) {
            return Err(invalid("cacheBytes", "must be a whole number of bytes"));
        }
        options.cache.max_bytes = bytes as u64;
    }
    if let Some(every) = settings.snapshot_every {
        options.snapshots.every = (every > 0).then_some(u64::from(every));
    }
    Ok(options)
}

/// One client of a server, an embedded file or memory; clones share its connection and cache.
#[napi]
pub struct NativeClient {
    client: Client,
}

/// Connects to a server (`http://` or `https://`).
#[napi]
pub async fn connect(
    endpoint: String,
    connect: ConnectSettings,
    settings: ClientSettings,
) -> napi::Result<NativeClient> {
    let options = client_options(settings)?;
    let mut how = ConnectOptions::new(endpoint);
    how.token = connect.token;
    how.ca_certificate = connect.ca_certificate.map(|c| c.to_vec());
    how.tls_domain = connect.tls_domain;
    how.connect_timeout = seconds(connect.connect_timeout, "connectTimeout")?.unwrap_or(how.connect_timeout);
    how.request_timeout = seconds(connect.request_timeout, "requestTimeout")?.unwrap_or(how.request_timeout);
    let client = Client::connect_with(how, options).await.or_throw()?;
    Ok(NativeClient { client })
}

/// Opens (or creates) an embedded store in an SQLite file.
#[napi]
pub async fn open_embedded(path: String, settings: ClientSettings) -> napi::Result<NativeClient> {
    let client = Client::open_embedded(path, client_options(settings)?).await.or_throw()?;
    Ok(NativeClient { client })
}

/// A store in this process's memory, for tests.
#[napi]
pub async fn in_memory(settings: ClientSettings) -> napi::Result<NativeClient> {
    Ok(NativeClient { client: Client::in_memory(client_options(settings)?) })
}

#[napi]
impl NativeClient {
    /// Appends to one state (re-sent with the same event ids when the answer is lost).
    #[napi]
    pub async fn append(&self, part: AppendInput) -> napi::Result<AppendResult> {
        let request = part.into_request()?;
        Ok(self.client.append(request).await.or_throw()?.into())
    }

    /// Appends to several states atomically.
    #[napi]
    pub async fn append_states(&self, parts: Vec<AppendInput>) -> napi::Result<Vec<AppendResult>> {
        let parts = parts.into_iter().map(AppendInput::into_request).collect::<Result<Vec<_>, _>>()?;
        let outcomes = self.client.append_states(parts).await.or_throw()?;
        Ok(outcomes.into_iter().map(AppendResult::from).collect())
    }

    #[napi]
    pub async fn head(&self, state_id: String) -> napi::Result<HeadResult> {
        Ok(self.client.head(&state_id).await.or_throw()?.into())
    }

    #[napi]
    pub fn read_state(&self, query: StateQueryInput) -> napi::Result<NativePages> {
        Ok(NativePages::new(self.client.read_state(query.into_query()?)))
    }

    #[napi]
    pub fn read_all(&self, query: AllQueryInput) -> napi::Result<NativePages> {
        Ok(NativePages::new(self.client.read_all(query.into_query()?)))
    }

    #[napi]
    pub async fn log_head(&self) -> napi::Result<LogHeadResult> {
        let head = self.client.log_head().await.or_throw()?;
        Ok(LogHeadResult { settled_position: big(head.settled_position), event_count: big(head.event_count) })
    }

    #[napi]
    pub async fn put_snapshot(&self, snapshot: SnapshotValue) -> napi::Result<()> {
        let snapshot = Snapshot {
            version: unsigned(&snapshot.version, "version")?,
            payload: snapshot.payload.to_vec(),
            created_at: Timestamp::now(),
            state_id: snapshot.state_id,
            reducer_revision: snapshot.reducer_revision,
            content_type: snapshot.content_type,
        };
        self.client.put_snapshot(snapshot).await.or_throw()
    }

    #[napi]
    pub async fn get_snapshot(
        &self,
        state_id: String,
        reducer_revision: String,
        max_version: Option<BigInt>,
    ) -> napi::Result<Option<SnapshotValue>> {
        let query = SnapshotQuery {
            state_id,
            reducer_revision,
            max_version: unsigned_opt(max_version.as_ref(), "maxVersion")?,
        };
        let found = self.client.get_snapshot(query).await.or_throw()?;
        Ok(found.map(|s| SnapshotValue {
            version: big(s.version),
            payload: Buffer::from(s.payload),
            created_at_nanos: Some(BigInt::from(s.created_at.unix_nanos())),
            state_id: s.state_id,
            reducer_revision: s.reducer_revision,
            content_type: s.content_type,
        }))
    }

    /// How many snapshots there were.
    #[napi]
    pub async fn delete_snapshots(&self, state_id: String) -> napi::Result<BigInt> {
        Ok(big(self.client.delete_snapshots(&state_id).await.or_throw()?))
    }

    #[napi]
    pub async fn server_info(&self) -> napi::Result<ServerInfoResult> {
        let info = self.client.server_info().await.or_throw()?;
        Ok(ServerInfoResult {
            server_version: info.server_version,
            event_backend: info.event_backend,
            snapshot_backend: info.snapshot_backend,
            durable: info.durable,
            max_events_per_append: info.limits.max_events_per_append,
            max_states_per_append: info.limits.max_states_per_append,
            max_payload_bytes: big(info.limits.max_payload_bytes),
            max_snapshot_bytes: big(info.limits.max_snapshot_bytes),
        })
    }

    /// Events of the store after `start`, stored ones first, then live ones; resumed by the core.
    #[napi]
    pub fn subscribe(&self, query: SubscriptionInput) -> napi::Result<NativeSubscription> {
        let start = match (query.start.as_str(), query.after) {
            ("beginning", _) => SubscriptionStart::Beginning,
            ("now", _) => SubscriptionStart::Now,
            ("after", Some(after)) => SubscriptionStart::After(unsigned(&after, "start")?),
            _ => return Err(invalid("start", "must be \"beginning\", \"now\" or a position")),
        };
        let query = SubscriptionQuery { start, state_id_prefix: query.prefix, names: query.names };
        Ok(NativeSubscription::new(self.client.subscribe(query)))
    }

    /// Starts loading a state (as of a time: no cache, no snapshot).
    #[napi]
    pub async fn load_session(
        &self,
        state_id: String,
        reducer_revision: String,
        as_of_nanos: Option<BigInt>,
    ) -> napi::Result<NativeSession> {
        let as_of = as_of_nanos.as_ref().map(|t| nanos(t, "as_of")).transpose()?;
        let session = self.client.load_session(&state_id, &reducer_revision, as_of).await.or_throw()?;
        Ok(NativeSession::new(Conversation::One(session)))
    }

    /// Starts a command on one state.
    #[napi]
    pub async fn execute_session(&self, state_id: String, reducer_revision: String) -> napi::Result<NativeSession> {
        let session = self.client.execute_session(&state_id, &reducer_revision).await.or_throw()?;
        Ok(NativeSession::new(Conversation::One(session)))
    }

    /// Starts a command on several states, appended atomically.
    #[napi]
    pub async fn execute_states_session(&self, targets: Vec<SessionTarget>) -> napi::Result<NativeSession> {
        let targets: Vec<(&str, &str)> =
            targets.iter().map(|t| (t.state_id.as_str(), t.reducer_revision.as_str())).collect();
        let command = self.client.execute_states_session(&targets).await.or_throw()?;
        Ok(NativeSession::new(Conversation::Many(command)))
    }

    /// Calls after it, and reads begun before, fail with `CLOSED`; it resolves once the
    /// snapshots being written are and an embedded file is released. Closing again does nothing.
    #[napi]
    pub async fn close(&self) {
        self.client.close().await;
    }

    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}
