//! Reads as streams of pages, built once over the backends' page reads. A page is fetched only
//! when the consumer asks for the next one, so memory stays bounded by one page whatever the
//! state's size, and a slow reader slows the reads instead of filling a buffer.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};

use crate::error::Result;
use crate::model::{AllQuery, RecordedEvent, StateQuery};
use crate::store::{EventStore, Page};

/// How many events one page holds unless a caller says otherwise: large enough that per-page
/// costs (a query, a gRPC message) vanish, small enough to stay a few hundred KiB.
pub const DEFAULT_PAGE_SIZE: usize = 512;

/// Where a paged read stands: the cursor for the next page and how many events may still come.
struct Cursor {
    after: Option<u64>,
    remaining: Option<u64>,
    done: bool,
}

impl Cursor {
    fn new(limit: Option<u64>) -> Self {
        let remaining = limit.filter(|&n| n > 0);
        Self { after: None, remaining, done: false }
    }

    /// The size of the next page, or `None` when the read is over.
    fn next_max(&self, page_size: usize) -> Option<usize> {
        if self.done {
            return None;
        }
        let max = self.remaining.map_or(page_size, |r| page_size.min(usize::try_from(r).unwrap_or(usize::MAX)));
        (max > 0).then_some(max)
    }

    fn advance(&mut self, page: &Page) {
        self.after = page.next;
        self.done = page.next.is_none();
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(page.events.len() as u64);
        }
    }
}

/// One state's events, page by page, honouring the query's limit. Empty pages (everything in
/// a range filtered out) are skipped, never yielded.
pub fn state_pages(
    store: Arc<dyn EventStore>,
    query: StateQuery,
    page_size: usize,
) -> BoxStream<'static, Result<Vec<RecordedEvent>>> {
    let cursor = Cursor::new(query.limit);
    stream::try_unfold((store, query, cursor), move |(store, query, mut cursor)| async move {
        while let Some(max) = cursor.next_max(page_size) {
            let page = store.read_state_page(&query, cursor.after, max).await?;
            cursor.advance(&page);
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
    let mut cursor = Cursor::new(query.limit);
    cursor.after = Some(query.after_position);
    stream::try_unfold((store, query, cursor), move |(store, query, mut cursor)| async move {
        while let Some(max) = cursor.next_max(page_size) {
            let after = cursor.after.unwrap_or(query.after_position);
            let page = store.read_all_page(&query, after, max).await?;
            cursor.advance(&page);
            if !page.events.is_empty() {
                return Ok(Some((page.events, (store, query, cursor))));
            }
        }
        Ok(None)
    })
    .boxed()
}

/// Collects a whole state; for tests and small states only.
pub async fn collect_state(store: Arc<dyn EventStore>, query: StateQuery) -> Result<Vec<RecordedEvent>> {
    let pages: Vec<_> = state_pages(store, query, DEFAULT_PAGE_SIZE).collect().await;
    Ok(pages.into_iter().collect::<Result<Vec<_>>>()?.concat())
}
