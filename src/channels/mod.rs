//! Outbound channels: one trait per channel, small adapters behind them.
//!
//! Providers are called with our message id as the reference, so a retried job can be matched to
//! what the provider already has. Errors carry no personal data.

use async_trait::async_trait;

use crate::domain::sms::SmsInfo;
use crate::domain::{Channel, Recipient};

pub mod email;
pub mod letter;
pub mod sandbox;

/// A rendered message ready to hand to a provider.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// Our message id; also the provider reference where the provider lets us choose it.
    pub id: String,
    pub recipient: Recipient,
    /// Email subject; unused for SMS and letters.
    pub subject: Option<String>,
    /// SMS text, email plain-text part, or letter body.
    pub text: String,
    /// Email HTML part.
    pub html: Option<String>,
    /// Encoding and segments, for SMS.
    pub sms: Option<SmsInfo>,
}

/// What a provider answered when it took a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider: &'static str,
    pub provider_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (network, 5xx, rate limit).
    #[error("transient provider error: {0}")]
    Transient(String),
    /// Will never work for this message (invalid number, rejected content).
    #[error("permanent provider error: {0}")]
    Permanent(String),
}

/// A provider for one channel (sandbox, Twilio, Kannel, SMTP, print service).
#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError>;
}

/// The providers in use for each channel. SMS may list several: they are tried in order.
#[derive(Clone)]
pub struct Channels {
    pub sms: Vec<std::sync::Arc<dyn Provider>>,
    pub email: std::sync::Arc<dyn Provider>,
    pub letter: std::sync::Arc<dyn Provider>,
}

impl Channels {
    pub async fn send(&self, channel: Channel, message: &OutboundMessage) -> Result<Accepted, SendError> {
        match channel {
            Channel::Sms => {
                let mut last = SendError::Transient("no SMS provider configured".into());
                for provider in &self.sms {
                    match provider.send(message).await {
                        Ok(accepted) => return Ok(accepted),
                        // A number the provider rejects for good won't do better elsewhere.
                        Err(e @ SendError::Permanent(_)) => return Err(e),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            Channel::Email => self.email.send(message).await,
            Channel::Letter => self.letter.send(message).await,
        }
    }
}

/// The providers the configuration names. Only the sandbox exists so far.
pub fn from_config(config: &crate::config::Config, clock: crate::clock::Clock) -> Result<Channels, String> {
    use std::sync::Arc;
    let outbox = std::path::PathBuf::from(&config.outbox_dir);
    let mut sms: Vec<Arc<dyn Provider>> = Vec::new();
    for name in config.sms_provider.split(',').map(str::trim) {
        match name {
            "sandbox" => sms.push(Arc::new(sandbox::SandboxSms::new(&outbox, clock))),
            other => return Err(format!("unknown SMS provider {other:?} in SAFEREACH_SMS_PROVIDER")),
        }
    }
    let from: lettre::message::Mailbox =
        config.email_from.parse().map_err(|e| format!("SAFEREACH_EMAIL_FROM is not a valid mailbox: {e}"))?;
    let message_id_domain = from.email.domain().to_string();
    let email: Arc<dyn Provider> = match config.email_provider.as_str() {
        "sandbox" => Arc::new(sandbox::SandboxEmail::new(&outbox, from, message_id_domain)),
        other => return Err(format!("unknown email provider {other:?} in SAFEREACH_EMAIL_PROVIDER")),
    };
    let letter: Arc<dyn Provider> = match config.letter_provider.as_str() {
        "sandbox" => Arc::new(sandbox::SandboxLetter::new(&outbox, letter::LetterSender::default(), clock)),
        other => return Err(format!("unknown letter provider {other:?} in SAFEREACH_LETTER_PROVIDER")),
    };
    Ok(Channels { sms, email, letter })
}
