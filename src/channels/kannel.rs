//! Kannel: SMS through smsbox's `sendsms` HTTP interface.
//!
//! Each message asks for every delivery report (`dlr-mask=31`) on a `dlr-url` that carries our
//! message id and the webhook token, so the reports come back to `/webhooks/kannel/dlr` (see
//! `http::webhooks::kannel`) and find the message by our id, which is also the provider
//! reference. Text that needs UCS-2 is sent with `coding=2`; Kannel converts from UTF-8.

use async_trait::async_trait;
use reqwest::{StatusCode, Url};

use super::{Accepted, ConfigError, OutboundMessage, Provider, SendError, transport_error};
use crate::domain::sms::{Encoding, analyse};

const PROVIDER: &str = "kannel";

pub struct Kannel {
    client: reqwest::Client,
    sendsms: Url,
    user: String,
    password: String,
    from: String,
    /// `{public}/webhooks/kannel/dlr?token=…`: the id and Kannel's escapes are appended per message.
    dlr_base: String,
}

impl Kannel {
    pub fn new(
        client: reqwest::Client,
        sendsms_url: &str,
        user: String,
        password: String,
        from: String,
        public_url: &str,
        webhook_token: &str,
    ) -> Result<Kannel, ConfigError> {
        let sendsms =
            Url::parse(sendsms_url).map_err(|e| ConfigError::Invalid("SAFEREACH_KANNEL_SENDSMS_URL", e.to_string()))?;
        let token: String = url_encode(webhook_token);
        let dlr_base = format!("{}/webhooks/kannel/dlr?token={token}", public_url.trim_end_matches('/'));
        Ok(Kannel { client, sendsms, user, password, from, dlr_base })
    }

    /// The sendsms request for `msg` (without sending it).
    fn request_url(&self, msg: &OutboundMessage, to: &str) -> Url {
        let coding = match msg.sms.unwrap_or_else(|| analyse(&msg.text)).encoding {
            Encoding::Gsm7 => "0",
            Encoding::Ucs2 => "2",
        };
        // Kannel fills in %d (the report type) and %A (the SMSC's answer) when it calls back.
        let dlr_url = format!("{}&id={}&status=%d&answer=%A", self.dlr_base, msg.id);
        let mut url = self.sendsms.clone();
        url.query_pairs_mut()
            .append_pair("username", &self.user)
            .append_pair("password", &self.password)
            .append_pair("from", &self.from)
            .append_pair("to", to)
            .append_pair("text", &msg.text)
            .append_pair("charset", "UTF-8")
            .append_pair("coding", coding)
            .append_pair("dlr-mask", "31")
            .append_pair("dlr-url", &dlr_url);
        url
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[async_trait]
impl Provider for Kannel {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        // The id goes into the dlr-url unescaped, next to Kannel's own escapes: it must be plain.
        let number = msg.sms_number()?;
        let response =
            self.client.get(self.request_url(msg, number)).send().await.map_err(|e| transport_error(PROVIDER, &e))?;
        let status = response.status();
        // The answer text ("0: Accepted for delivery", "3: Queued for later delivery", or the
        // reason for a refusal) is not kept: only the status code is.
        match status {
            s if s.is_success() => {
                tracing::debug!(message_id = %msg.id, "kannel accepted the message");
                Ok(Accepted { provider: PROVIDER, provider_ref: msg.id.clone() })
            }
            // A request Kannel will never take: a number refused by its white/black lists, a
            // missing or malformed field.
            StatusCode::BAD_REQUEST => Err(SendError::Permanent("kannel refused the message (400)".into())),
            // 403 is our credentials, 5xx Kannel itself: another provider may do better.
            s => Err(SendError::Transient(format!("kannel answered {}", s.as_u16()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Recipient;

    fn kannel() -> Kannel {
        Kannel::new(
            crate::channels::http_client().unwrap(),
            "http://127.0.0.1:13013/cgi-bin/sendsms",
            "safereach".into(),
            "p&ss".into(),
            "+447700900000".into(),
            "https://gw.example.org/",
            "tok en",
        )
        .unwrap()
    }

    fn sms(text: &str) -> OutboundMessage {
        OutboundMessage {
            language: "en".into(),
            id: "msg_0190f3a27c1e".into(),
            recipient: Recipient::Phone { number: "+447700900123".into() },
            subject: None,
            text: text.into(),
            html: None,
            sms: None,
        }
    }

    fn query(url: &Url) -> std::collections::HashMap<String, String> {
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn sendsms_carries_the_dlr_url_with_our_id_and_kannel_escapes() {
        let url = kannel().request_url(&sms("Hello Robin"), "+447700900123");
        let q = query(&url);
        assert_eq!(q["username"], "safereach");
        assert_eq!(q["password"], "p&ss");
        assert_eq!(q["to"], "+447700900123");
        assert_eq!(q["text"], "Hello Robin");
        assert_eq!(q["coding"], "0");
        assert_eq!(q["dlr-mask"], "31");
        assert_eq!(
            q["dlr-url"],
            "https://gw.example.org/webhooks/kannel/dlr?token=tok+en&id=msg_0190f3a27c1e&status=%d&answer=%A"
        );
    }

    fn kannel_at(url: &str, timeout: std::time::Duration) -> Kannel {
        let client = crate::channels::http_client_with_timeout(timeout).unwrap();
        Kannel::new(client, url, "u".into(), "p".into(), "+447700900000".into(), "https://gw.example.org", "t").unwrap()
    }

    #[tokio::test]
    async fn kannel_is_in_doubt_only_once_it_may_have_the_message() {
        use crate::channels::test_server::{Server, Then, closed_port};
        use std::time::Duration;
        // Took the request, answered too late: it may have queued the message.
        let slow = Server::start(Then::Hang).await;
        let got = kannel_at(&slow.url("/cgi-bin/sendsms"), Duration::from_millis(300)).send(&sms("Hi")).await;
        assert!(matches!(got, Err(SendError::InDoubt { provider: "kannel", .. })), "{got:?}");
        assert_eq!(slow.requests(), 1);
        // Refused the connection, or answered 503: it does not have it.
        let refused = format!("http://{}/cgi-bin/sendsms", closed_port().await);
        let got = kannel_at(&refused, Duration::from_secs(5)).send(&sms("Hi")).await;
        assert!(matches!(got, Err(SendError::Transient(_))), "{got:?}");
        let down = Server::start(Then::Answer("503 Service Unavailable", "")).await;
        let got = kannel_at(&down.url("/cgi-bin/sendsms"), Duration::from_secs(5)).send(&sms("Hi")).await;
        assert_eq!(got, Err(SendError::Transient("kannel answered 503".into())));
    }

    #[test]
    fn text_that_needs_ucs2_is_sent_with_coding_2() {
        let url = kannel().request_url(&sms("Hello Zoë – call us"), "+447700900123");
        assert_eq!(query(&url)["coding"], "2");
        assert_eq!(query(&url)["text"], "Hello Zoë – call us");
    }
}
