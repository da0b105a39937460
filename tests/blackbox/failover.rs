//! Failover with `SAFEREACH_SMS_PROVIDER=twilio,kannel`: Twilio (the stand-in) first; when it
//! stops, messages go through the real Kannel, and after repeated failures Twilio is skipped for
//! a cool-down (the circuit breaker), then tried again. A number Twilio refuses for good does not
//! fail over.

use std::sync::Arc;
use std::time::Duration;

use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, pretext, spawn_with};
use crate::kannel::kannel_env;
use crate::standin::{self, INVALID_NUMBER, TwilioStandIn};

/// SMS through the Twilio stand-in at `base`, failing over to Kannel.
fn twilio_then_kannel(c: &mut safereach::config::Config, base: String, kannel: &crate::kannel::KannelEnv) {
    c.sms_provider = "twilio,kannel".into();
    c.twilio_account_sid = Some(standin::ACCOUNT_SID.into());
    c.twilio_auth_token = Some(standin::AUTH_TOKEN.into());
    c.twilio_from = Some(standin::FROM.into());
    c.twilio_base_url = base;
    kannel.configure(c);
}

async fn send(app: &TestApp, n: usize, number: &str) -> (Processed, Value) {
    let case_ref = format!("FO-{n}");
    let mut job = pretext(&format!("fo-{n}"), &case_ref);
    job["contact"]["phones"][0]["number"] = json!(number);
    let (_, answer) = app.post_outreach(&job).await;
    let processed = app.state.worker().process(answer["outreach_id"].as_str().unwrap()).await.unwrap();
    let (_, case) = app.get_case(&case_ref).await;
    (processed, case["messages"][0].clone())
}

#[tokio::test]
async fn a_stopped_provider_fails_over_is_skipped_for_a_cool_down_and_comes_back() {
    let Some(kannel) = kannel_env() else { return };
    let twilio = TwilioStandIn::start().await;
    let (base, port) = (twilio.base_url(), twilio.addr.port());
    let app = spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        // The test runs the worker itself, one job at a time.
        role: Role::Api,
        configure: Box::new(move |c| {
            twilio_then_kannel(c, base, &kannel);
            c.breaker_failures = 3;
            c.breaker_cooldown_secs = 2;
        }),
        ..Options::default()
    })
    .await;
    let kannel = kannel_env().unwrap();
    let number = |n: usize| format!("+4477009007{n:02}");

    let (processed, message) = send(&app, 1, &number(1)).await;
    assert!(matches!(processed, Processed::Sent { .. }));
    assert_eq!(message["provider"], "twilio");

    // Twilio stops: connections are refused. Each message fails over to Kannel, which sends it.
    let shared: Arc<standin::Shared> = twilio.stop().await;
    for n in 2..=4 {
        let (processed, message) = send(&app, n, &number(n)).await;
        assert!(matches!(processed, Processed::Sent { .. }), "{processed:?}");
        assert_eq!(message["provider"], "kannel", "message {n}");
        assert_eq!(kannel.wait_received(&number(n), 1).await.len(), 1, "message {n} reached the fake SMSC");
    }
    // Three failures in a row: Twilio is skipped now, even though it is back.
    let twilio = TwilioStandIn::start_on(port, shared).await;
    let answered = twilio.requests();
    let (_, message) = send(&app, 5, &number(5)).await;
    assert_eq!(message["provider"], "kannel");
    assert_eq!(twilio.requests(), answered, "skipped during the cool-down");
    // After the cool-down one message probes Twilio, which answers: it is used again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, message) = send(&app, 6, &number(6)).await;
    assert_eq!(message["provider"], "twilio");
    assert_eq!(twilio.created().len(), 2, "message 1 before the stop, message 6 after");

    // A number Twilio refuses for good: failed, and not tried on Kannel.
    let (processed, message) = send(&app, 7, INVALID_NUMBER).await;
    assert_eq!(processed, Processed::Failed);
    assert_eq!(message["status"], "failed");
    assert!(kannel.received(INVALID_NUMBER).is_empty());
    // Twilio answered (with a refusal): the breaker counts it as alive, so it stays in use.
    let (_, message) = send(&app, 8, &number(8)).await;
    assert_eq!(message["provider"], "twilio");
    app.stop().await;
}

#[tokio::test]
async fn an_outage_of_every_provider_is_retried_later() {
    // Twilio cannot be reached (connections refused) and is the only provider: nothing can have
    // been sent, so the job is retried, not failed.
    let twilio = TwilioStandIn::start().await;
    let base = twilio.base_url();
    let shared = twilio.stop().await;
    let app = spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        role: Role::Api,
        configure: Box::new(move |c| {
            c.sms_provider = "twilio".into();
            c.twilio_account_sid = Some(standin::ACCOUNT_SID.into());
            c.twilio_auth_token = Some(standin::AUTH_TOKEN.into());
            c.twilio_from = Some(standin::FROM.into());
            c.twilio_base_url = base;
        }),
        ..Options::default()
    })
    .await;
    let (processed, message) = send(&app, 1, "+447700900801").await;
    assert!(matches!(processed, Processed::Retrying { .. }), "{processed:?}");
    assert_eq!(message["status"], "queued", "nothing was handed over");
    let (_, case) = app.get_case("FO-1").await;
    let failed = case["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "send_failed").unwrap();
    assert_eq!(failed["reason"], "transient");
    assert_eq!(*shared.requests.lock().unwrap(), 0);
    app.stop().await;
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_twilio_server_error_is_in_doubt_and_not_failed_over() {
        let Some(kannel) = kannel_env() else { return };
        // Twilio answers 503 after our request reached it: it may have created the message.
        let twilio = TwilioStandIn::start().await;
        twilio.shared.failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let base = twilio.base_url();
        let app = spawn_with(Options {
            clock: Some("2026-11-23T10:00:00Z".into()),
            role: Role::Api,
            configure: Box::new(move |c| twilio_then_kannel(c, base, &kannel)),
            ..Options::default()
        })
        .await;
        let kannel = kannel_env().unwrap();
        let number = "+447700900781";
        let (processed, message) = send(&app, 1, number).await;
        assert_eq!(processed, Processed::DeadLettered);
        assert_eq!(twilio.requests(), 1, "asked once, not again");
        assert_eq!((message["status"].as_str(), message["provider"].as_str()), (Some("sending"), Some("twilio")));
        let (_, case) = app.get_case("FO-1").await;
        assert_eq!(case["outreach"][0]["status"], "dead_lettered");
        let dead = case["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "dead_lettered").unwrap();
        assert_eq!((dead["reason"].as_str(), dead["detail"]["provider"].as_str()), (Some("send_in_doubt"), Some("twilio")));
        // Kannel was never asked: at most one text, from one sender.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(kannel.received(number).is_empty());
        // The worker running the job again does not send it either.
        let again = app.state.worker().process(case["outreach"][0]["outreach_id"].as_str().unwrap()).await.unwrap();
        assert_eq!(again, Processed::Skipped);
        assert_eq!(twilio.requests(), 1);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_provider_that_took_the_message_but_answered_too_late_is_not_failed_over() {
    let Some(kannel) = kannel_env() else { return };
    let twilio = TwilioStandIn::start().await;
    // Twilio creates the message but answers after our timeout (and sends no reports).
    twilio.shared.answer_after_ms.store(3_000, std::sync::atomic::Ordering::SeqCst);
    twilio.shared.quiet.store(true, std::sync::atomic::Ordering::SeqCst);
    let base = twilio.base_url();
    let app = spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        role: Role::Api,
        configure: Box::new(move |c| {
            twilio_then_kannel(c, base, &kannel);
            c.provider_timeout_secs = 1;
            c.retry_base_secs = 0;
        }),
        ..Options::default()
    })
    .await;
    let kannel = kannel_env().unwrap();
    let number = "+447700900791";
    let (processed, message) = send(&app, 1, number).await;
    assert_eq!(processed, Processed::DeadLettered);
    // Twilio has it; Kannel was never asked, so the victim gets one text, from one sender.
    assert_eq!(twilio.created().len(), 1);
    assert_eq!((message["status"].as_str(), message["provider"].as_str()), (Some("sending"), Some("twilio")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(kannel.received(number).is_empty());
    let (_, case) = app.get_case("FO-1").await;
    assert_eq!(case["outreach"][0]["status"], "dead_lettered");
    let dead = case["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "dead_lettered").unwrap();
    assert_eq!((dead["reason"].as_str(), dead["detail"]["provider"].as_str()), (Some("send_in_doubt"), Some("twilio")));
    // The next message still goes (Twilio is failing, not closed yet: it is asked again).
    twilio.shared.answer_after_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let (processed, message) = send(&app, 2, "+447700900792").await;
    assert!(matches!(processed, Processed::Sent { .. }), "{processed:?}");
    assert_eq!(message["provider"], "twilio");
    app.stop().await;
}
