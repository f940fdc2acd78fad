//! What the backends share: number and metadata encodings, and turning rows into pages.

use crate::error::{Error, Result};
use crate::model::Metadata;
#[cfg(feature = "postgres")]
use crate::model::RecordedEvent;
#[cfg(feature = "postgres")]
use crate::store::Page;

/// Numbers are `u64` in the model and `BIGINT` in SQL; values above `i64::MAX` never occur
/// (positions and versions count events).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Metadata is stored as a JSON object; empty maps (the common case) skip the JSON codec.
pub(crate) fn metadata_json(metadata: &Metadata) -> String {
    if metadata.is_empty() {
        return "{}".to_owned();
    }
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn metadata_from_json(text: &str) -> Result<Metadata> {
    if text == "{}" {
        return Ok(Metadata::new());
    }
    serde_json::from_str(text).map_err(|e| Error::Internal(format!("corrupt metadata: {e}")))
}

/// A row of a result, as `page` hands it to a decoder. Every row of a result has the same
/// column types (on SQLite, where types belong to values, because Flipbook writes each column
/// with one type), so sqlx checks them on the first row only: profiling a server reading a
/// PostgreSQL state, `try_get` took 13 % of its samples, the unchecked decode 8.5 %.
#[cfg(feature = "postgres")]
pub(crate) struct Columns<'r, R> {
    row: &'r R,
    checked: bool,
}

#[cfg(feature = "postgres")]
impl<'r, R: sqlx::Row> Columns<'r, R> {
    /// The value of column `index`.
    pub(crate) fn get<T>(&self, index: usize) -> std::result::Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        if self.checked { self.row.try_get(index) } else { self.row.try_get_unchecked(index) }
    }
}

#[cfg(feature = "postgres")]
/// A page from a query's rows, each decoded as it arrives (no page of raw rows is held):
/// `cursor` reads the row's cursor column (sequence number or position), `decode` the event,
/// `sql_error` says what a driver error means. A page shorter than `max` is the last one.
pub(crate) async fn page<R: sqlx::Row>(
    mut rows: impl futures::Stream<Item = std::result::Result<R, sqlx::Error>> + Unpin,
    max: usize,
    cursor: impl Fn(&R) -> std::result::Result<i64, sqlx::Error>,
    decode: impl Fn(Columns<'_, R>) -> Result<RecordedEvent>,
    sql_error: fn(sqlx::Error) -> Error,
) -> Result<Page> {
    use futures::TryStreamExt;
    let (mut events, mut last) = (Vec::with_capacity(max.min(4096)), 0);
    while let Some(row) = rows.try_next().await.map_err(sql_error)? {
        last = cursor(&row).map_err(sql_error)?;
        events.push(decode(Columns { row: &row, checked: events.is_empty() })?);
    }
    let next = (events.len() >= max).then_some(to_u64(last));
    Ok(Page { events, next })
}

#[cfg(feature = "postgres")]
/// The events of a result's rows, in order.
pub(crate) fn decode_rows<R: sqlx::Row>(
    rows: &[R],
    decode: impl Fn(Columns<'_, R>) -> Result<RecordedEvent>,
) -> Result<Vec<RecordedEvent>> {
    rows.iter().enumerate().map(|(i, row)| decode(Columns { row, checked: i == 0 })).collect()
}

/// The exclusive/inclusive bounds on `state_seq` of a SQL page query: forward reads
/// `(from, to]`, backward reads `[to, from)`, whatever the query's version bounds and cursor.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn seq_window(query: &crate::model::StateQuery, after: Option<u64>) -> (u64, u64) {
    let min = query.min_version.unwrap_or(1).max(1);
    let max = query.max_version.unwrap_or(u64::MAX);
    match query.direction {
        crate::model::Direction::Forward => (after.unwrap_or(0).max(min - 1), max),
        crate::model::Direction::Backward => (after.unwrap_or(u64::MAX).min(max.saturating_add(1)), min),
    }
}
