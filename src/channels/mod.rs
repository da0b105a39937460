//! Outbound channels: one trait per channel, small adapters behind them.
//!
//! Providers are called with our message id as the reference, so a retried job can be matched to
//! what the provider already has. Errors carry no personal data.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::sms::SmsInfo;
use crate::domain::{Channel, Recipient};

pub mod email;
pub mod kannel;
pub mod letter;
pub mod print;
pub mod sandbox;
pub mod smtp;
pub mod twilio;

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

impl OutboundMessage {
    /// Our id, refused unless plain (`email::is_plain_id`): it travels in URLs, headers and file
    /// names.
    pub fn plain_id(&self) -> Result<&str, SendError> {
        if email::is_plain_id(&self.id) {
            Ok(&self.id)
        } else {
            Err(SendError::Permanent("message id has unexpected characters".into()))
        }
    }

    /// The number an SMS goes to, after the checks every SMS provider makes.
    pub fn sms_number(&self) -> Result<&str, SendError> {
        self.plain_id()?;
        match &self.recipient {
            Recipient::Phone { number } => Ok(number),
            _ => Err(SendError::Permanent("sms needs a phone recipient".into())),
        }
    }
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

/// The providers in use for each channel. SMS may list several: they are tried in order (each
/// behind its own circuit breaker, see `with_breakers`).
#[derive(Clone)]
pub struct Channels {
    pub sms: Vec<Arc<dyn Provider>>,
    pub email: Arc<dyn Provider>,
    pub letter: Arc<dyn Provider>,
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

    /// Each SMS provider behind a circuit breaker: `threshold` transient failures in a row skip it
    /// for `cooldown`.
    pub fn with_breakers(self, threshold: u32, cooldown: Duration) -> Channels {
        let sms =
            self.sms.into_iter().map(|p| Arc::new(Breaker::new(p, threshold, cooldown)) as Arc<dyn Provider>).collect();
        Channels { sms, ..self }
    }
}

/// A circuit breaker around one provider: after `threshold` transient failures in a row it is
/// open, and sends skip the provider (failing over to the next) until `cooldown` has passed; then
/// one send is let through to probe it, and a success closes the breaker again. A permanent error
/// is about the message, not the provider, so it counts as the provider answering. The state is
/// per process.
pub struct Breaker {
    provider: Arc<dyn Provider>,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(provider: Arc<dyn Provider>, threshold: u32, cooldown: Duration) -> Breaker {
        Breaker { provider, threshold: threshold.max(1), cooldown, state: Mutex::default() }
    }

    /// Whether sends skip the provider now.
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.open_until.is_some_and(|until| Instant::now() < until)
    }
}

#[async_trait]
impl Provider for Breaker {
    fn name(&self) -> &'static str {
        self.provider.name()
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError> {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.open_until {
                Some(until) if Instant::now() < until => {
                    return Err(SendError::Transient(format!("{} is cooling down after failures", self.name())));
                }
                // Half-open: this send probes; until it answers, others wait out a new cool-down.
                Some(_) => state.open_until = Some(Instant::now() + self.cooldown),
                None => {}
            }
        }
        let result = self.provider.send(message).await;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Err(SendError::Transient(why)) => {
                state.failures += 1;
                if state.failures >= self.threshold {
                    if state.failures == self.threshold {
                        tracing::warn!(provider = self.name(), error = %why, cooldown_secs = self.cooldown.as_secs(), "provider failing: skipped for a cool-down");
                    }
                    state.open_until = Some(Instant::now() + self.cooldown);
                }
            }
            _ => {
                if state.open_until.is_some() {
                    tracing::info!(provider = self.name(), "provider answers again");
                }
                *state = BreakerState::default();
            }
        }
        result
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown {channel} provider {name:?}")]
    UnknownProvider { channel: &'static str, name: String },
    #[error("{0} must be set for the provider chosen")]
    Missing(&'static str),
    #[error("{0} is not valid: {1}")]
    Invalid(&'static str, String),
}

/// The providers the configuration names.
/// `webhook_token` goes into the callback URLs of providers that authenticate by token (Kannel).
pub fn from_config(config: &Config, clock: Clock, webhook_token: &str) -> Result<Channels, ConfigError> {
    let outbox = std::path::PathBuf::from(&config.outbox_dir);
    let timeout = Duration::from_secs(config.provider_timeout_secs.max(1));
    let need = |value: &Option<String>, name: &'static str| {
        value.clone().filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name))
    };
    let mut sms = Vec::new();
    for name in config.sms_provider.split(',').map(str::trim) {
        let provider: Arc<dyn Provider> = match name {
            "sandbox" => Arc::new(sandbox::SandboxSms::new(&outbox, clock)),
            "twilio" => Arc::new(twilio::Twilio::new(
                http_client_with_timeout(timeout)?,
                &config.twilio_base_url,
                need(&config.twilio_account_sid, "SAFEREACH_TWILIO_ACCOUNT_SID")?,
                need(&config.twilio_auth_token, "SAFEREACH_TWILIO_AUTH_TOKEN")?,
                need(&config.twilio_from, "SAFEREACH_TWILIO_FROM")?,
                &config.public_url,
            )?),
            "kannel" => Arc::new(kannel::Kannel::new(
                http_client_with_timeout(timeout)?,
                &need(&config.kannel_sendsms_url, "SAFEREACH_KANNEL_SENDSMS_URL")?,
                need(&config.kannel_user, "SAFEREACH_KANNEL_USER")?,
                need(&config.kannel_password, "SAFEREACH_KANNEL_PASSWORD")?,
                need(&config.kannel_from, "SAFEREACH_KANNEL_FROM")?,
                &config.public_url,
                webhook_token,
            )?),
            other => return Err(ConfigError::UnknownProvider { channel: "SMS", name: other.into() }),
        };
        sms.push(provider);
    }
    let from: lettre::message::Mailbox =
        config.email_from.parse().map_err(|e| ConfigError::Invalid("SAFEREACH_EMAIL_FROM", format!("{e}")))?;
    let message_id_domain = from.email.domain().to_string();
    let email: Arc<dyn Provider> = match config.email_provider.as_str() {
        "sandbox" => Arc::new(sandbox::SandboxEmail::new(&outbox, from, message_id_domain)),
        "smtp" => {
            Arc::new(smtp::Smtp::new(&need(&config.smtp_url, "SAFEREACH_SMTP_URL")?, from, message_id_domain, timeout)?)
        }
        other => return Err(ConfigError::UnknownProvider { channel: "email", name: other.into() }),
    };
    let letter: Arc<dyn Provider> = match config.letter_provider.as_str() {
        "sandbox" => Arc::new(sandbox::SandboxLetter::new(&outbox, letter::LetterSender::default(), clock)),
        "http" => Arc::new(print::PrintService::new(
            http_client_with_timeout(timeout)?,
            &need(&config.print_url, "SAFEREACH_PRINT_URL")?,
            config.print_token.clone().filter(|t| !t.is_empty()),
            letter::LetterSender::default(),
            clock,
        )?),
        other => return Err(ConfigError::UnknownProvider { channel: "letter", name: other.into() }),
    };
    Ok(Channels { sms, email, letter })
}

/// The HTTP client for outbound events and the benchmark: `http_client_with_timeout` with the
/// default provider timeout.
pub fn http_client() -> Result<reqwest::Client, ConfigError> {
    http_client_with_timeout(Duration::from_secs(30))
}

/// The HTTP client for providers: rustls with the ring provider, no redirects, and a timeout for
/// the whole call (a provider that hangs is a transient failure, not a stuck worker).
pub fn http_client_with_timeout(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("safereach/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Invalid("HTTP client", e.to_string()))
}

/// rustls's crypto provider for the process (ring: aws-lc is slow to build). Needed before any
/// reqwest client or TLS connection is made; installing again is refused, harmlessly.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A transport failure of a provider call, as a transient error that names only what went wrong
/// (a reqwest error's text would name the URL, whose query may carry a number).
pub(crate) fn transport_error(provider: &str, e: &reqwest::Error) -> SendError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "unreadable answer"
    } else {
        "request failed"
    };
    SendError::Transient(format!("{provider}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers with the queued results in turn (then Ok), counting calls.
    struct Scripted {
        calls: AtomicU32,
        results: Mutex<Vec<Result<(), SendError>>>,
    }

    #[async_trait]
    impl Provider for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.results.lock().unwrap().pop().unwrap_or(Ok(()));
            next.map(|()| Accepted { provider: "scripted", provider_ref: msg.id.clone() })
        }
    }

    fn scripted(mut results: Vec<Result<(), SendError>>) -> Arc<Scripted> {
        results.reverse();
        Arc::new(Scripted { calls: AtomicU32::new(0), results: Mutex::new(results) })
    }

    fn msg() -> OutboundMessage {
        OutboundMessage {
            id: "m".into(),
            recipient: Recipient::Phone { number: "+447700900123".into() },
            subject: None,
            text: "Hi".into(),
            html: None,
            sms: None,
        }
    }

    fn transient() -> Result<(), SendError> {
        Err(SendError::Transient("down".into()))
    }

    #[tokio::test]
    async fn the_breaker_opens_after_the_threshold_and_skips_the_provider() {
        let provider = scripted(vec![transient(), transient(), transient()]);
        let breaker = Breaker::new(provider.clone(), 3, Duration::from_secs(3600));
        for _ in 0..3 {
            assert!(matches!(breaker.send(&msg()).await, Err(SendError::Transient(_))));
        }
        assert!(breaker.is_open());
        assert!(matches!(breaker.send(&msg()).await, Err(SendError::Transient(_))));
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3, "skipped while open");
    }

    #[tokio::test]
    async fn after_the_cool_down_one_success_closes_it_and_permanent_errors_do_not_count() {
        let provider = scripted(vec![
            transient(),
            transient(),
            Err(SendError::Permanent("bad number".into())),
            transient(),
            transient(),
        ]);
        // A cool-down of zero: the next send is the probe at once.
        let breaker = Breaker::new(provider.clone(), 2, Duration::ZERO);
        breaker.send(&msg()).await.unwrap_err();
        breaker.send(&msg()).await.unwrap_err();
        assert!(breaker.state.lock().unwrap().open_until.is_some());
        // The probe gets a permanent answer: the provider is up, the breaker closes.
        assert!(matches!(breaker.send(&msg()).await, Err(SendError::Permanent(_))));
        assert!(breaker.state.lock().unwrap().open_until.is_none());
        // One transient failure is below the threshold again.
        breaker.send(&msg()).await.unwrap_err();
        assert!(breaker.state.lock().unwrap().open_until.is_none());
        breaker.send(&msg()).await.unwrap_err();
        assert!(breaker.send(&msg()).await.is_ok(), "probe after the cool-down succeeds");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 6);
        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn sms_fails_over_on_transient_errors_but_not_on_permanent_ones() {
        let (first, second) = (scripted(vec![transient()]), scripted(vec![]));
        let channels =
            Channels { sms: vec![first.clone(), second.clone()], email: scripted(vec![]), letter: scripted(vec![]) };
        assert!(channels.send(Channel::Sms, &msg()).await.is_ok());
        assert_eq!(second.calls.load(Ordering::SeqCst), 1);
        let first = scripted(vec![Err(SendError::Permanent("21211".into()))]);
        let second = scripted(vec![]);
        let channels = Channels { sms: vec![first, second.clone()], ..channels };
        assert!(matches!(channels.send(Channel::Sms, &msg()).await, Err(SendError::Permanent(_))));
        assert_eq!(second.calls.load(Ordering::SeqCst), 0);
    }
}
