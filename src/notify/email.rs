//! Email over SMTP (lettre): one transport built from `[notify]`, one message per recipient, UTF-8 subject
//! (RFC 2047) and plain-text body (lettre picks base64 or quoted-printable for non-ASCII text).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::deliver::Failure;
use super::templates::Rendered;
use crate::config::{NotifyConfig, SmtpTls};

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("notify.from: {0}")]
    From(String),
    #[error("notify.smtp_host: {0}")]
    Transport(#[from] lettre::transport::smtp::Error),
}

impl Mailer {
    /// `None` when no SMTP relay is configured (or notifications are off).
    pub fn build(config: &NotifyConfig) -> Result<Option<Self>, MailerError> {
        if !config.email_configured() {
            return Ok(None);
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailerError::From(e.to_string()))?;
        let host = config.smtp_host.as_str();
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let builder = match config.smtp_tls {
            SmtpTls::None => builder.tls(Tls::None),
            SmtpTls::Starttls => builder.tls(Tls::Required(TlsParameters::new(host.into())?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(TlsParameters::new(host.into())?)),
        };
        let mut builder = builder
            .port(config.smtp_port)
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        if !config.smtp_username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.smtp_username.clone(),
                config.smtp_password.expose().to_owned(),
            ));
        }
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends one email. An SMTP 4xx, a timeout or a connection problem is worth retrying; a 5xx (unknown
    /// mailbox, refused sender) or an address that does not parse is not.
    pub async fn send(&self, to: &str, locale: &str, text: &Rendered) -> Result<(), Failure> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| Failure::Permanent(format!("recipient {to:?}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(text.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .header(ContentLanguage(locale.to_owned()))
            .body(text.body.clone())
            .map_err(|e| Failure::Permanent(format!("building the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(Failure::Permanent(smtp_error(&error))),
            Err(error) => Err(Failure::Transient(smtp_error(&error))),
        }
    }
}

/// The error as one line: lettre's text names the code and the server's answer, never the message.
fn smtp_error(error: &lettre::transport::smtp::Error) -> String {
    let mut text = format!("SMTP: {error}");
    if let Some(source) = std::error::Error::source(error) {
        text.push_str(&format!(" ({source})"));
    }
    text
}

/// `Content-Language`, so mail clients know the text is Arabic or English.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl lettre::message::header::Header for ContentLanguage {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}
