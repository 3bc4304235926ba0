//! Finding the gateway the way its own CLI does, under both product names.
//!
//! - **State folder:** `--openclaw-state-dir` / `OPENCLAW_STATE_DIR`, else
//!   `--clawdbot-state-dir` / `CLAWDBOT_STATE_DIR`, else `~/.openclaw` when it exists, else
//!   `~/.clawdbot` when it exists, else `~/.openclaw` (OpenClaw's own order: an old
//!   `~/.clawdbot` is used only when `~/.openclaw` is missing).
//! - **Config:** `OPENCLAW_CONFIG_PATH`, else `<state>/openclaw.json`, else
//!   `<state>/clawdbot.json`; JSON5, as both products write it. Only `gateway.port` and
//!   `gateway.auth.token` are read.
//! - **Token:** `OPENCLAW_GATEWAY_TOKEN`, else `CLAWDBOT_GATEWAY_TOKEN`, else the config's.
//! - **Address:** `--gateway-url` / `OPENCLAW_GATEWAY_URL`, else `ws://127.0.0.1:<gateway.port>`,
//!   else `ws://127.0.0.1:18789`.

use std::path::{Path, PathBuf};

/// The gateway's port when its config names none.
pub const DEFAULT_PORT: u16 = 18789;

/// What the user set (flags and environment, already merged by clap).
#[derive(Debug, Clone, Default)]
pub struct Hints {
    pub openclaw_state_dir: Option<PathBuf>,
    pub clawdbot_state_dir: Option<PathBuf>,
    pub config_path: Option<PathBuf>,
    pub gateway_url: Option<String>,
    pub openclaw_token: Option<String>,
    pub clawdbot_token: Option<String>,
    pub home: Option<PathBuf>,
}

impl Hints {
    /// The hints of this process: the given flags plus `OPENCLAW_CONFIG_PATH` and `HOME`.
    pub fn from_env(mut self) -> Self {
        self.config_path = self.config_path.or_else(|| non_empty_var("OPENCLAW_CONFIG_PATH").map(PathBuf::from));
        self.home = self.home.or_else(|| non_empty_var("HOME").map(PathBuf::from));
        self
    }

    /// Whether the user pointed at a gateway at all (any of the settings is given).
    pub fn any_given(&self) -> bool {
        self.openclaw_state_dir.is_some()
            || self.clawdbot_state_dir.is_some()
            || self.gateway_url.is_some()
            || self.openclaw_token.is_some()
            || self.clawdbot_token.is_some()
    }
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where the gateway is, as found.
#[derive(Clone, PartialEq)]
pub struct Found {
    pub state_dir: PathBuf,
    /// The config file read, if one was found.
    pub config_file: Option<PathBuf>,
    pub url: String,
    pub token: Option<String>,
    /// Where the token came from, for the log (never the token itself).
    pub token_source: &'static str,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("state_dir", &self.state_dir)
            .field("config_file", &self.config_file)
            .field("url", &self.url)
            .field("token_source", &self.token_source)
            .finish_non_exhaustive()
    }
}

/// The state folder the hints lead to; `None` only without a home and without flags.
pub fn state_dir(hints: &Hints) -> Option<PathBuf> {
    if let Some(dir) = hints.openclaw_state_dir.clone().or_else(|| hints.clawdbot_state_dir.clone()) {
        return Some(dir);
    }
    let home = hints.home.as_ref()?;
    let (openclaw, clawdbot) = (home.join(".openclaw"), home.join(".clawdbot"));
    Some(if !openclaw.is_dir() && clawdbot.is_dir() { clawdbot } else { openclaw })
}

/// The fields of the config that matter here.
#[derive(Debug, Default, PartialEq)]
struct GatewaySection {
    port: Option<u16>,
    token: Option<String>,
}

fn read_config(path: &Path) -> Result<Option<GatewaySection>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let value: serde_json::Value =
        json5::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    let gateway = value.get("gateway");
    Ok(Some(GatewaySection {
        port: gateway
            .and_then(|g| g.get("port"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u16::try_from(p).ok()),
        token: gateway
            .and_then(|g| g.pointer("/auth/token"))
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    }))
}

/// Finds the gateway; a config file that exists but cannot be read is an error that names it.
pub fn find(hints: &Hints) -> Result<Found, String> {
    let state_dir = state_dir(hints).ok_or("no state folder: set --openclaw-state-dir (OPENCLAW_STATE_DIR) or HOME")?;
    let candidates = match &hints.config_path {
        Some(path) => vec![path.clone()],
        None => vec![state_dir.join("openclaw.json"), state_dir.join("clawdbot.json")],
    };
    let mut config = None;
    for path in candidates {
        if let Some(section) = read_config(&path)? {
            config = Some((path, section));
            break;
        }
    }
    let (config_file, section) = match config {
        Some((path, section)) => (Some(path), section),
        None => (None, GatewaySection::default()),
    };
    let (token, token_source) = if let Some(t) = &hints.openclaw_token {
        (Some(t.clone()), "OPENCLAW_GATEWAY_TOKEN")
    } else if let Some(t) = &hints.clawdbot_token {
        (Some(t.clone()), "CLAWDBOT_GATEWAY_TOKEN")
    } else if let Some(t) = section.token {
        (Some(t), "config gateway.auth.token")
    } else {
        (None, "none")
    };
    let url =
        hints.gateway_url.clone().unwrap_or_else(|| format!("ws://127.0.0.1:{}", section.port.unwrap_or(DEFAULT_PORT)));
    Ok(Found { state_dir, config_file, url, token, token_source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_home() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mc-discovery-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_state_folder_follows_openclaws_order() {
        let home = temp_home();
        let hints = Hints { home: Some(home.clone()), ..Hints::default() };
        assert_eq!(state_dir(&hints), Some(home.join(".openclaw")), "neither exists: OpenClaw's name");
        std::fs::create_dir_all(home.join(".clawdbot")).unwrap();
        assert_eq!(state_dir(&hints), Some(home.join(".clawdbot")), "only the old folder exists");
        std::fs::create_dir_all(home.join(".openclaw")).unwrap();
        assert_eq!(state_dir(&hints), Some(home.join(".openclaw")), "the new folder wins once it exists");
        let flagged = Hints { clawdbot_state_dir: Some("/srv/cb".into()), ..hints.clone() };
        assert_eq!(state_dir(&flagged), Some(PathBuf::from("/srv/cb")), "a flag beats the home folders");
        let both = Hints { openclaw_state_dir: Some("/srv/oc".into()), ..flagged };
        assert_eq!(state_dir(&both), Some(PathBuf::from("/srv/oc")));
        std::fs::remove_dir_all(home).ok();
    }

    #[test]
    fn port_and_token_come_from_a_json5_config_of_either_name() {
        let state = temp_home();
        let hints = Hints { openclaw_state_dir: Some(state.clone()), ..Hints::default() };
        let found = find(&hints).unwrap();
        assert_eq!((found.url.as_str(), found.token.as_deref()), ("ws://127.0.0.1:18789", None));

        std::fs::write(
            state.join("clawdbot.json"),
            "// old name\n{ gateway: { port: 19001, auth: { token: 'from-config' } }, }",
        )
        .unwrap();
        let found = find(&hints).unwrap();
        assert_eq!(found.url, "ws://127.0.0.1:19001");
        assert_eq!((found.token.as_deref(), found.token_source), (Some("from-config"), "config gateway.auth.token"));

        std::fs::write(state.join("openclaw.json"), r#"{"gateway": {"port": 19002}}"#).unwrap();
        let found = find(&hints).unwrap();
        assert_eq!(found.url, "ws://127.0.0.1:19002", "openclaw.json is read first");
        assert_eq!(found.config_file, Some(state.join("openclaw.json")));

        let env =
            Hints { clawdbot_token: Some("cb".into()), gateway_url: Some("ws://10.0.0.2:1".into()), ..hints.clone() };
        let found = find(&env).unwrap();
        assert_eq!((found.url.as_str(), found.token.as_deref()), ("ws://10.0.0.2:1", Some("cb")));
        let env = Hints { openclaw_token: Some("oc".into()), ..env };
        assert_eq!(find(&env).unwrap().token.as_deref(), Some("oc"), "the OpenClaw name wins");

        std::fs::write(state.join("openclaw.json"), "{ gateway: ").unwrap();
        let err = find(&hints).unwrap_err();
        assert!(err.contains("openclaw.json"), "{err}");
        std::fs::remove_dir_all(state).ok();
    }
}
