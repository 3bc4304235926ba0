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

/// One file as served.
struct File {
    media: &'static str,
    body: Cow<'static, [u8]>,
    /// The body gzipped, when there is such a form.
    gzipped: Option<&'static [u8]>,
    tag: String,
}

/// An embedded file's tag and gzipped form, made once.
struct Prepared {
    tag: String,
    gzipped: Vec<u8>,
}

static PREPARED: LazyLock<Vec<Prepared>> = LazyLock::new(|| {
    FILES.iter().map(|(_, _, body)| Prepared { tag: entity_tag(body), gzipped: gzip(body) }).collect()
});

impl Page {
    /// The embedded files, or those in `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir: dir.map(Arc::new) }
    }

    /// The file at `path` under `web/dist`, if it is one of the page's.
    async fn file(&self, path: &str) -> Option<File> {
        let index = FILES.iter().position(|(name, _, _)| *name == path)?;
        let (_, media, embedded) = FILES[index];
        match &self.dir {
            None => {
                let prepared = &PREPARED[index];
                let gzipped = Some(prepared.gzipped.as_slice());
                Some(File { media, body: Cow::Borrowed(embedded), gzipped, tag: prepared.tag.clone() })
            }
            Some(dir) => {
                let bytes = tokio::fs::read(dir.join(path)).await.ok()?;
                let tag = entity_tag(&bytes);
                Some(File { media, body: Cow::Owned(bytes), gzipped: None, tag })
            }
        }
    }
}

/// A strong tag from the contents.
fn entity_tag(body: &[u8]) -> String {
    // The first 12 bytes of the SHA-256, in hex.
    format!("\"{:.24x}\"", Sha256::digest(body))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// True when the request accepts gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0)));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        },
    )
}

/// `GET /`.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state.page, "index.html", &headers).await
}

/// `GET /assets/{file}`.
pub async fn asset(State(state): State<AppState>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&state.page, &format!("assets/{file}"), &headers).await
}

/// The file, revalidated by its hash (names carry no version, so browsers ask each time and
/// get `304` while it is unchanged), gzipped for clients that take it.
async fn serve(page: &Page, path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = page.file(path).await else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let gzipped = file.gzipped.filter(|_| accepts_gzip(headers));
    // Each form has a tag of its own.
    let tag = match gzipped {
        Some(_) => format!("{}-gz\"", file.tag.trim_end_matches('"')),
        None => file.tag,
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|seen| seen.split(',').any(|seen| seen.trim().trim_start_matches("W/") == tag));
    let mut response = match (fresh, gzipped) {
        (true, _) => StatusCode::NOT_MODIFIED.into_response(),
        (false, Some(gzipped)) => {
            let mut response = gzipped.into_response();
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        }
        // An embedded file is sent from the binary as it is, not copied per request.
        (false, None) => match file.body {
            Cow::Borrowed(embedded) => embedded.into_response(),
            Cow::Owned(read) => read.into_response(),
        },
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.media));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(value) = HeaderValue::from_str(&tag) {
        out.insert(header::ETAG, value);
    }
    if path == "index.html" {
        out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    response
}
