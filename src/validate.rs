//! Boundary validation shared by every domain. Each failure is `BAD_USER_INPUT` naming the field.

use chrono::{DateTime, Datelike, Utc};

use crate::error::{AppError, AppResult};

/// Longest name-like string (agent ids, authors, labels, filters).
pub const MAX_NAME: usize = 200;
/// Most tags on one task.
pub const MAX_TAGS: usize = 50;
/// Longest tag.
pub const MAX_TAG: usize = 50;
/// Largest metadata document, serialised.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Fails when `value` has more than `max` characters.
pub fn max_len(field: &str, value: &str, max: usize) -> AppResult<()> {
    let n = value.chars().count();
    if n > max {
        return Err(AppError::invalid(field, format!("at most {max} characters, got {n}")));
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

/// Serialises metadata, refusing documents over 16 KB.
pub fn metadata(field: &str, value: &serde_json::Value) -> AppResult<String> {
    let text = serde_json::to_string(value).map_err(|e| AppError::Internal(format!("encoding metadata: {e}")))?;
    if text.len() > MAX_METADATA_BYTES {
        return Err(AppError::invalid(
            field,
            format!("at most {MAX_METADATA_BYTES} bytes of JSON, got {}", text.len()),
        ));
    }
    Ok(text)
}

/// Accepts dates in years 1970..=9999 and returns epoch milliseconds.
pub fn date(field: &str, value: DateTime<Utc>) -> AppResult<i64> {
    if !(1970..=9999).contains(&value.year()) {
        return Err(AppError::invalid(field, "must be between 1970 and 9999"));
    }
    Ok(value.timestamp_millis())
}

/// Shortens a value for an error message.
fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}
