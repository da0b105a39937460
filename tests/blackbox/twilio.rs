//! Twilio through the documented-protocol stand-in: messages are created over the REST API, its
//! signed status callbacks move them forward, badly signed callbacks are refused, and replies
//! come in signed and are classified and acted on.

use reqwest::StatusCode;
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, pretext, read, spawn_with};
use crate::standin::{self, AUTH_TOKEN, TwilioStandIn, post_form, signed_post};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";
const NUMBER: &str = "+447700900555";

async fn spawn_with_twilio(standin: &TwilioStandIn) -> TestApp {
    let base = standin.base_url();
    spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        configure: Box::new(move |c| {
            c.sms_provider = "twilio".into();
            c.twilio_account_sid = Some(standin::ACCOUNT_SID.into());
            c.twilio_auth_token = Some(AUTH_TOKEN.into());
            c.twilio_from = Some(standin::FROM.into());
            c.twilio_base_url = base;
        }),
        ..Options::default()
    })
    .await
}

fn events<'a>(case: &'a Value, kind: &str) -> Vec<&'a Value> {
    case["timeline"].as_array().unwrap().iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn messages_are_created_over_rest_and_signed_status_callbacks_deliver_them() {
    let twilio = TwilioStandIn::start().await;
    let app = spawn_with_twilio(&twilio).await;
    app.post_outreach(&pretext("tw-1", "TW-1")).await;
    let message = app.wait_for_message("TW-1", "delivered").await;

    let created = twilio.created();
    assert_eq!(created.len(), 1);
    let form = &created[0].form;
    assert_eq!(form["To"], NUMBER);
    assert_eq!(form["From"], standin::FROM);
    assert_eq!(form["Body"], message["body"].as_str().unwrap());
    let id = message["id"].as_str().unwrap();
    assert_eq!(form["StatusCallback"], app.url(&format!("/webhooks/twilio/status?id={id}")));
    assert_eq!(message["provider"], "twilio");
    assert_eq!(message["provider_ref"], created[0].sid.as_str(), "Twilio's MessageSid is the provider reference");
    let statuses: Vec<&str> =
        message["events"].as_array().unwrap().iter().filter_map(|e| e["detail"]["twilio_status"].as_str()).collect();
    assert!(statuses.contains(&"delivered"), "{message:#}");
    app.stop().await;
}

#[tokio::test]
async fn callbacks_without_a_good_signature_are_refused_and_change_nothing() {
    let twilio = TwilioStandIn::start().await;
    twilio.shared.quiet.store(true, std::sync::atomic::Ordering::SeqCst);
    let app = spawn_with_twilio(&twilio).await;
    app.post_outreach(&pretext("tw-2", "TW-2")).await;
    let message = app.wait_for_message("TW-2", "sent").await;
    let sid = message["provider_ref"].as_str().unwrap().to_string();
    let url = app.url("/webhooks/twilio/status");
    let params = [("MessageSid", sid.as_str()), ("MessageStatus", "failed"), ("ErrorCode", "30003")];

    // Missing, wrong token, signed over another URL, tampered parameter.
    assert_eq!(post_form(&url, &params, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(signed_post(&url, "not-the-token", &params).await.0, StatusCode::FORBIDDEN);
    let elsewhere = standin::twilio_signature(AUTH_TOKEN, "https://attacker.example/webhooks/twilio/status", &params);
    assert_eq!(post_form(&url, &params, Some(&elsewhere)).await.0, StatusCode::FORBIDDEN);
    let good = standin::twilio_signature(AUTH_TOKEN, &url, &params);
    let tampered = [("MessageSid", sid.as_str()), ("MessageStatus", "delivered"), ("ErrorCode", "30003")];
    assert_eq!(post_form(&url, &tampered, Some(&good)).await.0, StatusCode::FORBIDDEN);
    let inbound = [("From", NUMBER), ("Body", "STOP")];
    assert_eq!(post_form(&app.url("/webhooks/twilio/inbound"), &inbound, Some(&good)).await.0, StatusCode::FORBIDDEN);
    let (_, case) = app.get_case("TW-2").await;
    assert_eq!(case["messages"][0]["status"], "sent", "nothing moved");
    assert!(case["replies"].as_array().unwrap().is_empty());

    // Signed properly: moves once; late and repeated reports never move it back.
    let (status, body) = signed_post(&url, AUTH_TOKEN, &params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for late in ["delivered", "sent", "failed"] {
        let late = [("MessageSid", sid.as_str()), ("MessageStatus", late)];
        assert_eq!(signed_post(&url, AUTH_TOKEN, &late).await.0, StatusCode::OK);
    }
    let (_, case) = app.get_case("TW-2").await;
    assert_eq!(case["messages"][0]["status"], "failed");
    let status_events = events(&case, "status");
    assert_eq!(status_events.len(), 1);
    assert_eq!(status_events[0]["detail"]["error_code"], "30003");
    assert_eq!(events(&case, "status_ignored").len(), 3);

    // A query string is part of the signed URL.
    let with_query = format!("{url}?attempt=2");
    assert_eq!(signed_post(&with_query, AUTH_TOKEN, &params).await.0, StatusCode::OK);
    // Unknown message: acknowledged.
    let unknown = [("MessageSid", "SM0000"), ("MessageStatus", "delivered")];
    let (status, body) = signed_post(&url, AUTH_TOKEN, &unknown).await;
    assert_eq!((status, body.contains("unknown_message")), (StatusCode::OK, true), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn replies_come_in_signed_are_classified_acted_on_and_never_answered() {
    let twilio = TwilioStandIn::start().await;
    let app = spawn_with_twilio(&twilio).await;
    app.post_outreach(&pretext("tw-3", "TW-3")).await;
    app.wait_for_message("TW-3", "delivered").await;
    let inbound = app.url("/webhooks/twilio/inbound");
    let reply = |body: &'static str, sid: &'static str| {
        let inbound = inbound.clone();
        async move {
            let params = [("From", NUMBER), ("To", standin::FROM), ("Body", body), ("MessageSid", sid)];
            signed_post(&inbound, AUTH_TOKEN, &params).await
        }
    };
    let (status, twiml) = reply("please help, he's here", "SMin1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(twiml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>", "empty TwiML: no reply");
    // Twilio retrying the same message: recorded once.
    assert_eq!(reply("please help, he's here", "SMin1").await.0, StatusCode::OK);
    reply("STOP", "SMin2").await;
    reply("tomorrow morning is ok", "SMin3").await;

    let (_, case) = app.get_case("TW-3").await;
    let classes: Vec<&str> =
        case["replies"].as_array().unwrap().iter().map(|r| r["classification"].as_str().unwrap()).collect();
    assert_eq!(classes, ["distress", "opt_out", "time_preference"]);
    let alerts: Vec<(&str, &str)> = events(&case, "alert")
        .iter()
        .map(|a| (a["reason"].as_str().unwrap(), a["detail"]["urgency"].as_str().unwrap()))
        .collect();
    assert_eq!(alerts, [("distress", "urgent"), ("opt_out", "normal"), ("time_preference", "normal")]);
    assert_eq!(events(&case, "suppressed")[0]["reason"], "opt_out");
    assert!(case["call_window"].as_str().is_some());
    // The number is suppressed now: a new job for it is blocked, and nothing was sent back.
    let (_, again) = app.post_outreach(&pretext("tw-4", "TW-4")).await;
    assert_eq!(again["decision"]["reason"], "suppressed");
    assert_eq!(twilio.created().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_message_twilio_took_but_answered_too_late_is_dead_lettered_in_doubt_and_never_sent_again() {
    let twilio = TwilioStandIn::start().await;
    // Twilio creates the message (and reports on it) but answers after our timeout.
    twilio.shared.answer_after_ms.store(3_000, std::sync::atomic::Ordering::SeqCst);
    let base = twilio.base_url();
    let app = spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        // The test runs the worker itself.
        role: Role::Api,
        configure: Box::new(move |c| {
            c.sms_provider = "twilio".into();
            c.twilio_account_sid = Some(standin::ACCOUNT_SID.into());
            c.twilio_auth_token = Some(AUTH_TOKEN.into());
            c.twilio_from = Some(standin::FROM.into());
            c.twilio_base_url = base;
            c.provider_timeout_secs = 1;
            // A retry would come at once: none must.
            c.retry_base_secs = 0;
        }),
        ..Options::default()
    })
    .await;
    let (_, answer) = app.post_outreach(&pretext("tw-late", "TW-LATE")).await;
    let id = answer["outreach_id"].as_str().unwrap();
    // Gave up at our timeout (had Twilio's answer come, it would be sent): in doubt.
    assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::DeadLettered);
    assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::Skipped, "never sent again by itself");
    assert_eq!(twilio.created().len(), 1);
    assert_eq!(twilio.requests(), 1);

    // Staff see it in doubt, with the provider to ask.
    let (_, listed) = read(app.http.get(app.url("/v1/dead-letters")).bearer_auth(&app.key).send().await.unwrap()).await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["dead_letters"][0]["reason"], "send_in_doubt");
    let (_, case) = app.get_case("TW-LATE").await;
    let dead = events(&case, "dead_lettered");
    assert_eq!((dead.len(), dead[0]["reason"].as_str()), (1, Some("send_in_doubt")));
    assert_eq!(dead[0]["detail"]["provider"], "twilio");
    assert!(events(&case, "send_failed").is_empty(), "{case:#}");

    // Twilio's own reports find the message by our id: it was delivered. Requeued by staff, the
    // job is then recorded as sent, and nothing goes a second time.
    let message = app.wait_for_message("TW-LATE", "delivered").await;
    let (status, _) = app.post_json(&format!("/v1/outreach/{id}/requeue"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::Skipped);
    let (_, case) = app.get_case("TW-LATE").await;
    assert_eq!(case["outreach"][0]["status"], "sent");
    assert_eq!(case["messages"].as_array().unwrap().len(), 1);
    assert_eq!(case["messages"][0]["id"], message["id"]);
    assert_eq!(twilio.created().len(), 1, "one text reached the victim");
    app.stop().await;
}
