//! The client: every call of the `flipbook.v1` API, over a server or embedded, validated before
//! it leaves (an invalid request costs no round trip), and the state sessions that load and
//! execute (see [`crate::session`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, LogHead, Snapshot, SnapshotQuery, StateHead, StateQuery, SubscriptionQuery,
    validate::{self, Limits},
};
use flipbook_storage::bus::BusOptions;
use flipbook_storage::engine::Engine;
use futures::{StreamExt, stream};
use tokio::sync::{Notify, watch};

use crate::backend::{Backend, EventPages, Local, Remote, ServerInfo};
use crate::cache::StateCache;
use crate::error::{Error, Result};
use crate::options::{ClientOptions, ConnectOptions};
use crate::subscription::Subscription;

/// A connection to Flipbook: cheap to clone, every clone shares the connection and the cache.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Through [`Inner::backend`], which refuses calls once the client is closed.
    backend: Box<dyn Backend>,
    pub limits: Limits,
    pub options: ClientOptions,
    pub cache: StateCache,
    pub snapshot_writes: SnapshotWrites,
    /// Set by [`Client::close`]: reads and subscriptions begun before watch it.
    pub closed: watch::Sender<bool>,
}

impl Inner {
    /// What the client runs on, unless it is closed.
    pub fn backend(&self) -> Result<&dyn Backend> {
        if *self.closed.borrow() { Err(Error::Closed) } else { Ok(&*self.backend) }
    }

    /// One call on the backend, unless the client is closed; a call that fails because the
    /// client closed while it ran (an embedded store refuses what reaches it once released)
    /// answers `Closed` too.
    pub async fn call<'a, T, Sent>(&'a self, send: impl FnOnce(&'a dyn Backend) -> Sent) -> Result<T>
    where
        Sent: std::future::Future<Output = Result<T>> + 'a,
    {
        match send(self.backend()?).await {
            Err(error) if error.is_retryable() && *self.closed.borrow() => Err(Error::Closed),
            other => other,
        }
    }

    /// Pages that end with [`Error::Closed`] at the first page asked for after the client is
    /// closed: a read begun before does not go on reading a released store.
    pub fn guarded(&self, pages: EventPages) -> EventPages {
        let closed = self.closed.subscribe();
        pages
            .map(move |page| if *closed.borrow() { Err(Error::Closed) } else { page })
            .scan(false, |ended, page| {
                let item = (!*ended).then(|| {
                    *ended = matches!(page, Err(Error::Closed));
                    page
                });
                std::future::ready(item)
            })
            .boxed()
    }
}

/// Snapshot writes running in the background, bounded.
#[derive(Debug, Default)]
pub(crate) struct SnapshotWrites {
    in_flight: AtomicUsize,
    settled: Notify,
}

impl SnapshotWrites {
    /// More than this many at once means the snapshot store is slow: further writes are skipped.
    const MAX_IN_FLIGHT: usize = 16;

    pub fn try_start(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < Self::MAX_IN_FLIGHT).then_some(n + 1))
            .is_ok()
    }

    pub fn done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_waiters();
        }
    }

    async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Client {
    /// Connects to a server (`http://127.0.0.1:7420`) with default options.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self> {
        Self::connect_with(ConnectOptions::new(endpoint), ClientOptions::default()).await
    }

    /// Connects to a server and reads its limits, which requests are validated against here.
    pub async fn connect_with(connect: ConnectOptions, options: ClientOptions) -> Result<Self> {
        let (backend, info) = Remote::connect(&connect).await?;
        let limits = info.limits;
        Ok(Self::from_backend(Box::new(backend), limits, options))
    }

    /// Embedded mode: the same API over a SQLite file in this process (created when missing;
    /// events and snapshots in the one file), no server.
    #[cfg(feature = "embedded")]
    pub async fn open_embedded(path: impl AsRef<Path>, options: ClientOptions) -> Result<Self> {
        use flipbook_storage::sqlite::{SqliteConfig, SqliteEventStore, SqliteSnapshotStore};
        let config = SqliteConfig::new(path.as_ref());
        let events = SqliteEventStore::open(&config).await?;
        let snapshots = SqliteSnapshotStore::open(&config).await?;
        Ok(Self::local(Arc::new(events), Arc::new(snapshots), options))
    }

    /// Everything in this process's memory, gone when the client is: for unit tests.
    pub fn in_memory(options: ClientOptions) -> Self {
        use flipbook_storage::memory::{MemoryEventStore, MemorySnapshotStore};
        Self::local(Arc::new(MemoryEventStore::new()), Arc::new(MemorySnapshotStore::new()), options)
    }

    /// The client over stores this process opened itself, run by the same engine as the
    /// server's: the default limits, lowered to what the event store can hold.
    pub fn local(
        events: Arc<dyn flipbook_storage::EventStore>,
        snapshots: Arc<dyn flipbook_storage::SnapshotStore>,
        options: ClientOptions,
    ) -> Self {
        let engine = Engine::new(events, snapshots, Limits::default(), BusOptions::default());
        let limits = engine.limits().clone();
        Self::from_backend(Box::new(Local(engine)), limits, options)
    }

    fn from_backend(backend: Box<dyn Backend>, limits: Limits, options: ClientOptions) -> Self {
        let cache = StateCache::new(&options.cache);
        let (snapshot_writes, closed) = (SnapshotWrites::default(), watch::Sender::new(false));
        Self { inner: Arc::new(Inner { backend, limits, options, cache, snapshot_writes, closed }) }
    }

    /// Closes the client (every clone): calls after it, and reads and subscriptions begun
    /// before when they go on, fail with [`Error::Closed`]. It waits for the snapshots being
    /// written; embedded, it also waits for the calls running now and releases the file (its
    /// writer thread and connections) before it returns. A server connection closes as its
    /// last in-flight call ends. Closing again does nothing.
    pub async fn close(&self) {
        if self.inner.closed.send_replace(true) {
            return;
        }
        self.inner.snapshot_writes.settled().await;
        self.inner.backend.close().await;
    }

    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// What the request is validated against: the server's limits, or the embedded defaults.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Waits until the snapshots that sessions of this client began writing are written (or
    /// failed): before a process exits, or in a test that reads them.
    pub async fn flush_snapshots(&self) -> Result<()> {
        self.inner.backend()?;
        self.inner.snapshot_writes.settled().await;
        Ok(())
    }

    /// Entries and bytes the local state cache holds now.
    pub fn cache_usage(&self) -> Result<(usize, u64)> {
        self.inner.backend()?;
        Ok(self.inner.cache.usage())
    }

    /// Appends one or more events to one state, atomically, under the request's expectation.
    /// When the server cannot be reached or the answer is lost, the same request is sent again
    /// (same event ids: the server answers the original outcome if it had stored it), up to the
    /// retry policy's `max_resends`: what an application wants. [`Client::append_once`] never
    /// re-sends.
    pub async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        validate::append(&request, &self.inner.limits)?;
        self.resending(&request.state_id, |backend| backend.append(request.clone())).await
    }

    /// Appends, sent once: a lost answer is the caller's error (for a caller that re-sends by
    /// itself, or a test of what the server does with one request).
    pub async fn append_once(&self, request: AppendRequest) -> Result<AppendOutcome> {
        validate::append(&request, &self.inner.limits)?;
        self.inner.call(|backend| backend.append(request)).await
    }

    /// Appends to several states atomically: every part is stored, or none (a part's conflict
    /// names its state). Re-sent after a lost answer as [`Client::append`] is.
    pub async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        validate::append_states(&parts, &self.inner.limits)?;
        self.resending(&parts[0].state_id, |backend| backend.append_states(parts.clone())).await
    }

    /// [`Client::append_states`], sent once.
    pub async fn append_states_once(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        validate::append_states(&parts, &self.inner.limits)?;
        self.inner.call(|backend| backend.append_states(parts)).await
    }

    /// Sends, and sends the same again after a retryable failure, up to `max_resends`.
    async fn resending<'a, T, F, Sent>(&'a self, state_id: &str, send: F) -> Result<T>
    where
        F: Fn(&'a dyn Backend) -> Sent,
        Sent: std::future::Future<Output = Result<T>> + 'a,
    {
        let retry = &self.inner.options.retry;
        let mut resends = 0;
        loop {
            // Checked before every send: a client closed meanwhile sends nothing more.
            match self.inner.call(&send).await {
                Err(error) if error.is_retryable() && resends < retry.max_resends => {
                    resends += 1;
                    tracing::debug!(%error, resends, state_id, "re-sending an append");
                    tokio::time::sleep(retry.delay(resends)).await;
                }
                result => return result,
            }
        }
    }

    /// A state's head ("version 0"); [`Error::NotFound`] for a state with no events.
    pub async fn head(&self, state_id: &str) -> Result<StateHead> {
        validate::head(state_id)?;
        self.inner
            .call(|backend| backend.head(state_id))
            .await?
            .ok_or_else(|| Error::NotFound(format!("state {state_id:?} has no events")))
    }

    /// One state's events, page by page, as the query asks.
    pub fn read_state(&self, query: StateQuery) -> EventPages {
        match (validate::state_query(&query), self.inner.backend()) {
            (Ok(()), Ok(backend)) => self.inner.guarded(backend.read_state(query)),
            (Err(error), _) => failed(error.into()),
            (_, Err(closed)) => failed(closed),
        }
    }

    /// Every event of the store in global-position order, page by page.
    pub fn read_all(&self, query: AllQuery) -> EventPages {
        match (validate::all_query(&query), self.inner.backend()) {
            (Ok(()), Ok(backend)) => self.inner.guarded(backend.read_all(query)),
            (Err(error), _) => failed(error.into()),
            (_, Err(closed)) => failed(closed),
        }
    }

    /// Every event of the store after the query's start, stored ones first, then live ones,
    /// each once, in global-position order, with checkpoints. A broken connection is resumed
    /// after the last position received (see [`Subscription`]).
    pub fn subscribe(&self, query: SubscriptionQuery) -> Subscription {
        Subscription::new(self.clone(), query)
    }

    pub async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        validate::snapshot(&snapshot, &self.inner.limits)?;
        self.inner.call(|backend| backend.put_snapshot(snapshot)).await
    }

    /// A snapshot a session began writing: written even if the client closes meanwhile
    /// ([`Client::close`] waits for it).
    pub(crate) async fn put_snapshot_begun(&self, snapshot: Snapshot) -> Result<()> {
        validate::snapshot(&snapshot, &self.inner.limits)?;
        self.inner.backend.put_snapshot(snapshot).await
    }

    /// The newest snapshot of the revision, at or below the query's version; `None` if none.
    pub async fn get_snapshot(&self, query: SnapshotQuery) -> Result<Option<Snapshot>> {
        validate::snapshot_query(&query)?;
        self.inner.call(|backend| backend.get_snapshot(query)).await
    }

    /// Deletes a state's snapshots of every revision; answers how many were stored.
    pub async fn delete_snapshots(&self, state_id: &str) -> Result<u64> {
        validate::head(state_id)?;
        self.inner.call(|backend| backend.delete_snapshots(state_id)).await
    }

    pub async fn server_info(&self) -> Result<ServerInfo> {
        self.inner.call(|backend| backend.server_info()).await
    }

    /// The log's head: how far it is settled (a reader polling [`Client::read_all`] goes on
    /// after it, or after its last event, and misses nothing) and how many events that covers.
    pub async fn log_head(&self) -> Result<LogHead> {
        self.inner.call(|backend| backend.log_head()).await
    }
}

fn failed(error: Error) -> EventPages {
    stream::iter([Err(error)]).boxed()
}
