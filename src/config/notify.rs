//! `[notify]`: notifications (`src/notify/`, docs/notifications.md): merchants by email, operators by email
//! and a chat webhook.

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Off: every notice is recorded as `skipped` and nothing is sent.
    pub enabled: bool,
    /// Language of a notice when the merchant's is unknown, and of every operator notice: `ar` or `en`.
    pub default_locale: String,
    /// The server's public origin: emails link the merchant app at `<public_url>/app`. Empty: the
    /// welcome tells Salla merchants to open the app from their Salla dashboard only.
    pub public_url: String,
    /// SMTP relay host. Empty: no email is sent (operators may still use the webhook).
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `none` (plain, for a local relay), `starttls` (upgrade on connect, usually port 587) or `tls`
    /// (implicit TLS, usually port 465).
    pub smtp_tls: SmtpTls,
    /// Empty: no authentication.
    pub smtp_username: String,
    pub smtp_password: Secret,
    /// The sender, `Name <address>` or `address`.
    pub from: String,
    /// Timeout of one SMTP conversation or webhook call.
    pub timeout_secs: u64,
    /// Who gets operator notices by email.
    pub operator_emails: Vec<String>,
    /// Chat webhook for operator notices (Slack-compatible `{"text": …}` plus structured fields). A secret:
    /// such URLs usually carry their own token.
    pub operator_webhook_url: Secret,
    /// When set, each webhook call is signed: `X-Wosool-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
    /// "<t>.<body>">`.
    pub operator_webhook_secret: Secret,
    /// Attempts of one delivery before it is recorded as failed (backoff from `jobs.retry_base_ms`).
    pub max_attempts: i32,
    /// A store whose Salla sync has been failing this long gets `sync_failing` (once a day).
    pub sync_failing_after_secs: u64,
    /// How often the sync check runs.
    pub sync_check_interval_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

impl NotifyConfig {
    pub fn email_configured(&self) -> bool {
        self.enabled && !self.smtp_host.is_empty()
    }

    pub fn webhook_configured(&self) -> bool {
        self.enabled && !self.operator_webhook_url.is_empty()
    }

    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if !matches!(self.default_locale.as_str(), "ar" | "en") {
            problem(
                "notify.default_locale",
                format!("{:?} is not a supported language", self.default_locale),
                "ar or en",
            );
        }
        if !self.public_url.is_empty() && !is_http_url(&self.public_url) {
            problem(
                "notify.public_url",
                format!("{:?} is not an http(s) URL", self.public_url),
                "the server's public origin, such as https://wosool.example.com, or empty",
            );
        }
        if !self.operator_webhook_url.is_empty() && !is_http_url(self.operator_webhook_url.expose())
        {
            problem(
                "notify.operator_webhook_url",
                "is not an http(s) URL".into(),
                "a chat tool's incoming-webhook URL, or empty",
            );
        }
        if !self.operator_webhook_secret.is_empty() && self.operator_webhook_url.is_empty() {
            problem(
                "notify.operator_webhook_secret",
                "is set without notify.operator_webhook_url".into(),
                "both, or neither",
            );
        }
        for (i, email) in self.operator_emails.iter().enumerate() {
            if email.parse::<lettre::message::Mailbox>().is_err() {
                problem(
                    &format!("notify.operator_emails[{i}]"),
                    format!("{email:?} is not an email address"),
                    "an address such as ops@example.com",
                );
            }
        }
        if !(1..=300).contains(&self.timeout_secs) {
            problem(
                "notify.timeout_secs",
                format!("is {}", self.timeout_secs),
                "1 to 300 seconds",
            );
        }
        if !(1..=50).contains(&self.max_attempts) {
            problem(
                "notify.max_attempts",
                format!("is {}", self.max_attempts),
                "1 to 50",
            );
        }
        if self.sync_failing_after_secs == 0 || self.sync_check_interval_secs == 0 {
            problem(
                "notify.sync_failing_after_secs",
                "or notify.sync_check_interval_secs is 0".into(),
                "positive numbers of seconds",
            );
        }
        if self.smtp_host.is_empty() {
            if !self.operator_emails.is_empty() && self.enabled {
                problem(
                    "notify.operator_emails",
                    "are set without notify.smtp_host".into(),
                    "an SMTP relay to send them through",
                );
            }
            return;
        }
        if self.smtp_port == 0 {
            problem("notify.smtp_port", "is 0".into(), "a TCP port");
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            problem(
                "notify.from",
                format!("{:?} is not a sender address", self.from),
                "`Name <address>` or an address, required with notify.smtp_host",
            );
        }
        if self.smtp_username.is_empty() != self.smtp_password.is_empty() {
            problem(
                "notify.smtp_username",
                "and notify.smtp_password are not both set (or both empty)".into(),
                "both for an authenticated relay, neither for an open one",
            );
        }
    }
}

fn is_http_url(value: &str) -> bool {
    matches!(url::Url::parse(value), Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host())
}
