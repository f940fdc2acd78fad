//! Rows of event queries. Every row of a result has the same column types, so sqlx checks them on
//! the first row only: profiling a server reading a state, `try_get` took 13 % of its samples,
//! the unchecked decode 8.5 %.

use flipbook_model::{RecordedEvent, Result};
use futures::{Stream, TryStreamExt};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::sql_error;
use crate::encoding::to_u64;

/// A row of a result, as [`each_row`] and [`decode_rows`] hand it over.
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

/// Hands a query's rows to `each` as they arrive (no page of raw rows is held); answers how
/// many there were and the cursor (column 0: sequence number or position) of the last.
pub(super) async fn each_row(
    mut rows: impl Stream<Item = std::result::Result<PgRow, sqlx::Error>> + Unpin,
    mut each: impl FnMut(Columns<'_>) -> Result<()>,
) -> Result<(usize, i64)> {
    let (mut count, mut last) = (0, 0);
    while let Some(row) = rows.try_next().await.map_err(sql_error)? {
        let columns = Columns { row: &row, checked: count == 0 };
        last = columns.get(0).map_err(sql_error)?;
        each(columns)?;
        count += 1;
    }
    Ok((count, last))
}

/// The cursor for the page after one of `count` rows when `max` were asked: a short page is
/// the last.
pub(super) fn next_cursor(count: usize, max: usize, last: i64) -> Option<u64> {
    (count >= max).then_some(to_u64(last))
}

/// The events of a result's rows, in order.
pub(super) fn decode_rows(
    rows: &[PgRow],
    decode: impl Fn(Columns<'_>) -> Result<RecordedEvent>,
) -> Result<Vec<RecordedEvent>> {
    rows.iter().enumerate().map(|(i, row)| decode(Columns { row, checked: i == 0 })).collect()
}
