//! A subscription that outlives broken connections. The server (or the embedded bus) delivers
//! events once and in order within one stream; across streams, this resumes after the last
//! position it handed out (an event's or a checkpoint's), so the caller still sees every event
//! once and in order when a connection breaks, a server stops, or the server drops a subscriber
//! that fell behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use flipbook_model::{Delivery, SubscriptionQuery, SubscriptionStart, validate};
use futures::{Stream, StreamExt};

use crate::backend::Deliveries;
use crate::client::Client;
use crate::error::{Error, Result};

/// The messages of a subscription: [`Delivery::Events`] (pages in strictly increasing global
/// position) and [`Delivery::Checkpoint`]s. It ends only with an error that resuming cannot
/// help (invalid filters, no permission) or once resuming has failed for the retry policy's
/// `resume_for`.
pub struct Subscription {
    client: Client,
    query: SubscriptionQuery,
    stream: Option<Deliveries>,
    /// The last position handed out; `None` before the first message.
    position: Option<u64>,
    /// Failed resumptions since the last message, and since when they fail.
    failures: u32,
    failing_since: Option<tokio::time::Instant>,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Ready once the client is closed: the subscription ends then, even while it waits.
    closing: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl Subscription {
    pub(crate) fn new(client: Client, query: SubscriptionQuery) -> Self {
        let invalid = validate::subscription(&query).err();
        let stream = invalid.map(|error| futures::stream::iter([Err(Error::from(error))]).boxed());
        let mut closed = client.inner.closed.subscribe();
        let closing = Box::pin(async move {
            let _ = closed.wait_for(|closed| *closed).await;
        });
        Self {
            client,
            query,
            stream,
            position: None,
            failures: 0,
            failing_since: None,
            waiting: None,
            closing,
            ended: false,
        }
    }

    /// The position to save as a checkpoint: every event at or below it was handed out or
    /// filtered out. `None` until the first message.
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    fn resume_query(&self) -> SubscriptionQuery {
        let start = self.position.map_or(self.query.start, SubscriptionStart::After);
        SubscriptionQuery { start, ..self.query.clone() }
    }
}

impl Stream for Subscription {
    type Item = Result<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if this.closing.as_mut().poll(cx).is_ready() {
                this.ended = true;
                return Poll::Ready(Some(Err(Error::Closed)));
            }
            if let Some(waiting) = &mut this.waiting {
                ready!(waiting.as_mut().poll(cx));
                this.waiting = None;
            }
            if this.stream.is_none() {
                match this.client.inner.backend() {
                    Ok(backend) => this.stream = Some(backend.subscribe(this.resume_query())),
                    Err(closed) => {
                        this.ended = true;
                        return Poll::Ready(Some(Err(closed)));
                    }
                }
            }
            let stream = this.stream.as_mut().expect("a stream was just set");
            let error = match ready!(stream.poll_next_unpin(cx)) {
                Some(Ok(delivery)) => {
                    this.failures = 0;
                    this.failing_since = None;
                    this.position = Some(match &delivery {
                        Delivery::Events(events) => events.last().map_or(0, |e| e.global_position),
                        Delivery::Checkpoint(position) => *position,
                    });
                    return Poll::Ready(Some(Ok(delivery)));
                }
                Some(Err(error)) => error,
                // A subscription never ends by itself: the connection went away.
                None => Error::Unavailable("the subscription stream ended".to_owned()),
            };
            this.stream = None;
            let retry = &this.client.inner.options.retry;
            let failing_since = *this.failing_since.get_or_insert_with(tokio::time::Instant::now);
            if !error.is_retryable() || failing_since.elapsed() >= retry.resume_for {
                this.ended = true;
                return Poll::Ready(Some(Err(error)));
            }
            this.failures += 1;
            tracing::debug!(%error, failures = this.failures, position = ?this.position, "resuming a subscription");
            this.waiting = Some(Box::pin(tokio::time::sleep(retry.delay(this.failures))));
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("query", &self.query).field("position", &self.position).finish()
    }
}
