//! The app's static files, compiled into the binary (`include_bytes!`: no build script, no Node) and served at
//! `/assets/<name>.<hash>.<ext>` with a content hash computed once, at first use, and a year-long immutable
//! cache. Templates name files by their logical name through [`Assets::url`] (`{{ v.asset("app.css") }}`).
//!
//! Our CSS names fonts as `url(asset:<file>)`; the table rewrites those to the fonts' hashed URLs before
//! hashing the CSS, so a new font also changes the stylesheet's name.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::http::extract::Path;

/// One embedded file: its logical name and bytes.
macro_rules! embed {
    ($($name:literal => $path:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)) as &[u8])),*]
    };
}

/// Every served file. Fonts come before the CSS that names them.
const FILES: &[(&str, &[u8])] = embed! {
    "ibm-plex-sans-arabic-arabic-400-normal.woff2" => "vendor/ibm-plex-sans-arabic-arabic-400-normal.woff2",
    "ibm-plex-sans-arabic-arabic-600-normal.woff2" => "vendor/ibm-plex-sans-arabic-arabic-600-normal.woff2",
    "ibm-plex-sans-arabic-arabic-700-normal.woff2" => "vendor/ibm-plex-sans-arabic-arabic-700-normal.woff2",
    "ibm-plex-sans-arabic-latin-400-normal.woff2" => "vendor/ibm-plex-sans-arabic-latin-400-normal.woff2",
    "ibm-plex-sans-arabic-latin-600-normal.woff2" => "vendor/ibm-plex-sans-arabic-latin-600-normal.woff2",
    "ibm-plex-sans-arabic-latin-700-normal.woff2" => "vendor/ibm-plex-sans-arabic-latin-700-normal.woff2",
    "htmx.min.js" => "vendor/htmx.min.js",
    "chart.umd.min.js" => "vendor/chart.umd.min.js",
    "salla-embedded-sdk.umd.js" => "vendor/salla-embedded-sdk.umd.js",
    "process-shim.js" => "process-shim.js",
    "app.css" => "app.css",
    "app.js" => "app.js",
    "shell.js" => "shell.js",
    "sso.js" => "sso.js",
};

/// One file as served.
pub struct Asset {
    /// `app.3f9a1c2b7d.css`
    pub hashed: String,
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// The table: logical name → asset, hashed name → logical name.
pub struct Assets {
    by_name: HashMap<&'static str, Asset>,
    by_hashed: HashMap<String, &'static str>,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(Assets::build);

impl Assets {
    pub fn get() -> &'static Assets {
        &ASSETS
    }

    fn build() -> Self {
        let mut by_name: HashMap<&'static str, Asset> = HashMap::new();
        let mut by_hashed = HashMap::new();
        for (name, bytes) in FILES {
            let bytes = if name.ends_with(".css") {
                rewrite_urls(bytes, &by_name)
            } else {
                bytes.to_vec()
            };
            let hashed = hashed_name(name, &bytes);
            by_hashed.insert(hashed.clone(), *name);
            by_name.insert(
                name,
                Asset {
                    hashed,
                    bytes,
                    content_type: content_type(name),
                },
            );
        }
        Self { by_name, by_hashed }
    }

    /// `/assets/<name>.<hash>.<ext>` of logical `name`; an unknown name (a template typo) gives a URL that
    /// answers 404 rather than a panic.
    pub fn url(&self, name: &str) -> String {
        match self.by_name.get(name) {
            Some(asset) => format!("/assets/{}", asset.hashed),
            None => format!("/assets/missing-{name}"),
        }
    }

    /// The asset served as `hashed`.
    pub fn by_hashed(&self, hashed: &str) -> Option<&Asset> {
        self.by_hashed
            .get(hashed)
            .and_then(|name| self.by_name.get(name))
    }

    /// Every asset with its logical name (the size budget test walks them).
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &Asset)> {
        self.by_name.iter().map(|(name, asset)| (*name, asset))
    }
}

/// `app.css` → `app.<first 10 hex of SHA-256>.css`.
fn hashed_name(name: &str, bytes: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(bytes));
    let hash = &digest[..10];
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{name}.{hash}"),
    }
}

/// Replaces `url(asset:<name>)` with the hashed URL of an asset already in the table.
fn rewrite_urls(css: &[u8], known: &HashMap<&'static str, Asset>) -> Vec<u8> {
    let text = String::from_utf8_lossy(css);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(start) = rest.find("url(asset:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "url(asset:".len()..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        let url = known
            .get(name)
            .map(|asset| format!("/assets/{}", asset.hashed))
            .unwrap_or_else(|| format!("/assets/missing-{name}"));
        out.push_str(&format!("url({url})"));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out.into_bytes()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// `GET /assets/{file}`: the asset whose hashed name is `file`, cached for a year; anything else is a 404
/// (an old hash after a deploy included: the page that named it is stale too).
pub async fn serve(Path(file): Path<String>) -> Result<Response, ApiError> {
    let asset = Assets::get()
        .by_hashed(&file)
        .ok_or_else(|| ApiError::not_found("asset_not_found", "No such asset."))?;
    let mut response = (StatusCode::OK, Body::from(asset.bytes.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_hashed_name_and_the_css_names_hashed_fonts() {
        let assets = Assets::get();
        for (name, _) in FILES {
            let url = assets.url(name);
            assert!(url.starts_with("/assets/"), "{url}");
            let hashed = url.trim_start_matches("/assets/");
            assert!(assets.by_hashed(hashed).is_some(), "{name}");
            assert_ne!(hashed, *name);
        }
        let css = String::from_utf8(assets.by_name["app.css"].bytes.clone()).unwrap();
        assert!(!css.contains("asset:"), "every font reference is rewritten");
        assert!(
            !css.contains("missing-"),
            "every font named by the CSS exists"
        );
        assert!(css.contains(&assets.url("ibm-plex-sans-arabic-arabic-400-normal.woff2")));
    }
}
