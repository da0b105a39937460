//! Email over SMTP with lettre's async transport.
//!
//! The message is built by `email::build_email` (multipart plain + HTML, `Message-ID` carrying our
//! message id, which is also the provider reference, so that a later bounce can be matched). A
//! 5xx answer is the server refusing this message for good; a 4xx, a timeout or a lost connection
//! is worth another try.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::email::build_email;
use super::{Accepted, ConfigError, OutboundMessage, Provider, SendError};

const PROVIDER: &str = "smtp";

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
}

impl Smtp {
    /// `url`: `smtp://host:port` (no TLS: for a relay on loopback), `smtp://host:port?tls=required`
    /// (STARTTLS), or `smtps://host:port` (TLS from the start); `user:password@` adds AUTH.
    /// `timeout` bounds connecting (lettre's timeout).
    pub fn new(url: &str, from: Mailbox, message_id_domain: String, timeout: Duration) -> Result<Smtp, ConfigError> {
        super::install_crypto_provider();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            // lettre's error names the URL's problem, never the password.
            .map_err(|e| ConfigError::Invalid("SAFEREACH_SMTP_URL", e.to_string()))?
            .timeout(Some(timeout))
            .build();
        Ok(Smtp { transport, from, message_id_domain })
    }
}

#[async_trait]
impl Provider for Smtp {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        let email = build_email(&self.from, &self.message_id_domain, msg)?;
        match self.transport.send(email).await {
            Ok(_) => {
                tracing::debug!(message_id = %msg.id, "smtp server accepted the message");
                Ok(Accepted { provider: PROVIDER, provider_ref: msg.id.clone() })
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

/// Only the reply code is kept: a server's text often quotes the recipient's address.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| c.to_string());
    match code {
        Some(code) if e.is_permanent() => SendError::Permanent(format!("smtp server refused the message ({code})")),
        Some(code) => SendError::Transient(format!("smtp server deferred the message ({code})")),
        None if e.is_timeout() => SendError::Transient("smtp: timed out".into()),
        None if e.is_tls() => SendError::Transient("smtp: TLS failed".into()),
        None => SendError::Transient("smtp: connection failed".into()),
    }
}
