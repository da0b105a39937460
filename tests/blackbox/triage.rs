//! The triage system's view (issue 15): `GET /v1/outreach/{id}`, messages in the victim's
//! language, per-key rate limits, and test keys whose jobs go to the sandbox only and stay out
//! of reports.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, pretext, read, spawn_with};
use crate::standin::{self, AUTH_TOKEN, TwilioStandIn};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

async fn spawn_welsh() -> TestApp {
    spawn_with(Options { clock: Some(MONDAY_10AM.into()), welsh: true, ..Options::default() }).await
}

async fn get_with(app: &TestApp, key: &str, path: &str) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let response = app.http.get(app.url(path)).bearer_auth(key).send().await.unwrap();
    let headers = response.headers().clone();
    let (status, body) = read(response).await;
    (status, body, headers)
}

async fn post_with(app: &TestApp, key: &str, body: &Value) -> (StatusCode, Value) {
    read(app.http.post(app.url("/v1/outreach")).bearer_auth(key).json(body).send().await.unwrap()).await
}

/// Poll `GET /v1/outreach/{id}` with `key` until `done` holds.
async fn wait_for_job(app: &TestApp, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/v1/outreach/{id}");
    for _ in 0..150 {
        let (status, job, _) = get_with(app, key, &path).await;
        if status == StatusCode::OK && done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting on {id}: {:#}", get_with(app, key, &path).await.1);
}

fn information_pack_by_email(request_id: &str, case_ref: &str, language: &str) -> Value {
    json!({
        "request_id": request_id, "case_ref": case_ref, "kind": "information_pack",
        "crime": { "categories": ["burglary"] },
        "victim": { "first_name": "Gwen", "language": language },
        "contact": { "email": { "address": "gwen@example.org", "safe": true }, "preferred_method": "email" },
        "consent": { "information_pack": true }
    })
}

on_backends! {
    async fn a_job_reads_back_with_its_decision_and_messages_in_the_victims_language() {
        let app = spawn_welsh().await;
        let mut body = pretext("view-1", "VIEW-1");
        body["victim"]["language"] = json!("cy");
        let (status, answer) = app.post_outreach(&body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let id = answer["outreach_id"].as_str().unwrap();

        let job = wait_for_job(&app, &app.key, id, |j| j["status"] == "sent").await;
        assert_eq!(job["outreach_id"], id);
        assert_eq!(job["case_ref"], "VIEW-1");
        assert_eq!(job["kind"], "priority_pretext");
        assert_eq!(job["test"], false);
        assert_eq!(job["decision"], answer["decision"], "the decision as in the 202 answer");
        let messages = job["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!((message["channel"].as_str(), message["status"].as_str()), (Some("sms"), Some("sent")));
        assert_eq!(message["language"], "cy");
        assert_eq!(message["template"], "priority_pretext");
        // The job, not the case: no text, no recipient, no other jobs.
        assert!(message.get("body").is_none() && job.get("timeline").is_none() && job.get("replies").is_none(), "{job}");
        // The text that went is the approved Welsh wording.
        let sms = app.sent_sms();
        assert!(sms[0]["body"].as_str().unwrap().starts_with("Helo Robin"), "{sms:?}");

        // The case says the same.
        let (_, case) = app.get_case("VIEW-1").await;
        assert_eq!(case["messages"][0]["language"], "cy");
        assert_eq!(case["outreach"][0]["test"], false);

        // Unknown ids are 404 problems; reading needs cases:read.
        let (status, problem, headers) = get_with(&app, &app.key, "/v1/outreach/out_nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["status"], 404);
        let writer = app.key_with(&["outreach:write"]).await;
        assert_eq!(get_with(&app, &writer, &format!("/v1/outreach/{id}")).await.0, StatusCode::FORBIDDEN);
        app.stop().await;
    }
}

#[tokio::test]
async fn welsh_packs_go_in_welsh_other_languages_in_english_and_junk_is_refused() {
    let app = spawn_welsh().await;
    for (case, language) in [("LANG-CY", "cy-GB"), ("LANG-PL", "pl")] {
        let (status, answer) = app.post_outreach(&information_pack_by_email(case, case, language)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let welsh = app.wait_for_message("LANG-CY", "sent").await;
    assert_eq!(welsh["language"], "cy");
    assert_eq!(welsh["subject"], "Eich pecyn gwybodaeth gan Northgate Victim Care");
    // No Polish version: the English one, recorded as English.
    let polish = app.wait_for_message("LANG-PL", "sent").await;
    assert_eq!(polish["language"], "en");
    assert_eq!(polish["subject"], "Your information pack from Northgate Victim Care");

    let eml =
        std::fs::read_to_string(app.outbox().join(format!("email/{}.eml", welsh["id"].as_str().unwrap()))).unwrap();
    assert!(eml.contains("Content-Language: cy\r\n"), "{eml}");
    let parsed = mail_parser::MessageParser::default().parse(eml.as_bytes()).unwrap();
    assert!(parsed.body_html(0).unwrap().contains("<html lang=\"cy\">"));
    let eml =
        std::fs::read_to_string(app.outbox().join(format!("email/{}.eml", polish["id"].as_str().unwrap()))).unwrap();
    assert!(eml.contains("Content-Language: en\r\n"));

    // A language that is not a language code: 422 naming the field, nothing stored.
    for junk in [json!("Welsh please"), json!("c"), json!("cy-GB-north"), json!(7)] {
        let mut body = information_pack_by_email("LANG-JUNK", "LANG-JUNK", "cy");
        body["victim"]["language"] = junk.clone();
        let (status, problem) = app.post_outreach(&body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{junk}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "victim.language", "{problem}");
    }
    assert_eq!(app.get_case("LANG-JUNK").await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after_and_others_carry_on() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), ..Options::default() }).await;
    let now = app.state.clock.now_ms();
    let options = safereach::store::KeyOptions { test: false, rate_limit: 3 };
    let slow = safereach::service::accounts::create_api_key_with(
        &app.state.store,
        "slow",
        &["cases:read".into()],
        options,
        now,
        "test",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(get_with(&app, &slow, "/v1/outreach/out_x").await.0, StatusCode::NOT_FOUND);
    }
    let (status, problem, headers) = get_with(&app, &slow, "/v1/outreach/out_x").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["content-type"], "application/problem+json");
    // Three a minute: the next token is 20 seconds away.
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(problem["status"], 429);
    assert!(problem["detail"].as_str().unwrap().contains("3 requests a minute"), "{problem}");
    // Other keys have their own buckets (the default, 3,000 a minute).
    assert_eq!(get_with(&app, &app.key, "/v1/outreach/out_x").await.0, StatusCode::NOT_FOUND);
    // A request with a bad key is refused as before, not counted against anyone.
    assert_eq!(get_with(&app, "sr_nope", "/v1/outreach/out_x").await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// A test key's jobs are decided and recorded like any other, but every send goes to the sandbox
/// even while Twilio is the configured SMS provider; they are marked `test` and left out of the
/// report; the test key cannot touch live jobs or cases.
#[tokio::test]
async fn a_test_keys_sms_goes_to_the_sandbox_while_twilio_is_configured_and_stays_out_of_reports() {
    let twilio = TwilioStandIn::start().await;
    let base = twilio.base_url();
    let app = spawn_with(Options {
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
    .await;
    let now = app.state.clock.now_ms();
    let options = safereach::store::KeyOptions { test: true, rate_limit: 3000 };
    let scopes = ["outreach:write".to_string(), "cases:read".to_string()];
    let test_key = safereach::service::accounts::create_api_key_with(
        &app.state.store,
        "triage-test",
        &scopes,
        options,
        now,
        "test",
    )
    .await
    .unwrap();

    let mut live = pretext("mix-live", "MIX-LIVE");
    live["contact"]["phones"][0]["number"] = json!("+447700900556");
    let (_, live_answer) = app.post_outreach(&live).await;
    let (status, test_answer) = post_with(&app, &test_key, &pretext("mix-test", "MIX-TEST")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{test_answer}");
    assert_eq!(test_answer["decision"]["outcome"], "send", "decided like any job");
    let test_id = test_answer["outreach_id"].as_str().unwrap();

    let job = wait_for_job(&app, &test_key, test_id, |j| j["status"] == "sent").await;
    assert_eq!(job["test"], true);
    assert_eq!(
        (job["messages"][0]["provider"].as_str(), job["messages"][0]["test"].as_bool()),
        (Some("sandbox"), Some(true))
    );
    let sandbox = app.sent_sms();
    assert_eq!(sandbox.len(), 1, "{sandbox:?}");
    assert_eq!(sandbox[0]["to"], "+447700900555");
    // The live job went to Twilio, and only it.
    let live_message = app.wait_for_message("MIX-LIVE", "delivered").await;
    assert_eq!(live_message["provider"], "twilio");
    let created = twilio.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].form["To"], "+447700900556");

    // Marked on the case's timeline.
    let (_, case) = app.get_case("MIX-TEST").await;
    assert_eq!(case["outreach"][0]["test"], true);
    assert_eq!(case["messages"][0]["test"], true);
    assert!(case["timeline"].as_array().unwrap().iter().all(|e| e["test"] == true), "{case:#}");
    let (_, live_case) = app.get_case("MIX-LIVE").await;
    assert!(live_case["timeline"].as_array().unwrap().iter().all(|e| e.get("test").is_none()));

    // The report counts the live job only.
    let (status, report) = app.get("/v1/reports/monthly?month=2026-11").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (report["outreach"]["total"].as_u64(), report["messages"]["total"].as_u64()),
        (Some(1), Some(1)),
        "{report:#}"
    );

    // A test key acts on its own test jobs only.
    let live_id = live_answer["outreach_id"].as_str().unwrap();
    assert_eq!(get_with(&app, &test_key, &format!("/v1/outreach/{live_id}")).await.0, StatusCode::NOT_FOUND);
    let cancel = |id: &str| app.http.post(app.url(&format!("/v1/outreach/{id}/cancel"))).bearer_auth(&test_key).send();
    assert_eq!(cancel(live_id).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(get_with(&app, &test_key, "/v1/cases/MIX-LIVE").await.0, StatusCode::FORBIDDEN);
    let call = json!({"at": "2026-11-23T09:00:00Z", "outcome": "no_answer"});
    let (status, _) = read(
        app.http.post(app.url("/v1/cases/MIX-LIVE/calls")).bearer_auth(&test_key).json(&call).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

/// A test pre-text on a real case never makes the real one a duplicate (rule 11): test-ness is
/// per job, and a live job does not see test jobs.
#[tokio::test]
async fn a_test_job_on_a_live_case_does_not_block_the_live_pretext_as_a_duplicate() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), ..Options::default() }).await;
    let now = app.state.clock.now_ms();
    let options = safereach::store::KeyOptions { test: true, rate_limit: 3000 };
    let test_key = safereach::service::accounts::create_api_key_with(
        &app.state.store,
        "t",
        &["outreach:write".into()],
        options,
        now,
        "test",
    )
    .await
    .unwrap();
    let (_, first) = post_with(&app, &test_key, &pretext("dup-test", "DUP-1")).await;
    assert_eq!(first["decision"]["outcome"], "send");
    app.wait_for_message("DUP-1", "sent").await;
    let (_, live) = app.post_outreach(&pretext("dup-live", "DUP-1")).await;
    assert_eq!(live["decision"]["outcome"], "send", "{live}");
    // A second test job does see the first: it is a duplicate among tests.
    let (_, again) = post_with(&app, &test_key, &pretext("dup-test-2", "DUP-1")).await;
    assert_eq!(
        (again["decision"]["outcome"].as_str(), again["decision"]["reason"].as_str()),
        (Some("block"), Some("duplicate"))
    );
    app.stop().await;
}
