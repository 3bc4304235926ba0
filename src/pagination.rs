//! Relay cursor pagination helpers: `first` validation and opaque cursors.
//!
//! Cursors are URL-safe base64 of a small tagged string, e.g. `t:CREATED_AT:<key>:<id>`, so a
//! cursor from one list (or one ordering) is refused by another instead of paging wrongly.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;

/// Page size when `first` is not given.
const DEFAULT_PAGE: u64 = 50;
/// Largest page size.
const MAX_PAGE: u64 = 100;

/// Validates `first` (1..=100, default 50).
pub fn page_size(first: Option<i32>) -> Result<u64, AppError> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE as i32).contains(&n) => Ok(n as u64),
        Some(n) => Err(AppError::invalid("first", format!("must be between 1 and {MAX_PAGE}, got {n}"))),
    }
}

/// Complexity of a list field: its page size times the cost of one item.
pub fn cost(first: Option<i32>, child_complexity: usize) -> usize {
    let page = first.map_or(DEFAULT_PAGE as i32, |n| n.clamp(1, MAX_PAGE as i32)) as usize;
    page.saturating_mul(child_complexity.max(1))
}

/// Encodes cursor parts joined by `:`.
pub fn encode(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join(":"))
}

/// Decodes a cursor into exactly `n` parts whose first is `tag`; anything else is `BAD_USER_INPUT`.
pub fn decode(cursor: &str, tag: &str, n: usize) -> Result<Vec<String>, AppError> {
    let malformed = || AppError::invalid("after", "malformed cursor");
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let parts: Vec<String> = text.splitn(n, ':').map(str::to_owned).collect();
    if parts.len() != n || parts[0] != tag {
        return Err(malformed());
    }
    Ok(parts)
}

/// Cursor of a row in a sequence-ordered list (activities, metrics).
pub fn seq_cursor(tag: &str, id: i64) -> String {
    encode(&[tag, &id.to_string()])
}

/// Decodes a sequence cursor made by [`seq_cursor`].
pub fn decode_seq(cursor: &str, tag: &str) -> Result<i64, AppError> {
    let parts = decode(cursor, tag, 2)?;
    parts[1].parse().map_err(|_| AppError::invalid("after", "malformed cursor"))
}

/// `select` narrowed to rows whose `column` is `value`, when a filter gives one (a name of at
/// most `validate::MAX_NAME` characters; `field` names it in errors).
pub fn equal_to<E: sea_orm::EntityTrait>(
    select: sea_orm::Select<E>,
    field: &str,
    value: Option<&String>,
    column: impl sea_orm::ColumnTrait,
) -> crate::error::AppResult<sea_orm::Select<E>> {
    use sea_orm::QueryFilter;
    let Some(value) = value else { return Ok(select) };
    crate::validate::max_len(field, value, crate::validate::MAX_NAME)?;
    Ok(select.filter(column.eq(value.as_str())))
}

/// `select` narrowed to rows whose epoch-millisecond `column` is at or after `since`, when a
/// filter gives it.
pub fn since<E: sea_orm::EntityTrait>(
    select: sea_orm::Select<E>,
    field: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
    column: impl sea_orm::ColumnTrait,
) -> crate::error::AppResult<sea_orm::Select<E>> {
    use sea_orm::QueryFilter;
    let Some(since) = since else { return Ok(select) };
    Ok(select.filter(column.gte(crate::validate::date(field, since)?)))
}

/// One page of a sequence-ordered list, newest first, strictly older than `before_id`; and
/// whether there are more.
pub async fn newest_first<E: sea_orm::EntityTrait>(
    db: &impl sea_orm::ConnectionTrait,
    select: sea_orm::Select<E>,
    id: impl sea_orm::ColumnTrait,
    first: u64,
    before_id: Option<i64>,
) -> crate::error::AppResult<(Vec<E::Model>, bool)> {
    use sea_orm::{QueryFilter, QueryOrder, QuerySelect};
    let select = match before_id {
        Some(before) => select.filter(id.lt(before)),
        None => select,
    };
    let mut rows = select.order_by_desc(id).limit(first + 1).all(db).await?;
    let has_next = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok((rows, has_next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_must_be_in_range() {
        assert_eq!(page_size(None).unwrap(), 50);
        assert_eq!(page_size(Some(1)).unwrap(), 1);
        assert_eq!(page_size(Some(100)).unwrap(), 100);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(101)).is_err());
        assert!(page_size(Some(-5)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_foreign_tags() {
        let c = seq_cursor("a", 42);
        assert_eq!(decode_seq(&c, "a").unwrap(), 42);
        assert!(decode_seq(&c, "m").is_err());
        assert!(decode_seq("not base64!!", "a").is_err());
        assert!(decode_seq(&encode(&["a", "x"]), "a").is_err());
    }
}
