//! Group commit. The appends of this process wait in one queue; one task takes what is waiting
//! and writes it in one `TransactWriteItems`: the counter once, advanced by the group's event
//! count, then each append's head, chunks and guards. The task keeps the counter and the heads
//! it saw last, so in the steady state an append costs no read. Nothing kept is trusted for an
//! answer: a stale value makes its condition fail, and a failed condition returns the item as it
//! is (`ALL_OLD`), so the retry needs no read either.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use flipbook_model::{AppendOutcome, AppendRequest, Error, Metadata, Result, StateKind, Timestamp};
use tokio::sync::{mpsc, oneshot};

use super::codec::{ChunkHead, encode_chunk};
use super::events::{COUNTER, Head, MAX_TRANSACTION_ITEMS, guard_pk, head_pk, position_pk};
use super::{Item, Table, build_error, get_n, get_s, key, n, s, sdk_error};
use crate::encoding::{metadata_from_json, metadata_json};
use crate::store::{Checked, Decision, Tip, decide, merged_metadata, plan_append};

/// What a group may write, below DynamoDB's 4 MB per transaction. An append alone always fits
/// (`chunks` refuses one whose events, written twice, would not), so a group never refuses one.
const GROUP_BYTES: usize = 3_800_000;
/// What an append writes besides its events and the state's metadata (keys, numbers), at most.
const APPEND_OVERHEAD: usize = 4_096;
/// Transactions an append may be part of without committing before it answers `Unavailable`.
const MAX_ATTEMPTS: u32 = 200;
/// Heads remembered: two generations of at most this many (the older is dropped when the newer
/// fills), so memory stays bounded whatever the number of states.
const HEADS: usize = 4_096;

/// One append waiting for the writer: its parts (one per state), each part's events encoded
/// and split into chunks.
pub(super) struct Job {
    parts: Vec<AppendRequest>,
    encoded: Vec<Vec<Vec<u8>>>,
    chunks: Vec<Vec<Range<usize>>>,
    arrived: Instant,
    attempts: u32,
    /// Written in a transaction of its own: a group with it failed for a reason other than a
    /// race, which may be this append's alone.
    alone: bool,
    answer: oneshot::Sender<Result<Vec<AppendOutcome>>>,
}

impl Job {
    /// The job, and where its outcomes arrive.
    pub(super) fn new(
        parts: Vec<AppendRequest>,
        encoded: Vec<Vec<Vec<u8>>>,
        chunks: Vec<Vec<Range<usize>>>,
    ) -> (Self, oneshot::Receiver<Result<Vec<AppendOutcome>>>) {
        let (answer, answered) = oneshot::channel();
        (Self { parts, encoded, chunks, arrived: Instant::now(), attempts: 0, alone: false, answer }, answered)
    }

    /// Its items in a transaction: per part the head, two per chunk, a guard per event.
    fn items(&self) -> usize {
        self.chunks.iter().zip(&self.encoded).map(|(chunks, events)| 1 + 2 * chunks.len() + events.len()).sum()
    }

    fn states(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|p| p.state_id.as_str())
    }

    /// Its events' encoded bytes, all parts together.
    fn bytes(&self) -> usize {
        self.encoded.iter().flatten().map(Vec::len).sum()
    }

    fn finish(self, outcome: Result<Vec<AppendOutcome>>) {
        // Its caller may have gone (a dropped future); the outcome stands all the same.
        let _ = self.answer.send(outcome);
    }
}

/// A state's head as the writer saw it (`None`: no events), and when: the moment the request
/// that showed it was sent, so a head seen after an append arrived was true during that append.
#[derive(Clone)]
struct Seen {
    head: Option<Head>,
    at: Instant,
}

/// The heads seen last, bounded (see [`HEADS`]).
#[derive(Default)]
struct Heads {
    newer: HashMap<String, Seen>,
    older: HashMap<String, Seen>,
}

impl Heads {
    fn get(&self, state_id: &str) -> Option<&Seen> {
        self.newer.get(state_id).or_else(|| self.older.get(state_id))
    }

    fn put(&mut self, state_id: String, seen: Seen) {
        if self.newer.len() >= HEADS && !self.newer.contains_key(&state_id) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(state_id, seen);
    }

    fn forget(&mut self, state_id: &str) {
        self.newer.remove(state_id);
        self.older.remove(state_id);
    }
}

/// One append's share of a transaction, and its outcomes should the transaction commit.
struct Planned {
    job: Job,
    parts: Vec<PlannedPart>,
}

/// One part of an append in a transaction.
struct PlannedPart {
    /// Where its head and guards are among the transaction's items.
    head_index: usize,
    guards: Range<usize>,
    head: Head,
    outcome: AppendOutcome,
}

/// The one task that writes this process's appends.
pub(super) struct Writer {
    table: Table,
    queue: mpsc::UnboundedReceiver<Job>,
    waiting: VecDeque<Job>,
    /// The counter's value as last seen; `None`: read it.
    counter: Option<u64>,
    heads: Heads,
    /// How long an append may wait to be written before it answers `Unavailable`.
    patience: Duration,
    /// `TransactWriteItems` sent, for tests.
    transactions: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn new(
        table: Table,
        queue: mpsc::UnboundedReceiver<Job>,
        patience: Duration,
        transactions: Arc<AtomicU64>,
    ) -> Self {
        Self { table, queue, waiting: VecDeque::new(), counter: None, heads: Heads::default(), patience, transactions }
    }

    /// Writes groups until every sender (every clone of the store) is gone.
    pub(super) async fn run(mut self) {
        let mut races = 0u32;
        loop {
            if self.waiting.is_empty() {
                match self.queue.recv().await {
                    Some(job) => self.waiting.push_back(job),
                    None => return,
                }
            }
            while let Ok(job) = self.queue.try_recv() {
                self.waiting.push_back(job);
            }
            let group = self.group();
            if group.is_empty() {
                continue;
            }
            if self.write(group).await {
                // Another server took the counter: try again soon, spread out.
                let ceiling = 2 + u64::from(races.min(10));
                races += 1;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..ceiling))).await;
            } else {
                races = 0;
            }
        }
    }

    /// The next group, in arrival order: what fits one transaction, one append per state (the
    /// next append to a state is planned from the head the one before wrote). Drops appends
    /// whose caller is gone and answers those that waited too long. An append to several
    /// states joins when none of its states is in the group yet.
    fn group(&mut self) -> Vec<Job> {
        let mut group: Vec<Job> = Vec::new();
        let mut items = 1; // the counter
        let mut states = HashSet::new();
        for job in std::mem::take(&mut self.waiting) {
            if job.answer.is_closed() {
                continue;
            }
            if job.arrived.elapsed() > self.patience {
                let states: Vec<&str> = job.states().collect();
                let waited = format!("appending to {states:?}: waited {:?} to be written", self.patience);
                job.finish(Err(Error::Unavailable(waited)));
                continue;
            }
            let fits = match group.first() {
                None => true,
                Some(first) => !first.alone && !job.alone && items + job.items() <= MAX_TRANSACTION_ITEMS,
            };
            if fits && !job.states().any(|s| states.contains(s)) {
                items += job.items();
                states.extend(job.states().map(str::to_owned));
                group.push(job);
            } else {
                self.waiting.push_back(job);
            }
        }
        group
    }

    /// Reads the counter and the group's heads where none is known, in one request.
    async fn learn(&mut self, group: &[Job]) -> Result<()> {
        let unknown: Vec<&str> = group.iter().flat_map(Job::states).filter(|s| self.heads.get(s).is_none()).collect();
        let mut keys: Vec<Item> = unknown.iter().map(|state_id| key(head_pk(state_id), 0)).collect();
        if self.counter.is_none() {
            keys.push(key(COUNTER, 0));
        }
        if keys.is_empty() {
            return Ok(());
        }
        let at = Instant::now();
        let mut counter = 0;
        let mut heads = HashMap::new();
        for item in self.table.batch_get(keys).await? {
            match get_s(&item, "pk")? {
                COUNTER => counter = get_n(&item, "last")?,
                pk => {
                    heads.insert(pk.to_owned(), Head::from_item(&item)?);
                }
            }
        }
        self.counter.get_or_insert(counter);
        for state_id in unknown {
            self.heads.put(state_id.to_owned(), Seen { head: heads.remove(&head_pk(state_id)), at });
        }
        Ok(())
    }

    /// Writes one group and answers what it can; the rest waits for the next transaction, ahead
    /// of later arrivals. True when another writer took the counter (back off before retrying).
    async fn write(&mut self, group: Vec<Job>) -> bool {
        if let Err(error) = self.learn(&group).await {
            group.into_iter().for_each(|job| job.finish(Err(error.clone())));
            return false;
        }
        let first_counter = self.counter.unwrap_or(0);
        let mut counter = first_counter;
        let now = Timestamp::now();
        let (mut planned, mut retry) = (Vec::new(), Vec::new());
        let mut items = vec![];
        let mut bytes = 0;
        'jobs: for job in group {
            let mut seen = Vec::with_capacity(job.parts.len());
            let mut plans = Vec::with_capacity(job.parts.len());
            for part in &job.parts {
                let Some(head) = self.heads.get(&part.state_id).cloned() else {
                    retry.push(job);
                    continue 'jobs;
                };
                match plan(head.head.as_ref(), part) {
                    Ok(plan) => plans.push(plan),
                    // Seen before this append arrived, the head may be stale: read it, then decide.
                    Err(_) if head.at < job.arrived => {
                        self.heads.forget(&part.state_id);
                        retry.push(job);
                        continue 'jobs;
                    }
                    // A re-sent batch is answered as it was the first time, whatever its expectation.
                    Err(error) => {
                        self.replay(job, error);
                        continue 'jobs;
                    }
                }
                seen.push(head);
            }
            let mut built = Vec::with_capacity(job.parts.len());
            let mut at = counter;
            for (i, (plan, seen)) in plans.into_iter().zip(&seen).enumerate() {
                match append_items(&self.table.name, &job, i, plan, at, seen.head.as_ref(), now) {
                    Ok(part) => built.push(part),
                    Err(error) => {
                        job.finish(Err(error));
                        continue 'jobs;
                    }
                }
                at += job.parts[i].events.len() as u64;
            }
            let metadata: usize = built.iter().map(|(_, head, _)| head.metadata.len()).sum();
            let cost = 2 * job.bytes() + metadata + APPEND_OVERHEAD * job.parts.len();
            if !planned.is_empty() && bytes + cost > GROUP_BYTES {
                retry.push(job);
                continue;
            }
            bytes += cost;
            counter = at;
            let mut parts = Vec::with_capacity(built.len());
            for (i, (append, head, outcome)) in built.into_iter().enumerate() {
                let head_index = 1 + items.len();
                let guards = head_index + 1 + 2 * job.chunks[i].len()..head_index + append.len();
                items.extend(append);
                parts.push(PlannedPart { head_index, guards, head, outcome });
            }
            planned.push(Planned { job, parts });
        }
        let raced = if planned.is_empty() {
            false
        } else {
            match counter_item(&self.table.name, first_counter, counter) {
                Ok(counter_item) => {
                    items.insert(0, counter_item);
                    self.commit(items, (first_counter, counter), planned, &mut retry).await
                }
                Err(error) => {
                    planned.into_iter().for_each(|p| p.job.finish(Err(error.clone())));
                    false
                }
            }
        };
        for job in retry.into_iter().rev() {
            self.waiting.push_front(job);
        }
        raced
    }

    /// Sends the transaction (the counter moving from `seen` to `counter`) and answers its
    /// appends, or keeps them in `retry`.
    async fn commit(
        &mut self,
        items: Vec<TransactWriteItem>,
        (seen, counter): (u64, u64),
        planned: Vec<Planned>,
        retry: &mut Vec<Job>,
    ) -> bool {
        let sent = Instant::now();
        self.transactions.fetch_add(1, Ordering::Relaxed);
        let result = self.table.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let error = match result {
            Ok(_) => {
                self.counter = Some(counter);
                for Planned { job, parts } in planned {
                    let mut outcomes = Vec::with_capacity(parts.len());
                    for (request, part) in job.parts.iter().zip(parts) {
                        self.heads.put(request.state_id.clone(), Seen { head: Some(part.head), at: sent });
                        outcomes.push(part.outcome);
                    }
                    job.finish(Ok(outcomes));
                }
                return false;
            }
            Err(SdkError::ServiceError(error)) => match error.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    return self.cancelled(cancelled.cancellation_reasons(), seen, planned, sent, retry);
                }
                _ => sdk_error(SdkError::ServiceError(error)),
            },
            Err(error) => sdk_error(error),
        };
        // It may have committed (a timeout) or not: what was kept is read again.
        self.counter = None;
        let alone = planned.len() == 1;
        for Planned { mut job, .. } in planned {
            job.parts.iter().for_each(|part| self.heads.forget(&part.state_id));
            if error.is_retryable() || alone {
                // Unavailable: a retry with the same event ids is answered as the first time.
                job.finish(Err(error.clone()));
            } else {
                // Refused, maybe for one append's sake: each is tried alone.
                job.alone = true;
                retry.push(job);
            }
        }
        false
    }

    /// After a cancelled transaction: takes what the failed conditions returned, sends the
    /// appends whose event ids are stored to the replay path, keeps the others for the next
    /// transaction. True when the counter had moved (or DynamoDB saw a conflict on it).
    fn cancelled(
        &mut self,
        reasons: &[CancellationReason],
        seen: u64,
        planned: Vec<Planned>,
        sent: Instant,
        retry: &mut Vec<Job>,
    ) -> bool {
        let code = |i: usize| reasons.get(i).and_then(CancellationReason::code);
        let failed = |i: usize| code(i) == Some("ConditionalCheckFailed");
        let returned = |i: usize| reasons.get(i).filter(|_| failed(i)).and_then(CancellationReason::item);
        // Unchanged where its condition held, else the item returned; anything else: read again.
        self.counter = match code(0) {
            Some("None") => Some(seen),
            _ => returned(0).and_then(|item| get_n(item, "last").ok()),
        };
        for Planned { mut job, parts } in planned {
            if parts.iter().any(|part| part.guards.clone().any(failed)) {
                self.replay(job, Error::Internal("an event id's guard was found, then not".to_owned()));
                continue;
            }
            for (request, part) in job.parts.iter().zip(&parts) {
                let state_id = &request.state_id;
                match (code(part.head_index), returned(part.head_index).and_then(|item| Head::from_item(item).ok())) {
                    (Some("None"), _) => {}
                    (_, Some(head)) => self.heads.put(state_id.clone(), Seen { head: Some(head), at: sent }),
                    _ => self.heads.forget(state_id),
                }
            }
            job.attempts += 1;
            if job.attempts >= MAX_ATTEMPTS {
                let states: Vec<&str> = job.states().collect();
                let failed = format!("appending to {states:?}: {MAX_ATTEMPTS} transactions failed to commit");
                job.finish(Err(Error::Unavailable(failed)));
            } else {
                retry.push(job);
            }
        }
        code(0) != Some("None")
    }

    /// Answers an append whose event ids may be stored already: the original outcomes, or
    /// `Duplicate` (see [`decide`]), or `otherwise` when none is. It only reads, so it runs
    /// beside the writer.
    fn replay(&self, job: Job, otherwise: Error) {
        let table = self.table.clone();
        tokio::spawn(async move {
            let mut checks = Vec::with_capacity(job.parts.len());
            for part in &job.parts {
                match table.replay(part).await {
                    Ok(Some(outcome)) => checks.push(Checked::Replay(outcome)),
                    Ok(None) => checks.push(Checked::Write(())),
                    Err(error) => return job.finish(Err(error)),
                }
            }
            let outcome = match decide(&job.parts, checks) {
                Ok(Decision::Replay(outcomes)) => Ok(outcomes),
                Ok(Decision::Write(_)) => Err(otherwise),
                Err(error) => Err(error),
            };
            job.finish(outcome);
        });
    }
}

/// A condition on one attribute (`#a`): its name, the expression, the expression's values.
type Condition<'a> = Option<(&'a str, &'a str, Vec<(&'a str, AttributeValue)>)>;

fn put(table: &str, item: Item, condition: Condition) -> Result<TransactWriteItem> {
    let mut put = Put::builder().table_name(table).set_item(Some(item));
    if let Some((attribute, expression, values)) = condition {
        // A failed condition answers the item as it is: a retry needs no read.
        put = put
            .condition_expression(expression)
            .expression_attribute_names("#a", attribute)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
    }
    Ok(TransactWriteItem::builder().put(put.build().map_err(build_error)?).build())
}

const NOT_EXISTS: (&str, &str) = ("pk", "attribute_not_exists(#a)");

/// The counter moved from `seen` to `last`, on the condition that it still holds `seen`.
fn counter_item(table: &str, seen: u64, last: u64) -> Result<TransactWriteItem> {
    let mut item = key(COUNTER, 0);
    item.insert("last".to_owned(), n(last));
    let condition = match seen {
        0 => (NOT_EXISTS.0, NOT_EXISTS.1, vec![]),
        _ => ("last", "#a = :seen", vec![(":seen", n(seen))]),
    };
    put(table, item, Some(condition))
}

/// Where an append's events go, and the state's metadata after it, decided with the shared
/// rules from the head as seen (`None`: the state has no events).
fn plan(head: Option<&Head>, request: &AppendRequest) -> Result<(u64, Metadata)> {
    let first_seq = plan_append(head.map(|h| h.tip), request)?;
    let stored = head.map_or(Ok(Metadata::new()), |h| metadata_from_json(&h.metadata))?;
    Ok((first_seq, merged_metadata(stored, request)?))
}

/// One part's items (its head on the condition that it is still `head`, its chunks, a guard
/// per event on the condition that the id is not stored), the head it writes, and its outcome.
/// Its events take the positions after `counter`.
fn append_items(
    table: &str,
    job: &Job,
    part: usize,
    (first_seq, metadata): (u64, Metadata),
    counter: u64,
    head: Option<&Head>,
    now: Timestamp,
) -> Result<(Vec<TransactWriteItem>, Head, AppendOutcome)> {
    let (request, encoded, chunks) = (&job.parts[part], &job.encoded[part], &job.chunks[part]);
    let count = request.events.len() as u64;
    let versioned = request.kind == StateKind::Versioned;
    let last_seq = first_seq + count - 1;
    let last_position = counter + count;
    let mut items = Vec::with_capacity(1 + 2 * chunks.len() + encoded.len());

    let new_head = Head {
        tip: Tip { kind: request.kind, last_seq },
        first_recorded_at: head.map_or(now.unix_nanos(), |h| h.first_recorded_at),
        metadata: metadata_json(&metadata),
    };
    let mut head_item = key(head_pk(&request.state_id), 0);
    head_item.extend([
        ("last_seq".to_owned(), n(last_seq)),
        ("neutral".to_owned(), AttributeValue::Bool(!versioned)),
        ("last_pos".to_owned(), n(last_position)),
        ("first_at".to_owned(), n(new_head.first_recorded_at)),
        ("last_at".to_owned(), n(now.unix_nanos())),
        ("meta".to_owned(), s(new_head.metadata.clone())),
    ]);
    let condition = match head {
        Some(h) => ("last_seq", "#a = :tip", vec![(":tip", n(h.tip.last_seq))]),
        None => (NOT_EXISTS.0, NOT_EXISTS.1, vec![]),
    };
    items.push(put(table, head_item, Some(condition))?);

    for range in chunks {
        let chunk_head = ChunkHead {
            versioned,
            first_seq: first_seq + range.start as u64,
            first_position: counter + 1 + range.start as u64,
            recorded_at: now,
        };
        let data = AttributeValue::B(encode_chunk(chunk_head, &request.state_id, &encoded[range.clone()]).into());
        let chunk_last_seq = first_seq + range.end as u64 - 1;
        let chunk_last_position = counter + range.end as u64;
        let mut state_chunk = key(head_pk(&request.state_id), chunk_last_seq);
        state_chunk.insert("data".to_owned(), data.clone());
        items.push(put(table, state_chunk, None)?);
        let mut position_chunk = key(position_pk(chunk_last_position), chunk_last_position);
        position_chunk.insert("data".to_owned(), data);
        position_chunk.insert("state".to_owned(), s(request.state_id.clone()));
        items.push(put(table, position_chunk, None)?);
    }
    for (i, event) in request.events.iter().enumerate() {
        let mut guard = key(guard_pk(&request.state_id, event.event_id), 0);
        guard.insert("seq".to_owned(), n(first_seq + i as u64));
        items.push(put(table, guard, Some((NOT_EXISTS.0, NOT_EXISTS.1, vec![])))?);
    }
    let outcome = AppendOutcome {
        last_version: versioned.then_some(last_seq),
        global_positions: (counter + 1..=last_position).collect(),
        recorded_at: now,
    };
    Ok((items, new_head, outcome))
}
