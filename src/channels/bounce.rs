//! Reading a bounce: a delivery status notification (RFC 3464) that a mail server sent back to our
//! envelope sender, forwarded to us as the raw RFC 5322 message.
//!
//! Only two things are read, by scanning headers:
//! - what the report says: the `Action:` and `Status:` fields of each recipient in the
//!   `message/delivery-status` part. `Action` decides when present (`failed` is final even with a
//!   4.x.x status, as Postfix reports a message it gave up on after its queue lifetime); without
//!   one, a 5.x.x status is a failure and a 4.x.x one a delay;
//! - which of our messages it is about: the returned original's `X-Reference: message id`, else
//!   its `Message-ID: <message id@domain>` (both set by `email::build_email`; a relay may rewrite
//!   the Message-ID, never our own header), in the `text/rfc822-headers` or `message/rfc822`
//!   part. Only that part's headers are read, never the top-level ones (the bounce's own
//!   Message-ID) nor a body.
//!
//! Nothing else is kept: a bounce quotes the recipient's address and often the message itself.
//! Parts in base64 are decoded; other transfer encodings leave these ASCII fields readable as
//! they are.

use std::borrow::Cow;

use base64::Engine;

use super::email::is_plain_id;

/// What a delivery status notification says about our message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// It will not be delivered (`Action: failed`, or a 5.x.x status).
    Failed,
    /// The server is still trying (`Action: delayed`, or a 4.x.x status).
    Delayed,
    /// Delivered, relayed, or no delivery-status part we can read.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub report: Report,
    /// The `Action` of the recipient that decided the report (`failed`, `delayed`, …), if given.
    pub action: Option<String>,
    /// Its status code (`5.1.1`), if well-formed.
    pub status: Option<String>,
    /// Our message id, from the returned original's headers.
    pub message_id: Option<String>,
}

/// How deep multiparts are followed (a DSN is one level; a forwarded one may add one or two).
const MAX_DEPTH: u8 = 4;

/// Read a bounce. Never fails: what cannot be read is left out.
pub fn read(raw: &[u8]) -> Bounce {
    let text = String::from_utf8_lossy(raw);
    let mut found = Found::default();
    walk(&text, 0, &mut found);
    let (report, action, status) = found.report.unwrap_or((Report::Other, None, None));
    Bounce { report, action, status, message_id: found.message_id }
}

#[derive(Default)]
struct Found {
    report: Option<(Report, Option<String>, Option<String>)>,
    message_id: Option<String>,
}

fn walk(entity: &str, depth: u8, found: &mut Found) {
    let (headers, body) = split(entity);
    let content_type = header(&headers, "content-type").unwrap_or("text/plain");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let body = decoded(&headers, body);
    match media.as_str() {
        m if m.starts_with("multipart/") => {
            if let Some(boundary) = param(content_type, "boundary").filter(|b| !b.is_empty())
                && depth < MAX_DEPTH
            {
                for part in parts(&body, &boundary) {
                    walk(part, depth + 1, found);
                }
            }
        }
        "message/delivery-status" | "message/global-delivery-status" if found.report.is_none() => {
            found.report = delivery_status(&body);
        }
        "text/rfc822-headers" | "message/rfc822" | "message/global-headers" | "message/global"
            if found.message_id.is_none() =>
        {
            let (original, _) = split(&body);
            let reference = header(&original, "x-reference").map(str::trim).filter(|r| is_plain_id(r));
            found.message_id =
                reference.map(str::to_owned).or_else(|| header(&original, "message-id").and_then(id_of_message_id));
        }
        _ => {}
    }
}

/// The report of a delivery-status part: groups of fields separated by blank lines, the first
/// about the message, each other about one recipient. We send to one recipient; if several are
/// reported, a failure wins over a delay.
fn delivery_status(body: &str) -> Option<(Report, Option<String>, Option<String>)> {
    let mut best: Option<(Report, Option<String>, Option<String>)> = None;
    let mut rest = body;
    while !rest.trim().is_empty() {
        let (fields, next) = split(rest.trim_start_matches(['\r', '\n']));
        rest = next;
        let action = header(&fields, "action").map(|a| a.split_whitespace().next().unwrap_or("").to_ascii_lowercase());
        let status = header(&fields, "status").and_then(status_code);
        let class = status.as_deref().and_then(|s| s.chars().next());
        let report = match (action.as_deref(), class) {
            (Some("failed"), _) => Report::Failed,
            (Some("delayed"), _) => Report::Delayed,
            (Some(_), _) => Report::Other,
            (None, Some('5')) => Report::Failed,
            (None, Some('4')) => Report::Delayed,
            (None, _) if status.is_none() => continue, // the per-message group
            (None, _) => Report::Other,
        };
        let rank = |r: Report| match r {
            Report::Failed => 2,
            Report::Delayed => 1,
            Report::Other => 0,
        };
        if best.as_ref().is_none_or(|(b, _, _)| rank(report) > rank(*b)) {
            best = Some((report, action.filter(|a| a.bytes().all(|b| b.is_ascii_alphabetic())), status));
        }
    }
    best
}

/// `5.1.1` from `5.1.1 (bad destination mailbox)`: class 2, 4 or 5, then two numbers.
fn status_code(value: &str) -> Option<String> {
    let code = value.split_whitespace().next()?;
    let mut numbers = code.split('.');
    let class = numbers.next()?;
    let rest: Vec<&str> = numbers.collect();
    let number = |n: &&str| (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit());
    (matches!(class, "2" | "4" | "5") && rest.len() == 2 && rest.iter().all(number)).then(|| code.to_string())
}

/// Our message id from a Message-ID: the part before the `@` of `<message id@domain>`, if it is
/// one of ours in form (the domain is not checked: it follows `SAFEREACH_EMAIL_FROM`, which may
/// have changed since).
fn id_of_message_id(value: &str) -> Option<String> {
    let value = value.trim();
    let inner = match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    let (local, _domain) = inner.trim().split_once('@')?;
    is_plain_id(local).then(|| local.to_string())
}

/// Headers (names in lower case, folded lines joined) and the body after the first blank line.
fn split(entity: &str) -> (Vec<(String, String)>, &str) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut rest = entity;
    loop {
        let (line, next) = match rest.find('\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, ""),
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return (headers, next);
        }
        rest = next;
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A parameter of a header value (`boundary` of a Content-Type), unquoted.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (key, v) = p.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The body, decoded if it is base64 (and decodes); as it is otherwise.
fn decoded<'a>(headers: &[(String, String)], body: &'a str) -> Cow<'a, str> {
    let base64 = header(headers, "content-transfer-encoding").is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"));
    if base64 {
        let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact) {
            return Cow::Owned(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    Cow::Borrowed(body)
}

/// The parts of a multipart body: what lies between `--boundary` lines, up to `--boundary--`
/// (or the end, if a forwarder cut it off).
fn parts<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start = None;
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        let rest = line.trim_end().strip_prefix(delimiter.as_str());
        if let Some(rest @ ("" | "--")) = rest {
            if let Some(start) = start {
                parts.push(&body[start..at]);
            }
            if rest == "--" {
                return parts;
            }
            start = Some(at + line.len());
        }
        at += line.len();
    }
    if let Some(start) = start {
        parts.push(&body[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "msg_0190f3a27c1e7b3a9f001234567890ab";

    /// A DSN as Postfix writes it, the returned headers as `returned` (a content type and a body).
    fn postfix(action: &str, status: &str, returned_type: &str, returned: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n\
             Subject: Undelivered Mail Returned to Sender\n\
             Message-Id: <20261123100500.4F1A2C0D3B@mx.example.net>\n\
             MIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=delivery-status;\n\
             \tboundary=\"4F1A2C0D3B.1795428300/mx.example.net\"\n\
             \n\
             This is a MIME-encapsulated message.\n\
             \n\
             --4F1A2C0D3B.1795428300/mx.example.net\n\
             Content-Description: Notification\n\
             Content-Type: text/plain; charset=us-ascii\n\
             \n\
             Message-ID: <not-this-one@example.net>\n\
             Status: 5.0.0\n\
             \n\
             --4F1A2C0D3B.1795428300/mx.example.net\n\
             Content-Description: Delivery report\n\
             Content-Type: message/delivery-status\n\
             \n\
             Reporting-MTA: dns; mx.example.net\n\
             Arrival-Date: Mon, 23 Nov 2026 10:00:01 +0000 (UTC)\n\
             \n\
             Final-Recipient: rfc822; priya@example.org\n\
             Action: {action}\n\
             Status: {status}\n\
             Diagnostic-Code: smtp; 550 5.1.1 <priya@example.org>: User unknown\n\
             \n\
             --4F1A2C0D3B.1795428300/mx.example.net\n\
             Content-Description: Undelivered Message\n\
             Content-Type: {returned_type}\n\
             \n\
             {returned}\n\
             --4F1A2C0D3B.1795428300/mx.example.net--\n"
        )
    }

    fn original() -> String {
        format!(
            "From: Northgate Victim Care <noreply@victimcare.example.org>\r\nTo: priya@example.org\r\n\
             Subject: Information\r\nMessage-ID: <{ID}@victimcare.example.org>\r\nMIME-Version: 1.0\r\n"
        )
    }

    fn bounce(report: Report, action: &str, status: &str) -> Bounce {
        Bounce { report, action: Some(action.into()), status: Some(status.into()), message_id: Some(ID.into()) }
    }

    #[test]
    fn a_failure_names_our_message_from_the_returned_headers() {
        let dsn = postfix("failed", "5.1.1", "text/rfc822-headers", &original());
        assert_eq!(read(dsn.as_bytes()), bounce(Report::Failed, "failed", "5.1.1"));
        // With CRLF line ends throughout.
        assert_eq!(read(dsn.replace('\n', "\r\n").as_bytes()), bounce(Report::Failed, "failed", "5.1.1"));
    }

    #[test]
    fn the_whole_returned_message_is_read_for_its_headers_only() {
        let whole =
            format!("{}Content-Type: text/plain\r\n\r\nMessage-ID: <msg_other@victimcare.example.org>\r\n", original());
        let dsn = postfix("failed", "5.2.2 (mailbox full)", "message/rfc822", &whole);
        assert_eq!(read(dsn.as_bytes()), bounce(Report::Failed, "failed", "5.2.2"));
    }

    #[test]
    fn a_delay_is_a_delay_and_a_failure_after_retries_is_a_failure() {
        let dsn = postfix("delayed", "4.4.1", "text/rfc822-headers", &original());
        assert_eq!(read(dsn.as_bytes()), bounce(Report::Delayed, "delayed", "4.4.1"));
        // Postfix gives up after its queue lifetime with the last (temporary) status.
        let dsn = postfix("failed", "4.4.7", "text/rfc822-headers", &original());
        assert_eq!(read(dsn.as_bytes()).report, Report::Failed);
        let dsn = postfix("delivered", "2.0.0", "text/rfc822-headers", &original());
        assert_eq!(read(dsn.as_bytes()).report, Report::Other);
    }

    #[test]
    fn without_an_action_the_status_class_decides() {
        let dsn = postfix("failed", "5.1.1", "text/rfc822-headers", &original()).replace("Action: failed\n", "");
        let read = read(dsn.as_bytes());
        assert_eq!((read.report, read.action, read.status.as_deref()), (Report::Failed, None, Some("5.1.1")));
        let dsn = postfix("delayed", "4.2.0", "text/rfc822-headers", &original()).replace("Action: delayed\n", "");
        assert_eq!(super::read(dsn.as_bytes()).report, Report::Delayed);
    }

    #[test]
    fn x_reference_names_the_message_when_the_message_id_is_not_ours() {
        let returned = format!("Message-ID: <0100018f.abc@email.amazonses.com>\r\nX-Reference: {ID}\r\n");
        let dsn = postfix("failed", "5.1.1", "text/rfc822-headers", &returned);
        assert_eq!(read(dsn.as_bytes()).message_id.as_deref(), Some(ID));
    }

    #[test]
    fn a_base64_part_is_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(original());
        let dsn = postfix("failed", "5.1.1", "text/rfc822-headers\nContent-Transfer-Encoding: base64", &encoded);
        assert_eq!(read(dsn.as_bytes()).message_id.as_deref(), Some(ID));
    }

    #[test]
    fn what_is_not_a_report_or_not_ours_is_left_out() {
        // A plain message, however it reads.
        let plain = format!("{}\r\nDelivery failed. Status: 5.1.1 Action: failed\r\n", original());
        assert_eq!(
            read(plain.as_bytes()),
            Bounce { report: Report::Other, action: None, status: None, message_id: None }
        );
        // No returned headers (RET=HDRS not honoured), a Message-ID of someone else's form.
        let dsn = postfix("failed", "5.1.1", "text/plain", &original());
        assert_eq!(read(dsn.as_bytes()).message_id, None);
        for foreign in ["<a b@example.org>", "<../x@example.org>", "<no-at-sign>", "<>", ""] {
            let dsn = postfix("failed", "5.1.1", "text/rfc822-headers", &format!("Message-ID: {foreign}\n"));
            assert_eq!(read(dsn.as_bytes()).message_id, None, "{foreign}");
        }
        // A body cut off before its closing delimiter, and garbage.
        let dsn = postfix("failed", "5.1.1", "text/rfc822-headers", &original());
        let (cut, _) = dsn.rsplit_once("--4F1A2C0D3B").unwrap();
        assert_eq!(read(cut.as_bytes()), bounce(Report::Failed, "failed", "5.1.1"));
        assert_eq!(read(b"\xff\xfe\x00garbage").report, Report::Other);
        assert_eq!(read(b"").report, Report::Other);
    }

    #[test]
    fn status_codes_are_checked() {
        assert_eq!(status_code("5.1.1").as_deref(), Some("5.1.1"));
        assert_eq!(status_code("4.4.7 (delivery time expired)").as_deref(), Some("4.4.7"));
        assert_eq!(status_code("5.7.133").as_deref(), Some("5.7.133"));
        for bad in ["", "550", "5.1", "3.1.1", "5.1.1.1", "5.a.1", "5.1.1234"] {
            assert_eq!(status_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn message_ids_are_ours_in_form() {
        assert_eq!(id_of_message_id(&format!(" <{ID}@victimcare.example.org> ")).as_deref(), Some(ID));
        assert_eq!(id_of_message_id(&format!("{ID}@victimcare.example.org")).as_deref(), Some(ID));
        assert_eq!(id_of_message_id(&format!("<{ID}@victimcare.example.org> (comment)")).as_deref(), Some(ID));
    }
}
