//! What the backends share: number and metadata encodings, and SQL version windows.

use flipbook_model::{Error, Metadata, Result};

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

/// The exclusive/inclusive bounds on `state_seq` of a SQL page query: forward reads
/// `(from, to]`, backward reads `[to, from)`, whatever the query's version bounds and cursor.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn seq_window(query: &flipbook_model::StateQuery, after: Option<u64>) -> (u64, u64) {
    let min = query.min_version.unwrap_or(1).max(1);
    let max = query.max_version.unwrap_or(u64::MAX);
    match query.direction {
        flipbook_model::Direction::Forward => (after.unwrap_or(0).max(min - 1), max),
        flipbook_model::Direction::Backward => (after.unwrap_or(u64::MAX).min(max.saturating_add(1)), min),
    }
}
