//! The in-process engine: an event store, a snapshot store, the event bus over the events, and
//! the limits in force, behind one set of calls that validate every request before a store
//! sees it. The server serves it over gRPC and the SDK runs it in-process (embedded, in
//! memory): one object, so both refuse the same requests and see the same limits. A server
//! also probes the stores ([`Engine::watch_backends`]): while one does not answer, calls that
//! need it are refused at once as unavailable, instead of each waiting out the backend's own
//! timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flipbook_model::validate::{self, Limits};
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Delivery, Error, LogHead, RecordedEvent, Result, Snapshot, SnapshotQuery,
    StateHead, StateQuery, SubscriptionQuery,
};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use tokio::sync::watch;

use crate::bus::{Bus, BusOptions};
use crate::read::{DEFAULT_PAGE_SIZE, all_pages, all_wire_pages, state_pages, state_wire_pages};
use crate::store::{EventStore, SnapshotStore};
use crate::wire::WirePage;

/// A stream of a read's pages, or of a subscription's deliveries.
pub type Pages<T> = BoxStream<'static, Result<T>>;

#[derive(Clone, Debug)]
pub struct Engine {
    events: Arc<dyn EventStore>,
    snapshots: Arc<dyn SnapshotStore>,
    bus: Arc<Bus>,
    limits: Limits,
    reach: Arc<watch::Sender<Reach>>,
}

/// What the last probe of each store found ([`Engine::watch_backends`]): `None` while it
/// answers, else why it did not. An engine that is never probed (embedded, in memory) counts
/// both as reachable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub events: Option<String>,
    pub snapshots: Option<String>,
}

/// How often the stores are probed, and how long a probe may wait for an answer (see
/// [`Engine::watch_backends`] for when a store counts as unreachable). A call refused while a
/// store is unreachable stored nothing (it never reached the store), so `Unavailable` is true
/// of it and a client may re-send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self { interval: Duration::from_millis(500), timeout: Duration::from_secs(1) }
    }
}

/// `Unavailable` if a probe found the `what` store (on `backend`) unreachable, saying why.
fn refuse_if(unreachable: &Option<String>, what: &str, backend: &str) -> Result<()> {
    match unreachable {
        None => Ok(()),
        Some(why) => Err(Error::Unavailable(format!("the {backend} {what} store is unreachable: {why}"))),
    }
}

/// How many probes in a row must get no answer before a store counts as unreachable.
pub const TIMEOUTS_IN_A_ROW: u32 = 3;

/// One store's probes: how many in a row got no answer, and the verdict so far.
#[derive(Default)]
struct Probe {
    timeouts: u32,
    unreachable: Option<String>,
}

impl Probe {
    /// `None` if the store is reachable, else why not. A probe without an answer changes the
    /// verdict only once it is the [`TIMEOUTS_IN_A_ROW`]th. A failed one is tried again at once
    /// before it counts: after a backend restarts, the first command on each connection it
    /// closed fails and makes the client reconnect (Redis), and that is not an outage.
    async fn probe<F: Future<Output = Result<()>>>(
        &mut self,
        options: ProbeOptions,
        ping: impl Fn() -> F,
    ) -> Option<String> {
        let mut answer = tokio::time::timeout(options.timeout, ping()).await;
        if matches!(answer, Ok(Err(_))) {
            answer = tokio::time::timeout(options.timeout, ping()).await;
        }
        match answer {
            Ok(answer) => {
                self.timeouts = 0;
                self.unreachable = answer.err().map(|error| error.to_string());
            }
            Err(_) => {
                self.timeouts += 1;
                if self.timeouts >= TIMEOUTS_IN_A_ROW {
                    self.unreachable =
                        Some(format!("no answer to {} probes in a row ({:?} each)", self.timeouts, options.timeout));
                }
            }
        }
        self.unreachable.clone()
    }
}

/// What an engine runs on and accepts: what server info reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    pub event_backend: &'static str,
    pub snapshot_backend: &'static str,
    pub durable: bool,
    pub limits: Limits,
}

impl Engine {
    /// `limits` are lowered to what the event backend can hold (DynamoDB's transactions hold
    /// fewer events than the default batch).
    pub fn new(
        events: Arc<dyn EventStore>,
        snapshots: Arc<dyn SnapshotStore>,
        mut limits: Limits,
        bus: BusOptions,
    ) -> Self {
        let backend = events.limits();
        if let Some(max) = backend.max_events_per_append {
            limits.max_events_per_append = limits.max_events_per_append.min(max);
        }
        if let Some(max) = backend.max_states_per_append {
            limits.max_states_per_append = limits.max_states_per_append.min(max);
        }
        let bus = Arc::new(Bus::new(Arc::clone(&events), bus));
        Self { events, snapshots, bus, limits, reach: Arc::new(watch::Sender::new(Reach::default())) }
    }

    /// Probes both stores ([`EventStore::ping`], [`SnapshotStore::ping`]) every
    /// `options.interval`, for as long as the returned future runs (the server spawns it and
    /// aborts it when it stops). What it finds is [`Engine::reach`]: a store whose probe fails
    /// (a refused connection) is unreachable at once; one that does not answer is unreachable
    /// only once [`TIMEOUTS_IN_A_ROW`] probes in a row got no answer, so a backend that is slow
    /// for a moment (an emulator under load, throttling) is never cut off for it.
    pub fn watch_backends(&self, options: ProbeOptions) -> impl Future<Output = ()> + Send + 'static {
        let (events, snapshots, reach) =
            (Arc::clone(&self.events), Arc::clone(&self.snapshots), Arc::clone(&self.reach));
        async move {
            let (mut events_probe, mut snapshots_probe) = (Probe::default(), Probe::default());
            loop {
                let (events, snapshots) = futures::join!(
                    events_probe.probe(options, || events.ping()),
                    snapshots_probe.probe(options, || snapshots.ping()),
                );
                reach.send_if_modified(|now| {
                    let found = Reach { events, snapshots };
                    let changed = *now != found;
                    *now = found;
                    changed
                });
                tokio::time::sleep(options.interval).await;
            }
        }
    }

    /// What the probes found, as it changes: the server's health service follows it.
    pub fn reach(&self) -> watch::Receiver<Reach> {
        self.reach.subscribe()
    }

    /// `Unavailable` at once while the last probe found the event store unreachable.
    fn events_reachable(&self) -> Result<()> {
        refuse_if(&self.reach.borrow().events, "event", self.events.backend())
    }

    fn snapshots_reachable(&self) -> Result<()> {
        refuse_if(&self.reach.borrow().snapshots, "snapshot", self.snapshots.backend())
    }

    /// What requests are validated against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn info(&self) -> EngineInfo {
        EngineInfo {
            event_backend: self.events.backend(),
            snapshot_backend: self.snapshots.backend(),
            durable: self.events.durable(),
            limits: self.limits.clone(),
        }
    }

    /// Ends every subscription with `Unavailable` and refuses new ones (see [`Bus::close`]).
    pub fn close_subscriptions(&self) {
        self.bus.close();
    }

    /// Ends every subscription, then releases the stores (an embedded file: its writer and
    /// connections) once the calls running now have ended ([`EventStore::close`]).
    pub async fn close(&self) {
        self.bus.close();
        self.events.close().await;
        self.snapshots.close().await;
    }

    pub async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        validate::append(&request, &self.limits)?;
        self.events_reachable()?;
        let outcome = self.events.append(request).await?;
        self.bus.appended();
        Ok(outcome)
    }

    /// Appends to several states atomically: every part stored, or none.
    pub async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        validate::append_states(&parts, &self.limits)?;
        self.events_reachable()?;
        let outcomes = self.events.append_states(parts).await?;
        self.bus.appended();
        Ok(outcomes)
    }

    /// `None` for a state with no events.
    pub async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        validate::head(state_id)?;
        self.events_reachable()?;
        self.events.head(state_id).await
    }

    /// One state's events, page by page, fetched as the consumer takes them.
    pub fn read_state(&self, query: StateQuery) -> Result<Pages<Vec<RecordedEvent>>> {
        validate::state_query(&query)?;
        self.events_reachable()?;
        Ok(state_pages(Arc::clone(&self.events), query, DEFAULT_PAGE_SIZE))
    }

    /// The same pages, encoded as the API sends them (a store that keeps events encoded copies).
    pub fn read_state_encoded(&self, query: StateQuery) -> Result<Pages<WirePage>> {
        validate::state_query(&query)?;
        self.events_reachable()?;
        Ok(state_wire_pages(Arc::clone(&self.events), query, DEFAULT_PAGE_SIZE))
    }

    /// The store's events in global-position order, page by page, up to the settled position
    /// when the read starts (its first poll; see [`Engine::settled_query`]).
    pub fn read_all(&self, query: AllQuery) -> Result<Pages<Vec<RecordedEvent>>> {
        validate::all_query(&query)?;
        self.events_reachable()?;
        let engine = self.clone();
        let read = async move {
            match engine.settled_query(query).await {
                Ok(query) => all_pages(Arc::clone(&engine.events), query, DEFAULT_PAGE_SIZE),
                Err(error) => stream::once(async { Err(error) }).boxed(),
            }
        };
        Ok(stream::once(read).flatten().boxed())
    }

    /// The same pages, encoded as the API sends them, and the highest position they cover.
    pub async fn read_all_encoded(&self, query: AllQuery) -> Result<(u64, Pages<WirePage>)> {
        validate::all_query(&query)?;
        self.events_reachable()?;
        let query = self.settled_query(query).await?;
        Ok((query.last_position(), all_wire_pages(Arc::clone(&self.events), query, DEFAULT_PAGE_SIZE)))
    }

    /// How far the log is settled, and how many events that covers.
    pub async fn log_head(&self) -> Result<LogHead> {
        self.events_reachable()?;
        let settled_position = self.events.settled_position().await?;
        Ok(LogHead { settled_position, event_count: self.events.event_count(settled_position).await? })
    }

    /// The query bounded by the settled position: read-all never shows an event above it, so a
    /// reader that polls from the last position it saw cannot skip one that commits late below
    /// it (PostgreSQL), as the event bus cannot.
    async fn settled_query(&self, mut query: AllQuery) -> Result<AllQuery> {
        let settled = self.events.settled_position().await?;
        query.until_position = Some(query.last_position().min(settled));
        Ok(query)
    }

    /// Stored events, then live ones, each once, with checkpoints. The bus starts delivering
    /// when the stream is first polled, so this may be called outside a Tokio runtime.
    pub fn subscribe(&self, query: SubscriptionQuery) -> Result<Pages<Delivery>> {
        validate::subscription(&query)?;
        self.events_reachable()?;
        let bus = Arc::clone(&self.bus);
        Ok(stream::once(async move { bus.subscribe(query) }).flatten().boxed())
    }

    pub async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        validate::snapshot(&snapshot, &self.limits)?;
        self.snapshots_reachable()?;
        self.snapshots.put(snapshot).await
    }

    /// The newest snapshot of the revision at or below the query's version; `None` if none.
    pub async fn get_snapshot(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        validate::snapshot_query(query)?;
        self.snapshots_reachable()?;
        self.snapshots.get(query).await
    }

    /// Deletes the state's snapshots of every revision; answers how many there were.
    pub async fn delete_snapshots(&self, state_id: &str) -> Result<u64> {
        validate::head(state_id)?;
        self.snapshots_reachable()?;
        self.snapshots.delete(state_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_probe_cuts_off_at_once_a_silent_one_only_when_it_stays_silent() {
        let options = ProbeOptions { interval: Duration::from_millis(1), timeout: Duration::from_millis(5) };
        let mut probe = Probe::default();
        let refused = || async { Err(Error::Unavailable("connection refused".into())) };
        let silent = std::future::pending::<Result<()>>;
        let answers = || async { Ok(()) };

        assert_eq!(probe.probe(options, answers).await, None);
        assert!(probe.probe(options, refused).await.is_some_and(|why| why.contains("refused")));
        // Silence below the count keeps the verdict, whichever it is.
        assert!(probe.probe(options, silent).await.is_some(), "still unreachable");
        assert_eq!(probe.probe(options, answers).await, None);
        for _ in 1..TIMEOUTS_IN_A_ROW {
            assert_eq!(probe.probe(options, silent).await, None, "a slow moment is not an outage");
        }
        assert!(probe.probe(options, silent).await.is_some_and(|why| why.contains("in a row")));
        assert_eq!(probe.probe(options, answers).await, None, "an answer ends it");
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_is_not_an_outage() {
        let options = ProbeOptions { interval: Duration::from_millis(1), timeout: Duration::from_millis(5) };
        let mut probe = Probe::default();
        // The first command on it fails (and the client reconnects); the next one answers.
        let calls = std::sync::atomic::AtomicU32::new(0);
        let stale_once = || {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            async move { if first { Err(Error::Unavailable("broken pipe".into())) } else { Ok(()) } }
        };
        assert_eq!(probe.probe(options, stale_once).await, None);
        assert_eq!(calls.into_inner(), 2);
    }
}
