//! Running `clawdbot gateway call <method> --params <json> --json`, the one CLI entry point
//! this runtime uses for actions.
//!
//! Safety rules, all enforced here: the binary gets an argument vector (no shell ever sees
//! the parameters, which are one JSON-encoded argument built by serde_json), stdin is null,
//! every call has a deadline after which the process is killed, the child is killed if the
//! caller gives up (`kill_on_drop`), and the gateway token travels only in the child's
//! environment, never in argv (argv is visible to every local user through `ps`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::RuntimeError;

/// How much of the CLI's stderr (or unexpected stdout) is kept in an error message.
const MESSAGE_TAIL: usize = 500;

/// How to run the CLI.
pub(crate) struct Cli {
    pub bin: PathBuf,
    pub gateway_token: Option<String>,
    /// Passed as `CLAWDBOT_STATE_DIR` so the CLI reads the same state (gateway port, token
    /// config) as the store this runtime lists.
    pub state_dir: PathBuf,
    /// Extra environment and working folder for the child; only tests set them.
    pub extra_env: Vec<(OsString, OsString)>,
    pub current_dir: Option<PathBuf>,
}

/// The argument vector of one gateway call (without the binary).
pub(crate) fn gateway_args(method: &str, params: &Value, extra: &[String]) -> Vec<String> {
    let mut args =
        vec!["gateway".to_string(), "call".to_string(), method.to_string(), "--params".to_string(), params.to_string()];
    args.extend(extra.iter().cloned());
    args.push("--json".to_string());
    args
}

impl Cli {
    /// Runs one gateway call and returns its JSON reply object, unchecked: whether the reply
    /// means success depends on the method (see [`reply_error`]).
    pub async fn call(
        &self,
        method: &str,
        params: &Value,
        extra: &[String],
        limit: Duration,
    ) -> Result<Value, RuntimeError> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(gateway_args(method, params, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Both products' names: OpenClaw reads only OPENCLAW_*, Clawdbot only CLAWDBOT_*.
            .env("OPENCLAW_STATE_DIR", &self.state_dir)
            .env("CLAWDBOT_STATE_DIR", &self.state_dir)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        if let Some(token) = &self.gateway_token {
            cmd.env("OPENCLAW_GATEWAY_TOKEN", token).env("CLAWDBOT_GATEWAY_TOKEN", token);
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| {
            RuntimeError::Failed(format!(
                "cannot run clawdbot binary '{}': {e}; set --clawdbot-bin or CLAWDBOT_BIN",
                self.bin.display()
            ))
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = tokio::time::timeout(limit, async {
            // Read both pipes while waiting, or a chatty child blocks on a full pipe.
            let (out, err, status) = tokio::join!(read_all(stdout), read_all(stderr), child.wait());
            (out, err, status)
        })
        .await;
        let Ok((out, err, status)) = finished else {
            // kill() also reaps the process; a failure means it is already gone.
            let _ = child.kill().await;
            return Err(RuntimeError::Failed(format!("clawdbot {method} timed out after {}", seconds(limit))));
        };
        let status =
            status.map_err(|e| RuntimeError::Failed(format!("clawdbot {method}: cannot wait for the process: {e}")))?;
        if !status.success() {
            let err = err.trim();
            let message = if err.is_empty() {
                let out = out.trim();
                if out.is_empty() {
                    format!("clawdbot {method} exited with {status}")
                } else {
                    tail(out, MESSAGE_TAIL).to_string()
                }
            } else {
                tail(err, MESSAGE_TAIL).to_string()
            };
            return Err(RuntimeError::Failed(message));
        }
        parse_reply(method, &out)
    }
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        // A read error leaves what was read so far; the exit status tells the rest.
        let _ = pipe.read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The JSON object the CLI printed. Lines printed before it (warnings from plugins or the
/// config loader) are tolerated.
pub(crate) fn parse_reply(method: &str, stdout: &str) -> Result<Value, RuntimeError> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err(RuntimeError::Failed(format!("clawdbot {method} returned no output")));
    }
    let parsed = serde_json::from_str::<Value>(text).ok().or_else(|| {
        let start = text.find("\n{")? + 1;
        serde_json::from_str::<Value>(&text[start..]).ok()
    });
    match parsed {
        Some(reply @ Value::Object(_)) => Ok(reply),
        _ => Err(RuntimeError::Failed(format!(
            "clawdbot {method} returned unexpected output: {}",
            tail(text, MESSAGE_TAIL)
        ))),
    }
}

/// The error a reply carries: a non-null `error` (string, or object with `message`), or
/// `ok: false`.
pub(crate) fn reply_error(method: &str, reply: &Value) -> Option<String> {
    match reply.get("error") {
        Some(Value::Null) | None => {}
        Some(e) => return Some(error_text(e)),
    }
    (reply.get("ok") == Some(&Value::Bool(false)))
        .then(|| format!("clawdbot {method} failed: {}", tail(&reply.to_string(), MESSAGE_TAIL)))
}

/// Readable text of an `error` value.
pub(crate) fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// The last `max` characters of `s`.
pub(crate) fn tail(s: &str, max: usize) -> &str {
    if max == 0 {
        return "";
    }
    match s.char_indices().rev().nth(max - 1) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_keep_params_in_one_element() {
        let params = json!({"message": "a\"b\n$(x) `y` --z"});
        let args = gateway_args("agent", &params, &[]);
        assert_eq!(args.len(), 6);
        assert_eq!(&args[..4], ["gateway", "call", "agent", "--params"]);
        assert_eq!(serde_json::from_str::<Value>(&args[4]).unwrap(), params);
        assert_eq!(args[5], "--json");
        let extra = ["--timeout".to_string(), "5".to_string()];
        assert_eq!(gateway_args("m", &params, &extra)[5..], ["--timeout", "5", "--json"]);
    }

    #[test]
    fn replies_parse_or_fail_with_text() {
        assert_eq!(parse_reply("m", " {\"a\":1}\n").unwrap(), json!({"a": 1}));
        assert_eq!(parse_reply("m", "warn: plugin x\n{\"a\":1}\n").unwrap(), json!({"a": 1}));
        let err = parse_reply("sessions", "agent:main:main  2m ago").unwrap_err();
        assert_eq!(
            err,
            RuntimeError::Failed("clawdbot sessions returned unexpected output: agent:main:main  2m ago".into())
        );
        assert!(parse_reply("m", "[1]").is_err());
        assert_eq!(parse_reply("m", "  ").unwrap_err(), RuntimeError::Failed("clawdbot m returned no output".into()));
    }

    #[test]
    fn reply_errors() {
        assert_eq!(reply_error("m", &json!({"ok": true})), None);
        assert_eq!(reply_error("m", &json!({"runId": "r", "error": null})), None);
        assert_eq!(
            reply_error("m", &json!({"error": {"code": "X", "message": "no such session"}})),
            Some("no such session".into())
        );
        assert_eq!(reply_error("m", &json!({"error": "boom"})), Some("boom".into()));
        assert_eq!(reply_error("m", &json!({"ok": false})), Some("clawdbot m failed: {\"ok\":false}".into()));
    }

    #[test]
    fn tails_are_char_safe() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("ééé", 2), "éé");
        assert_eq!(tail("abc", 0), "");
        assert_eq!(seconds(Duration::from_secs(30)), "30s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }
}
