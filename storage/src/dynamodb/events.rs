use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Error, RecordedEvent, Result, StateHead, StateKind, StateQuery,
    Timestamp,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::codec::{decode_chunk, encode_event};
use super::writer::{Job, Writer};
use super::{DynamoConfig, Item, Table, build_error, get_b, get_n, get_s, key, n, s, sdk_error};
use crate::encoding::metadata_from_json;
use crate::store::{BackendLimits, EventStore, Page, Tip, replayed};

/// The most events one append may carry: with one guard per event, the counter, the head and
/// the chunks (two items each), a batch this size fits DynamoDB's 100 items per transaction.
pub const MAX_EVENTS_PER_APPEND: u32 = 64;
/// The most states one append may write: a part of one event takes four items (its head, two
/// chunk items, a guard), and the counter one.
pub const MAX_STATES_PER_APPEND: u32 = 24;
/// Items one `TransactWriteItems` may hold.
pub(super) const MAX_TRANSACTION_ITEMS: usize = 100;
/// The most encoded event bytes in one chunk item (an item holds at most 400 KB).
const CHUNK_BYTES: usize = 350_000;
/// The most encoded event bytes in one append: each is written twice (state and position
/// chunks) in a transaction of at most 4 MB.
const APPEND_BYTES: usize = 1_800_000;
/// Global positions per position partition (`p#<n>`).
/// Small enough that a query of one stays cheap where a query costs what the partition holds
/// (moto: about 50 ms for 4,096 items, 5 ms for a `GetItem`), large enough that reading
/// everything from the beginning takes few queries beyond what 1 MB pages need anyway.
const BUCKET: u64 = 1024;

pub(super) const COUNTER: &str = "position";

pub(super) fn head_pk(state_id: &str) -> String {
    format!("s#{state_id}")
}

pub(super) fn guard_pk(state_id: &str, event_id: Uuid) -> String {
    format!("e#{state_id}#{}", event_id.hyphenated())
}

pub(super) fn position_pk(position: u64) -> String {
    format!("p#{}", position / BUCKET)
}

/// Events on DynamoDB; see the module's documentation for the items.
#[derive(Clone, Debug)]
pub struct DynamoEventStore {
    table: Table,
    /// This process's appends, which one writer task commits in groups (`writer.rs`): every
    /// append conditions on the one counter item, so appends racing each other from one process
    /// would only make all but one fail and retry. Other processes' appends still race, and
    /// lose safely.
    appends: mpsc::UnboundedSender<Job>,
    transactions: Arc<AtomicU64>,
}

/// A state's head item, as an append reads it.
#[derive(Clone)]
pub(super) struct Head {
    pub tip: Tip,
    pub first_recorded_at: i64,
    pub metadata: String,
}

impl Head {
    pub(super) fn from_item(item: &Item) -> Result<Self> {
        let neutral = matches!(item.get("neutral"), Some(AttributeValue::Bool(true)));
        Ok(Self {
            tip: Tip {
                kind: if neutral { StateKind::VersionNeutral } else { StateKind::Versioned },
                last_seq: get_n(item, "last_seq")?,
            },
            first_recorded_at: get_n(item, "first_at")?,
            metadata: get_s(item, "meta")?.to_owned(),
        })
    }
}

impl DynamoEventStore {
    /// Opens the table, creating it when it is missing and the config allows, and starts the
    /// task that writes appends (it ends when the last clone of the store is dropped).
    pub async fn open(config: &DynamoConfig) -> Result<Self> {
        let table = Table::open(config).await?;
        let (appends, queue) = mpsc::unbounded_channel();
        let transactions = Arc::new(AtomicU64::new(0));
        // How long an append may wait to be written before it answers `Unavailable`.
        let patience = config.operation_timeout().max(Duration::from_secs(1)) * 2;
        tokio::spawn(Writer::new(table.clone(), queue, patience, transactions.clone()).run());
        Ok(Self { table, appends, transactions })
    }

    /// How many `TransactWriteItems` this store has sent (committed or not): with appends
    /// grouped, fewer than the appends. For tests and measurements.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }
}

/// The reads of events, shared by the store and its writer.
impl Table {
    async fn get(&self, pk: String, sk: u64) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.item)
    }

    async fn counter(&self) -> Result<u64> {
        match self.get(COUNTER.to_owned(), 0).await? {
            Some(item) => get_n(&item, "last"),
            None => Ok(0),
        }
    }

    async fn read_head(&self, state_id: &str) -> Result<Option<(Head, Item)>> {
        let Some(item) = self.get(head_pk(state_id), 0).await? else { return Ok(None) };
        Ok(Some((Head::from_item(&item)?, item)))
    }

    /// A query of one partition's items with sort keys in `low..=high`, one page.
    #[allow(clippy::too_many_arguments)]
    async fn query(
        &self,
        pk: String,
        low: u64,
        high: u64,
        forward: bool,
        limit: usize,
        state_prefix: &str,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let mut request = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":low", n(low))
            .expression_attribute_values(":high", n(high))
            .scan_index_forward(forward)
            .consistent_read(true)
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .set_exclusive_start_key(start);
        if !state_prefix.is_empty() {
            request = request
                .filter_expression("begins_with(#state, :prefix)")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":prefix", s(state_prefix));
        }
        let out = request.send().await.map_err(sdk_error)?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    /// At most `max` events of a state with sequence numbers in `low..=high`, from `low` up
    /// (forward) or from `high` down, each with its sequence number.
    async fn state_events(
        &self,
        state_id: &str,
        low: u64,
        high: u64,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<(u64, RecordedEvent)>> {
        let mut found = Vec::new();
        if low > high || max == 0 {
            return Ok(found);
        }
        let forward = direction == Direction::Forward;
        // A chunk is keyed by its last sequence number and holds at most this many events, so
        // the chunks holding `low..=high` are keyed in `low..=high + span`.
        let span = u64::from(MAX_EVENTS_PER_APPEND) - 1;
        let mut start = None;
        loop {
            let (items, next) =
                self.query(head_pk(state_id), low.max(1), high.saturating_add(span), forward, max, "", start).await?;
            for item in &items {
                let (first_seq, events) = decode_chunk(get_b(item, "data")?)?;
                let numbered = (first_seq..).zip(events).filter(|(seq, _)| (low..=high).contains(seq));
                if forward {
                    found.extend(numbered);
                } else {
                    found.extend(numbered.collect::<Vec<_>>().into_iter().rev());
                }
                if found.len() >= max {
                    found.truncate(max);
                    return Ok(found);
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(found),
            }
        }
    }

    /// The items with these keys that exist (consistent `BatchGetItem`, at most 100 keys),
    /// in no particular order.
    pub(super) async fn batch_get(&self, mut keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut found = Vec::new();
        while !keys.is_empty() {
            let batch =
                KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(build_error)?;
            let out = self.client.batch_get_item().request_items(&self.name, batch).send().await.map_err(sdk_error)?;
            found.extend(out.responses.and_then(|mut r| r.remove(&self.name)).unwrap_or_default());
            keys = out.unprocessed_keys.and_then(|mut u| u.remove(&self.name)).map(|k| k.keys).unwrap_or_default();
        }
        Ok(found)
    }

    /// When an event id of the request is stored already: the original outcome (a replay) or
    /// `Duplicate`. `None` when none is stored.
    pub(super) async fn replay(&self, request: &AppendRequest) -> Result<Option<AppendOutcome>> {
        let keys = request.events.iter().map(|e| key(guard_pk(&request.state_id, e.event_id), 0)).collect();
        let mut first: Option<u64> = None;
        for guard in self.batch_get(keys).await? {
            let seq: u64 = get_n(&guard, "seq")?;
            first = Some(first.map_or(seq, |f| f.min(seq)));
        }
        let Some(first) = first else { return Ok(None) };
        let count = request.events.len();
        let stored =
            self.state_events(&request.state_id, first, first + count as u64 - 1, Direction::Forward, count).await?;
        let stored: Vec<RecordedEvent> = stored.into_iter().map(|(_, e)| e).collect();
        replayed(request, &stored).map(Some)
    }
}

/// Splits each part's encoded events into chunks that each fit an item; refuses a request that
/// cannot fit one transaction. (A field in a request of several parts is named with its part.)
fn chunks(parts: &[Vec<Vec<u8>>]) -> Result<Vec<Vec<Range<usize>>>> {
    let whole = if parts.len() == 1 { "events" } else { "parts" };
    let too_large = |field: String, limit: String| Error::TooLarge { field, limit };
    let events: usize = parts.iter().map(Vec::len).sum();
    if events > MAX_EVENTS_PER_APPEND as usize {
        let limit = format!("at most {MAX_EVENTS_PER_APPEND} events per append on DynamoDB (one transaction)");
        return Err(too_large(whole.to_owned(), limit));
    }
    let total: usize = parts.iter().flatten().map(Vec::len).sum();
    if total > APPEND_BYTES {
        let limit = format!("at most {APPEND_BYTES} bytes of events per append on DynamoDB (one 4 MB transaction)");
        return Err(too_large(whole.to_owned(), limit));
    }
    let mut all = Vec::with_capacity(parts.len());
    let mut items = 1; // the counter
    for (p, encoded) in parts.iter().enumerate() {
        let mut chunks = Vec::new();
        let (mut start, mut size) = (0, 0);
        for (i, event) in encoded.iter().enumerate() {
            if event.len() > CHUNK_BYTES {
                let field = if parts.len() == 1 { format!("events[{i}]") } else { format!("parts[{p}].events[{i}]") };
                let limit = format!("at most {CHUNK_BYTES} bytes per event on DynamoDB (400 KB per item)");
                return Err(too_large(field, limit));
            }
            if size + event.len() > CHUNK_BYTES {
                chunks.push(start..i);
                (start, size) = (i, 0);
            }
            size += event.len();
        }
        chunks.push(start..encoded.len());
        items += 1 + 2 * chunks.len() + encoded.len();
        all.push(chunks);
    }
    if items > MAX_TRANSACTION_ITEMS {
        let limit = format!(
            "an append this large, of this many events and states, needs more than {MAX_TRANSACTION_ITEMS} items"
        );
        return Err(too_large(whole.to_owned(), limit));
    }
    Ok(all)
}

#[async_trait]
impl EventStore for DynamoEventStore {
    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    async fn ping(&self) -> Result<()> {
        self.table.ping().await
    }

    /// DynamoDB acknowledges a write once it is stored durably in several availability zones.
    fn durable(&self) -> bool {
        true
    }

    fn limits(&self) -> BackendLimits {
        BackendLimits {
            max_events_per_append: Some(MAX_EVENTS_PER_APPEND),
            max_states_per_append: Some(MAX_STATES_PER_APPEND),
        }
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        let encoded: Vec<Vec<Vec<u8>>> = parts.iter().map(|p| p.events.iter().map(encode_event).collect()).collect();
        let chunks = chunks(&encoded)?;
        let (job, outcome) = Job::new(parts, encoded, chunks);
        let stopped = || Error::Unavailable("the DynamoDB writer has stopped".to_owned());
        self.appends.send(job).map_err(|_| stopped())?;
        outcome.await.unwrap_or_else(|_| Err(stopped()))
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        let Some((head, item)) = self.table.read_head(state_id).await? else { return Ok(None) };
        Ok(Some(StateHead {
            state_id: state_id.to_owned(),
            kind: head.tip.kind,
            event_count: head.tip.last_seq,
            last_global_position: get_n(&item, "last_pos")?,
            first_recorded_at: Timestamp::from_unix_nanos(head.first_recorded_at),
            last_recorded_at: Timestamp::from_unix_nanos(get_n(&item, "last_at")?),
            metadata: metadata_from_json(&head.metadata)?,
        }))
    }

    /// Reads `max` sequence numbers from the cursor and filters them here: a page may hold
    /// fewer events than asked and still not be the last.
    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page> {
        let low = query.min_version.unwrap_or(1).max(1);
        let high = query.max_version.unwrap_or(u64::MAX);
        let (from, to) = match query.direction {
            Direction::Forward => (after.map_or(low, |a| a.saturating_add(1)).max(low), high),
            Direction::Backward => (low, after.map_or(high, |b| b.saturating_sub(1)).min(high)),
        };
        let scanned = self.table.state_events(&query.state_id, from, to, query.direction, max).await?;
        let next = match (scanned.last(), query.direction) {
            (Some(&(seq, _)), Direction::Forward) if scanned.len() >= max && seq < high => Some(seq),
            (Some(&(seq, _)), Direction::Backward) if scanned.len() >= max && seq > low => Some(seq),
            _ => None,
        };
        let events = scanned
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| {
                (query.names.is_empty() || query.names.contains(&e.name))
                    && query.as_of.is_none_or(|t| e.timestamp.is_none_or(|at| at <= t))
            })
            .collect();
        Ok(Page { events, next })
    }

    /// Queries the position partitions over the window, bounded by the counter (read first, so
    /// the page never reaches past what is settled); the state prefix is filtered by DynamoDB,
    /// names here. A chunk's key is its last position, so the chunks holding `(low, high]`
    /// have keys from `low + 1` up to at most one append's events above `high`.
    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page> {
        let newest = self.table.counter().await?;
        let (low, high) = query.window(cursor);
        let high = high.min(newest);
        let mut events = Vec::new();
        if low >= high || max == 0 {
            return Ok(Page { events, next: None });
        }
        let top = newest.min(high.saturating_add(MAX_EVENTS_PER_APPEND as u64));
        let forward = query.direction == Direction::Forward;
        let buckets = (low + 1) / BUCKET..=top / BUCKET;
        let buckets: Box<dyn Iterator<Item = u64> + Send> =
            if forward { Box::new(buckets) } else { Box::new(buckets.rev()) };
        let mut covered = None;
        for bucket in buckets {
            let mut start = None;
            loop {
                let (items, next) = self
                    .table
                    .query(
                        position_pk(bucket * BUCKET),
                        low + 1,
                        top,
                        forward,
                        max.max(16),
                        &query.state_id_prefix,
                        start,
                    )
                    .await?;
                for item in &items {
                    let (_, mut chunk) = decode_chunk(get_b(item, "data")?)?;
                    if !forward {
                        chunk.reverse();
                    }
                    for event in chunk.into_iter().filter(|e| (low + 1..=high).contains(&e.global_position)) {
                        if events.len() >= max {
                            return Ok(Page { events, next: covered });
                        }
                        covered = Some(event.global_position);
                        if query.names.is_empty() || query.names.contains(&event.name) {
                            events.push(event);
                        }
                    }
                }
                match next {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
        Ok(Page { events, next: None })
    }

    /// Every append advances the counter in the transaction that writes its events, and
    /// transactions on the counter are serialized: every position up to it is written.
    async fn settled_position(&self) -> Result<u64> {
        self.table.counter().await
    }

    /// Positions are dense: each transaction writes every position it moves the counter by.
    async fn event_count(&self, until: u64) -> Result<u64> {
        Ok(until.min(self.table.counter().await?))
    }
}
