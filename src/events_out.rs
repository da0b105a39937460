//! Outbound case events: every timeline event is POSTed as JSON to `SAFEREACH_EVENTS_URL`,
//! signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`).
//!
//! Design: an outbox. `Event::append` writes an `event_outbox` row in the same transaction as the
//! event, so a crash can't lose one (a cursor over the events table was the alternative, but with
//! Postgres an id can commit after a larger one, and a cursor would skip it). A background task in
//! each worker process claims the oldest pending event of each case with a lease, POSTs it and
//! deletes its row; a failure schedules a retry (each wait four times the last, capped at 6 h)
//! and holds back that case's later events, so each case's events arrive in order; after the
//! last try the row is dead-lettered (kept, with the last status code) and the case moves on.
//! Delivery is at least once: a crash between the receiver's 2xx and our delete sends the event
//! again, with the same `webhook-id`, which receivers use to drop duplicates.
//!
//! Payloads carry ids, the case reference, types, codes, statuses and classifications: the
//! events table holds no personal data.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{OutboundEvent, Store};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("SAFEREACH_EVENTS_SECRET must be set when SAFEREACH_EVENTS_URL is")]
    NoSecret,
    #[error("SAFEREACH_EVENTS_SECRET starts with whsec_ but the rest is not base64")]
    BadSecret,
    #[error("SAFEREACH_EVENTS_URL is not a URL: {0}")]
    BadUrl(String),
}

/// How long a claimed event is ours before another deliverer may take it.
const LEASE_MS: i64 = 60_000;
const BATCH: i64 = 100;
/// Events of different cases sent at once.
const CONCURRENCY: usize = 8;
const IDLE: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(6 * 3600);
/// Without a URL, pending events older than this are dropped (see `Store::prune_event_outbox`).
const UNSENT_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

/// The signing key: `whsec_` + base64 as Standard Webhooks secrets are given, else the bytes of
/// the string itself.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, EventsError> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| EventsError::BadSecret),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The JSON we send for an event.
pub fn payload(outbound: &OutboundEvent) -> Value {
    let event = &outbound.event;
    let detail = event.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok());
    let at = crate::time::from_ms(event.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut payload = json!({
        "type": format!("case.{}", event.kind),
        "timestamp": at,
        "data": {
            "event_id": event.id,
            "case_ref": outbound.case_ref,
            "type": event.kind,
            "at": at,
            "actor": event.actor,
            "outreach_id": event.outreach_id,
            "message_id": event.message_id,
            "outcome": event.outcome,
            "reason": event.reason,
            "channel": event.channel,
            "status": event.status,
            "classification": event.classification,
            "detail": detail,
        }
    });
    // A test key's job: marked, so that the receiver can leave it out (absent otherwise).
    if outbound.test.0 {
        payload["data"]["test"] = true.into();
    }
    payload
}

/// The background task that sends case events.
pub struct EventsOut {
    pub store: Store,
    pub clock: Clock,
    pub target: Option<Target>,
}

/// Where events go and how they are signed.
pub struct Target {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub key: Vec<u8>,
    pub max_attempts: u32,
    pub retry_base: Duration,
}

impl Target {
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Target>, EventsError> {
        let Some(url) = config.events_url.as_deref().filter(|u| !u.is_empty()) else { return Ok(None) };
        let url = reqwest::Url::parse(url).map_err(|e| EventsError::BadUrl(e.to_string()))?;
        let secret = config.events_secret.as_deref().filter(|s| !s.is_empty()).ok_or(EventsError::NoSecret)?;
        Ok(Some(Target {
            client: crate::channels::http_client().map_err(|e| EventsError::BadUrl(e.to_string()))?,
            url,
            key: signing_key(secret)?,
            max_attempts: config.events_max_attempts.max(1),
            retry_base: Duration::from_millis(config.events_retry_base_ms),
        }))
    }

    /// The wait after `attempts` failed tries: base × 4^(attempts−1), capped.
    fn retry_after(&self, attempts: u32) -> Duration {
        let factor = 4u32.saturating_pow(attempts.saturating_sub(1).min(15));
        self.retry_base.saturating_mul(factor).min(MAX_WAIT)
    }
}

impl EventsOut {
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let busy = match &self.target {
                Some(target) => match self.pass(target).await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "case event delivery pass failed; will retry");
                        false
                    }
                },
                None => {
                    let now = self.clock.now_ms();
                    if let Err(e) = self.store.prune_event_outbox(now - UNSENT_KEPT_MS).await {
                        tracing::warn!(error = %e, "pruning unsent case events failed");
                    }
                    false
                }
            };
            let pause = if busy {
                Duration::ZERO
            } else if self.target.is_some() {
                IDLE
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass: claim the due head event of each case and send them. Returns how many were tried.
    pub async fn pass(&self, target: &Target) -> Result<usize, crate::store::StoreError> {
        let events = self.store.claim_due_events(self.clock.now_ms(), LEASE_MS, BATCH).await?;
        let tried = events.len();
        let results: Vec<_> = futures::stream::iter(events)
            .map(|event| async move {
                let outcome = deliver(target, &event).await;
                self.record(target, &event, outcome).await
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(tried)
    }

    async fn record(
        &self,
        target: &Target,
        event: &OutboundEvent,
        outcome: Result<(), String>,
    ) -> Result<(), crate::store::StoreError> {
        let now = self.clock.now_ms();
        match outcome {
            Ok(()) => self.store.event_delivered(event.event.id).await,
            Err(why) => {
                let attempts = event.attempts as u32 + 1;
                if attempts >= target.max_attempts {
                    tracing::error!(event_id = event.event.id, case_ref = %event.case_ref, attempts, error = %why, "case event dead-lettered");
                    self.store.event_failed(event.event.id, None, &why, now).await
                } else {
                    let wait = target.retry_after(attempts);
                    tracing::warn!(event_id = event.event.id, attempts, retry_in_ms = wait.as_millis() as u64, error = %why, "case event not taken; will retry");
                    self.store.event_failed(event.event.id, Some(now + wait.as_millis() as i64), &why, now).await
                }
            }
        }
    }
}

/// POST one event. `Err` names the status code or transport failure.
async fn deliver(target: &Target, event: &OutboundEvent) -> Result<(), String> {
    let body = payload(event).to_string();
    let id = format!("evt_{}", event.event.id);
    // The receiver checks the timestamp against its own clock: use the real one.
    let timestamp = chrono::Utc::now().timestamp();
    let response = target
        .client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(&target.key, &id, timestamp, &body))
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("status {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err("timed out".into()),
        Err(e) if e.is_connect() => Err("could not connect".into()),
        Err(_) => Err("request failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and its reference libraries' tests).
    #[test]
    fn signs_as_the_standard_webhooks_example() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(matches!(signing_key("whsec_not base64!"), Err(EventsError::BadSecret)));
        assert_eq!(signing_key("plain").unwrap(), b"plain");
    }

    #[test]
    fn retries_wait_four_times_longer_each_time_up_to_a_cap() {
        let target = Target {
            client: crate::channels::http_client().unwrap(),
            url: reqwest::Url::parse("http://127.0.0.1:1/").unwrap(),
            key: vec![],
            max_attempts: 10,
            retry_base: Duration::from_secs(5),
        };
        let waits: Vec<u64> = (1..=9).map(|n| target.retry_after(n).as_secs()).collect();
        assert_eq!(waits, [5, 20, 80, 320, 1280, 5120, 20480, 21600, 21600]);
    }

    #[test]
    fn payload_names_the_event_and_nothing_personal() {
        let event = OutboundEvent {
            attempts: 0,
            case_ref: "VS-1".into(),
            event: crate::store::EventRow {
                id: 7,
                at: 1_795_000_000_000,
                kind: "reply".into(),
                actor: "provider:kannel".into(),
                outreach_id: None,
                message_id: Some("msg_1".into()),
                outcome: None,
                reason: None,
                channel: None,
                status: None,
                classification: Some("distress".into()),
                detail: Some(r#"{"reply_id":"rep_1"}"#.into()),
            },
            test: crate::store::Flag(false),
        };
        let p = payload(&event);
        assert_eq!(p["type"], "case.reply");
        assert_eq!(p["data"]["classification"], "distress");
        assert_eq!(p["data"]["detail"]["reply_id"], "rep_1");
        assert_eq!(p["data"]["case_ref"], "VS-1");
        assert!(p["data"].get("test").is_none(), "only a test's events say so");
        let test = OutboundEvent { test: crate::store::Flag(true), ..event };
        assert_eq!(payload(&test)["data"]["test"], true);
    }
}
