//! `[app]`: the merchant web app (`src/web/`): who may frame it, where a store reinstalls the Salla app, and
//! the language pages start in.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// CSP `frame-ancestors` of the app's pages: origins that may frame them (Salla's dashboard).
    pub frame_ancestors: Vec<String>,
    /// The app's page in the Salla App Store, linked as "reinstall" when the store's tokens are revoked.
    /// Empty: no link.
    pub salla_app_url: String,
    /// The language of a page when neither the query, the tenant's setting nor `Accept-Language` picks one:
    /// `ar` or `en`.
    pub default_lang: String,
}

impl AppConfig {
    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if self.frame_ancestors.is_empty() {
            problem(
                "app.frame_ancestors",
                "is empty".into(),
                "at least one origin, such as https://s.salla.sa (or 'none')",
            );
        }
        for (i, source) in self.frame_ancestors.iter().enumerate() {
            if !valid_source(source) {
                problem(
                    &format!("app.frame_ancestors[{i}]"),
                    format!("{source:?} is not a CSP origin"),
                    "'self', 'none', or an origin such as https://s.salla.sa or https://*.salla.sa",
                );
            }
        }
        if !self.salla_app_url.is_empty() {
            match url::Url::parse(&self.salla_app_url) {
                Ok(url) if url.scheme() == "https" || url.scheme() == "http" => {}
                _ => problem(
                    "app.salla_app_url",
                    format!("{:?} is not an http(s) URL", self.salla_app_url),
                    "the app's Salla App Store URL, or empty",
                ),
            }
        }
        if !matches!(self.default_lang.as_str(), "ar" | "en") {
            problem(
                "app.default_lang",
                format!("{:?} is not a supported language", self.default_lang),
                "ar or en",
            );
        }
    }
}

/// `'self'`, `'none'`, or `scheme://host[:port]` with an optional leading `*.` in the host: nothing that
/// could end the directive (`;`, `,`, whitespace) or add a path.
fn valid_source(source: &str) -> bool {
    if source == "'self'" || source == "'none'" {
        return true;
    }
    let Some((scheme, rest)) = source.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "https" | "http") || rest.is_empty() {
        return false;
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    // CSP's port wildcard (`http://localhost:*`): any port of that host.
    let host = host.strip_suffix(":*").unwrap_or(host);
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !host.starts_with(['.', '-', ':'])
}

#[cfg(test)]
mod tests {
    use super::valid_source;

    #[test]
    fn only_plain_origins_are_sources() {
        for ok in [
            "'self'",
            "https://s.salla.sa",
            "https://*.salla.sa",
            "http://localhost:8080",
            "http://localhost:*",
        ] {
            assert!(valid_source(ok), "{ok}");
        }
        for bad in [
            "s.salla.sa",
            "https://s.salla.sa/path",
            "https://a.sa; script-src *",
            "https://a.sa https://b.sa",
            "javascript://x",
            "https://",
            "*",
        ] {
            assert!(!valid_source(bad), "{bad}");
        }
    }
}
