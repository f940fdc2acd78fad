use async_trait::async_trait;
use flipbook_model::{
    AllQuery, AppendOutcome, AppendRequest, Direction, Error, Expectation, RecordedEvent, Result, StateHead, StateKind,
    StateQuery, Timestamp,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::codec::{decode_event, encode_event, split_event};
use super::{RedisConfig, redis_error};
use crate::encoding::{metadata_from_json, metadata_json};
use crate::store::{EventStore, Page, Tip, merged_metadata, plan_append, replayed};
use crate::wire::WirePage;

const POSITION: &str = "flipbook:position";
const EVENTS: &str = "flipbook:events";

/// A read's events are asked for this many at a time (about 50 KiB of typical events)...
const VALUES_PER_HMGET: usize = 256;
/// ...with this many requests on the connection at once.
const HMGETS_IN_FLIGHT: usize = 4;

/// Tries before an `any` append to a very hot state gives up with `Unavailable`.
const MAX_ATTEMPTS: usize = 16;

/// Writes an append atomically, in one of two modes, and returns its first global position, or
/// nil when the append must be decided in Rust (the caller then reads the tip and tries again):
///
/// - `seen`: the compare-and-set of the two-step path. `expected` is the state's last sequence
///   number as the caller read it ('' for no state); the write happens only if it is unchanged.
/// - `check`: the one-round-trip path. `expected` is the request's expectation ('any', 'none' or
///   a version); the write happens only if the state's kind and tip meet it, exactly as
///   `plan_append` would accept it. Anything else (a conflict to report, a kind mismatch) is
///   left to the two-step path, so the rules keep one home.
///
/// In both, no event id of the batch may be stored yet (a re-send or a duplicate is decided in
/// Rust), and `metadata` (JSON) is merged into the state's metadata.
const APPEND: &str = r"
local head, seqs, ids, events, position = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local mode, expected, neutral, now, metadata = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local tip = redis.call('HMGET', head, 'last_seq', 'neutral', 'first_recorded_at')
local last = tip[1]
if mode == 'seen' then
  if (expected == '' and last) or (expected ~= '' and last ~= expected) then return false end
else
  if last and tip[2] ~= neutral then return false end
  if expected == 'none' then
    if last then return false end
  elseif expected ~= 'any' and tonumber(last or '0') ~= tonumber(expected) then
    return false
  end
end
-- A command over many arguments goes in slices: Lua's unpack is bounded by its C stack.
local function slices(args, each)
  for i = 1, #args, 4000 do each(unpack(args, i, math.min(i + 3999, #args))) end
end
local n = (#ARGV - 5) / 2
local event_ids = {}
for i = 1, n do event_ids[i] = ARGV[4 + 2 * i] end
local stored_id = false
slices(event_ids, function(...)
  for _, seq in ipairs(redis.call('HMGET', ids, ...)) do stored_id = stored_id or seq end
end)
if stored_id then return false end
-- The state's metadata (up to 64 KiB) is read and written only by an append that adds to it.
local metadata_after = false
if metadata ~= '{}' then
  local merged = cjson.decode(redis.call('HGET', head, 'metadata') or '{}')
  for k, v in pairs(cjson.decode(metadata)) do merged[k] = v end
  metadata_after = cjson.encode(merged)
end
local last_position = redis.call('INCRBY', position, n)
local first_position = last_position - n + 1
local seq = tonumber(last or '0')
local values, positions, numbers = {}, {}, {}
for i = 1, n do
  local at = first_position + i - 1
  positions[i] = at
  values[2 * i - 1], values[2 * i] = at, ARGV[5 + 2 * i]
  numbers[2 * i - 1], numbers[2 * i] = event_ids[i], seq + i
end
slices(values, function(...) redis.call('HSET', events, ...) end)
slices(positions, function(...) redis.call('RPUSH', seqs, ...) end)
slices(numbers, function(...) redis.call('HSET', ids, ...) end)
redis.call('HSET', head, 'neutral', neutral, 'last_seq', seq + n, 'last_position', last_position,
  'first_recorded_at', tip[3] or now, 'last_recorded_at', now)
if metadata_after then redis.call('HSET', head, 'metadata', metadata_after) end
return first_position
";

#[derive(Clone)]
pub struct RedisEventStore {
    conn: ConnectionManager,
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

    /// The positions a page of read-all covers, and the cursor after it; `None` past the newest.
    async fn all_window(&self, after: u64, max: usize) -> Result<Option<(Vec<u64>, Option<u64>)>> {
        let mut conn = self.conn.clone();
        let newest: Option<u64> = conn.get(POSITION).await.map_err(redis_error)?;
        let newest = newest.unwrap_or_default();
        let last = newest.min(after.saturating_add(max as u64));
        Ok((after < last).then(|| ((after + 1..=last).collect(), (last < newest).then_some(last))))
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

    /// The common case in one round trip: when the request says where its events go (an
    /// `exactly N` or `no state` append, or any append to a version-neutral state), the script
    /// checks and writes at once. `None`: decide in two steps.
    async fn append_in_one_step(&self, request: &AppendRequest) -> Result<Option<AppendOutcome>> {
        // State metadata: the merged map's bound is checked in Rust (`merged_metadata`), in two
        // steps. Such appends are rare (a state's metadata is mostly set once).
        if !request.state_metadata.is_empty() {
            return Ok(None);
        }
        let versioned = request.kind == StateKind::Versioned;
        let (expected, first_seq) = match (request.expected, versioned) {
            (Expectation::Exactly(n), true) => (n.to_string(), Some(n + 1)),
            (Expectation::NoState, _) => ("none".to_owned(), Some(1)),
            (Expectation::Any, false) => ("any".to_owned(), None),
            // A versioned `any` append must read the tip to number its events.
            _ => return Ok(None),
        };
        let now = Timestamp::now();
        let first_position = self.write(request, "check", expected, first_seq, now).await?;
        Ok(first_position.map(|first| self.outcome(request, first, first_seq, now)))
    }

    /// The two-step path: read the tip and the stored event ids, decide with the shared rules,
    /// then write if the tip is unchanged. `None`: another append got there first.
    async fn try_append(&self, request: &AppendRequest) -> Result<Option<AppendOutcome>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = request.events.iter().map(|e| e.event_id.hyphenated().to_string()).collect();
        // The state's metadata (up to 64 KiB) only when the append adds to it.
        let fields: &[&str] = if request.state_metadata.is_empty() {
            &["neutral", "last_seq"]
        } else {
            &["neutral", "last_seq", "metadata"]
        };
        let (head, stored): (Vec<Option<String>>, Vec<Option<u64>>) = redis::pipe()
            .hmget(key(&request.state_id, "head"), fields)
            .hmget(key(&request.state_id, "ids"), &ids)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;

        if let Some(first) = stored.iter().flatten().min().copied() {
            let last = first + request.events.len() as u64 - 1;
            let positions = self.positions(&request.state_id, first, last).await?;
            return replayed(request, &self.events_at(&positions).await?).map(Some);
        }
        let (tip, seen) = match head[1].as_deref().and_then(|v| v.parse::<u64>().ok()) {
            Some(last_seq) => {
                let neutral = head[0].as_deref() == Some("1");
                let kind = if neutral { StateKind::VersionNeutral } else { StateKind::Versioned };
                (Some(Tip { kind, last_seq }), last_seq.to_string())
            }
            None => (None, String::new()),
        };
        let first_seq = plan_append(tip, request)?;
        // Checked only: the script merges the same entries into the map it holds.
        if let Some(stored) = head.get(2) {
            merged_metadata(metadata_from_json(stored.as_deref().unwrap_or("{}"))?, request)?;
        }
        let now = Timestamp::now();
        let first_position = self.write(request, "seen", seen, Some(first_seq), now).await?;
        Ok(first_position.map(|first| self.outcome(request, first, Some(first_seq), now)))
    }

    /// Runs [`APPEND`] in `mode`. `first_seq`: where the events go, when known (a versioned
    /// event carries its version in its encoding).
    async fn write(
        &self,
        request: &AppendRequest,
        mode: &str,
        expected: String,
        first_seq: Option<u64>,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        let versioned = request.kind == StateKind::Versioned;
        let mut invocation = self.append.prepare_invoke();
        for what in ["head", "seq", "ids"] {
            invocation.key(key(&request.state_id, what));
        }
        invocation
            .key(EVENTS)
            .key(POSITION)
            .arg(mode)
            .arg(expected)
            .arg(if versioned { "0" } else { "1" })
            .arg(now.unix_nanos())
            .arg(metadata_json(&request.state_metadata));
        for (i, event) in request.events.iter().enumerate() {
            let version = first_seq.filter(|_| versioned).map(|first| first + i as u64);
            let value = encode_event(&request.state_id, version, event, now);
            invocation.arg(event.event_id.hyphenated().to_string()).arg(value);
        }
        let mut conn = self.conn.clone();
        invocation.invoke_async(&mut conn).await.map_err(redis_error)
    }

    fn outcome(
        &self,
        request: &AppendRequest,
        first_position: u64,
        first_seq: Option<u64>,
        now: Timestamp,
    ) -> AppendOutcome {
        let count = request.events.len() as u64;
        let versioned = request.kind == StateKind::Versioned;
        AppendOutcome {
            last_version: first_seq.filter(|_| versioned).map(|first| first + count - 1),
            global_positions: (first_position..first_position + count).collect(),
            recorded_at: now,
        }
    }
}

#[async_trait]
impl EventStore for RedisEventStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn durable(&self) -> bool {
        self.durable
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        if let Some(outcome) = self.append_in_one_step(&request).await? {
            return Ok(outcome);
        }
        for _ in 0..MAX_ATTEMPTS {
            if let Some(outcome) = self.try_append(&request).await? {
                return Ok(outcome);
            }
            tokio::task::yield_now().await;
        }
        Err(Error::Unavailable(format!(
            "state {:?} is contended: {MAX_ATTEMPTS} attempts lost the race for the next version",
            request.state_id
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

    async fn read_all_page(&self, query: &AllQuery, after: u64, max: usize) -> Result<Page> {
        let Some((positions, next)) = self.all_window(after, max).await? else { return Ok(Page::default()) };
        let mut events = self.events_at(&positions).await?;
        events.retain(|e| {
            e.state_id.starts_with(&query.state_id_prefix) && (query.names.is_empty() || query.names.contains(&e.name))
        });
        Ok(Page { events, next })
    }

    /// Without a filter by name, each stored body goes into the page as it is (the state, which
    /// the prefix filter needs, is stored beside it).
    async fn read_all_wire_page(&self, query: &AllQuery, after: u64, max: usize) -> Result<WirePage> {
        if !query.names.is_empty() {
            return Ok(self.read_all_page(query, after, max).await?.into());
        }
        let Some((positions, next)) = self.all_window(after, max).await? else { return Ok(WirePage::default()) };
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
async fn hmget(mut conn: ConnectionManager, positions: &[u64]) -> Result<Vec<Option<Vec<u8>>>> {
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
