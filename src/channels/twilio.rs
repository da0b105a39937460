//! Twilio: SMS through the Messages REST API, and the `X-Twilio-Signature` check for its callbacks.
//!
//! A message is created with a form POST (basic auth with the account SID and auth token) that
//! names our status callback, with our message id in its query; Twilio answers with its own id
//! (`MessageSid`), which we record as the provider reference, and later POSTs status changes,
//! signed, to the callback.

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::Deserialize;
use sha1::Sha1;

use super::{Accepted, ConfigError, OutboundMessage, Provider, SendError, transport_error};

const PROVIDER: &str = "twilio";

/// Error codes that mean this number or this message will never work, whichever provider tries:
/// 21211 invalid 'To' number, 21214 'To' cannot be reached, 21407 not supported for this
/// destination, 21602 body required, 21610 recipient unsubscribed (replied STOP to Twilio), 21612
/// cannot route to this number, 21614 not a mobile number, 21617 body too long. Anything else
/// (credentials, our sender number, account limits, outages) may work elsewhere or later.
const PERMANENT_CODES: &[u32] = &[21211, 21214, 21407, 21602, 21610, 21612, 21614, 21617];

pub struct Twilio {
    client: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: String,
    from: String,
    status_callback: String,
}

impl Twilio {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        account_sid: String,
        auth_token: String,
        from: String,
        public_url: &str,
    ) -> Result<Twilio, ConfigError> {
        if !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::Invalid("SAFEREACH_TWILIO_ACCOUNT_SID", "letters and digits only".into()));
        }
        reqwest::Url::parse(base_url).map_err(|e| ConfigError::Invalid("SAFEREACH_TWILIO_BASE_URL", e.to_string()))?;
        let messages_url =
            format!("{}/2010-04-01/Accounts/{account_sid}/Messages.json", base_url.trim_end_matches('/'));
        let status_callback = format!("{}/webhooks/twilio/status", public_url.trim_end_matches('/'));
        Ok(Twilio { client, messages_url, account_sid, auth_token, from, status_callback })
    }
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<u32>,
}

#[async_trait]
impl Provider for Twilio {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        let number = msg.sms_number()?;
        // Our id in the callback URL (Twilio signs the whole URL) finds the message even when a
        // callback overtakes our record of the MessageSid.
        let status_callback = format!("{}?id={}", self.status_callback, msg.id);
        let form = [
            ("To", number),
            ("From", self.from.as_str()),
            ("Body", msg.text.as_str()),
            ("StatusCallback", status_callback.as_str()),
        ];
        let response = self
            .client
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, &e))?;
        let status = response.status();
        if status.is_success() {
            // Twilio has created the message: whatever we fail to read now, it must not be sent
            // again. Without its MessageSid we cannot record it as sent, so a person looks (its
            // status callbacks still find the message by our id).
            let created: Created = response.json().await.map_err(|_| SendError::InDoubt {
                provider: PROVIDER,
                why: format!("created ({}) but the answer was unreadable", status.as_u16()),
            })?;
            tracing::debug!(message_id = %msg.id, "twilio accepted the message");
            return Ok(Accepted { provider: PROVIDER, provider_ref: created.sid });
        }
        // Twilio's error message may quote the number: only its code is kept.
        let code = response.json::<ApiError>().await.ok().and_then(|e| e.code);
        Err(classify(status, code))
    }
}

/// Permanent, transient or in doubt, from the HTTP status and Twilio's error code. A 4xx is
/// Twilio's refusal (nothing was created); a 5xx came after our request reached it, and whether
/// the message was created before things went wrong is unknown: in doubt, like a timeout, so it
/// is neither retried nor failed over (a second text could reach the victim).
fn classify(status: StatusCode, code: Option<u32>) -> SendError {
    let what = match code {
        Some(code) => format!("twilio error {code} ({})", status.as_u16()),
        None => format!("twilio answered {}", status.as_u16()),
    };
    match code {
        _ if status.is_server_error() => SendError::InDoubt { provider: PROVIDER, why: what },
        Some(code) if status.is_client_error() && PERMANENT_CODES.contains(&code) => SendError::Permanent(what),
        _ => SendError::Transient(what),
    }
}

/// Twilio's request signature: HMAC-SHA1, keyed with the auth token, over the full URL Twilio
/// called (with its query string) followed by each POST parameter's name and value, sorted by
/// name, base64.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the signature of this request, compared in constant time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = signature(auth_token, url, params);
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The example of Twilio's "Validating requests" documentation, as its SDKs test it.
    #[test]
    fn twilios_documented_example_verifies() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        // Given out of order: the signature sorts them.
        let example = params(&[
            ("To", "+18005551212"),
            ("From", "+14158675309"),
            ("Digits", "1234"),
            ("Caller", "+14158675309"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        assert_eq!(signature("12345", url, &example), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify("12345", url, &example, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));

        let mut tampered = example.clone();
        tampered[2].1 = "9999".into();
        assert!(!verify("12345", url, &tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify("54321", url, &example, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify("12345", "https://mycompany.com/myapp.php?foo=1", &example, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify("12345", url, &example, ""));
    }

    fn twilio_at(base: &str, timeout: std::time::Duration) -> Twilio {
        let client = crate::channels::http_client_with_timeout(timeout).unwrap();
        Twilio::new(client, base, "AC1".into(), "token".into(), "+447700900000".into(), "https://gw.example.org")
            .unwrap()
    }

    fn sms() -> OutboundMessage {
        OutboundMessage {
            language: "en".into(),
            id: "msg_1".into(),
            recipient: crate::domain::Recipient::Phone { number: "+447700900123".into() },
            subject: None,
            text: "Hi".into(),
            html: None,
            sms: None,
        }
    }

    #[tokio::test]
    async fn a_message_twilio_may_have_created_is_in_doubt() {
        use crate::channels::test_server::{Server, Then};
        use std::time::Duration;
        // Created, but the answer never came in time.
        let slow = Server::start(Then::Hang).await;
        let got = twilio_at(&slow.url(""), Duration::from_millis(300)).send(&sms()).await;
        assert!(matches!(got, Err(SendError::InDoubt { provider: "twilio", .. })), "{got:?}");
        // Created (201), but the answer cannot be read: it was taken, and must not go again.
        let garbled = Server::start(Then::Answer("201 Created", "{\"si")).await;
        let got = twilio_at(&garbled.url(""), Duration::from_secs(5)).send(&sms()).await;
        assert!(matches!(got, Err(SendError::InDoubt { provider: "twilio", .. })), "{got:?}");
        // A server error after the request went: Twilio may have created it before failing.
        let down = Server::start(Then::Answer("503 Service Unavailable", "{\"code\": 20500}")).await;
        let got = twilio_at(&down.url(""), Duration::from_secs(5)).send(&sms()).await;
        assert_eq!(got, Err(SendError::InDoubt { provider: "twilio", why: "twilio error 20500 (503)".into() }));
        // A refusal Twilio gave: not taken, so another provider or a later try may send it.
        let busy = Server::start(Then::Answer("429 Too Many Requests", "{\"code\": 20429}")).await;
        let got = twilio_at(&busy.url(""), Duration::from_secs(5)).send(&sms()).await;
        assert_eq!(got, Err(SendError::Transient("twilio error 20429 (429)".into())));
        let ok = Server::start(Then::Answer("201 Created", "{\"sid\": \"SM1\", \"status\": \"queued\"}")).await;
        let got = twilio_at(&ok.url(""), Duration::from_secs(5)).send(&sms()).await;
        assert_eq!(got, Ok(Accepted { provider: "twilio", provider_ref: "SM1".into() }));
    }

    #[test]
    fn errors_for_the_number_are_permanent_server_errors_in_doubt_the_rest_transient() {
        let permanent =
            |s: u16, c: Option<u32>| matches!(classify(StatusCode::from_u16(s).unwrap(), c), SendError::Permanent(_));
        assert!(permanent(400, Some(21211)));
        assert!(permanent(400, Some(21614)));
        assert!(permanent(400, Some(21610)));
        assert!(!permanent(400, Some(21606)), "our sender number: another provider may do");
        assert!(!permanent(401, Some(20003)), "credentials");
        assert!(!permanent(429, Some(20429)));
        assert!(!permanent(500, None));
        assert!(!permanent(503, Some(21211)), "a 5xx is never final");
        let in_doubt =
            |s: u16, c: Option<u32>| matches!(classify(StatusCode::from_u16(s).unwrap(), c), SendError::InDoubt { .. });
        for status in [500, 502, 503, 504] {
            assert!(in_doubt(status, None) && in_doubt(status, Some(20500)), "{status}");
        }
        assert!(!in_doubt(429, Some(20429)) && !in_doubt(400, Some(21211)) && !in_doubt(401, Some(20003)));
        let SendError::Permanent(text) = classify(StatusCode::BAD_REQUEST, Some(21211)) else { unreachable!() };
        assert_eq!(text, "twilio error 21211 (400)");
    }
}
