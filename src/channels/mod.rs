//! Outbound channels: one trait per channel, small adapters behind them.
//!
//! Providers are called with our message id as the reference, so a retried job can be matched to
//! what the provider already has. Errors carry no personal data.
//!
//! An error says whether the provider may have the message. `Transient` and `Permanent` mean it
//! has not (nothing reached it, or it answered no); `InDoubt` means it may have (the request went
//! but no answer came back). We never send twice: a send in doubt is neither retried nor failed
//! over to another provider, but left for a person to check.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::sms::SmsInfo;
use crate::domain::{Channel, Recipient};

pub mod bounce;
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
    /// The language it is written in (`en`, `cy`, …): the email's `Content-Language` and
    /// `<html lang>`, the letter's document language.
    pub language: String,
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
    /// The provider does not have the message, and may take it later or elsewhere: no connection
    /// could be made, or it answered with a temporary refusal (5xx, 429, credentials).
    #[error("transient provider error: {0}")]
    Transient(String),
    /// Will never work for this message (invalid number, rejected content).
    #[error("permanent provider error: {0}")]
    Permanent(String),
    /// The request may have reached `provider`, but no answer says whether it took the message (a
    /// timeout, or the connection lost after the request was written). Sending again, here or
    /// through another provider, could reach the victim twice: a person checks with `provider`.
    #[error("{provider} may have the message: {why}")]
    InDoubt { provider: &'static str, why: String },
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
                        // The provider may have it: another provider could send it a second time.
                        Err(e @ SendError::InDoubt { .. }) => return Err(e),
                        Err(e @ SendError::Transient(_)) => last = e,
                    }
                }
                Err(last)
            }
            Channel::Email => self.email.send(message).await,
            Channel::Letter => self.letter.send(message).await,
        }
    }

    /// Each SMS provider behind a circuit breaker: `threshold` failures in a row (transient or in
    /// doubt) skip it for `cooldown`.
    pub fn with_breakers(self, threshold: u32, cooldown: Duration) -> Channels {
        let sms =
            self.sms.into_iter().map(|p| Arc::new(Breaker::new(p, threshold, cooldown)) as Arc<dyn Provider>).collect();
        Channels { sms, ..self }
    }
}

/// A circuit breaker around one provider: after `threshold` failures in a row it is open, and
/// sends skip the provider (failing over to the next) until `cooldown` has passed; then one send
/// is let through to probe it, and a success closes the breaker again. A transient error counts
/// as a failure, and so does a send in doubt (a provider that times out is in trouble, and
/// skipping it keeps the next messages from ending in doubt too). A permanent error is about the
/// message, not the provider, so it counts as the provider answering. The state is per process.
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
            Err(e @ (SendError::Transient(_) | SendError::InDoubt { .. })) => {
                state.failures += 1;
                if state.failures >= self.threshold {
                    if state.failures == self.threshold {
                        tracing::warn!(provider = self.name(), error = %e, cooldown_secs = self.cooldown.as_secs(), "provider failing: skipped for a cool-down");
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

/// The sandbox providers of every channel, whatever the configuration names: where a test key's
/// jobs go (`SAFEREACH_OUTBOX_DIR`), so that a test never reaches a real provider.
pub fn sandbox_from_config(config: &Config, clock: Clock) -> Result<Channels, ConfigError> {
    let outbox = std::path::PathBuf::from(&config.outbox_dir);
    let from: lettre::message::Mailbox =
        config.email_from.parse().map_err(|e| ConfigError::Invalid("SAFEREACH_EMAIL_FROM", format!("{e}")))?;
    let message_id_domain = from.email.domain().to_string();
    Ok(Channels {
        sms: vec![Arc::new(sandbox::SandboxSms::new(&outbox, clock))],
        email: Arc::new(sandbox::SandboxEmail::new(&outbox, from, message_id_domain)),
        letter: Arc::new(sandbox::SandboxLetter::new(&outbox, letter::LetterSender::default(), clock)),
    })
}

/// The HTTP client for outbound events and the benchmark: `http_client_with_timeout` with the
/// default provider timeout.
pub fn http_client() -> Result<reqwest::Client, ConfigError> {
    http_client_with_timeout(Duration::from_secs(30))
}

/// The HTTP client for providers: rustls with the ring provider, no redirects, and a timeout for
/// the whole call, so that a provider that hangs does not hold a worker. A provider that times out
/// after the request went may have the message (see `transport_error`).
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

/// A transport failure of a provider call, naming only what went wrong (a reqwest error's text
/// would name the URL, whose query may carry a number).
///
/// Transient only when the request cannot have reached the provider: it was never built
/// (`is_builder`), or no connection was made (`is_connect`: DNS, refused, the connect timeout, the
/// TLS handshake; reqwest sets it only for the connector's errors, before a byte of the request is
/// written). Anything else happened on an open connection, after the request may have been
/// written: a timeout waiting for the answer, the connection reset or closed before an answer, an
/// answer cut off. reqwest does not say whether the provider read the request, so all of these are
/// in doubt. (`is_request` is no help: reqwest sets it for connect errors and lost answers alike.)
pub(crate) fn transport_error(provider: &'static str, e: &reqwest::Error) -> SendError {
    if e.is_builder() {
        return SendError::Transient(format!("{provider}: request could not be built"));
    }
    if e.is_connect() {
        let what = if e.is_timeout() { "timed out connecting" } else { "could not connect" };
        return SendError::Transient(format!("{provider}: {what}"));
    }
    let what = if e.is_timeout() {
        "timed out waiting for the answer"
    } else if e.is_body() || e.is_decode() {
        "answer cut off"
    } else {
        "connection lost before the answer"
    };
    SendError::InDoubt { provider, why: what.into() }
}

/// A one-connection HTTP server for the providers' tests, to answer (or not) as a provider might.
#[cfg(test)]
pub(crate) mod test_server {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the server does once it has read a whole request.
    #[derive(Clone, Copy)]
    pub enum Then {
        /// Answer with this status line and body.
        Answer(&'static str, &'static str),
        /// Never answer (the client times out).
        Hang,
        /// Close the connection without a word.
        Close,
    }

    /// Listens on a loopback port; counts the requests it read in full.
    pub struct Server {
        pub addr: SocketAddr,
        pub requests: Arc<AtomicU32>,
    }

    impl Server {
        pub async fn start(then: Then) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let requests = Arc::new(AtomicU32::new(0));
            let counter = requests.clone();
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let counter = counter.clone();
                    tokio::spawn(async move {
                        if read_request(&mut socket).await.is_none() {
                            return;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        match then {
                            Then::Answer(status, body) => {
                                let answer = format!(
                                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                    body.len()
                                );
                                let _ = socket.write_all(answer.as_bytes()).await;
                            }
                            Then::Hang => {
                                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                            }
                            Then::Close => {}
                        }
                    });
                }
            });
            Server { addr, requests }
        }

        pub fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        pub fn requests(&self) -> u32 {
            self.requests.load(Ordering::SeqCst)
        }
    }

    /// Headers up to the blank line, then `content-length` bytes of body.
    async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<()> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let header_end = loop {
            let n = socket.read(&mut buf).await.ok().filter(|&n| n > 0)?;
            seen.extend_from_slice(&buf[..n]);
            if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&seen[..header_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        while seen.len() < header_end + length {
            let n = socket.read(&mut buf).await.ok().filter(|&n| n > 0)?;
            seen.extend_from_slice(&buf[..n]);
        }
        Some(())
    }

    /// A loopback port nothing listens on.
    pub async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }
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
            language: "en".into(),
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

    fn in_doubt() -> Result<(), SendError> {
        Err(SendError::InDoubt { provider: "scripted", why: "timed out waiting for the answer".into() })
    }

    #[tokio::test]
    async fn a_send_in_doubt_is_not_failed_over_and_counts_against_the_breaker() {
        let (first, second) = (scripted(vec![in_doubt()]), scripted(vec![]));
        let channels =
            Channels { sms: vec![first.clone(), second.clone()], email: scripted(vec![]), letter: scripted(vec![]) };
        assert!(matches!(channels.send(Channel::Sms, &msg()).await, Err(SendError::InDoubt { .. })));
        assert_eq!((first.calls.load(Ordering::SeqCst), second.calls.load(Ordering::SeqCst)), (1, 0));

        let provider = scripted(vec![in_doubt(), in_doubt()]);
        let breaker = Breaker::new(provider.clone(), 2, Duration::from_secs(3600));
        for _ in 0..2 {
            assert!(matches!(breaker.send(&msg()).await, Err(SendError::InDoubt { .. })));
        }
        assert!(breaker.is_open(), "a provider that keeps timing out is skipped");
        // Skipped while open: nothing is sent, so that is transient, and the next provider is tried.
        assert!(matches!(breaker.send(&msg()).await, Err(SendError::Transient(_))));
        assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
    }

    async fn post_to(url: String, timeout: Duration) -> reqwest::Error {
        let client = http_client_with_timeout(timeout).unwrap();
        client.post(url).body("To=%2B447700900123&Body=Hi").send().await.unwrap_err()
    }

    #[tokio::test]
    async fn nothing_sent_is_transient_an_unanswered_request_is_in_doubt() {
        use test_server::{Server, Then, closed_port};
        // Refused: no connection, nothing can have been sent.
        let refused = format!("http://{}/send", closed_port().await);
        let e = post_to(refused, Duration::from_secs(5)).await;
        assert_eq!(transport_error("p", &e), SendError::Transient("p: could not connect".into()));
        // Never built: nothing sent.
        let e = http_client().unwrap().post("http://[::1/").send().await.unwrap_err();
        assert!(matches!(transport_error("p", &e), SendError::Transient(_)), "{e:?}");

        // The provider read the whole request and did not answer in time: it may have taken it.
        let hang = Server::start(Then::Hang).await;
        let e = post_to(hang.url("/send"), Duration::from_millis(300)).await;
        assert_eq!(hang.requests(), 1);
        assert_eq!(
            transport_error("p", &e),
            SendError::InDoubt { provider: "p", why: "timed out waiting for the answer".into() }
        );
        // It read the request and dropped the connection: the same.
        let close = Server::start(Then::Close).await;
        let e = post_to(close.url("/send"), Duration::from_secs(5)).await;
        assert_eq!(close.requests(), 1);
        assert!(matches!(transport_error("p", &e), SendError::InDoubt { provider: "p", .. }), "{e:?}");
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
