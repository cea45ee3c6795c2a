//! The admin dashboard: the single-page app built into `dashboard/dist`,
//! embedded in release binaries (debug builds read it from disk), served under
//! a configurable base path.
//!
//! Vite builds with a relative base, so one build works under any path: the
//! server puts a `<base href>` for the configured path into `index.html`, and
//! the app reads its router base from `document.baseURI`. Hashed files under
//! `assets/` are cached for a year; `index.html` is revalidated every time, so
//! a new binary's dashboard is picked up at the next load. Any other path under
//! the base gets `index.html` (the app routes on the client). When `dist` was
//! not built (a plain `cargo build`), the build still succeeds and the
//! dashboard answers 503 with a page saying how to build it.

use std::borrow::Cow;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

#[derive(rust_embed::RustEmbed)]
#[folder = "../dashboard/dist"]
#[allow_missing = true]
struct Assets;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Dashboard not built</title>\
<h1>The dashboard was not built</h1>\
<p>This <code>nexpoint</code> binary was compiled before <code>dashboard/dist</code> existed. \
Run <code>scripts/build-dashboard.sh</code> (or <code>npm ci &amp;&amp; npm run build</code> in \
<code>dashboard/</code>), then build <code>nexpoint</code> again; <code>scripts/run.sh</code> does both.</p>\
<p>The REST API under <code>/api</code> works without it.</p>";

/// Normalises a configured base path to `/segment/.../` (leading and trailing
/// slash). The root is refused: the API, subscriptions and home page live there.
pub fn normalise_base(path: &str) -> Result<String, String> {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Err("the dashboard path cannot be the root".into());
    }
    if trimmed
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
        || trimmed
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "dashboard path {path:?}: use letters, digits, '-', '_', '.' and '/'"
        ));
    }
    let first = trimmed.split('/').next().unwrap_or_default();
    if matches!(first, "api" | "sub" | "docs" | "openapi.json") {
        return Err(format!("dashboard path {path:?} collides with /{first}"));
    }
    Ok(format!("/{trimmed}/"))
}

/// Routes for the dashboard under `base` (as returned by [`normalise_base`]).
pub fn router(base: &str) -> Router {
    let base = base.to_owned();
    let without_slash = base.trim_end_matches('/').to_owned();
    let index_base = base.clone();
    let fallback_base = base.clone();
    Router::new()
        .route(
            &without_slash,
            get(move || async move { Redirect::permanent(&base) }),
        )
        .route(
            &format!("{without_slash}/"),
            get(move || async move { index(&index_base) }),
        )
        .route(
            &format!("{without_slash}/{{*path}}"),
            get(move |Path(path): Path<String>| async move { file(&fallback_base, &path) }),
        )
}

fn file(base: &str, path: &str) -> Response {
    if path == "index.html" {
        return index(base);
    }
    match Assets::get(path) {
        Some(file) => {
            let cache = if path.starts_with("assets/") {
                IMMUTABLE
            } else {
                "no-cache"
            };
            let mime = file.metadata.mimetype().to_owned();
            respond(StatusCode::OK, &mime, cache, file.data)
        }
        // A missing hashed file is an old or broken link, not a client route:
        // answering it with HTML would only confuse the browser.
        None if path.starts_with("assets/") => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no-cache",
            Cow::Borrowed(b"Not Found".as_slice()),
        ),
        None => index(base),
    }
}

fn index(base: &str) -> Response {
    let Some(file) = Assets::get("index.html") else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/html; charset=utf-8",
            "no-store",
            Cow::Borrowed(NOT_BUILT.as_bytes()),
        );
    };
    let html = String::from_utf8_lossy(&file.data);
    let html = inject_base(&html, base);
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        "no-cache",
        Cow::Owned(html.into_bytes()),
    )
}

/// Puts `<base href="BASE">` first in `<head>`, so the build's relative asset
/// URLs resolve from the base whatever client route the page was loaded at.
fn inject_base(html: &str, base: &str) -> String {
    let tag = format!("<base href=\"{base}\">");
    match html.find("<head>") {
        Some(i) => {
            let at = i + "<head>".len();
            format!("{}{tag}{}", &html[..at], &html[at..])
        }
        None => format!("{tag}{html}"),
    }
}

fn respond(
    status: StatusCode,
    mime: &str,
    cache: &'static str,
    body: Cow<'static, [u8]>,
) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalised_and_checked() {
        assert_eq!(normalise_base("/dashboard/").unwrap(), "/dashboard/");
        assert_eq!(normalise_base("panel").unwrap(), "/panel/");
        assert_eq!(normalise_base("/a/b").unwrap(), "/a/b/");
        assert!(normalise_base("/").is_err());
        assert!(normalise_base("/api/").is_err());
        assert!(normalise_base("/a/../b").is_err());
        assert!(normalise_base("/a b").is_err());
    }

    #[test]
    fn the_base_goes_first_in_head() {
        assert_eq!(
            inject_base("<html><head><title>x</title>", "/d/"),
            "<html><head><base href=\"/d/\"><title>x</title>"
        );
    }
}
