//! Boundary validation shared by every domain. Each failure is `BAD_USER_INPUT` naming the field.

use chrono::{DateTime, Datelike, Utc};

use crate::error::{AppError, AppResult};

/// Longest name-like string (agent ids, authors, labels, filters).
pub const MAX_NAME: usize = 200;
/// Most tags on one task.
const MAX_TAGS: usize = 50;
/// Longest tag.
pub const MAX_TAG: usize = 50;
/// Largest metadata document, serialised.
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Deepest nesting of arrays and objects in a metadata document.
const MAX_METADATA_DEPTH: usize = 32;

/// Fails when `value` has more than `max` characters.
pub fn max_len(field: &str, value: &str, max: usize) -> AppResult<()> {
    let n = value.chars().count();
    if n > max {
        return Err(AppError::invalid(field, format!("at most {max} characters, got {n}")));
    }
    Ok(())
}

/// `value` trimmed, when it is neither empty nor longer than [`MAX_NAME`].
pub fn name<'a>(field: &str, value: &'a str) -> AppResult<&'a str> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    max_len(field, trimmed, MAX_NAME)?;
    Ok(trimmed)
}

/// Fails when a server already keeps `count` of `what` and `max` is all it may (checked before
/// one more is stored).
pub fn room_for_one_more(count: u64, max: u64, what: &str) -> AppResult<()> {
    if count >= max {
        return Err(AppError::invalid("input", format!("at most {max} {what}; delete one first")));
    }
    Ok(())
}

/// Fails unless `value` is a UUID (the form of every task and comment id).
pub fn uuid(field: &str, value: &str) -> AppResult<()> {
    uuid::Uuid::parse_str(value)
        .map(|_| ())
        .map_err(|_| AppError::invalid(field, format!("'{}' is not a valid id", truncate(value))))
}

/// Checks a tag list: at most 50 non-empty tags of at most 50 characters.
pub fn tags(tags: &[String]) -> AppResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(AppError::invalid("tags", format!("at most {MAX_TAGS} tags, got {}", tags.len())));
    }
    for tag in tags {
        if tag.trim().is_empty() {
            return Err(AppError::invalid("tags", "a tag must not be empty"));
        }
        max_len("tags", tag, MAX_TAG)?;
    }
    Ok(())
}

/// Nesting depth of a JSON value, walked without recursion; stops counting past `max`.
fn json_depth(value: &serde_json::Value, max: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        if !(value.is_array() || value.is_object()) {
            continue;
        }
        deepest = deepest.max(depth);
        if deepest > max {
            break;
        }
        match value {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|child| (child, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|child| (child, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Serialises metadata, refusing documents over 16 KB or nested more than 32 deep (deeper
/// ones could not be read back).
pub fn metadata(field: &str, value: &serde_json::Value) -> AppResult<String> {
    if json_depth(value, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH {
        return Err(AppError::invalid(field, format!("nested more than {MAX_METADATA_DEPTH} levels deep")));
    }
    let text = serde_json::to_string(value).map_err(|e| AppError::Internal(format!("encoding metadata: {e}")))?;
    if text.len() > MAX_METADATA_BYTES {
        return Err(AppError::invalid(
            field,
            format!("at most {MAX_METADATA_BYTES} bytes of JSON, got {}", text.len()),
        ));
    }
    Ok(text)
}

/// Accepts dates in years 1970..=9999 and returns epoch milliseconds. The check is made on
/// the instant as stored: a leap second (`23:59:60`) is the next second's first instant, so
/// `9999-12-31T23:59:60Z` would be stored in the year 10000 and is refused.
pub fn date(field: &str, value: DateTime<Utc>) -> AppResult<i64> {
    let millis = value.timestamp_millis();
    let stored = DateTime::<Utc>::from_timestamp_millis(millis).map(|d| d.year());
    if !stored.is_some_and(|year| (1970..=9999).contains(&year)) {
        return Err(AppError::invalid(field, "must be between 1970 and 9999"));
    }
    Ok(millis)
}

/// Shortens a value for an error message.
fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leap_second_at_the_end_of_9999_is_refused() {
        let leap: DateTime<Utc> = "9999-12-31T23:59:60Z".parse().unwrap();
        assert!(date("dueDate", leap).is_err());
        let last: DateTime<Utc> = "9999-12-31T23:59:59.999Z".parse().unwrap();
        assert!(date("dueDate", last).is_ok());
    }

    #[test]
    fn metadata_deeper_than_32_levels_is_refused() {
        let nest = |n: usize| (0..n).fold(serde_json::json!(1), |v, _| serde_json::json!([v]));
        assert!(metadata("metadata", &nest(31)).is_ok());
        let err = metadata("metadata", &nest(40)).unwrap_err();
        assert!(err.to_string().contains("nested more than 32"), "{err}");
    }
}
