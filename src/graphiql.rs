//! The files of the GraphiQL page, served from the binary: GraphiQL 4.1.2 and React 18.3.1
//! (the pinned npm releases, with their licenses, in `src/assets/graphiql/`) and the page's own
//! script and styles. The page loads nothing from anywhere else, so it works with no internet
//! access, under a CSP that names no other host.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The CSP of the GraphiQL page: everything from this server. (GraphiQL sets style attributes,
/// hence `'unsafe-inline'` for styles; scripts are files only.)
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Every file the page loads: name, media type, contents.
const FILES: [(&str, &str, &[u8]); 6] = [
    ("graphiql.min.js", "text/javascript; charset=utf-8", include_bytes!("assets/graphiql/graphiql.min.js")),
    ("graphiql.min.css", "text/css; charset=utf-8", include_bytes!("assets/graphiql/graphiql.min.css")),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/graphiql/react-dom.production.min.js"),
    ),
    ("page.js", "text/javascript; charset=utf-8", include_bytes!("assets/graphiql/page.js")),
    ("page.css", "text/css; charset=utf-8", include_bytes!("assets/graphiql/page.css")),
];

/// `GET /graphiql/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some((_, media, body)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}
