//! Outbound mail: plain-text UTF-8 messages (dashboard invitations, password resets) sent
//! through the SMTP relay named by `SMTP_URL`.
//!
//! [`Mailer::from_config`] validates `MAIL_FROM` and `SMTP_URL` at startup; [`Mailer::send`]
//! checks the recipient, sets a Message-ID of its own (returned, so callers can record
//! which mail they sent) and hands the message to the relay over lettre's pooled async SMTP
//! transport (rustls on ring; `smtp://` plain, `smtp://...?tls=required` STARTTLS,
//! `smtps://` implicit TLS; credentials in the URL).
//!
//! Without `SMTP_URL` the mailer is in **log mode**: `send` writes the whole mail to the log
//! (target `mail`, level INFO) instead of sending it. That is how `scripts/run` works on a
//! developer's machine: the reset link is in the api's log.
//!
//! Every network operation of the relay (connect, each SMTP command) times out after
//! [`SMTP_TIMEOUT`], and a whole `send` after [`SEND_DEADLINE`], so a dead or stalled relay
//! is an error, never a hang.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context as _;
use lettre::{
    message::{header::ContentType, Mailbox},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use crate::secret::redact_url;

/// Timeout of each network operation of the SMTP transport (connect, every command).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound of one [`Mailer::send`]: a relay that answers every command just inside
/// [`SMTP_TIMEOUT`] would otherwise hold a caller for minutes.
pub const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// One plain-text mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// The recipient: `user@example.com` or `Name <user@example.com>`; untrusted input,
    /// checked by [`Mailer::send`].
    pub to: String,
    pub subject: String,
    /// The body, UTF-8 plain text.
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient is not a single valid address (callers answer 400). The address
    /// itself is not part of the message: it is personal data and error messages get logged.
    #[error("invalid recipient address: {0}")]
    InvalidAddress(#[source] lettre::address::AddressError),
    /// Building the message, connecting to the relay or the SMTP exchange failed (or ran
    /// past [`SEND_DEADLINE`]); the mail may not have been sent.
    #[error("sending mail failed: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends [`Mail`]. Cloning is cheap (one `Arc`); clones share the relay's connection pool.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    from: Mailbox,
    /// Right-hand side of the Message-IDs we generate (the From address's domain).
    id_domain: String,
    /// `None`: log mode.
    relay: Option<Relay>,
}

struct Relay {
    /// `smtp_url` without its password, for logs.
    display: String,
    builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
    /// Built on first use: lettre's pool spawns its cleanup task on the current tokio
    /// runtime, and `from_config` may run before one exists.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Mailer {
    /// Reads `smtp_url` and `mail_from`; errors on an unparsable From address or SMTP URL
    /// (without echoing the URL, which may carry a password).
    pub fn from_config(c: &crate::Config) -> anyhow::Result<Mailer> {
        let from: Mailbox = c
            .mail_from
            .parse()
            .with_context(|| format!("MAIL_FROM {:?} is not a valid address", c.mail_from))?;
        let id_domain = from.email.domain().to_owned();
        let relay = match &c.smtp_url {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "SMTP_URL is invalid (expected smtp://host:port, smtps://user:pass@host, ...): {e}"
                        )
                    })?
                    .timeout(Some(SMTP_TIMEOUT));
                Some(Relay {
                    display: redact_url(url.expose()),
                    builder,
                    transport: OnceLock::new(),
                })
            }
            None => {
                if c.is_production() {
                    tracing::warn!(
                        target: "mail",
                        "SMTP_URL is not set: outbound mail is written to the log, not sent"
                    );
                }
                None
            }
        };
        Ok(Mailer {
            inner: Arc::new(Inner {
                from,
                id_domain,
                relay,
            }),
        })
    }

    /// True in log mode (no `SMTP_URL`): mail goes to the log instead of a relay.
    pub fn is_logging(&self) -> bool {
        self.inner.relay.is_none()
    }

    /// The From mailbox of every mail.
    pub fn from_address(&self) -> &Mailbox {
        &self.inner.from
    }

    /// Sends `mail` (or logs it, in log mode); returns the Message-ID header value it set,
    /// angle brackets included (`<...@domain>`).
    pub async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let to: Mailbox = mail.to.trim().parse().map_err(MailError::InvalidAddress)?;
        let message_id = format!(
            "<{}@{}>",
            uuid::Uuid::new_v4().simple(),
            self.inner.id_domain
        );
        let Some(relay) = &self.inner.relay else {
            tracing::info!(
                target: "mail",
                message_id = %message_id,
                from = %self.inner.from,
                to = %to,
                subject = %mail.subject,
                text = %mail.text,
                "mail not sent (log mode: SMTP_URL is unset)"
            );
            return Ok(message_id);
        };
        let message = Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .message_id(Some(message_id.clone()))
            .header(ContentType::TEXT_PLAIN)
            // lettre always ends DATA with CRLF.CRLF, whose first CRLF ends the last line
            // (RFC 5321 4.1.1.4): a body that already ends with a line break would arrive
            // with an extra empty line, so leave that break to the terminator.
            .body(wire_text(&mail.text).to_owned())
            .map_err(|e| MailError::Transport(Box::new(e)))?;
        let transport = relay
            .transport
            .get_or_init(|| relay.builder.clone().build());
        match tokio::time::timeout(SEND_DEADLINE, transport.send(message)).await {
            Ok(Ok(_response)) => {
                tracing::debug!(target: "mail", message_id = %message_id, relay = %relay.display, "mail sent");
                Ok(message_id)
            }
            Ok(Err(e)) => Err(MailError::Transport(Box::new(e))),
            Err(elapsed) => Err(MailError::Transport(Box::new(elapsed))),
        }
    }
}

/// `text` without its final line break (see `Mailer::send`).
fn wire_text(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.inner.from.to_string())
            .field(
                "relay",
                &self.inner.relay.as_ref().map(|r| r.display.as_str()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> crate::Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::Config::from_lookup(|k| map.get(k).cloned()).unwrap()
    }

    #[test]
    fn startup_rejects_bad_from_and_url_without_leaking_the_password() {
        assert!(Mailer::from_config(&config(&[("MAIL_FROM", "not an address")])).is_err());
        for url in [
            "http://u:hunter2pw@h:25",
            "smtp://u:hunter2pw@",
            "no scheme hunter2pw",
        ] {
            let err = Mailer::from_config(&config(&[("SMTP_URL", url)])).unwrap_err();
            assert!(!format!("{err:#}").contains("hunter2pw"), "{err:#}");
        }
        // Building needs no runtime (the transport is built on first send).
        let m = Mailer::from_config(&config(&[(
            "SMTP_URL",
            "smtp://u:hunter2pw@127.0.0.1:2525",
        )]))
        .unwrap();
        assert!(!m.is_logging());
        assert!(!format!("{m:?}").contains("hunter2pw"));
        let m = Mailer::from_config(&config(&[])).unwrap();
        assert!(m.is_logging());
        assert_eq!(
            m.from_address().to_string(),
            "RetentionOS <no-reply@localhost>"
        );
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_mode_writes_the_whole_mail_to_the_log_at_info() {
        let mailer = Mailer::from_config(&config(&[])).unwrap();
        let mail = Mail {
            to: "dev@example.com".into(),
            subject: "Passwort zurücksetzen".into(),
            text: "https://localhost/reset?token=abc123\n".into(),
        };
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let id = tracing::subscriber::with_default(subscriber, || rt.block_on(mailer.send(&mail)))
            .unwrap();
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        for part in [
            " INFO mail:",
            id.as_str(),
            "dev@example.com",
            "Passwort zurücksetzen",
            "https://localhost/reset?token=abc123",
        ] {
            assert!(log.contains(part), "{part:?} not in {log}");
        }
    }
}
