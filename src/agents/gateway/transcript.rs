//! Parsing Clawdbot transcripts (`<sessionId>.jsonl`) and `chat.history` replies.
//!
//! A transcript has one JSON object per line with a `type`: `session` (header),
//! `model_change`, `thinking_level_change`, `custom` and `message`. Only `message` lines are
//! conversation; assistant messages carry `usage` with token counts and dollar cost, which is
//! the only place cost is recorded at all. `chat.history` returns the same message objects
//! under `messages`.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{TranscriptEntry, Usage};

/// `message.usage` of an assistant message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUsage {
    input: Option<i64>,
    output: Option<i64>,
    cache_read: Option<i64>,
    cache_write: Option<i64>,
    total_tokens: Option<i64>,
    cost: Option<RawCost>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawCost {
    total: Option<f64>,
}

impl RawUsage {
    /// `totalTokens`, which Clawdbot sets to input + output + cacheRead + cacheWrite (checked
    /// against the fixtures); that sum when an older writer left it out.
    fn tokens(&self) -> Option<i64> {
        self.total_tokens.or_else(|| {
            let parts = [self.input, self.output, self.cache_read, self.cache_write];
            parts.iter().any(Option::is_some).then(|| parts.iter().flatten().fold(0i64, |a, b| a.saturating_add(*b)))
        })
    }

    fn cost(&self) -> Option<f64> {
        self.cost.as_ref().and_then(|c| c.total)
    }
}

/// The usage-only view of a line: `content` is skipped without being built.
#[derive(Deserialize)]
struct UsageLine {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<UsageMessage>,
}

#[derive(Deserialize)]
struct UsageMessage {
    usage: Option<RawUsage>,
}

/// The usage one transcript line adds: `None` for non-message lines, messages without usage,
/// and lines that are not valid JSON (skipped, never fatal).
pub(crate) fn line_usage(line: &[u8]) -> Option<Usage> {
    let parsed: UsageLine = serde_json::from_slice(line).ok()?;
    if parsed.kind.as_deref() != Some("message") {
        return None;
    }
    let usage = parsed.message?.usage?;
    Some(Usage { tokens: usage.tokens().unwrap_or(0), cost: usage.cost().unwrap_or(0.0) })
}

/// A conversation message, as in a transcript line's `message` or a `chat.history` item.
#[derive(Debug, Deserialize)]
struct RawMessage {
    role: Option<String>,
    content: Option<Value>,
    model: Option<String>,
    usage: Option<RawUsage>,
    timestamp: Option<Value>,
}

#[derive(Deserialize)]
struct EntryLine {
    #[serde(rename = "type")]
    kind: Option<String>,
    timestamp: Option<Value>,
    message: Option<RawMessage>,
}

/// The conversation entry of one transcript line, if it is a well-formed message line.
pub(crate) fn line_entry(line: &[u8]) -> Option<TranscriptEntry> {
    let parsed: EntryLine = serde_json::from_slice(line).ok()?;
    if parsed.kind.as_deref() != Some("message") {
        return None;
    }
    to_entry(parsed.message?, parsed.timestamp.as_ref())
}

fn to_entry(msg: RawMessage, line_timestamp: Option<&Value>) -> Option<TranscriptEntry> {
    let role = msg.role?;
    let mut text = msg.content.as_ref().map(text_of).unwrap_or_default();
    if role == "user" {
        let kept = strip_message_id(&text).len();
        text.truncate(kept);
    }
    let timestamp = msg.timestamp.as_ref().and_then(parse_time).or_else(|| line_timestamp.and_then(parse_time));
    Some(TranscriptEntry {
        role,
        text,
        timestamp,
        model: msg.model,
        tokens: msg.usage.as_ref().and_then(RawUsage::tokens),
        cost: msg.usage.as_ref().and_then(RawUsage::cost),
    })
}

/// The text of a message's `content`: a plain string, or the `text` parts of a part list
/// joined by newlines (tool calls, images and thinking parts carry no display text).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Drops the `\n[message_id: ...]` that `chat.send` appends to user text (as `chat.history`
/// does), so both transcript sources show the same text.
fn strip_message_id(text: &str) -> &str {
    let trimmed = text.trim_end();
    match trimmed.rfind("\n[message_id:") {
        Some(pos) if trimmed.ends_with(']') && !trimmed[pos + 1..].contains('\n') => &text[..pos],
        _ => text,
    }
}

/// Epoch milliseconds (number) or an RFC 3339 string.
fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).and_then(DateTime::from_timestamp_millis)
        }
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// The last `limit` conversation messages of a transcript file, oldest first.
///
/// Streams the file and keeps only a `limit`-sized window, so a long transcript costs one
/// pass and no more memory than the answer. Bad lines are skipped.
pub(crate) fn read_transcript(path: &Path, limit: usize) -> io::Result<Vec<TranscriptEntry>> {
    let mut reader = io::BufReader::new(std::fs::File::open(path)?);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut window = VecDeque::with_capacity(limit.min(1024));
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(entry) = line_entry(&line) {
            if window.len() == limit {
                window.pop_front();
            }
            window.push_back(entry);
        }
    }
    Ok(window.into())
}

/// The last `limit` messages of a `chat.history` reply, oldest first.
pub(crate) fn parse_history(reply: &Value, limit: usize) -> Result<Vec<TranscriptEntry>, String> {
    let messages = reply
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| "clawdbot chat.history: reply has no messages list".to_string())?;
    let entries: Vec<TranscriptEntry> =
        messages.iter().filter_map(|m| RawMessage::deserialize(m).ok()).filter_map(|m| to_entry(m, None)).collect();
    let skip = entries.len().saturating_sub(limit);
    Ok(entries.into_iter().skip(skip).collect())
}

/// The usage summed over a `chat.history` reply's messages.
pub(crate) fn history_usage(reply: &Value) -> Usage {
    let messages = reply.get("messages").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    messages.iter().filter_map(|m| m.get("usage")).filter_map(|u| RawUsage::deserialize(u).ok()).fold(
        Usage::default(),
        |sum, u| Usage {
            tokens: sum.tokens.saturating_add(u.tokens().unwrap_or(0)),
            cost: sum.cost + u.cost().unwrap_or(0.0),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::fixture;
    use super::*;

    const MOCK1: &str = "clawdbot/store/agents/main/sessions/3207e4b5-9db2-4f0f-aa04-c966250a1400.jsonl";

    fn ts(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn usage_of_lines() {
        let assistant = br#"{"type":"message","message":{"role":"assistant","usage":{"input":1234,"output":56,"cacheRead":0,"cacheWrite":0,"totalTokens":1290,"cost":{"total":0.004542}}}}"#;
        assert_eq!(line_usage(assistant), Some(Usage { tokens: 1290, cost: 0.004542 }));
        // No totalTokens: the four parts are summed.
        let parts = br#"{"type":"message","message":{"usage":{"input":10,"output":3,"cacheRead":5,"cacheWrite":2}}}"#;
        assert_eq!(line_usage(parts).unwrap().tokens, 20);
        assert_eq!(line_usage(parts).unwrap().cost, 0.0);
        let user = br#"{"type":"message","message":{"role":"user","content":"hi"}}"#;
        assert_eq!(line_usage(user), None);
        let other = br#"{"type":"custom","message":{"usage":{"totalTokens":9}}}"#;
        assert_eq!(line_usage(other), None);
        assert_eq!(line_usage(b"{\"type\":\"message\",\"mess"), None);
        assert_eq!(line_usage(b""), None);
    }

    #[test]
    fn fixture_transcript_entries() {
        let all = read_transcript(&fixture(MOCK1), 100).unwrap();
        // 11 message lines (6 user, 5 assistant); the session header, model and thinking
        // changes and the custom line are not conversation.
        assert_eq!(all.len(), 11);
        assert_eq!(all.iter().filter(|e| e.role == "assistant").count(), 5);
        assert_eq!(all[0].role, "user");
        assert_eq!(all[0].text, "Write a haiku");
        assert_eq!(all[0].timestamp, DateTime::from_timestamp_millis(1_795_469_351_695));
        assert_eq!(all[0].tokens, None);
        assert_eq!(all[1].role, "assistant");
        assert_eq!(all[1].text, "Mock reply #1: haiku about lobsters.");
        assert_eq!(all[1].model.as_deref(), Some("mock-1"));
        assert_eq!(all[1].tokens, Some(1290));
        assert_eq!(all[1].cost, Some(0.004542));
        // chat.send's trailing message id is stripped from user text.
        assert_eq!(all[2].text, "second message");
        assert_eq!(all[4].text, "SLOW please");

        let last3 = read_transcript(&fixture(MOCK1), 3).unwrap();
        let texts: Vec<_> = last3.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["Mock reply #5: haiku about lobsters.", "no gw", "Mock reply #6: haiku about lobsters."]);
        assert_eq!(read_transcript(&fixture(MOCK1), 0).unwrap(), vec![]);
    }

    #[test]
    fn line_timestamp_is_the_fallback() {
        let line = br#"{"type":"message","timestamp":"2026-01-25T10:00:01.000Z","message":{"role":"user","content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}}"#;
        let entry = line_entry(line).unwrap();
        assert_eq!(entry.text, "a\nb");
        assert_eq!(entry.timestamp, ts("2026-01-25T10:00:01Z"));
    }

    #[test]
    fn message_id_stripping_is_exact() {
        assert_eq!(strip_message_id("x\n[message_id: k]"), "x");
        assert_eq!(strip_message_id("x\n[message_id: k]\n"), "x");
        assert_eq!(strip_message_id("x [message_id: k]"), "x [message_id: k]");
        assert_eq!(strip_message_id("x\n[message_id: k] more"), "x\n[message_id: k] more");
        assert_eq!(strip_message_id("plain"), "plain");
    }

    #[test]
    fn history_replies_parse() {
        let text = std::fs::read_to_string(fixture("clawdbot/gw-history-after-run.json")).unwrap();
        let reply: Value = serde_json::from_str(&text).unwrap();
        let entries = parse_history(&reply, 200).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].text, "Write a haiku");
        assert_eq!(entries[1].tokens, Some(1290));
        assert_eq!(entries[1].cost, Some(0.004542));
        assert_eq!(entries[1].model.as_deref(), Some("mock-1"));
        assert_eq!(entries[1].timestamp, DateTime::from_timestamp_millis(1_795_469_351_699));
        assert_eq!(parse_history(&reply, 1).unwrap()[0].role, "assistant");

        let text = std::fs::read_to_string(fixture("clawdbot/gw-chat-history.json")).unwrap();
        let reply: Value = serde_json::from_str(&text).unwrap();
        let entries = parse_history(&reply, 200).unwrap();
        assert_eq!(entries[0].text, "hello");
        assert_eq!(entries[1].text, "hi there");
        assert_eq!(entries[1].model.as_deref(), Some("claude-opus-4-5"));
        assert_eq!(entries[1].timestamp, ts("2026-01-25T10:00:03Z"));
        assert_eq!((entries[1].tokens, entries[1].cost), (Some(13), Some(0.0003)));

        assert!(parse_history(&serde_json::json!({"ok": true}), 5).is_err());
    }
}
