//! Rows into events. Every row of a result has the same column types, so sqlx checks them on
//! the first row only: profiling a server reading a state, `try_get` took 13 % of its samples,
//! the unchecked decode 8.5 %.

use futures::{Stream, TryStreamExt};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::sql_error;
use crate::encoding::to_u64;
use crate::error::Result;
use crate::model::RecordedEvent;
use crate::store::Page;

/// A row of a result, as [`page`] and [`decode_rows`] hand it to a decoder.
pub(super) struct Columns<'r> {
    row: &'r PgRow,
    checked: bool,
}

impl<'r> Columns<'r> {
    /// The value of column `index`.
    pub(super) fn get<T>(&self, index: usize) -> std::result::Result<T, sqlx::Error>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        if self.checked { self.row.try_get(index) } else { self.row.try_get_unchecked(index) }
    }
}

/// A page from a query's rows, each decoded as it arrives (no page of raw rows is held):
/// column `cursor` holds the row's cursor (sequence number or position), `decode` makes the
/// event. A page shorter than `max` is the last one.
pub(super) async fn page(
    mut rows: impl Stream<Item = std::result::Result<PgRow, sqlx::Error>> + Unpin,
    max: usize,
    cursor: usize,
    decode: impl Fn(Columns<'_>) -> Result<RecordedEvent>,
) -> Result<Page> {
    let (mut events, mut last) = (Vec::with_capacity(max.min(4096)), 0);
    while let Some(row) = rows.try_next().await.map_err(sql_error)? {
        last = row.try_get::<i64, _>(cursor).map_err(sql_error)?;
        events.push(decode(Columns { row: &row, checked: events.is_empty() })?);
    }
    let next = (events.len() >= max).then_some(to_u64(last));
    Ok(Page { events, next })
}

/// The events of a result's rows, in order.
pub(super) fn decode_rows(
    rows: &[PgRow],
    decode: impl Fn(Columns<'_>) -> Result<RecordedEvent>,
) -> Result<Vec<RecordedEvent>> {
    rows.iter().enumerate().map(|(i, row)| decode(Columns { row, checked: i == 0 })).collect()
}
