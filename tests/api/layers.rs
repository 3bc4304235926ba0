//! The one rule that keeps the house in shape: imports go down, never up.
//!
//! - wiring (`main`, `startup`, `http`, `ws`, `mcp`, `graphiql`, `page`, `serve`, `schema`, `query_limits`, `config`)
//!   imports whatever it needs;
//! - domains (`auth/`, `audit/`, `tasks/`, `feed/`, `agents/`, `work/`, `schedules/`, `alerts/`, `usage/`, and every new one) import each other and
//!   the base, never the wiring;
//! - the base (`error`, `events`, `db`, `entity/`, ...) imports only the base.

use std::path::{Path, PathBuf};

const WIRING: [&str; 11] =
    ["main", "startup", "http", "ws", "serve", "schema", "query_limits", "config", "mcp", "graphiql", "page"];
const DOMAINS: [&str; 9] = ["auth", "audit", "tasks", "feed", "agents", "work", "schedules", "alerts", "usage"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::`, grouped imports included.
fn crate_modules(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            found.extend(inner.split(',').filter_map(|item| item.trim().split("::").next()).map(str::to_owned));
        } else {
            found.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

/// The top-level module a file belongs to (`src/agents/clawdbot/cli.rs` is `agents`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn no_domain_imports_the_wiring_and_the_base_imports_neither() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if WIRING.contains(&module.as_str()) || module == "lib" {
            continue;
        }
        let is_domain = DOMAINS.contains(&module.as_str());
        let text = std::fs::read_to_string(file).expect("readable");
        for imported in crate_modules(&text) {
            let upward = WIRING.contains(&imported.as_str())
                || (!is_domain && DOMAINS.contains(&imported.as_str()) && imported != module);
            if upward {
                violations.push(format!("{} imports crate::{imported}", file.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    assert!(violations.is_empty(), "imports that go up a layer:\n{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_grouped_and_plain_imports() {
    let text = "use crate::startup::AppState;\nuse crate::{error::AppError, events};\nlet x = crate::http::router;";
    assert_eq!(crate_modules(text), ["startup", "error", "events", "http"]);
}
