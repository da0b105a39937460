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
/// `Content-Language` and the HTML's `<html lang>` name the message's language.
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
    // Only a plain code goes into a header or an attribute.
    let language = crate::domain::language::primary(&msg.language);
    let builder = match &language {
        Some(code) => builder.header(ContentLanguage(code.clone())),
        None => builder,
    };
    let built = match &msg.html {
        Some(html) => {
            let html = match &language {
                Some(code) => with_html_lang(html, code),
                None => html.clone(),
            };
            builder.multipart(MultiPart::alternative_plain_html(msg.text.clone(), html))
        }
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

/// `Content-Language: <code>` (RFC 3282).
#[derive(Clone)]
struct ContentLanguage(String);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(s.trim().to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `html` with its `<html>` tag's `lang` set to `code` (a plain language code), whatever the
/// template said: a translation that kept the English `lang="en"` would make screen readers
/// read Welsh with English sounds. A fragment without an `<html>` tag is left as it is.
pub fn with_html_lang(html: &str, code: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let Some(start) = lower
        .match_indices("<html")
        .map(|(i, _)| i)
        .find(|&i| lower[i + 5..].starts_with(|c: char| c == '>' || c.is_ascii_whitespace()))
    else {
        return html.to_string();
    };
    let Some(end) = lower[start..].find('>').map(|e| start + e) else { return html.to_string() };
    // The tag's attributes without any lang="…" (quoted either way, or bare).
    let mut rest = &html[start + 5..end];
    let mut kept = String::new();
    while let Some(found) = rest.to_ascii_lowercase().find("lang=") {
        let before_ok = found == 0 || rest[..found].ends_with(|c: char| c.is_ascii_whitespace());
        let value_start = found + 5;
        let value_end = match rest[value_start..].chars().next() {
            Some(q @ ('"' | '\'')) => rest[value_start + 1..].find(q).map_or(rest.len(), |e| value_start + 1 + e + 1),
            _ => rest[value_start..].find(|c: char| c.is_ascii_whitespace()).map_or(rest.len(), |e| value_start + e),
        };
        if before_ok {
            kept += rest[..found].trim_end();
        } else {
            kept += &rest[..value_end];
        }
        rest = &rest[value_end..];
    }
    kept += rest;
    format!("{}<html lang=\"{code}\"{kept}{}", &html[..start], &html[end..])
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
    fn the_language_is_in_content_language_and_html_lang() {
        let mut msg = message(Some("<!DOCTYPE html>\n<html lang=\"en\">\n<body><p>Annwyl Zoë,</p></body>\n</html>"));
        msg.language = "cy".into();
        let eml = build_email(&from(), "victimcare.example.org", &msg).unwrap().formatted();
        assert!(String::from_utf8(eml.clone()).unwrap().contains("Content-Language: cy\r\n"));
        let parsed = MessageParser::default().parse(&eml).unwrap();
        assert!(parsed.body_html(0).unwrap().contains("<html lang=\"cy\">"), "{:?}", parsed.body_html(0));
        // Junk never reaches a header.
        msg.language = "cy\r\nBcc: x@example.net".into();
        let eml = String::from_utf8(build_email(&from(), "example.org", &msg).unwrap().formatted()).unwrap();
        assert!(!eml.contains("Content-Language") && !eml.contains("Bcc"));
    }

    #[test]
    fn html_lang_is_set_on_the_html_tag_only() {
        assert_eq!(with_html_lang("<html lang=\"en\"><p>x</p></html>", "cy"), "<html lang=\"cy\"><p>x</p></html>");
        assert_eq!(with_html_lang("<HTML class=a LANG='en-GB' dir=ltr>", "cy"), "<html lang=\"cy\" class=a dir=ltr>");
        assert_eq!(
            with_html_lang("<!DOCTYPE html>\n<html>\n<body>", "cy"),
            "<!DOCTYPE html>\n<html lang=\"cy\">\n<body>"
        );
        assert_eq!(with_html_lang("<html xml:lang=\"en\">", "cy"), "<html lang=\"cy\" xml:lang=\"en\">");
        assert_eq!(with_html_lang("<p>no document</p>", "cy"), "<p>no document</p>");
        assert_eq!(with_html_lang("<htmlish><html>", "cy"), "<htmlish><html lang=\"cy\">");
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
