//! Outgoing mail: plain-text messages through the operator's SMTP relay (`[mail]` in the
//! config), sent with lettre. Mail is optional: without `smtp_url` there is no [`Mailer`],
//! and the pages that need one say so.
//!
//! A message is an askama text template (`templates/mail/*.txt`, not HTML-escaped) that
//! also names its subject ([`Mail`]). Sending happens inside the request that asks for it,
//! bounded by [`SEND_TIMEOUT`], so the page can tell the user whether it worked.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, header};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config;

/// The longest a page waits for the relay to take a message.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A message to send: its body is the template, rendered as plain text.
pub trait Mail: askama::Template {
    fn subject(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("not a deliverable address")]
    Address,
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    #[error("message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// The configured relay and sender. Cheap to clone (the transport is shared).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

// The transport holds the relay's credentials: show only the sender.
impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

/// Checks `[mail]` at start; the error names the key.
pub fn check_config(config: &config::Mail) -> Result<(), String> {
    parts(config).map(|_| ())
}

fn parts(config: &config::Mail) -> Result<Option<(lettre::transport::smtp::AsyncSmtpTransportBuilder, Mailbox)>, String> {
    let from = match &config.from {
        Some(from) => Some(from.parse::<Mailbox>().map_err(|e| format!("key `mail.from`: not a mailbox such as `Sluis <no-reply@example.com>` ({e})"))?),
        None => None,
    };
    let Some(url) = &config.smtp_url else { return Ok(None) };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| {
        format!("key `mail.smtp_url`: not an SMTP URL such as `smtps://user:password@mail.example.com` or `smtp://127.0.0.1:25` ({e})")
    })?;
    let from = from.ok_or("key `mail.from`: required with `mail.smtp_url` (the sender, e.g. `Sluis <no-reply@example.com>`)")?;
    Ok(Some((builder, from)))
}

/// Whether `s` is one plain address (`name@example.com`) that mail can be sent to.
pub fn is_address(s: &str) -> bool {
    s.parse::<Address>().is_ok()
}

impl Mailer {
    /// The mailer `[mail]` describes, or none without `smtp_url`. Call inside the runtime.
    pub fn from_config(config: &config::Mail) -> Result<Option<Self>, String> {
        Ok(parts(config)?.map(|(builder, from)| Self { transport: builder.timeout(Some(SEND_TIMEOUT)).build(), from }))
    }

    /// Sends `mail` to `to` (one address); the relay has taken it when this returns Ok.
    pub async fn send(&self, to: &str, mail: &impl Mail) -> Result<(), MailError> {
        let to = to.parse::<Address>().map_err(|_| MailError::Address)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(mail.subject())
            .message_id(None)
            // RFC 3834: sent by a program, so out-of-office replies stay away.
            .raw_header(header::HeaderValue::new(header::HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.render()?)?;
        self.transport.send(message).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(url: Option<&str>, from: Option<&str>) -> config::Mail {
        config::Mail { smtp_url: url.map(str::to_string), from: from.map(str::to_string) }
    }

    #[test]
    fn config_is_checked_naming_the_key() {
        assert!(check_config(&mail(None, None)).is_ok(), "mail is optional");
        assert!(check_config(&mail(Some("smtps://u:p@mail.example.com"), Some("Sluis <no-reply@example.com>"))).is_ok());
        assert!(check_config(&mail(Some("smtp://127.0.0.1:2525"), Some("no-reply@example.com"))).is_ok());
        assert!(check_config(&mail(Some("smtp://mail.example.com?tls=required"), Some("no-reply@example.com"))).is_ok());
        assert!(check_config(&mail(Some("smtp://127.0.0.1:2525"), None)).unwrap_err().contains("mail.from"));
        assert!(check_config(&mail(Some("imap://mail.example.com"), Some("a@example.com"))).unwrap_err().contains("mail.smtp_url"));
        assert!(check_config(&mail(Some("smtp://mail.example.com?tls=maybe"), Some("a@example.com"))).unwrap_err().contains("mail.smtp_url"));
        assert!(check_config(&mail(None, Some("Sluis"))).unwrap_err().contains("mail.from"));
    }

    #[test]
    fn addresses() {
        assert!(is_address("ada@example.com"));
        for bad in ["", "ada", "ada@", "@example.com", "Ada <ada@example.com>", "a b@example.com", "ada@example.com\r\nBcc: x@example.com"] {
            assert!(!is_address(bad), "{bad:?}");
        }
    }
}
