//! What the gateway's pushed events mean here: run lifecycles (status), what an agent writes
//! (`agentOutput`) and exec approvals. Pure translation, no I/O, so every case is a unit test.
//!
//! The events (both protocols; OpenClaw adds streams and fields, never renames):
//! - `agent` `{runId, sessionKey, sessionId?, stream, data}`: stream `lifecycle` (`phase`
//!   start / end / error, `aborted`), `assistant` (`delta`), `run_status` (`phase`), `tool`
//!   (`phase` start / result, `name`), `usage`;
//! - `chat` `{runId, sessionKey, state}`: `final` carries the whole reply, `aborted` says a
//!   kill took effect (`delta` repeats the assistant stream and is skipped);
//! - `exec.approval.requested` `{id, request: {command, cwd, agentId, sessionKey},
//!   createdAtMs, expiresAtMs}` and `exec.approval.resolved` `{id, decision, resolvedBy}`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::snapshot::{AgentOutputItem, Approval, ApprovalState, Decision, OutputKind};

/// The display name this server connects with: a decision "by" it is one a user of this server
/// made, and the user is recorded instead.
pub(crate) const OWN_CLIENT_NAME: &str = "mission-control";

/// A change in a run's life.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lifecycle {
    Started { session_key: String, run_id: String },
    Ended { session_key: String, run_id: String, session_id: Option<String> },
    Failed { session_key: String, run_id: String, session_id: Option<String> },
    Killed { session_key: String, session_id: Option<String> },
}

/// Everything one event says.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Meaning {
    pub lifecycle: Option<Lifecycle>,
    pub output: Option<AgentOutputItem>,
    pub approval: Option<Approval>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn millis(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key).and_then(Value::as_i64).and_then(DateTime::from_timestamp_millis)
}

/// The plain text of a chat message (`content` as a string or as text parts).
fn message_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

/// What event `name` with `payload` means, as of `now` (for items without a timestamp).
pub(crate) fn meaning(name: &str, payload: &Value, now: DateTime<Utc>) -> Meaning {
    match name {
        "agent" => agent_event(payload, now),
        "chat" => chat_event(payload, now),
        "exec.approval.requested" => Meaning { approval: approval(payload, None), ..Meaning::default() },
        "exec.approval.resolved" => {
            // `null` means it expired; a decision word this server does not know is skipped.
            let decision = match payload.get("decision") {
                None | Some(Value::Null) => None,
                Some(word) => match word.as_str().and_then(Decision::from_wire) {
                    Some(d) => Some(d),
                    None => return Meaning::default(),
                },
            };
            Meaning { approval: approval(payload, Some(decision)), ..Meaning::default() }
        }
        _ => Meaning::default(),
    }
}

fn output(payload: &Value, key: &str, kind: OutputKind, body: Option<String>, now: DateTime<Utc>) -> AgentOutputItem {
    AgentOutputItem {
        agent_id: key.to_owned(),
        run_id: text(payload, "runId"),
        kind,
        text: body,
        tool_name: None,
        at: millis(payload, "ts").unwrap_or(now),
    }
}

fn agent_event(payload: &Value, now: DateTime<Utc>) -> Meaning {
    let Some(key) = text(payload, "sessionKey") else { return Meaning::default() };
    let run_id = text(payload, "runId").unwrap_or_default();
    let session_id = text(payload, "sessionId");
    let data = payload.get("data").unwrap_or(&Value::Null);
    let phase = data.get("phase").and_then(Value::as_str).unwrap_or("");
    let aborted = data.get("aborted").and_then(Value::as_bool) == Some(true)
        || data.get("status").and_then(Value::as_str) == Some("cancelled");
    let mut meaning = Meaning::default();
    match payload.get("stream").and_then(Value::as_str).unwrap_or("") {
        "lifecycle" => match phase {
            "start" => {
                meaning.lifecycle = Some(Lifecycle::Started { session_key: key.clone(), run_id });
                meaning.output = Some(output(payload, &key, OutputKind::Status, Some("started".into()), now));
            }
            "end" | "error" if aborted => {
                meaning.lifecycle = Some(Lifecycle::Killed { session_key: key, session_id });
            }
            "end" => meaning.lifecycle = Some(Lifecycle::Ended { session_key: key, run_id, session_id }),
            "error" => {
                let why = text(data, "error").unwrap_or_else(|| "the run failed".into());
                meaning.output = Some(output(payload, &key, OutputKind::Error, Some(why), now));
                meaning.lifecycle = Some(Lifecycle::Failed { session_key: key, run_id, session_id });
            }
            _ => {}
        },
        "assistant" => {
            if let Some(delta) = data.get("delta").and_then(Value::as_str).filter(|d| !d.is_empty()) {
                meaning.output = Some(output(payload, &key, OutputKind::Text, Some(delta.to_owned()), now));
            }
        }
        "run_status" if !phase.is_empty() => {
            meaning.output = Some(output(payload, &key, OutputKind::Status, Some(phase.to_owned()), now));
        }
        "tool" => {
            let kind = match phase {
                "start" | "call" => OutputKind::ToolCall,
                "result" | "end" => OutputKind::ToolResult,
                _ => return meaning,
            };
            let body = ["args", "result", "output"]
                .iter()
                .find_map(|k| data.get(*k))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
            let mut item = output(payload, &key, kind, body, now);
            item.tool_name = text(data, "name").or_else(|| text(data, "tool"));
            meaning.output = Some(item);
        }
        _ => {}
    }
    meaning
}

fn chat_event(payload: &Value, now: DateTime<Utc>) -> Meaning {
    let Some(key) = text(payload, "sessionKey") else { return Meaning::default() };
    match payload.get("state").and_then(Value::as_str) {
        Some("final") => {
            let body = payload.get("message").and_then(message_text);
            Meaning { output: Some(output(payload, &key, OutputKind::Final, body, now)), ..Meaning::default() }
        }
        Some("aborted") => Meaning {
            output: Some(output(payload, &key, OutputKind::Error, Some("aborted".into()), now)),
            lifecycle: Some(Lifecycle::Killed { session_key: key, session_id: None }),
            ..Meaning::default()
        },
        _ => Meaning::default(),
    }
}

/// An approval from a requested (`decision: None`) or resolved event.
fn approval(payload: &Value, decision: Option<Option<Decision>>) -> Option<Approval> {
    let id = text(payload, "id")?;
    let request = payload.get("request").unwrap_or(&Value::Null);
    let created_at = millis(payload, "createdAtMs").or_else(|| millis(payload, "ts")).unwrap_or_else(Utc::now);
    let expires_at = millis(payload, "expiresAtMs").unwrap_or(created_at);
    let (status, decision) = match decision {
        None => (ApprovalState::Pending, None),
        Some(Some(d)) => (d.state(), Some(d)),
        Some(None) => (ApprovalState::Expired, None),
    };
    let session_key = text(request, "sessionKey");
    Some(Approval {
        id,
        command: text(request, "command").unwrap_or_default(),
        cwd: text(request, "cwd"),
        agent_id: session_key.clone().or_else(|| text(request, "agentId")),
        session_key,
        status,
        decision,
        decided_by: text(payload, "resolvedBy").filter(|by| by != OWN_CLIENT_NAME),
        created_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event the gateway pushed in a recorded fixture session (`""`: the whole file).
    fn pushed(file: &str, session: &str) -> Vec<(String, Value)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_owned() + file;
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["dir"] == "in" && (session.is_empty() || l["session"] == session || l["conn"] == session))
            .filter(|l| l["frame"]["type"] == "event")
            .map(|l| (l["frame"]["event"].as_str().unwrap().to_owned(), l["frame"]["payload"].clone()))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn the_recorded_openclaw_session_reads_as_runs_outputs_and_a_kill() {
        let meanings: Vec<Meaning> =
            pushed("openclaw/gateway-session.jsonl", "v4-backend").iter().map(|(n, p)| meaning(n, p, now())).collect();
        let lifecycles: Vec<&Lifecycle> = meanings.iter().filter_map(|m| m.lifecycle.as_ref()).collect();
        let key = "agent:main:subagent:capture-1796152060105";
        // Three runs: two end normally, the third (SLOW) is aborted by chat.abort.
        assert!(
            matches!(lifecycles[0], Lifecycle::Started { session_key, run_id } if session_key == key && run_id == "cap-1796152060980")
        );
        assert!(
            matches!(lifecycles[1], Lifecycle::Ended { run_id, session_id: Some(_), .. } if run_id == "cap-1796152060980")
        );
        assert!(matches!(lifecycles[3], Lifecycle::Ended { run_id, .. } if run_id == "cap2-1796152071315"));
        assert!(lifecycles[5..].iter().all(|l| matches!(l, Lifecycle::Killed { .. })), "{lifecycles:?}");
        assert!(!lifecycles.iter().any(|l| matches!(l, Lifecycle::Failed { .. })), "an abort is a kill, not a failure");

        let outputs: Vec<&AgentOutputItem> = meanings.iter().filter_map(|m| m.output.as_ref()).collect();
        let of_run = |run: &str, kind: OutputKind| -> Vec<String> {
            outputs
                .iter()
                .filter(|o| o.run_id.as_deref() == Some(run) && o.kind == kind)
                .filter_map(|o| o.text.clone())
                .collect()
        };
        assert_eq!(of_run("cap-1796152060980", OutputKind::Text).concat(), "Mock reply #1: haiku about lobsters.");
        assert_eq!(of_run("cap-1796152060980", OutputKind::Final), ["Mock reply #1: haiku about lobsters."]);
        assert_eq!(
            of_run("cap2-1796152071315", OutputKind::Status),
            ["preparing_workspace", "preparing_context", "started", "starting_model"]
        );
        assert_eq!(of_run("cap3-1796152074215", OutputKind::Error), ["aborted"]);
        assert!(outputs.iter().all(|o| o.agent_id == key));
    }

    #[test]
    fn the_recorded_clawdbot_session_reads_the_same_way() {
        let meanings: Vec<Meaning> =
            pushed("clawdbot/gateway-session.jsonl", "").iter().map(|(n, p)| meaning(n, p, now())).collect();
        let started = meanings.iter().filter(|m| matches!(m.lifecycle, Some(Lifecycle::Started { .. }))).count();
        let ended = meanings.iter().filter(|m| matches!(m.lifecycle, Some(Lifecycle::Ended { .. }))).count();
        assert!(started >= 2 && ended >= 2, "{started} started, {ended} ended");
        assert!(meanings.iter().any(|m| m.output.as_ref().is_some_and(|o| o.kind == OutputKind::Text)));
    }

    #[test]
    fn approvals_are_read_from_requested_and_resolved_events() {
        let events = pushed("openclaw/gateway-approval.jsonl", "operator-console");
        let approvals: Vec<Approval> = events.iter().filter_map(|(n, p)| meaning(n, p, now()).approval).collect();
        assert_eq!(approvals.len(), 2);
        let (asked, resolved) = (&approvals[0], &approvals[1]);
        assert_eq!(asked.status, ApprovalState::Pending);
        assert_eq!(asked.command, "rm -rf ./build");
        assert_eq!(asked.cwd.as_deref(), Some("/home/operator/project"));
        assert_eq!(asked.agent_id.as_deref(), Some("agent:main:subagent:capture"));
        assert_eq!((asked.expires_at - asked.created_at).num_seconds(), 10);
        assert_eq!(resolved.id, asked.id);
        assert_eq!((resolved.status, resolved.decision), (ApprovalState::Allowed, Some(Decision::AllowOnce)));
        assert_eq!(resolved.decided_by.as_deref(), Some("operator-console"));

        let expired = serde_json::json!({"id": "x", "decision": null, "request": {"command": "ls"}});
        let expired = meaning("exec.approval.resolved", &expired, now()).approval.unwrap();
        assert_eq!(expired.status, ApprovalState::Expired);
        let ours = serde_json::json!({"id": "y", "decision": "deny", "resolvedBy": OWN_CLIENT_NAME, "request": {}});
        assert_eq!(meaning("exec.approval.resolved", &ours, now()).approval.unwrap().decided_by, None);
    }

    #[test]
    fn tool_events_and_failures_become_output() {
        let call = serde_json::json!({"runId": "r", "sessionKey": "k", "stream": "tool", "data": {"phase": "start", "name": "exec", "args": {"command": "ls"}}});
        let item = meaning("agent", &call, now()).output.unwrap();
        assert_eq!((item.kind, item.tool_name.as_deref()), (OutputKind::ToolCall, Some("exec")));
        assert_eq!(item.text.as_deref(), Some(r#"{"command":"ls"}"#));
        let failed = serde_json::json!({"runId": "r", "sessionKey": "k", "stream": "lifecycle", "data": {"phase": "error", "error": "model down"}});
        let m = meaning("agent", &failed, now());
        assert!(matches!(m.lifecycle, Some(Lifecycle::Failed { .. })));
        assert_eq!(m.output.unwrap().text.as_deref(), Some("model down"));
        assert_eq!(meaning("health", &serde_json::json!({}), now()), Meaning::default());
    }
}
