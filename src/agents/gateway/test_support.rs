//! Test helpers: fixture paths, temporary folders, and reading the fake CLI's call log.
//!
//! Fixtures live in `tests/fixtures/` of the crate (`CARGO_MANIFEST_DIR`): `clawdbot/` holds
//! output captured from the real CLI and `fake-clawdbot` is the stand-in CLI.

use std::path::{Path, PathBuf};

use super::Usage;

/// A path under the crate's `tests/fixtures/`.
pub(crate) fn fixture(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(rel)
}

/// The fake `clawdbot` script.
pub(crate) fn fake_cli() -> PathBuf {
    fixture("fake-clawdbot")
}

/// A fresh folder under the system temp folder, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("clawdbot-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a folder tree (the fixture store) so a test may change it.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Asserts token and dollar totals (the dollars to a billionth).
#[track_caller]
pub(crate) fn assert_usage(usage: Usage, tokens: i64, cost: f64) {
    assert_eq!(usage.tokens, tokens, "tokens of {usage:?}");
    assert!((usage.cost - cost).abs() < 1e-9, "cost of {usage:?}, want {cost}");
}

/// One call the fake CLI logged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FakeCall {
    pub args: Vec<String>,
    /// `CLAWDBOT_GATEWAY_TOKEN` as the fake saw it; `None` when unset.
    pub token: Option<String>,
}

impl FakeCall {
    /// The `--params` argument, parsed.
    pub fn params(&self) -> serde_json::Value {
        let at = self.args.iter().position(|a| a == "--params").unwrap();
        serde_json::from_str(&self.args[at + 1]).unwrap()
    }
}

/// Parses the fake's log (see the encoding in `fake-clawdbot`); no log file means no calls.
pub(crate) fn read_fake_log(path: &Path) -> Vec<FakeCall> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    assert!(bytes.is_empty() || bytes.ends_with(&[0]), "log ends mid-field");
    let mut fields = bytes.split(|&b| b == 0).map(|f| String::from_utf8(f.to_vec()).unwrap());
    let mut calls = Vec::new();
    while let Some(argc) = fields.next() {
        if argc.is_empty() && fields.clone().next().is_none() {
            break; // the empty remainder after the last NUL
        }
        let argc: usize = argc.parse().unwrap();
        let args = (0..argc).map(|_| fields.next().unwrap()).collect();
        let token_set = fields.next().unwrap();
        let token = fields.next().unwrap();
        calls.push(FakeCall { args, token: (token_set == "1").then_some(token) });
    }
    calls
}
