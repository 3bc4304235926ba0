//! The Mission Control page: the live board built from `web/` (`npm run build` there), its
//! three files embedded in the binary and served at `/` and `/assets/{file}`. It is a client of
//! the public GraphQL API like any other, so it needs nothing else from the server.
//!
//! `--web-dir` serves the files from a directory instead, read at each request, so a rebuilt
//! page shows on reload without rebuilding the server.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::startup::AppState;

/// The page's CSP: everything from this server, nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The built files: path under `web/dist`, media type, contents.
const FILES: [(&str, &str, &[u8]); 3] = [
    ("index.html", "text/html; charset=utf-8", include_bytes!("../web/dist/index.html")),
    ("assets/app.js", "text/javascript; charset=utf-8", include_bytes!("../web/dist/assets/app.js")),
    ("assets/app.css", "text/css; charset=utf-8", include_bytes!("../web/dist/assets/app.css")),
];

/// Where the page's files come from.
#[derive(Clone, Default)]
pub struct Page {
    dir: Option<Arc<PathBuf>>,
}

impl Page {
    /// The embedded files, or those in `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir: dir.map(Arc::new) }
    }

    /// One file: its media type, contents and entity tag.
    async fn file(&self, path: &str) -> Option<(&'static str, Cow<'static, [u8]>, String)> {
        let index = FILES.iter().position(|(name, _, _)| *name == path)?;
        let (_, media, embedded) = FILES[index];
        match &self.dir {
            None => Some((media, Cow::Borrowed(embedded), EMBEDDED_TAGS[index].clone())),
            Some(dir) => {
                let bytes = tokio::fs::read(dir.join(path)).await.ok()?;
                let tag = entity_tag(&bytes);
                Some((media, Cow::Owned(bytes), tag))
            }
        }
    }
}

/// The embedded files' tags, computed once.
static EMBEDDED_TAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| FILES.iter().map(|(_, _, body)| entity_tag(body)).collect());

/// A strong tag from the contents.
fn entity_tag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>())
}

/// `GET /`.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state.page, "index.html", &headers).await
}

/// `GET /assets/{file}`.
pub async fn asset(State(state): State<AppState>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&state.page, &format!("assets/{file}"), &headers).await
}

/// The file, revalidated by its hash: names carry no version, so browsers ask each time and
/// get `304` while it is unchanged.
async fn serve(page: &Page, path: &str, headers: &HeaderMap) -> Response {
    let Some((media, body, etag)) = page.file(path).await else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|seen| seen.split(',').any(|tag| tag.trim().trim_start_matches("W/") == etag));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { body.into_response() };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    if path == "index.html" {
        out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    response
}
