//! Reads as streams of pages, built once over the backends' page reads. A page is fetched only
//! when the consumer asks for the next one, so memory stays bounded by one page whatever the
//! state's size, and a slow reader slows the reads instead of filling a buffer.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};

use crate::error::Result;
use crate::model::{AllQuery, RecordedEvent, StateQuery};
use crate::store::{EventStore, Page};

/// The most events one page holds unless a caller says otherwise: large enough that per-page
/// costs (a query, a gRPC message) vanish.
pub const DEFAULT_PAGE_SIZE: usize = 2048;

/// About how many bytes a page may hold: pages shrink when events are large, so memory stays
/// bounded by this rather than by `page size x largest payload`.
pub const PAGE_BYTES: usize = 1024 * 1024;

/// The first page is small, until the events' size is known.
const FIRST_PAGE: usize = 16;

/// Where a paged read stands: the cursor for the next page, how many events may still come,
/// and how large the next page should be.
struct Cursor {
    after: Option<u64>,
    remaining: Option<u64>,
    done: bool,
    size: usize,
}

impl Cursor {
    fn new(limit: Option<u64>, page_size: usize) -> Self {
        let remaining = limit.filter(|&n| n > 0);
        Self { after: None, remaining, done: false, size: FIRST_PAGE.min(page_size).max(1) }
    }

    /// The size of the next page, or `None` when the read is over.
    fn next_max(&self) -> Option<usize> {
        if self.done {
            return None;
        }
        let max = self.remaining.map_or(self.size, |r| self.size.min(usize::try_from(r).unwrap_or(usize::MAX)));
        (max > 0).then_some(max)
    }

    fn advance(&mut self, page: &Page, page_size: usize) {
        self.after = page.next;
        self.done = page.next.is_none();
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(page.events.len() as u64);
        }
        if let Some(size) = page_size_after(&page.events, page_size) {
            self.size = size;
        }
    }
}

/// How many events the next page may hold so it stays near [`PAGE_BYTES`], judged by the
/// events of the page before (`None` when it had none), and never above `page_size`.
pub(crate) fn page_size_after(events: &[RecordedEvent], page_size: usize) -> Option<usize> {
    if events.is_empty() {
        return None;
    }
    let bytes: usize = events.iter().map(event_bytes).sum();
    let average = (bytes / events.len()).max(1);
    Some((PAGE_BYTES / average).clamp(1, page_size.max(1)))
}

/// Roughly what an event weighs in memory and on the wire.
fn event_bytes(event: &RecordedEvent) -> usize {
    let metadata: usize = event.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    128 + event.payload.len() + event.state_id.len() + event.name.len() + event.content_type.len() + metadata
}

/// One state's events, page by page, honouring the query's limit. Empty pages (everything in
/// a range filtered out) are skipped, never yielded.
pub fn state_pages(
    store: Arc<dyn EventStore>,
    query: StateQuery,
    page_size: usize,
) -> BoxStream<'static, Result<Vec<RecordedEvent>>> {
    let cursor = Cursor::new(query.limit, page_size);
    stream::try_unfold((store, query, cursor), move |(store, query, mut cursor)| async move {
        while let Some(max) = cursor.next_max() {
            let page = store.read_state_page(&query, cursor.after, max).await?;
            cursor.advance(&page, page_size);
            if !page.events.is_empty() {
                return Ok(Some((page.events, (store, query, cursor))));
            }
        }
        Ok(None)
    })
    .boxed()
}

/// Every event of the store after the query's position, page by page, honouring its limit.
pub fn all_pages(
    store: Arc<dyn EventStore>,
    query: AllQuery,
    page_size: usize,
) -> BoxStream<'static, Result<Vec<RecordedEvent>>> {
    let mut cursor = Cursor::new(query.limit, page_size);
    cursor.after = Some(query.after_position);
    stream::try_unfold((store, query, cursor), move |(store, query, mut cursor)| async move {
        while let Some(max) = cursor.next_max() {
            let after = cursor.after.unwrap_or(query.after_position);
            let page = store.read_all_page(&query, after, max).await?;
            cursor.advance(&page, page_size);
            if !page.events.is_empty() {
                return Ok(Some((page.events, (store, query, cursor))));
            }
        }
        Ok(None)
    })
    .boxed()
}

/// Reads `pages` ahead of the consumer in a task of its own, so the store works on the next
/// page while the consumer (encoding, the network) handles this one. Memory stays bounded by
/// `pages + 1`; the task ends when the consumer drops the stream.
pub fn read_ahead<T: Send + 'static>(mut pages: BoxStream<'static, T>, ahead: usize) -> BoxStream<'static, T> {
    let (sender, receiver) = tokio::sync::mpsc::channel(ahead.max(1));
    tokio::spawn(async move {
        while let Some(page) = pages.next().await {
            if sender.send(page).await.is_err() {
                break;
            }
        }
    });
    tokio_stream_from(receiver)
}

fn tokio_stream_from<T: Send + 'static>(mut receiver: tokio::sync::mpsc::Receiver<T>) -> BoxStream<'static, T> {
    stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}

/// Collects a whole state; for tests and small states only.
pub async fn collect_state(store: Arc<dyn EventStore>, query: StateQuery) -> Result<Vec<RecordedEvent>> {
    let pages: Vec<_> = state_pages(store, query, DEFAULT_PAGE_SIZE).collect().await;
    Ok(pages.into_iter().collect::<Result<Vec<_>>>()?.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn page(count: usize, payload: usize, next: Option<u64>) -> Page {
        let event = RecordedEvent {
            state_id: "s".into(),
            version: Some(1),
            global_position: 1,
            event_id: uuid::Uuid::nil(),
            name: "E".into(),
            payload: vec![0; payload],
            content_type: "application/json".into(),
            timestamp: None,
            recorded_at: Timestamp::from_unix_nanos(0),
            metadata: Default::default(),
        };
        Page { events: vec![event; count], next }
    }

    #[test]
    fn pages_shrink_for_large_events_and_grow_for_small_ones() {
        let mut cursor = Cursor::new(None, DEFAULT_PAGE_SIZE);
        assert_eq!(cursor.next_max(), Some(FIRST_PAGE));
        cursor.advance(&page(16, 512 * 1024, Some(16)), DEFAULT_PAGE_SIZE);
        assert_eq!(cursor.next_max(), Some(1), "two 512 KiB events would pass the page budget");
        cursor.advance(&page(1, 100, Some(17)), DEFAULT_PAGE_SIZE);
        assert_eq!(cursor.next_max(), Some(DEFAULT_PAGE_SIZE), "small events fill a whole page");
        cursor.advance(&page(3, 100, None), DEFAULT_PAGE_SIZE);
        assert_eq!(cursor.next_max(), None, "a short page is the last");
    }

    #[test]
    fn a_limit_caps_the_pages() {
        let mut cursor = Cursor::new(Some(20), DEFAULT_PAGE_SIZE);
        assert_eq!(cursor.next_max(), Some(FIRST_PAGE));
        cursor.advance(&page(16, 10, Some(16)), DEFAULT_PAGE_SIZE);
        assert_eq!(cursor.next_max(), Some(4));
        cursor.advance(&page(4, 10, Some(20)), DEFAULT_PAGE_SIZE);
        assert_eq!(cursor.next_max(), None);
    }
}
