//! Outbound channels: one trait per channel, small adapters behind them.
//!
//! Providers are called with our message id as the reference, so a retried job can be matched to
//! what the provider already has. Errors carry no personal data.

use async_trait::async_trait;

use crate::domain::{Channel, Recipient};
use crate::domain::sms::SmsInfo;

pub mod sandbox;
pub mod letter;
pub mod email;

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

/// TEMPORARY until the channels branch lands.
pub fn from_config(_config: &crate::config::Config) -> Result<Channels, String> {
    todo!()
}
