//! Email over SMTP with lettre's async connection.
//!
//! The message is built by `email::build_email` (multipart plain + HTML, `Message-ID` carrying our
//! message id, which is also the provider reference, so that a later bounce can be matched).
//!
//! We hold the conversation ourselves (lettre's `AsyncSmtpConnection`, one connection per
//! message, as lettre's transport does without its pool) so that we know how far it got when it
//! fails. Until the server has been sent the message content (connect, EHLO, STARTTLS, AUTH,
//! `MAIL`, `RCPT`, `DATA`), nothing can have been delivered: a 5xx answer refuses this message for
//! good, anything else (a 4xx, a timeout, a lost connection) is worth another try. Once the
//! content and its final `.` have gone, the server's answer decides: 250 taken, 5xx refused for
//! good, 4xx not taken (tried again). No answer at all (a timeout, the connection lost, an answer
//! we cannot read) leaves it in doubt: the server may have queued the message, so it is not sent
//! again by itself (`SendError::InDoubt`). lettre bounds only the connect with a timeout; each
//! conversation here is bounded as a whole by the provider timeout.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::{SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT};
use tokio::time::{Instant, timeout_at};

use super::email::build_email;
use super::{Accepted, ConfigError, OutboundMessage, Provider, SendError};

const PROVIDER: &str = "smtp";

pub struct Smtp {
    server: Server,
    from: Mailbox,
    message_id_domain: String,
    timeout: Duration,
}

/// Where and how to connect, read from `SAFEREACH_SMTP_URL` as lettre's `from_url` reads it.
struct Server {
    host: String,
    port: u16,
    tls: Tls,
    hello_name: ClientId,
    credentials: Option<Credentials>,
}

impl Server {
    /// `smtp://host:port` (no TLS: for a relay on loopback), `smtp://host:port?tls=required`
    /// (STARTTLS; `tls=opportunistic` when offered), or `smtps://host:port` (TLS from the start);
    /// `user:password@` adds AUTH; a path names us in EHLO. Errors never quote the URL.
    fn parse(url: &str) -> Result<Server, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("no host")?.to_string();
        let tls_parameters = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let (tls, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Tls::None, SMTP_PORT),
            ("smtp", Some("required")) => (Tls::Required(tls_parameters()?), SUBMISSION_PORT),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(tls_parameters()?), SUBMISSION_PORT),
            ("smtps", _) => (Tls::Wrapper(tls_parameters()?), SUBMISSIONS_PORT),
            (scheme, tls) => return Err(format!("unknown scheme {scheme:?} or tls parameter {tls:?}")),
        };
        let hello_name = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_string()),
        };
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "user or password is not valid percent-encoded UTF-8".to_string())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        Ok(Server { port: url.port().unwrap_or(default_port), host, tls, hello_name, credentials })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Smtp {
    /// `url`: see `Server::parse`. `timeout` bounds each message's whole conversation.
    pub fn new(url: &str, from: Mailbox, message_id_domain: String, timeout: Duration) -> Result<Smtp, ConfigError> {
        super::install_crypto_provider();
        let server = Server::parse(url).map_err(|e| ConfigError::Invalid("SAFEREACH_SMTP_URL", e))?;
        Ok(Smtp { server, from, message_id_domain, timeout })
    }

    /// Connect, greet, secure and authenticate as the URL asks.
    async fn connect(&self) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let s = &self.server;
        let wrapper = match &s.tls {
            Tls::Wrapper(parameters) => Some(parameters.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (s.host.as_str(), s.port),
            Some(self.timeout),
            &s.hello_name,
            wrapper,
            None,
        )
        .await?;
        match &s.tls {
            Tls::Required(parameters) => conn.starttls(parameters.clone(), &s.hello_name).await?,
            Tls::Opportunistic(parameters) if conn.can_starttls() => {
                conn.starttls(parameters.clone(), &s.hello_name).await?
            }
            _ => {}
        }
        if let Some(credentials) = &s.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// Everything before the message content: connect, then give the envelope (`MAIL`, `RCPT`,
    /// `DATA`), asking for SMTPUTF8 and 8BITMIME when needed, as lettre's own `send` does. Nothing
    /// is delivered if this fails.
    async fn open(&self, email: &lettre::Message, content: &[u8]) -> Result<AsyncSmtpConnection, SendError> {
        let mut conn = self.connect().await.map_err(|e| before_content(&e))?;
        let envelope = email.envelope();
        let mut options = Vec::new();
        if envelope.to().iter().chain(envelope.from()).any(|a| !AsRef::<str>::as_ref(a).is_ascii()) {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(SendError::Transient("smtp: the server does not take non-ASCII addresses".into()));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !content.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(SendError::Transient("smtp: the server does not take 8-bit content".into()));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        conn.command(Mail::new(envelope.from().cloned(), options)).await.map_err(|e| before_content(&e))?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![])).await.map_err(|e| before_content(&e))?;
        }
        conn.command(Data).await.map_err(|e| before_content(&e))?;
        Ok(conn)
    }
}

#[async_trait]
impl Provider for Smtp {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        let email = build_email(&self.from, &self.message_id_domain, msg)?;
        let content = email.formatted();
        let deadline = Instant::now() + self.timeout;
        let mut conn = match timeout_at(deadline, self.open(&email, &content)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(SendError::Transient("smtp: timed out before the message was sent".into())),
        };
        // From here on the server may have the message.
        let answer = timeout_at(deadline, conn.message(&content)).await;
        let result = match answer {
            Ok(Ok(_)) => {
                tracing::debug!(message_id = %msg.id, "smtp server accepted the message");
                Ok(Accepted { provider: PROVIDER, provider_ref: msg.id.clone() })
            }
            Ok(Err(e)) => Err(after_content(&e)),
            Err(_) => Err(SendError::InDoubt { provider: PROVIDER, why: "timed out waiting for the answer".into() }),
        };
        if result.is_ok() {
            // Polite, not needed: the message is taken whatever QUIT comes to.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
        }
        result
    }
}

/// A failure before the message content was sent. Only the reply code is kept: a server's text
/// often quotes the recipient's address.
fn before_content(e: &lettre::transport::smtp::Error) -> SendError {
    match e.status() {
        Some(code) if e.is_permanent() => SendError::Permanent(format!("smtp server refused the message ({code})")),
        Some(code) => SendError::Transient(format!("smtp server deferred the message ({code})")),
        None if e.is_timeout() => SendError::Transient("smtp: timed out".into()),
        None if e.is_tls() => SendError::Transient("smtp: TLS failed".into()),
        None => SendError::Transient("smtp: connection failed".into()),
    }
}

/// A failure once the message content (and its final `.`) may have reached the server: a reply
/// code is the server's word that it did not take it; without one, it may have.
fn after_content(e: &lettre::transport::smtp::Error) -> SendError {
    match e.status() {
        Some(code) if e.is_permanent() => SendError::Permanent(format!("smtp server refused the message ({code})")),
        Some(code) => SendError::Transient(format!("smtp server deferred the message ({code})")),
        None if e.is_timeout() => {
            SendError::InDoubt { provider: PROVIDER, why: "timed out waiting for the answer".into() }
        }
        None => SendError::InDoubt { provider: PROVIDER, why: "connection lost before the answer".into() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Recipient;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// What a scripted SMTP server does at the end of the message content (the final `.`), or
    /// earlier.
    #[derive(Clone, Copy)]
    enum Script {
        /// Answer the final `.` with this reply.
        Answer(&'static str),
        /// Read the final `.` and never answer.
        HangAfterContent,
        /// Read the final `.` and close the connection without a word.
        CloseAfterContent,
        /// Close the connection on `MAIL FROM`, before any content.
        CloseAtMail,
        /// Never greet.
        HangAtGreeting,
    }

    /// A one-message SMTP server speaking just enough of RFC 5321; counts the message contents it
    /// read to the end.
    async fn smtp_server(script: Script) -> (String, Arc<AtomicU32>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let contents = Arc::new(AtomicU32::new(0));
        let counter = contents.clone();
        tokio::spawn(async move {
            let Ok((socket, _)) = listener.accept().await else { return };
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            if matches!(script, Script::HangAtGreeting) {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            let _ = write.write_all(b"220 stand-in ESMTP\r\n").await;
            let mut in_content = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if in_content {
                    if line != "." {
                        continue;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    match script {
                        Script::Answer(reply) => {
                            let _ = write.write_all(format!("{reply}\r\n").as_bytes()).await;
                            in_content = false;
                            continue;
                        }
                        Script::HangAfterContent => tokio::time::sleep(Duration::from_secs(60)).await,
                        _ => {}
                    }
                    return;
                }
                let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" => b"250-stand-in\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                    "MAIL" if matches!(script, Script::CloseAtMail) => return,
                    "MAIL" | "RCPT" => b"250 OK\r\n",
                    "DATA" => {
                        in_content = true;
                        b"354 go ahead\r\n"
                    }
                    "QUIT" => {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => b"500 what\r\n",
                };
                let _ = write.write_all(reply).await;
            }
        });
        (url, contents)
    }

    fn smtp(url: &str, timeout: Duration) -> Smtp {
        let from: Mailbox = "Northgate Victim Care <noreply@victimcare.example.org>".parse().unwrap();
        Smtp::new(url, from, "victimcare.example.org".into(), timeout).unwrap()
    }

    fn email() -> OutboundMessage {
        OutboundMessage {
            language: "en".into(),
            id: "msg_1".into(),
            recipient: Recipient::Email { address: "robin@example.net".into() },
            subject: Some("Information".into()),
            text: "Hello".into(),
            html: None,
            sms: None,
        }
    }

    async fn send(script: Script) -> (Result<Accepted, SendError>, u32) {
        let (url, contents) = smtp_server(script).await;
        let got = smtp(&url, Duration::from_millis(500)).send(&email()).await;
        (got, contents.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn the_answer_to_the_content_decides_and_no_answer_leaves_it_in_doubt() {
        let (got, contents) = send(Script::Answer("250 2.0.0 queued")).await;
        assert_eq!((got, contents), (Ok(Accepted { provider: PROVIDER, provider_ref: "msg_1".into() }), 1));
        let (got, _) = send(Script::Answer("550 5.1.1 no such mailbox")).await;
        assert_eq!(got, Err(SendError::Permanent("smtp server refused the message (550)".into())));
        let (got, _) = send(Script::Answer("451 4.3.0 try later")).await;
        assert_eq!(got, Err(SendError::Transient("smtp server deferred the message (451)".into())));
        // The server read the whole message; its answer never came: it may have queued it.
        let (got, contents) = send(Script::HangAfterContent).await;
        assert_eq!(contents, 1);
        assert_eq!(got, Err(SendError::InDoubt { provider: PROVIDER, why: "timed out waiting for the answer".into() }));
        let (got, contents) = send(Script::CloseAfterContent).await;
        assert_eq!(contents, 1);
        assert!(matches!(got, Err(SendError::InDoubt { provider: PROVIDER, .. })), "{got:?}");
    }

    #[tokio::test]
    async fn failures_before_the_content_are_tried_again() {
        let (got, contents) = send(Script::CloseAtMail).await;
        assert!(matches!(got, Err(SendError::Transient(_))), "{got:?}");
        assert_eq!(contents, 0);
        let (got, _) = send(Script::HangAtGreeting).await;
        assert_eq!(got, Err(SendError::Transient("smtp: timed out before the message was sent".into())));
        let closed = crate::channels::test_server::closed_port().await;
        let got = smtp(&format!("smtp://{closed}"), Duration::from_millis(500)).send(&email()).await;
        assert!(matches!(got, Err(SendError::Transient(_))), "{got:?}");
    }

    #[test]
    fn the_url_is_read_as_lettre_reads_it() {
        let server = Server::parse("smtp://relay.example.org").unwrap();
        assert_eq!((server.host.as_str(), server.port, server.credentials.is_none()), ("relay.example.org", 25, true));
        assert!(matches!(server.tls, Tls::None));
        let server = Server::parse("smtp://user%40x:p%2Fss@relay.example.org?tls=required").unwrap();
        assert_eq!(server.port, 587);
        assert!(matches!(server.tls, Tls::Required(_)));
        assert_eq!(server.credentials, Some(Credentials::new("user@x".into(), "p/ss".into())));
        let server = Server::parse("smtps://relay.example.org:2465/gw.example.org").unwrap();
        assert_eq!(server.port, 2465);
        assert!(matches!(server.tls, Tls::Wrapper(_)));
        assert_eq!(server.hello_name, ClientId::Domain("gw.example.org".into()));
        assert!(matches!(
            Server::parse("smtp://relay.example.org?tls=opportunistic").unwrap().tls,
            Tls::Opportunistic(_)
        ));
        assert!(Server::parse("http://relay.example.org").is_err());
        assert!(Server::parse("smtp://relay.example.org?tls=maybe").is_err());
        assert!(Server::parse("not a url").is_err());
    }
}
