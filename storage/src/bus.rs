//! The event bus: subscriptions over any [`EventStore`], built once on two of its methods,
//! [`EventStore::settled_position`] and [`EventStore::read_all_page`].
//!
//! - **Never a skip, never a repeat, global order.** A subscription reads pages after the last
//!   position it delivered and never hands out a position above the store's *settled* position
//!   (every event at or below it is visible, and none can still appear there). An event that
//!   commits late therefore always lands above what was delivered. Each backend says how it
//!   knows its settled position; that is the only backend-specific part.
//! - **Every instance sees every append.** One watcher task per bus asks the store for its
//!   settled position every poll interval while anyone subscribes, and at once after an append
//!   through this bus ([`Bus::appended`]); appends through other servers over the same backend
//!   arrive within the poll interval. Subscriptions wait on the watcher, not on the store.
//! - **Bounded memory.** Each subscription is a task that reads at most [`AHEAD`] messages ahead
//!   of its subscriber. When the subscriber takes nothing for the stall timeout, the
//!   subscription ends with [`Error::FellBehind`] naming the position to resume after: the
//!   server never buffers for a slow subscriber.
//! - **Checkpoints**: the position reached, sent on first catching up (for a start at "now",
//!   that is where it starts) and then at most once per checkpoint interval while the position
//!   moves past what the subscriber was told (events filtered out, or none matching).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flipbook_model::{AllQuery, Delivery, Error, RecordedEvent, Result, SubscriptionQuery, SubscriptionStart};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::read::{DEFAULT_PAGE_SIZE, page_size_after};
use crate::store::{EventStore, Page};

/// Messages a subscription reads ahead of its subscriber.
pub const AHEAD: usize = 2;

/// The first page's size, until the events' size is known.
const FIRST_PAGE: usize = 64;

#[derive(Clone, Debug)]
pub struct BusOptions {
    /// How often the settled position is read while anyone subscribes: the longest delay for
    /// an event appended through another server.
    pub poll_interval: Duration,
    /// The most time between checkpoints while the position moves without events delivered.
    pub checkpoint_interval: Duration,
    /// How long a subscriber may take nothing before its subscription ends.
    pub stall_timeout: Duration,
    pub page_size: usize,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(10),
            checkpoint_interval: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(30),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// Subscriptions over one store. Dropping the bus stops its watcher.
#[derive(Debug)]
pub struct Bus {
    shared: Arc<Shared>,
    watcher: OnceLock<AbortOnDrop>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn EventStore>,
    options: BusOptions,
    /// The newest settled position the watcher has read.
    settled: watch::Sender<u64>,
    /// Asks the watcher to read the settled position now.
    wake: Notify,
    closed: watch::Sender<bool>,
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Bus {
    pub fn new(store: Arc<dyn EventStore>, options: BusOptions) -> Self {
        let shared = Shared {
            store,
            options,
            settled: watch::Sender::new(0),
            wake: Notify::new(),
            closed: watch::Sender::new(false),
        };
        Self { shared: Arc::new(shared), watcher: OnceLock::new() }
    }

    /// Events were appended through this bus's store: subscribers hear of them at once rather
    /// than at the next poll.
    pub fn appended(&self) {
        if self.shared.settled.receiver_count() > 0 {
            self.shared.wake.notify_one();
        }
    }

    /// Ends every subscription with `Unavailable` (the server is stopping; subscribers resume
    /// elsewhere), and refuses new ones.
    pub fn close(&self) {
        self.shared.closed.send_replace(true);
        if let Some(watcher) = self.watcher.get() {
            watcher.0.abort();
        }
    }

    /// The subscription's messages, until the subscriber drops the stream or an error ends it.
    /// The query has passed [`flipbook_model::validate::subscription`]. Needs a Tokio runtime.
    pub fn subscribe(&self, query: SubscriptionQuery) -> BoxStream<'static, Result<Delivery>> {
        let shared = Arc::clone(&self.shared);
        self.watcher.get_or_init(|| AbortOnDrop(tokio::spawn(watch_settled(Arc::clone(&shared)))));
        let (sender, receiver) = mpsc::channel(AHEAD);
        let (ended, end) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let outcome = deliver(&shared, query, &sender).await;
            if let Err(error) = outcome {
                let _ = ended.send(error);
            }
        });
        // The messages, then the error that ended the subscription, if any.
        let messages = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|message| (Ok(message), receiver))
        });
        let end = stream::once(end).filter_map(|ended| async move { ended.ok().map(Err) });
        messages.chain(end).boxed()
    }
}

/// The watcher: reads the settled position while anyone subscribes, every poll interval or
/// when woken, and publishes it when it moved.
async fn watch_settled(shared: Arc<Shared>) {
    let mut closed = shared.closed.subscribe();
    loop {
        if *closed.borrow_and_update() {
            return;
        }
        if shared.settled.receiver_count() == 0 {
            tokio::select! {
                () = shared.wake.notified() => {}
                _ = closed.changed() => {}
            }
            continue;
        }
        match shared.store.settled_position().await {
            Ok(position) => {
                shared.settled.send_if_modified(|settled| {
                    let moved = position > *settled;
                    *settled = (*settled).max(position);
                    moved
                });
            }
            // Subscriptions meet the same trouble on their next read and end with it.
            Err(error) => tracing::debug!(%error, "reading the settled position"),
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(shared.options.poll_interval) => {}
            _ = closed.changed() => {}
        }
    }
}

/// The subscriber's end of a subscription: sends with the stall timeout, and remembers what
/// the subscriber was told.
struct Outbox<'a> {
    sender: &'a mpsc::Sender<Delivery>,
    options: &'a BusOptions,
    /// The last position the subscriber was told, by an event or a checkpoint.
    told: Option<u64>,
    /// Where to resume when it was told nothing yet.
    start: u64,
    /// The position of the last checkpoint sent.
    checkpointed: Option<u64>,
    last_checkpoint: Instant,
}

/// The subscriber dropped the stream: the subscription ends quietly.
struct Gone;

impl Outbox<'_> {
    /// Waits for room (the subscriber took a message) at most the stall timeout.
    async fn send(&mut self, message: Delivery) -> Result<Result<(), Gone>> {
        let permit = match tokio::time::timeout(self.options.stall_timeout, self.sender.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Ok(Err(Gone)),
            Err(_) => {
                let waited_ms = u64::try_from(self.options.stall_timeout.as_millis()).unwrap_or(u64::MAX);
                return Err(Error::FellBehind { position: self.told.unwrap_or(self.start), waited_ms });
            }
        };
        self.told = Some(match &message {
            Delivery::Events(events) => events.last().map_or(0, |e| e.global_position),
            Delivery::Checkpoint(position) => *position,
        });
        permit.send(message);
        Ok(Ok(()))
    }

    async fn checkpoint(&mut self, position: u64) -> Result<Result<(), Gone>> {
        self.last_checkpoint = Instant::now();
        self.checkpointed = Some(position);
        self.send(Delivery::Checkpoint(position)).await
    }

    /// When a checkpoint at `position` is due, if it would tell something new.
    fn next_checkpoint(&self, position: u64) -> Option<Instant> {
        (self.told < Some(position)).then_some(self.last_checkpoint + self.options.checkpoint_interval)
    }

    fn checkpoint_due(&self, position: u64) -> bool {
        self.next_checkpoint(position).is_some_and(|due| Instant::now() >= due)
    }
}

/// Runs one subscription: catch up to the settled position, tell the subscriber, wait for the
/// position to move, and again. Answers the error that ends it (`Ok` when the subscriber left).
async fn deliver(shared: &Shared, query: SubscriptionQuery, sender: &mpsc::Sender<Delivery>) -> Result<()> {
    let mut closed = shared.closed.subscribe();
    let shutting_down = || Error::Unavailable("the server is shutting down; resume on another".to_owned());
    if *closed.borrow_and_update() {
        return Err(shutting_down());
    }
    let mut settled = shared.settled.subscribe();
    shared.wake.notify_one();
    // Read the store itself once: the watcher's value may be a poll old.
    let mut limit = shared.store.settled_position().await?.max(*settled.borrow_and_update());
    let mut position = match query.start {
        SubscriptionStart::Beginning => 0,
        SubscriptionStart::After(position) => position,
        SubscriptionStart::Now => limit,
    };
    let filter = AllQuery { state_id_prefix: query.state_id_prefix, names: query.names, ..AllQuery::default() };
    let options = &shared.options;
    let mut outbox =
        Outbox { sender, options, told: None, start: position, checkpointed: None, last_checkpoint: Instant::now() };
    // Pages shrink for large events, as reads' do, so memory stays bounded in bytes.
    let mut page_size = FIRST_PAGE.min(options.page_size);
    let mut live = false;
    loop {
        while position < limit {
            let page = shared.store.read_all_page(&filter, Some(position), page_size).await?;
            page_size = page_size_after(&page.events, options.page_size).unwrap_or(page_size);
            let (events, reached) = settled_part(page, limit);
            position = position.max(reached);
            if !events.is_empty() && outbox.send(Delivery::Events(events)).await?.is_err() {
                return Ok(());
            }
            // A long catch-up through events the filter drops still tells its progress.
            if outbox.checkpoint_due(position) && outbox.checkpoint(position).await?.is_err() {
                return Ok(());
            }
        }
        // The first time caught up (for a start at "now": where it starts) unless a catch-up
        // that took long just said so, then when due.
        let first = !live && outbox.checkpointed != Some(position);
        if (first || outbox.checkpoint_due(position)) && outbox.checkpoint(position).await?.is_err() {
            return Ok(());
        }
        live = true;
        let next_checkpoint = outbox.next_checkpoint(position);
        tokio::select! {
            changed = settled.changed() => {
                if changed.is_err() {
                    return Err(shutting_down());
                }
                limit = limit.max(*settled.borrow_and_update());
            }
            () = sleep_until(next_checkpoint) => {}
            _ = closed.changed() => return Err(shutting_down()),
            () = sender.closed() => return Ok(()),
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The events of a read-all page at or below `limit`, and the position the read has covered:
/// everything at or below it was in the page or filtered out.
fn settled_part(page: Page, limit: u64) -> (Vec<RecordedEvent>, u64) {
    let mut events = page.events;
    if let Some(beyond) = events.iter().position(|e| e.global_position > limit) {
        events.truncate(beyond);
        return (events, limit);
    }
    let reached = page.next.map_or(limit, |next| next.min(limit));
    (events, reached)
}
