//! Building the RFC 5322 message for an outbound email (shared by the sandbox and SMTP providers).

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::{OutboundMessage, SendError};
use crate::domain::Recipient;

/// The formatted message for `msg`: From `from`, To the recipient, and
/// `Message-ID: <{msg.id}@{message_id_domain}>` and `X-Reference: {msg.id}` so that a bounce can
/// be matched to our message id (`channels::bounce`; a relay may replace the Message-ID with its
/// own, but leaves other headers alone). The body is multipart/alternative (plain text and HTML) when there is HTML, else plain text.
pub fn build_email(from: &Mailbox, message_id_domain: &str, msg: &OutboundMessage) -> Result<Message, SendError> {
    let Recipient::Email { address } = &msg.recipient else {
        return Err(SendError::Permanent("email needs an email recipient".into()));
    };
    let to = address
        .trim()
        .parse()
        .map(|address| Mailbox::new(None, address))
        .map_err(|_| SendError::Permanent("recipient email address is not valid".into()))?;
    let subject = msg.subject.as_deref().ok_or_else(|| SendError::Permanent("email has no subject".into()))?;
    // Checked so that neither can break out of the header (CR/LF) or make the id unparseable.
    if !is_plain_id(&msg.id) || !is_plain_id(message_id_domain) {
        return Err(SendError::Permanent("message id or Message-ID domain has unexpected characters".into()));
    }

    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        // A subject is one line; a template with a stray newline must not add headers.
        .subject(subject.replace(['\r', '\n'], " "))
        .message_id(Some(format!("<{}@{}>", msg.id, message_id_domain)))
        .header(XReference(msg.id.clone()));
    let built = match &msg.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(msg.text.clone(), html.clone())),
        None => builder.singlepart(SinglePart::plain(msg.text.clone())),
    };
    // lettre only fails here on a missing or duplicate From, which `from` rules out; keep it safe anyway.
    built.map_err(|_| SendError::Permanent("email could not be built".into()))
}

/// `X-Reference: <our message id>`, as the print service gets it.
#[derive(Clone)]
struct XReference(String);

impl Header for XReference {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Reference")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(XReference(s.trim().to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `[A-Za-z0-9_-]` with single interior dots: safe as a Message-ID part and as a file name.
pub(crate) fn is_plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{HeaderValue, MessageParser, MimeHeaders};

    fn from() -> Mailbox {
        "Northgate Victim Care <noreply@victimcare.example.org>".parse().unwrap()
    }

    fn message(html: Option<&str>) -> OutboundMessage {
        OutboundMessage {
            language: "en".into(),
            id: "0190f3a2-7c1e-7b3a-9f00-1234567890ab".into(),
            recipient: Recipient::Email { address: "zoe.tester@example.org".into() },
            subject: Some("Support after your report – Zoë".into()),
            text: "Dear Zoë,\n\nWe can help — call us on 0121 496 0000.\n\nNorthgate Victim Care".into(),
            html: html.map(str::to_owned),
            sms: None,
        }
    }

    #[test]
    fn builds_multipart_alternative_that_parses_back() {
        let html = "<p>Dear Zoë,</p><p>We can help — call us.</p>";
        let eml = build_email(&from(), "victimcare.example.org", &message(Some(html))).unwrap().formatted();
        let text = String::from_utf8(eml.clone()).unwrap();
        assert!(text.is_ascii(), "headers and bodies are transfer-encoded");
        assert!(text.contains("Message-ID: <0190f3a2-7c1e-7b3a-9f00-1234567890ab@victimcare.example.org>\r\n"));
        assert!(text.contains("X-Reference: 0190f3a2-7c1e-7b3a-9f00-1234567890ab\r\n"));

        let parsed = MessageParser::default().parse(&eml).expect("parses");
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.name(), Some("Northgate Victim Care"));
        assert_eq!(from.address(), Some("noreply@victimcare.example.org"));
        assert_eq!(parsed.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("zoe.tester@example.org"));
        assert_eq!(parsed.subject(), Some("Support after your report – Zoë"));
        assert_eq!(parsed.message_id(), Some("0190f3a2-7c1e-7b3a-9f00-1234567890ab@victimcare.example.org"));
        assert!(parsed.date().is_some());
        assert!(matches!(parsed.header("MIME-Version"), Some(HeaderValue::Text(v)) if v == "1.0"));

        let content_type = parsed.content_type().unwrap();
        assert_eq!((content_type.ctype(), content_type.subtype()), ("multipart", Some("alternative")));
        assert_eq!(parsed.text_body.len(), 1);
        assert_eq!(parsed.html_body.len(), 1);
        assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n").trim_end(), message(None).text);
        assert_eq!(parsed.body_html(0).unwrap().trim_end(), html);
        let plain = parsed.part(parsed.text_body[0]).unwrap();
        assert_eq!(plain.content_type().unwrap().attribute("charset"), Some("utf-8"));
    }

    #[test]
    fn plain_only_without_html() {
        let eml = build_email(&from(), "victimcare.example.org", &message(None)).unwrap().formatted();
        let parsed = MessageParser::default().parse(&eml).unwrap();
        let content_type = parsed.content_type().unwrap();
        assert_eq!((content_type.ctype(), content_type.subtype()), ("text", Some("plain")));
        assert!(parsed.body_text(0).unwrap().contains("We can help — call us on 0121 496 0000."));
        assert!(!String::from_utf8(eml).unwrap().contains("text/html"));
    }

    #[test]
    fn subject_newlines_cannot_inject_headers() {
        let mut msg = message(None);
        msg.subject = Some("Hello\r\nBcc: someone@example.net".into());
        let eml = String::from_utf8(build_email(&from(), "example.org", &msg).unwrap().formatted()).unwrap();
        assert!(!eml.contains("\r\nBcc:"));
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        let permanent = |msg: &OutboundMessage, domain: &str| {
            matches!(build_email(&from(), domain, msg), Err(SendError::Permanent(_)))
        };
        let mut msg = message(None);
        msg.recipient = Recipient::Phone { number: "+447700900123".into() };
        assert!(permanent(&msg, "example.org"));
        msg.recipient = Recipient::Email { address: "not an address".into() };
        assert!(permanent(&msg, "example.org"));
        let mut msg = message(None);
        msg.subject = None;
        assert!(permanent(&msg, "example.org"));
        let mut msg = message(None);
        msg.id = "abc>\r\nBcc: x@example.net".into();
        assert!(permanent(&msg, "example.org"));
        assert!(permanent(&message(None), "example.org>"));
    }

    #[test]
    fn plain_ids() {
        assert!(is_plain_id("0190f3a2-7c1e_7b3a.v2"));
        for bad in ["", ".", "a..b", ".hidden", "a/b", "../x", "a b", "é"] {
            assert!(!is_plain_id(bad), "{bad:?}");
        }
    }
}
