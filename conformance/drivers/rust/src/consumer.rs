//! An open subscription consumed in the background, the way an application's projection
//! consumes one: the `subscribe_open`, `subscribe_next` and `subscribe_close` steps. The
//! subscription is polled all the time, also while the runner restarts a server.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flipbook_sdk_core::{Delivery, Error, Subscription};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Notify;

use crate::event_json;

pub struct Consumer {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    /// Events handed to the runner so far.
    taken: usize,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Received>,
    changed: Notify,
}

#[derive(Default)]
struct Received {
    events: Vec<Value>,
    /// What ended the subscription.
    error: Option<Error>,
    /// Messages of any kind (a subscription from "now" first sends a checkpoint).
    messages: usize,
}

impl Shared {
    fn received(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Consumer {
    /// Consumes `subscription` in a task of its own; `drop_second` is the driver's
    /// `drop-delivered` fault (the second event is lost).
    pub fn start(mut subscription: Subscription, drop_second: bool) -> Self {
        let shared = Arc::new(Shared::default());
        let feeding = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut delivered = 0;
            while let Some(message) = subscription.next().await {
                let ended = {
                    let mut received = feeding.received();
                    received.messages += 1;
                    match message {
                        Ok(Delivery::Events(events)) => {
                            for event in &events {
                                delivered += 1;
                                if !(drop_second && delivered == 2) {
                                    received.events.push(event_json(event));
                                }
                            }
                            false
                        }
                        Ok(Delivery::Checkpoint(_)) => false,
                        Err(error) => {
                            received.error = Some(error);
                            true
                        }
                    }
                };
                feeding.changed.notify_waiters();
                if ended {
                    break;
                }
            }
        });
        Self { shared, task, taken: 0 }
    }

    /// Waits until the first message arrived (or `patience` passed): where a subscription
    /// from "now" starts is settled then.
    pub async fn started(&self, patience: Duration) {
        self.wait_until(patience, |received| received.messages > 0 || received.error.is_some()).await;
    }

    /// The next `count` events, or what arrived of them within `patience`; the error that
    /// ended the subscription once the events before it are taken.
    pub async fn next(&mut self, count: usize, patience: Duration) -> Result<Vec<Value>, Error> {
        let wanted = self.taken + count;
        self.wait_until(patience, |received| received.events.len() >= wanted || received.error.is_some()).await;
        let mut received = self.shared.received();
        let end = received.events.len().min(wanted);
        if end == self.taken
            && let Some(error) = received.error.take()
        {
            return Err(error);
        }
        let events = received.events[self.taken..end].to_vec();
        self.taken = end;
        Ok(events)
    }

    async fn wait_until(&self, patience: Duration, done: impl Fn(&Received) -> bool) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change between the check and the wait counts.
            changed.as_mut().enable();
            if done(&self.shared.received()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
