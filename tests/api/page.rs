//! The Mission Control page at `/`: served from the binary (or `--web-dir`), loading nothing
//! from anywhere else, under a CSP with nothing inline.

use serde_json::json;

use crate::helpers::*;

/// The paths of everything `html` fetches (`src` and `href` attributes).
fn loaded_by(html: &str) -> Vec<String> {
    let mut loaded = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            let url = &rest[..rest.find('"').unwrap()];
            // `data:` URLs (an empty icon, say) are inline, not fetched.
            if !url.starts_with("data:") {
                loaded.push(url.to_owned());
            }
        }
    }
    loaded
}

#[tokio::test]
async fn the_page_is_served_at_the_root_with_its_files_under_a_strict_csp() {
    let app = spawn_app().await;
    let page = app.client.get(format!("{}/", app.address)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self';") && csp.contains("style-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "nothing inline, no other host: {csp}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains("style=\""), "{html}");

    let loaded = loaded_by(&html);
    assert!(
        loaded.contains(&"/assets/app.js".to_owned()) && loaded.contains(&"/assets/app.css".to_owned()),
        "{loaded:?}"
    );
    for path in &loaded {
        assert!(path.starts_with("/assets/"), "{path} is not served here");
        let asset = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let media = asset.headers()["content-type"].to_str().unwrap().to_owned();
        let wanted = if path.ends_with(".js") { "text/javascript" } else { "text/css" };
        assert!(media.starts_with(wanted), "{path}: {media}");
        // Unversioned names: the browser revalidates, and an unchanged file costs a 304.
        let tag = asset.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(asset.headers()["cache-control"], "no-cache");
        let again =
            app.client.get(format!("{}{path}", app.address)).header("if-none-match", &tag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // Gzipped for clients that take it, with a tag of its own; the same bytes once unpacked.
    let plain = app.client.get(format!("{}/assets/app.js", app.address)).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_tag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let plain = plain.bytes().await.unwrap();
    for accept in ["gzip", "br, gzip;q=0.8, deflate"] {
        let packed = app.client.get(format!("{}/assets/app.js", app.address)).header("accept-encoding", accept).send();
        let packed = packed.await.unwrap();
        assert_eq!(packed.headers()["content-encoding"], "gzip", "{accept}");
        assert_ne!(packed.headers()["etag"].to_str().unwrap(), plain_tag);
        let mut unpacked = Vec::new();
        let bytes = packed.bytes().await.unwrap();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unpacked).unwrap();
        assert_eq!(unpacked, plain, "{accept}");
    }
    let refused = app.client.get(format!("{}/assets/app.js", app.address)).header("accept-encoding", "gzip;q=0");
    assert!(refused.send().await.unwrap().headers().get("content-encoding").is_none());

    for missing in ["/assets/nope.js", "/assets/../Cargo.toml", "/assets/index.html"] {
        let response = app.client.get(format!("{}{missing}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
    }
    // The page is a client like any other: the API still asks it for a token.
    let (status, _) = app.graphql_as(None, "{ tasks { totalCount } }", json!({})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn production_mode_serves_the_page_but_not_graphiql() {
    let app = spawn_production_app().await;
    let page = app.client.get(format!("{}/", app.address)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let script = app.client.get(format!("{}/assets/app.js", app.address)).send().await.unwrap();
    assert_eq!(script.status(), 200);
    let graphiql =
        app.client.get(format!("{}/graphql", app.address)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(graphiql.status(), 404);
}

#[tokio::test]
async fn a_web_dir_serves_the_page_from_disk_at_each_request() {
    let dir = std::env::temp_dir().join(format!("mc-web-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><p>first build</p>").unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log('first');").unwrap();
    let app = spawn_app_with(|c| c.web_dir = Some(dir.clone()), None).await;

    let first = app.client.get(format!("{}/", app.address)).send().await.unwrap();
    let first_tag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(first.text().await.unwrap().contains("first build"));
    let script = app.client.get(format!("{}/assets/app.js", app.address)).send().await.unwrap();
    assert_eq!(script.text().await.unwrap(), "console.log('first');");
    let css = app.client.get(format!("{}/assets/app.css", app.address)).send().await.unwrap();
    assert_eq!(css.status(), 404, "a file the directory lacks is missing, not the built-in one");

    std::fs::write(dir.join("index.html"), "<!doctype html><p>second build</p>").unwrap();
    let second = app.client.get(format!("{}/", app.address)).header("if-none-match", &first_tag).send().await.unwrap();
    assert_eq!(second.status(), 200, "a changed file is sent again");
    assert_ne!(second.headers()["etag"].to_str().unwrap(), first_tag);
    assert!(second.text().await.unwrap().contains("second build"));
    let _ = std::fs::remove_dir_all(&dir);
}
