//! Reads: pages of events fetched as TypeScript iterates, each packed into one buffer.
//!
//! A page, little-endian: `u32` count, then per event `u64` global position, `u64` version + 1
//! (0: version-neutral), `i64` recorded-at nanos, `u8` has-timestamp, `i64` timestamp nanos,
//! 16 bytes of event id, then `u32` length + UTF-8 of the state id, name, content type and
//! metadata (JSON; empty when there is none), and `u32` length + the payload. `src/events.ts`
//! reads the same layout.

use flipbook_sdk_core::{EventPages, RecordedEvent};
use futures::StreamExt;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::errors::to_js;
use crate::slot::Slot;

/// A read in progress.
#[napi]
pub struct NativePages(Slot<EventPages>);

impl NativePages {
    pub(crate) fn new(pages: EventPages) -> Self {
        Self(Slot::new(pages))
    }
}

#[napi]
impl NativePages {
    /// The next page, packed; `null` at the end (or once closed).
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Buffer>> {
        match self.0.run(|pages| Box::pin(pages.next())).await {
            Some(Some(Ok(page))) => Ok(Some(pack(&page).into())),
            Some(Some(Err(error))) => {
                self.0.take().await;
                Err(to_js(&error))
            }
            Some(None) => {
                self.0.take().await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Ends the read (a `for await` loop left early, an abort): the stream, and the server's,
    /// are dropped now, a page being fetched with them.
    #[napi]
    pub fn close(&self) {
        self.0.close();
    }
}

fn put_text(out: &mut Vec<u8>, text: &[u8]) {
    // Every text and payload is far below 4 GiB: the limits refuse larger ones at the edge.
    out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(text);
}

pub(crate) fn pack(page: &[RecordedEvent]) -> Vec<u8> {
    let size: usize = page.iter().map(|e| 80 + e.state_id.len() + e.name.len() + e.payload.len()).sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&u32::try_from(page.len()).unwrap_or(u32::MAX).to_le_bytes());
    for event in page {
        out.extend_from_slice(&event.global_position.to_le_bytes());
        out.extend_from_slice(&event.version.map_or(0, |v| v + 1).to_le_bytes());
        out.extend_from_slice(&event.recorded_at.unix_nanos().to_le_bytes());
        out.push(u8::from(event.timestamp.is_some()));
        out.extend_from_slice(&event.timestamp.map_or(0, |t| t.unix_nanos()).to_le_bytes());
        out.extend_from_slice(event.event_id.as_bytes());
        put_text(&mut out, event.state_id.as_bytes());
        put_text(&mut out, event.name.as_bytes());
        put_text(&mut out, event.content_type.as_bytes());
        let metadata = if event.metadata.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&event.metadata).unwrap_or_default()
        };
        put_text(&mut out, metadata.as_bytes());
        put_text(&mut out, &event.payload);
    }
    out
}
