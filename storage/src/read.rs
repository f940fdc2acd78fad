//! Reads as streams of pages, built once over the backends' page reads. A page is fetched only
//! when the consumer asks for the next one, so memory stays bounded by one page whatever the
//! state's size, and a slow reader slows the reads instead of filling a buffer.

use std::future::Future;
use std::sync::Arc;

use flipbook_model::{AllQuery, RecordedEvent, Result, StateQuery};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::store::{EventStore, Page};
use crate::wire::WirePage;

/// The most events one page holds unless a caller says otherwise: large enough that per-page
/// costs (a query, a gRPC message) vanish.
pub const DEFAULT_PAGE_SIZE: usize = 2048;

/// About how many bytes a page may hold: pages shrink when events are large, so memory stays
/// bounded by this rather than by `page size x largest payload`.
pub const PAGE_BYTES: usize = 1024 * 1024;

/// The first page is small, until the events' size is known.
const FIRST_PAGE: usize = 16;

/// What paging needs to know of a page, decoded ([`Page`]) or encoded ([`WirePage`]).
trait Paged {
    fn len(&self) -> usize;
    /// About how many bytes the page weighs.
    fn bytes(&self) -> usize;
    fn next(&self) -> Option<u64>;
}

impl Paged for Page {
    fn len(&self) -> usize {
        self.events.len()
    }

    fn bytes(&self) -> usize {
        self.events.iter().map(event_bytes).sum()
    }

    fn next(&self) -> Option<u64> {
        self.next
    }
}

impl Paged for WirePage {
    fn len(&self) -> usize {
        WirePage::len(self)
    }

    fn bytes(&self) -> usize {
        self.byte_len()
    }

    fn next(&self) -> Option<u64> {
        self.next
    }
}

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

    fn advance(&mut self, page: &impl Paged, page_size: usize) {
        self.after = page.next();
        self.done = page.next().is_none();
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(page.len() as u64);
        }
        if let Some(size) = next_page_size(page.len(), page.bytes(), page_size) {
            self.size = size;
        }
    }
}

/// How many events the next page may hold so it stays near [`PAGE_BYTES`], judged by the
/// events of the page before (`None` when it had none), and never above `page_size`.
pub(crate) fn page_size_after(events: &[RecordedEvent], page_size: usize) -> Option<usize> {
    next_page_size(events.len(), events.iter().map(event_bytes).sum(), page_size)
}

fn next_page_size(events: usize, bytes: usize, page_size: usize) -> Option<usize> {
    if events == 0 {
        return None;
    }
    let average = (bytes / events).max(1);
    Some((PAGE_BYTES / average).clamp(1, page_size.max(1)))
}

/// Roughly what an event weighs in memory and on the wire.
fn event_bytes(event: &RecordedEvent) -> usize {
    let metadata: usize = event.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    128 + event.payload.len() + event.state_id.len() + event.name.len() + event.content_type.len() + metadata
}

/// Pages from `fetch` (the cursor, at most how many events), honouring the limit the cursor
/// was made with. Empty pages (everything in a range filtered out) are skipped, never yielded.
fn pages<P, F, Fut>(cursor: Cursor, page_size: usize, fetch: F) -> BoxStream<'static, Result<P>>
where
    P: Paged + Send + 'static,
    F: Fn(Option<u64>, usize) -> Fut + Send + 'static,
    Fut: Future<Output = Result<P>> + Send,
{
    stream::try_unfold((fetch, cursor), move |(fetch, mut cursor)| async move {
        while let Some(max) = cursor.next_max() {
            let page = fetch(cursor.after, max).await?;
            cursor.advance(&page, page_size);
            if page.len() > 0 {
                return Ok(Some((page, (fetch, cursor))));
            }
        }
        Ok(None)
    })
    .boxed()
}

/// The pages `read` (the store, the query, the cursor, at most how many) fetches, from
/// `cursor` on.
fn reads<Q, P, F, Fut>(
    store: Arc<dyn EventStore>,
    query: Q,
    cursor: Cursor,
    page_size: usize,
    read: F,
) -> BoxStream<'static, Result<P>>
where
    Q: Send + Sync + 'static,
    P: Paged + Send + 'static,
    F: Fn(Arc<dyn EventStore>, Arc<Q>, Option<u64>, usize) -> Fut + Send + 'static,
    Fut: Future<Output = Result<P>> + Send,
{
    let query = Arc::new(query);
    pages(cursor, page_size, move |after, max| read(Arc::clone(&store), Arc::clone(&query), after, max))
}

/// One state's events, page by page, honouring the query's limit.
pub fn state_pages(
    store: Arc<dyn EventStore>,
    query: StateQuery,
    page_size: usize,
) -> BoxStream<'static, Result<Vec<RecordedEvent>>> {
    let cursor = Cursor::new(query.limit, page_size);
    reads(store, query, cursor, page_size, |store, query, after, max| async move {
        store.read_state_page(&query, after, max).await
    })
    .map_ok(|page| page.events)
    .boxed()
}

/// One state's events as [`state_pages`], encoded as the API sends them.
pub fn state_wire_pages(
    store: Arc<dyn EventStore>,
    query: StateQuery,
    page_size: usize,
) -> BoxStream<'static, Result<WirePage>> {
    let cursor = Cursor::new(query.limit, page_size);
    reads(store, query, cursor, page_size, |store, query, after, max| async move {
        store.read_state_wire_page(&query, after, max).await
    })
}

/// The store's events the query asks for, in its direction, page by page, honouring its limit.
pub fn all_pages(
    store: Arc<dyn EventStore>,
    query: AllQuery,
    page_size: usize,
) -> BoxStream<'static, Result<Vec<RecordedEvent>>> {
    let cursor = Cursor::new(query.limit, page_size);
    reads(store, query, cursor, page_size, |store, query: Arc<AllQuery>, cursor, max| async move {
        store.read_all_page(&query, cursor, max).await
    })
    .map_ok(|page| page.events)
    .boxed()
}

/// The events of [`all_pages`], encoded as the API sends them.
pub fn all_wire_pages(
    store: Arc<dyn EventStore>,
    query: AllQuery,
    page_size: usize,
) -> BoxStream<'static, Result<WirePage>> {
    let cursor = Cursor::new(query.limit, page_size);
    reads(store, query, cursor, page_size, |store, query: Arc<AllQuery>, cursor, max| async move {
        store.read_all_wire_page(&query, cursor, max).await
    })
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
    use flipbook_model::Timestamp;

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
