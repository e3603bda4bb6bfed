//! The web UI: the files of `web/`, embedded in the binary at build time so
//! that the service is one file and never reads the filesystem to serve a
//! page. Only the embedded files get routes; any other path stays the
//! router's 404.
//!
//! Every answer carries a strong `ETag` (a hash of the content) and
//! `Cache-Control: no-cache`: browsers keep the files but ask each time, and
//! an unchanged file costs a 304 without a body. A new binary with a changed
//! file changes its tag, so an upgrade never leaves a stale script behind.
//! The tag names the content; the compression middleware may send it gzipped
//! (`Vary: accept-encoding`), as actix-files does.
//!
//! `include_dir` re-reads a file when it changes, but a file *added* to `web/`
//! is only seen when this module is rebuilt (touch this file).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use include_dir::{include_dir, Dir, DirEntry};
use sha2::{Digest, Sha256};

use super::error::ApiError;

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// The page `/` answers with.
const INDEX: &str = "index.html";
const CACHE_CONTROL: &str = "no-cache";

/// One embedded file, ready to serve.
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
    /// Quoted, as it goes on the wire: `"<32 hex digits>"`.
    pub etag: String,
}

/// Every embedded file by its URL path without the leading `/`
/// (`index.html`, `js/app.js`); hashed once, at the first request.
pub static ASSETS: LazyLock<BTreeMap<String, Asset>> = LazyLock::new(|| {
    let mut assets = BTreeMap::new();
    collect(&WEB, &mut assets);
    assets
});

fn collect(dir: &'static Dir<'static>, into: &mut BTreeMap<String, Asset>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(sub) => collect(sub, into),
            DirEntry::File(file) => {
                // Paths inside the embedded tree are relative and use `/` on
                // every platform the service runs on. Hidden files, and names
                // the router would read as a pattern (`{…}`), get no route.
                let Some(path) = file.path().to_str().map(|p| p.replace('\\', "/")) else { continue };
                if path.split('/').any(|part| part.is_empty() || part.starts_with('.')) || path.contains(['{', '}']) {
                    continue;
                }
                let body = file.contents();
                let asset = Asset { body, content_type: content_type(&path), etag: etag_of(body) };
                into.insert(path, asset);
            }
        }
    }
}

/// Strong validator: the first 128 bits of the content's SHA-256.
fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// The media type by extension; text types say their charset, as the files
/// are UTF-8 and `nosniff` forbids guessing.
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether an `If-None-Match` header value matches `etag`: `*`, or any
/// listed tag by weak comparison (RFC 9110 §13.1.2: `W/"x"` matches `"x"`).
pub fn none_match(header_value: &str, etag: &str) -> bool {
    header_value.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Routes for `/` and each embedded file (GET and HEAD; other methods 405).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let route = |cfg: &mut web::ServiceConfig, url: String, asset: &'static Asset| {
        let handler = move |req: HttpRequest| async move { serve(&req, asset) };
        cfg.service(
            web::resource(url)
                .route(web::get().to(handler))
                .route(web::head().to(handler))
                .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) })),
        );
    };
    if let Some(index) = ASSETS.get(INDEX) {
        route(cfg, "/".to_string(), index);
    }
    for (path, asset) in ASSETS.iter() {
        route(cfg, format!("/{path}"), asset);
    }
}

fn serve(req: &HttpRequest, asset: &'static Asset) -> HttpResponse {
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|v| none_match(v, &asset.etag));
    if fresh {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).insert_header(cache).finish();
    }
    HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::ETAG, etag))
        .insert_header(cache)
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_embedded() {
        let index = ASSETS.get(INDEX).expect("web/index.html embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(ASSETS.keys().any(|p| p.ends_with(".js")), "{:?}", ASSETS.keys().collect::<Vec<_>>());
        assert!(ASSETS.keys().any(|p| p.ends_with(".css")));
        for (path, asset) in ASSETS.iter() {
            assert!(!path.starts_with('/') && !path.contains('\\'), "{path}");
            assert_eq!(asset.etag.len(), 34, "{path}: {}", asset.etag);
        }
    }

    #[test]
    fn content_types() {
        let table = [
            ("index.html", "text/html; charset=utf-8"),
            ("app.css", "text/css; charset=utf-8"),
            ("js/main.js", "text/javascript; charset=utf-8"),
            ("icon.SVG", "image/svg+xml"),
            ("x.png", "image/png"),
            ("README", "application/octet-stream"),
            ("archive.tar.gz", "application/octet-stream"),
        ];
        for (path, expected) in table {
            assert_eq!(content_type(path), expected, "{path}");
        }
    }

    #[test]
    fn if_none_match() {
        let tag = "\"abc\"";
        let table = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("", false),
        ];
        for (value, expected) in table {
            assert_eq!(none_match(value, tag), expected, "{value}");
        }
    }

    #[test]
    fn etags_differ_with_the_content() {
        assert_eq!(etag_of(b"a"), etag_of(b"a"));
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
    }
}
