//! The merchant web app, served by the binary: the Salla embedded shell (`/salla/embedded`), the screens
//! (`/app/...`: a full page on a direct load, an htmx fragment when `HX-Request` is set), standalone sign-in
//! (`/sso`, `/app` without a session) and the embedded static files (`/assets/...`). Templates are askama,
//! compiled in from `templates/`; messages come from `messages.toml` (Arabic first, English). Every screen
//! takes a [`Screen`]: the `TenantContext` (a `wss_` app session, a Clerk session or a tenant API key, with
//! the same status gate and isolation as `/api`), the tenant's pool and the [`View`] (language, theme, mode).
//!
//! Data comes from the readers of `dashboard::commerce` (the commerce tables' one home for reads) and the CRM
//! through `crm::records`; handlers here only shape it for the page. See `docs/merchant-app.md`.

pub mod assets;
pub mod crm;
pub mod i18n;
pub mod impersonate;
pub mod screens;
pub mod security;
pub mod shell;
pub mod unavailable;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use std::borrow::Borrow;

use rust_decimal::Decimal;
use time::{Date, OffsetDateTime, UtcOffset};

use self::assets::Assets;
use self::i18n::Lang;
use crate::config::AppConfig;
use crate::dashboard::commerce::money::Money;
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::state::AppState;
use crate::tenancy::TenantPool;

pub use self::security::security_headers;

/// The header the shell's script sets on its requests: fragments then know they live in Salla's frame.
pub const EMBEDDED_HEADER: &str = "x-wosool-embedded";

/// How a page is shown: language, theme, fragment or full page, inside Salla or standalone.
#[derive(Debug, Clone)]
pub struct View {
    pub lang: Lang,
    /// `light`, `dark` or `auto` (the browser's preference).
    pub theme: &'static str,
    /// An htmx request: answer the screen's fragment only.
    pub htmx: bool,
    /// Inside Salla's frame (the shell), not standalone.
    pub embedded: bool,
    /// `lang` was given in the query (it then wins over the tenant's setting).
    lang_given: bool,
    /// The store's clock for times shown (Salla stores keep Asia/Riyadh: UTC+3, no daylight saving).
    offset: UtcOffset,
    /// Set while an operator views the app as a member: the banner on every screen.
    pub impersonation: Option<Banner>,
}

/// "You are viewing as … — operator … — reason …", shown on every screen of an impersonated session.
#[derive(Debug, Clone)]
pub struct Banner {
    pub member: String,
    pub operator: String,
    pub reason: String,
}

impl View {
    /// Language from `?lang=`, else `Accept-Language`, else `app.default_lang`; theme from `?theme=`.
    pub fn from_parts(parts: &Parts, app: &AppConfig) -> Self {
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let from_query = param("lang").and_then(Lang::parse);
        let lang = from_query
            .or_else(|| header("accept-language").and_then(Lang::from_accept_language))
            .or_else(|| Lang::parse(&app.default_lang))
            .unwrap_or(Lang::Ar);
        let theme = match param("theme") {
            Some("dark") => "dark",
            Some("light") => "light",
            _ => "auto",
        };
        Self {
            lang,
            theme,
            htmx: header("hx-request") == Some("true"),
            embedded: header(EMBEDDED_HEADER) == Some("1"),
            lang_given: from_query.is_some(),
            offset: UtcOffset::from_hms(3, 0, 0).unwrap_or(UtcOffset::UTC),
            impersonation: None,
        }
    }

    pub fn t(&self, key: &str) -> &'static str {
        i18n::t(self.lang, key)
    }

    pub fn lang_code(&self) -> &'static str {
        self.lang.code()
    }

    pub fn dir(&self) -> &'static str {
        self.lang.dir()
    }

    pub fn other_lang(&self) -> &'static str {
        self.lang.other().code()
    }

    pub fn asset(&self, name: &str) -> String {
        Assets::get().url(name)
    }

    /// An amount in the store's currency (SAR); `—` for none. Takes values or references (templates pass
    /// either).
    pub fn money(&self, value: impl Arg<Decimal>) -> String {
        i18n::money(self.lang, value.get(), None)
    }

    pub fn money_of(&self, value: impl Arg<Money>) -> String {
        i18n::money(self.lang, value.get().amount(), None)
    }

    pub fn money_opt(
        &self,
        value: impl Arg<Option<Money>>,
        currency: impl Borrow<Option<String>>,
    ) -> String {
        match value.get() {
            Some(m) => i18n::money(self.lang, m.amount(), currency.borrow().as_deref()),
            None => "—".to_owned(),
        }
    }

    pub fn count(&self, value: impl Arg<i64>) -> String {
        i18n::count(value.get())
    }

    pub fn int(&self, value: impl Arg<i32>) -> String {
        i18n::count(i64::from(value.get()))
    }

    pub fn date(&self, value: impl Arg<Date>) -> String {
        i18n::date(self.lang, value.get())
    }

    pub fn datetime(&self, value: impl Arg<OffsetDateTime>) -> String {
        i18n::datetime(self.lang, value.get(), self.offset)
    }

    pub fn datetime_opt(&self, value: impl Arg<Option<OffsetDateTime>>) -> String {
        value
            .get()
            .map(|at| self.datetime(at))
            .unwrap_or_else(|| "—".to_owned())
    }

    /// `link` for templates: `path` with this view's language and theme.
    pub fn href(&self, path: &str) -> String {
        let theme = if self.theme == "auto" {
            String::new()
        } else {
            format!("&theme={}", self.theme)
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}lang={}{theme}", self.lang.code())
    }

    /// The screen `body` as the answer: the fragment alone for htmx, else the full page around it.
    pub fn respond(&self, screen: &'static str, title: &'static str, body: String) -> Response {
        let html = if self.htmx {
            body
        } else {
            let page = Layout {
                v: self,
                screen,
                title,
                body: &body,
                embedded: false,
            };
            match page.render() {
                Ok(html) => html,
                Err(error) => {
                    return ApiError::internal(format!("rendering the page: {error}"))
                        .into_response();
                }
            }
        };
        let mut response = Html(html).into_response();
        let headers = response.headers_mut();
        // The same URL answers a fragment or a page: caches must key on HX-Request.
        headers.insert(
            header::VARY,
            HeaderValue::from_static("HX-Request, Accept-Language"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A value a template passes to a formatting helper: askama hands arguments by reference, and loop or
/// `if let` bindings are references already, so helpers accept `T`, `&T` and `&&T` alike.
pub trait Arg<T: Copy> {
    fn get(&self) -> T;
}

impl<T: Copy> Arg<T> for T {
    fn get(&self) -> T {
        *self
    }
}

impl<T: Copy> Arg<T> for &T {
    fn get(&self) -> T {
        **self
    }
}

impl<T: Copy> Arg<T> for &&T {
    fn get(&self) -> T {
        ***self
    }
}

/// The full page around a screen (standalone), or the shell (embedded, `body` empty until the session).
#[derive(Template)]
#[template(path = "layout.html")]
pub struct Layout<'a> {
    pub v: &'a View,
    pub screen: &'static str,
    pub title: &'static str,
    pub body: &'a str,
    pub embedded: bool,
}

/// What every screen handler gets: the tenant (authenticated and gated), its database and the view.
pub struct Screen {
    pub ctx: TenantContext,
    pub pool: TenantPool,
    pub v: View,
}

impl FromRequestParts<AppState> for Screen {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ctx = TenantContext::from_request_parts(parts, state).await?;
        let pool = state.pools().get(&ctx.tenant).await?;
        let mut v = View::from_parts(parts, &state.config().app);
        v.impersonation = impersonate::banner(&ctx);
        if !v.lang_given {
            // The tenant's saved language beats the browser's; a failed read just keeps the browser's.
            if let Ok(preferences) = crate::tenancy::app_preferences(&pool).await
                && let Some(lang) = preferences.lang.as_deref().and_then(Lang::parse)
            {
                v.lang = lang;
            }
        }
        Ok(Self { ctx, pool, v })
    }
}

/// Renders a template, mapping askama's error to a 500.
pub fn render(template: &impl Template) -> Result<String, ApiError> {
    template
        .render()
        .map_err(|error| ApiError::internal(format!("rendering a template: {error}")))
}
