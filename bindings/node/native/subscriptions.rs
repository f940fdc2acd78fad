//! Subscriptions: the core's messages a page at a time. The core resumes after broken
//! connections; this only waits for the next message, and a `close()` ends that wait at once.

use flipbook_sdk_core::{Delivery, Subscription};
use futures::StreamExt;
use napi::bindgen_prelude::{BigInt, Buffer};
use napi_derive::napi;

use crate::errors::to_js;
use crate::pages::pack;
use crate::slot::Slot;
use crate::values::big;

/// A subscription's message: a page of events (packed as a read's) or a checkpoint.
#[napi(object)]
pub struct Message {
    pub events: Option<Buffer>,
    pub checkpoint: Option<BigInt>,
}

#[napi]
pub struct NativeSubscription(Slot<Subscription>);

impl NativeSubscription {
    pub(crate) fn new(subscription: Subscription) -> Self {
        Self(Slot::new(subscription))
    }
}

#[napi]
impl NativeSubscription {
    /// The next message; `null` once closed. Rejects with the error that ends the
    /// subscription (then `null`).
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Message>> {
        match self.0.run(|subscription| Box::pin(subscription.next())).await {
            Some(Some(Ok(Delivery::Events(events)))) => {
                Ok(Some(Message { events: Some(pack(&events).into()), checkpoint: None }))
            }
            Some(Some(Ok(Delivery::Checkpoint(position)))) => {
                Ok(Some(Message { events: None, checkpoint: Some(big(position)) }))
            }
            Some(Some(Err(error))) => {
                self.0.take().await;
                Err(to_js(&error))
            }
            Some(None) | None => {
                self.0.take().await;
                Ok(None)
            }
        }
    }

    /// Ends the subscription: a `next()` waiting resolves to `null` now.
    #[napi]
    pub fn close(&self) {
        self.0.close();
    }
}
