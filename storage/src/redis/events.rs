use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Error, Expectation, RecordedEvent, Result, StateHead, StateKind,
    StateQuery, Timestamp,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use redis::{AsyncCommands, Script};

use super::codec::{decode_event, encode_event, split_event};
use super::{RedisConfig, redis_error};
use crate::encoding::{metadata_from_json, metadata_json};
use crate::store::{Checked, Decision, EventStore, Page, Tip, decide, merged_metadata, plan_append, replayed};
use crate::wire::WirePage;

const POSITION: &str = "flipbook:position";
const EVENTS: &str = "flipbook:events";

/// A read's events are asked for this many at a time (about 50 KiB of typical events)...
const VALUES_PER_HMGET: usize = 256;
/// ...with this many requests on the connection at once.
const HMGETS_IN_FLIGHT: usize = 4;

/// Tries before an `any` append to a very hot state gives up with `Unavailable`.
const MAX_ATTEMPTS: usize = 16;

/// Writes an append of one or more parts atomically, and returns its first global position,
/// or nil when the append must be decided in Rust (the caller then reads the tips and tries
/// again). Every part is checked before any is written; the parts' events then take
/// contiguous positions, in part order. Each part is checked in one of two modes:
///
/// - `seen`: the compare-and-set of the two-step path. `expected` is the state's last sequence
///   number as the caller read it ('' for no state); the write happens only if it is unchanged.
/// - `check`: the one-round-trip path. `expected` is the part's expectation ('any', 'none' or
///   a version); the write happens only if the state's kind and tip meet it, exactly as
///   `plan_append` would accept it. Anything else (a conflict to report, a kind mismatch) is
///   left to the two-step path, so the rules keep one home.
///
/// In both, no event id of the part may be stored yet (a re-send or a duplicate is decided in
/// Rust), and its `metadata` (JSON) is merged into the state's metadata.
///
/// KEYS: the events hash, the position counter, then each part's head, seq list and ids hash.
/// ARGV: now, then each part's mode, expected, neutral ('0'/'1'), metadata, event count n,
/// and n pairs of event id and stored value.
const APPEND: &str = r"
local events, position, now = KEYS[1], KEYS[2], ARGV[1]
-- A command over many arguments goes in slices: Lua's unpack is bounded by its C stack.
local function slices(args, each)
  for i = 1, #args, 4000 do each(unpack(args, i, math.min(i + 3999, #args))) end
end
local parts, at, total = {}, 2, 0
while at <= #ARGV do
  local k = 3 * #parts + 3
  local part = { head = KEYS[k], seqs = KEYS[k + 1], ids = KEYS[k + 2], mode = ARGV[at],
    expected = ARGV[at + 1], neutral = ARGV[at + 2], metadata = ARGV[at + 3], n = tonumber(ARGV[at + 4]),
    from = at + 5 }
  at = part.from + 2 * part.n
  total = total + part.n
  parts[#parts + 1] = part
end
for _, part in ipairs(parts) do
  local tip = redis.call('HMGET', part.head, 'last_seq', 'neutral', 'first_recorded_at')
  local last, expected = tip[1], part.expected
  if part.mode == 'seen' then
    if (expected == '' and last) or (expected ~= '' and last ~= expected) then return false end
  else
    if last and tip[2] ~= part.neutral then return false end
    if expected == 'none' then
      if last then return false end
    elseif expected ~= 'any' and tonumber(last or '0') ~= tonumber(expected) then
      return false
    end
  end
  local event_ids = {}
  for i = 1, part.n do event_ids[i] = ARGV[part.from + 2 * (i - 1)] end
  local stored_id = false
  slices(event_ids, function(...)
    for _, seq in ipairs(redis.call('HMGET', part.ids, ...)) do stored_id = stored_id or seq end
  end)
  if stored_id then return false end
  part.event_ids, part.seq, part.first_recorded_at = event_ids, tonumber(last or '0'), tip[3] or now
  -- The state's metadata (up to 64 KiB) is read and written only by an append that adds to it.
  if part.metadata ~= '{}' then
    local merged = cjson.decode(redis.call('HGET', part.head, 'metadata') or '{}')
    for k, v in pairs(cjson.decode(part.metadata)) do merged[k] = v end
    part.metadata_after = cjson.encode(merged)
  end
end
local next_position = redis.call('INCRBY', position, total) - total + 1
local first_position = next_position
for _, part in ipairs(parts) do
  local values, positions, numbers = {}, {}, {}
  for i = 1, part.n do
    local here = next_position + i - 1
    positions[i] = here
    values[2 * i - 1], values[2 * i] = here, ARGV[part.from + 2 * i - 1]
    numbers[2 * i - 1], numbers[2 * i] = part.event_ids[i], part.seq + i
  end
  next_position = next_position + part.n
  slices(values, function(...) redis.call('HSET', events, ...) end)
  slices(positions, function(...) redis.call('RPUSH', part.seqs, ...) end)
  slices(numbers, function(...) redis.call('HSET', part.ids, ...) end)
  redis.call('HSET', part.head, 'neutral', part.neutral, 'last_seq', part.seq + part.n,
    'last_position', next_position - 1, 'first_recorded_at', part.first_recorded_at, 'last_recorded_at', now)
  if part.metadata_after then redis.call('HSET', part.head, 'metadata', part.metadata_after) end
end
return first_position
";

#[derive(Clone)]
pub struct RedisEventStore {
    conn: super::Connection,
    append: Script,
    durable: bool,
}

impl std::fmt::Debug for RedisEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEventStore").field("durable", &self.durable).finish_non_exhaustive()
    }
}

fn key(state_id: &str, what: &str) -> String {
    format!("flipbook:{{{state_id}}}:{what}")
}

impl RedisEventStore {
    pub async fn open(config: &RedisConfig) -> Result<Self> {
        let mut conn = config.connect().await?;
        let settings: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("append*").query_async(&mut conn).await.map_err(redis_error)?;
        let setting = |name: &str| settings.iter().position(|s| s == name).and_then(|i| settings.get(i + 1));
        let durable =
            setting("appendonly").is_some_and(|v| v == "yes") && setting("appendfsync").is_some_and(|v| v == "always");
        Ok(Self { conn, append: Script::new(APPEND), durable })
    }

    /// The positions of a state's events with sequence numbers in `first..=last` (1-based).
    async fn positions(&self, state_id: &str, first: u64, last: u64) -> Result<Vec<u64>> {
        if first > last || first == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        conn.lrange(key(state_id, "seq"), list_index(first), list_index(last)).await.map_err(redis_error)
    }

    /// The stored values of the events at these positions, in order. They are asked for in
    /// chunks sent together on the connection, so Redis builds the next answer while this
    /// one is parsed here: one `HMGET` a page left each side waiting for the other (reads of
    /// a 10,000-event state went from 0.60–0.65 of the raw read to 0.71–0.88). Stored events
    /// never change, so the chunks need not be read at one instant.
    async fn values_at(&self, positions: &[u64]) -> Result<Vec<Vec<u8>>> {
        let requests: Vec<_> =
            positions.chunks(VALUES_PER_HMGET).map(|chunk| hmget(self.conn.clone(), chunk)).collect();
        let mut replies = stream::iter(requests).buffered(HMGETS_IN_FLIGHT);
        let mut values = Vec::with_capacity(positions.len());
        while let Some(reply) = replies.try_next().await? {
            values.extend(reply);
        }
        positions
            .iter()
            .zip(values)
            .map(|(&position, value)| value.ok_or_else(|| Error::Internal(format!("event {position} is missing"))))
            .collect()
    }

    async fn events_at(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>> {
        let values = self.values_at(positions).await?;
        positions.iter().zip(values).map(|(&position, value)| decode_event(position, &value)).collect()
    }

    /// The positions a page of read-all covers, in the read's order, and the cursor after it;
    /// `None` when the window is empty. Positions are dense, so the page is `max` of them.
    async fn all_window(
        &self,
        query: &AllQuery,
        cursor: Option<u64>,
        max: usize,
    ) -> Result<Option<(Vec<u64>, Option<u64>)>> {
        let mut conn = self.conn.clone();
        let newest: Option<u64> = conn.get(POSITION).await.map_err(redis_error)?;
        let (low, high) = query.window(cursor);
        let high = high.min(newest.unwrap_or_default());
        if low >= high || max == 0 {
            return Ok(None);
        }
        let max = max as u64;
        Ok(Some(match query.direction {
            Direction::Forward => {
                let last = high.min(low.saturating_add(max));
                ((low + 1..=last).collect(), (last < high).then_some(last))
            }
            Direction::Backward => {
                let first = (low + 1).max(high.saturating_sub(max - 1));
                ((first..=high).rev().collect(), (first > low + 1).then_some(first))
            }
        }))
    }

    /// A page of a state's read: the sequence numbers it covers, the cursor after it, and its
    /// events' positions; `None` when the read is past the state's end. A forward page starts
    /// at the cursor whatever the state's length, so its positions come with the length in one
    /// round trip and are cut to it after; a backward page needs the length first.
    async fn page_positions(
        &self,
        query: &StateQuery,
        after: Option<u64>,
        max: usize,
    ) -> Result<Option<(Window, Vec<u64>)>> {
        let seq = key(&query.state_id, "seq");
        let mut conn = self.conn.clone();
        if query.direction == Direction::Forward {
            let Some(wanted) = window(query, after, max, u64::MAX) else { return Ok(None) };
            let (count, mut positions): (u64, Vec<u64>) = redis::pipe()
                .llen(&seq)
                .lrange(&seq, list_index(wanted.first), list_index(wanted.last))
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
            let Some(page) = window(query, after, max, count) else { return Ok(None) };
            positions.truncate(usize::try_from(page.last - page.first + 1).unwrap_or(usize::MAX));
            return Ok(Some((page, positions)));
        }
        let count: u64 = conn.llen(&seq).await.map_err(redis_error)?;
        let Some(page) = window(query, after, max, count) else { return Ok(None) };
        let positions = self.positions(&query.state_id, page.first, page.last).await?;
        Ok(Some((page, positions)))
    }

    /// The common case in one round trip: when every part says where its events go (an
    /// `exactly N` or `no state` append, or any append to a version-neutral state), the script
    /// checks and writes at once. `None`: decide in two steps.
    async fn append_in_one_step(&self, parts: &[AppendRequest]) -> Result<Option<Vec<AppendOutcome>>> {
        let mut written = Vec::with_capacity(parts.len());
        for part in parts {
            // State metadata: the merged map's bound is checked in Rust (`merged_metadata`), in
            // two steps. Such appends are rare (a state's metadata is mostly set once).
            if !part.state_metadata.is_empty() {
                return Ok(None);
            }
            let versioned = part.kind == StateKind::Versioned;
            written.push(match (part.expected, versioned) {
                (Expectation::Exactly(n), true) => {
                    Written { mode: "check", expected: n.to_string(), first_seq: Some(n + 1) }
                }
                (Expectation::NoState, _) => Written { mode: "check", expected: "none".to_owned(), first_seq: Some(1) },
                (Expectation::Any, false) => Written { mode: "check", expected: "any".to_owned(), first_seq: None },
                // A versioned `any` append must read the tip to number its events.
                _ => return Ok(None),
            });
        }
        self.write(parts, &written, Timestamp::now()).await
    }

    /// The two-step path: read every part's tip and stored event ids, decide with the shared
    /// rules, then write if no tip changed. `None`: another append got there first.
    async fn try_append(&self, parts: &[AppendRequest]) -> Result<Option<Vec<AppendOutcome>>> {
        let mut pipe = redis::pipe();
        for part in parts {
            let ids: Vec<String> = part.events.iter().map(|e| e.event_id.hyphenated().to_string()).collect();
            // The state's metadata (up to 64 KiB) only when the append adds to it.
            let fields: &[&str] = if part.state_metadata.is_empty() {
                &["neutral", "last_seq"]
            } else {
                &["neutral", "last_seq", "metadata"]
            };
            pipe.hmget(key(&part.state_id, "head"), fields).hmget(key(&part.state_id, "ids"), ids);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await.map_err(redis_error)?;

        let mut checks = Vec::with_capacity(parts.len());
        for (part, reply) in parts.iter().zip(replies.chunks(2)) {
            let (head, stored) = (&reply[0], &reply[1]);
            if let Some(first) = stored.iter().flatten().filter_map(|seq| seq.parse::<u64>().ok()).min() {
                let last = first + part.events.len() as u64 - 1;
                let positions = self.positions(&part.state_id, first, last).await?;
                checks.push(Checked::Replay(replayed(part, &self.events_at(&positions).await?)?));
                continue;
            }
            let (tip, seen) = match head[1].as_deref().and_then(|v| v.parse::<u64>().ok()) {
                Some(last_seq) => {
                    let neutral = head[0].as_deref() == Some("1");
                    let kind = if neutral { StateKind::VersionNeutral } else { StateKind::Versioned };
                    (Some(Tip { kind, last_seq }), last_seq.to_string())
                }
                None => (None, String::new()),
            };
            let first_seq = plan_append(tip, part)?;
            // Checked only: the script merges the same entries into the map it holds.
            if let Some(stored) = head.get(2) {
                merged_metadata(metadata_from_json(stored.as_deref().unwrap_or("{}"))?, part)?;
            }
            checks.push(Checked::Write(Written { mode: "seen", expected: seen, first_seq: Some(first_seq) }));
        }
        match decide(parts, checks)? {
            Decision::Replay(outcomes) => Ok(Some(outcomes)),
            Decision::Write(written) => self.write(parts, &written, Timestamp::now()).await,
        }
    }

    /// Runs [`APPEND`] over the parts, each checked as `written` says; their outcomes, or
    /// `None` when a check failed.
    async fn write(
        &self,
        parts: &[AppendRequest],
        written: &[Written],
        now: Timestamp,
    ) -> Result<Option<Vec<AppendOutcome>>> {
        let mut invocation = self.append.prepare_invoke();
        invocation.key(EVENTS).key(POSITION).arg(now.unix_nanos());
        for (part, how) in parts.iter().zip(written) {
            let versioned = part.kind == StateKind::Versioned;
            for what in ["head", "seq", "ids"] {
                invocation.key(key(&part.state_id, what));
            }
            invocation
                .arg(how.mode)
                .arg(&how.expected)
                .arg(if versioned { "0" } else { "1" })
                .arg(metadata_json(&part.state_metadata))
                .arg(part.events.len());
            for (i, event) in part.events.iter().enumerate() {
                let version = how.first_seq.filter(|_| versioned).map(|first| first + i as u64);
                let value = encode_event(&part.state_id, version, event, now);
                invocation.arg(event.event_id.hyphenated().to_string()).arg(value);
            }
        }
        let mut conn = self.conn.clone();
        let first: Option<u64> = invocation.invoke_async(&mut conn).await.map_err(redis_error)?;
        let Some(mut position) = first else { return Ok(None) };
        let mut outcomes = Vec::with_capacity(parts.len());
        for (part, how) in parts.iter().zip(written) {
            let count = part.events.len() as u64;
            let versioned = part.kind == StateKind::Versioned;
            outcomes.push(AppendOutcome {
                last_version: how.first_seq.filter(|_| versioned).map(|first| first + count - 1),
                global_positions: (position..position + count).collect(),
                recorded_at: now,
            });
            position += count;
        }
        Ok(Some(outcomes))
    }
}

/// How the script checks one part before writing it (see [`APPEND`]), and where its events go
/// when that is known (a versioned event carries its version in its stored value).
struct Written {
    mode: &'static str,
    expected: String,
    first_seq: Option<u64>,
}

#[async_trait]
impl EventStore for RedisEventStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<()> {
        super::ping(&mut self.conn.clone()).await
    }

    fn durable(&self) -> bool {
        self.durable
    }

    async fn append_states(&self, parts: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        if let Some(outcomes) = self.append_in_one_step(&parts).await? {
            return Ok(outcomes);
        }
        for _ in 0..MAX_ATTEMPTS {
            if let Some(outcomes) = self.try_append(&parts).await? {
                return Ok(outcomes);
            }
            tokio::task::yield_now().await;
        }
        let states: Vec<&str> = parts.iter().map(|p| p.state_id.as_str()).collect();
        Err(Error::Unavailable(format!(
            "contended: {MAX_ATTEMPTS} attempts lost the race for the next version of {states:?}"
        )))
    }

    async fn head(&self, state_id: &str) -> Result<Option<StateHead>> {
        let mut conn = self.conn.clone();
        let fields: Vec<Option<String>> = conn
            .hmget(
                key(state_id, "head"),
                &["neutral", "last_seq", "last_position", "first_recorded_at", "last_recorded_at", "metadata"],
            )
            .await
            .map_err(redis_error)?;
        let number = |i: usize| fields[i].as_deref().and_then(|v| v.parse::<i64>().ok()).unwrap_or_default();
        if fields[1].is_none() {
            return Ok(None);
        }
        Ok(Some(StateHead {
            state_id: state_id.to_owned(),
            kind: if fields[0].as_deref() == Some("1") { StateKind::VersionNeutral } else { StateKind::Versioned },
            event_count: u64::try_from(number(1)).unwrap_or_default(),
            last_global_position: u64::try_from(number(2)).unwrap_or_default(),
            first_recorded_at: Timestamp::from_unix_nanos(number(3)),
            last_recorded_at: Timestamp::from_unix_nanos(number(4)),
            metadata: metadata_from_json(fields[5].as_deref().unwrap_or("{}"))?,
        }))
    }

    /// Scans `max` sequence numbers from the cursor and filters them here: a page may hold fewer
    /// events than asked and still not be the last.
    async fn read_state_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<Page> {
        let Some((window, positions)) = self.page_positions(query, after, max).await? else {
            return Ok(Page::default());
        };
        let mut events = self
            .values_at(&positions)
            .await?
            .into_iter()
            .zip(&positions)
            .map(|(value, &position)| decode_event(position, &value))
            .collect::<Result<Vec<_>>>()?;
        if query.direction == Direction::Backward {
            events.reverse();
        }
        events.retain(|e| {
            (query.names.is_empty() || query.names.contains(&e.name))
                && query.as_of.is_none_or(|t| e.timestamp.is_none_or(|at| at <= t))
        });
        Ok(Page { events, next: window.next })
    }

    /// Without filters, each stored body goes into the page as it is, behind its placing
    /// fields (a filtered read decodes, to see names and timestamps).
    async fn read_state_wire_page(&self, query: &StateQuery, after: Option<u64>, max: usize) -> Result<WirePage> {
        if !query.names.is_empty() || query.as_of.is_some() {
            return Ok(self.read_state_page(query, after, max).await?.into());
        }
        let Some((window, mut positions)) = self.page_positions(query, after, max).await? else {
            return Ok(WirePage::default());
        };
        let mut values = self.values_at(&positions).await?;
        if query.direction == Direction::Backward {
            positions.reverse();
            values.reverse();
        }
        let mut page = WirePage::with_capacity(values.len(), values.iter().map(|v| v.len() + 16).sum());
        for (value, position) in values.iter().zip(positions) {
            match split_event(value)? {
                Some(stored) => page.push(&query.state_id, stored.version, position, stored.body),
                None => page.push_event(decode_event(position, value)?),
            }
        }
        page.next = window.next;
        Ok(page)
    }

    async fn read_all_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<Page> {
        let Some((positions, next)) = self.all_window(query, cursor, max).await? else { return Ok(Page::default()) };
        let mut events = self.events_at(&positions).await?;
        events.retain(|e| {
            e.state_id.starts_with(&query.state_id_prefix) && (query.names.is_empty() || query.names.contains(&e.name))
        });
        Ok(Page { events, next })
    }

    /// Without a filter by name, each stored body goes into the page as it is (the state, which
    /// the prefix filter needs, is stored beside it).
    async fn read_all_wire_page(&self, query: &AllQuery, cursor: Option<u64>, max: usize) -> Result<WirePage> {
        if !query.names.is_empty() {
            return Ok(self.read_all_page(query, cursor, max).await?.into());
        }
        let Some((positions, next)) = self.all_window(query, cursor, max).await? else {
            return Ok(WirePage::default());
        };
        let values = self.values_at(&positions).await?;
        let mut page = WirePage::with_capacity(values.len(), values.iter().map(|v| v.len() + 16).sum());
        for (value, position) in values.iter().zip(positions) {
            match split_event(value)? {
                Some(stored) if stored.state_id.starts_with(&query.state_id_prefix) => {
                    page.push(stored.state_id, stored.version, position, stored.body);
                }
                Some(_) => {}
                None => {
                    let event = decode_event(position, value)?;
                    if event.state_id.starts_with(&query.state_id_prefix) {
                        page.push_event(event);
                    }
                }
            }
        }
        page.next = next;
        Ok(page)
    }

    /// The append script takes the position and writes the events in one atomic step, so every
    /// position up to the counter is written.
    async fn settled_position(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        let newest: Option<u64> = conn.get(POSITION).await.map_err(redis_error)?;
        Ok(newest.unwrap_or_default())
    }

    /// Positions are dense: the script that takes them writes every one.
    async fn event_count(&self, until: u64) -> Result<u64> {
        Ok(until.min(self.settled_position().await?))
    }
}

/// The sequence numbers `first..=last` of one page of a state's read, and the cursor after it.
struct Window {
    first: u64,
    last: u64,
    next: Option<u64>,
}

/// The sequence numbers a page of a state's read covers, and the cursor after it, in a state
/// of `count` events; `None` when the read is past its end.
fn window(query: &StateQuery, after: Option<u64>, max: usize, count: u64) -> Option<Window> {
    let low = query.min_version.unwrap_or(1).max(1);
    let high = query.max_version.unwrap_or(u64::MAX).min(count);
    let (first, last) = match query.direction {
        Direction::Forward => {
            let first = after.map_or(low, |a| a + 1).max(low);
            (first, high.min(first.saturating_add(max as u64 - 1)))
        }
        Direction::Backward => {
            let last = after.map_or(high, |b| b.saturating_sub(1)).min(high);
            (last.saturating_sub(max as u64 - 1).max(low), last)
        }
    };
    let next = match query.direction {
        Direction::Forward => (last < high).then_some(last),
        Direction::Backward => (first > low).then_some(first),
    };
    (first <= last).then_some(Window { first, last, next })
}

/// The list index of sequence number `seq` (1-based).
fn list_index(seq: u64) -> isize {
    isize::try_from(seq.saturating_sub(1)).unwrap_or(isize::MAX)
}

/// The stored values at `positions` (`None` where there is none).
async fn hmget(mut conn: super::Connection, positions: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
    redis::cmd("HMGET").arg(EVENTS).arg(positions).query_async(&mut conn).await.map_err(redis_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(query: &StateQuery, after: Option<u64>, max: usize, count: u64) -> Option<(u64, u64, Option<u64>)> {
        window(query, after, max, count).map(|w| (w.first, w.last, w.next))
    }

    #[test]
    fn a_forward_page_asked_for_before_the_length_is_known_keeps_its_start() {
        let query = StateQuery::all("s");
        // Asked for with no length (the positions are fetched with it), then cut to it.
        assert_eq!(spans(&query, Some(4), 10, u64::MAX), Some((5, 14, Some(14))));
        assert_eq!(spans(&query, Some(4), 10, 8), Some((5, 8, None)));
        assert_eq!(spans(&query, Some(4), 10, 14), Some((5, 14, None)));
        assert_eq!(spans(&query, Some(4), 10, 20), Some((5, 14, Some(14))));
        assert_eq!(spans(&query, Some(8), 10, 8), None, "past the end");
    }

    #[test]
    fn windows_honour_version_bounds_in_both_directions() {
        let bounded = StateQuery { min_version: Some(3), max_version: Some(7), ..StateQuery::all("s") };
        assert_eq!(spans(&bounded, None, 10, u64::MAX), Some((3, 7, None)));
        assert_eq!(spans(&bounded, None, 2, 100), Some((3, 4, Some(4))));
        assert_eq!(spans(&bounded, None, 10, 5), Some((3, 5, None)));
        let backward = StateQuery { direction: Direction::Backward, ..bounded };
        assert_eq!(spans(&backward, None, 2, 100), Some((6, 7, Some(6))));
        assert_eq!(spans(&backward, Some(4), 2, 100), Some((3, 3, None)));
        assert_eq!(spans(&backward, None, 10, 0), None, "no events");
    }
}
