//! On-call alerts (issue 18): an urgent reply notifies the first on-call contact at any hour,
//! through the configured providers, with our fixed wording and no personal data; unacknowledged,
//! the escalation moves round the rota; acknowledging it on the review page stops it. Faults:
//! a provider outage fails over, a notification in doubt is never sent again and the next contact
//! is notified at once instead. (The kill of a process right after the reply: `processes.rs`.)

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{APPROVER, Options, PASSWORD, TestApp, pretext, spawn_with};
use crate::staff::StaffClient;
use crate::standin::{self, TwilioStandIn};

/// Friday evening, offices about to close; the victim replies on Saturday night.
const FRIDAY_6PM: &str = "2026-11-27T18:00:00Z";
const SATURDAY_2340: &str = "2026-11-28T23:40:00Z";
const VICTIM: &str = "+447700900555";
const FIRST: &str = "+447700900961";
const SECOND: &str = "+447700900962";
const ONCALL_EMAIL: &str = "duty.manager@victimcare.example.org";

fn rota(c: &mut safereach::config::Config) {
    c.oncall_sms = vec![FIRST.into(), format!(" {SECOND}")];
    c.oncall_email = vec![ONCALL_EMAIL.into()];
    c.oncall_escalate_minutes = 15;
}

fn events<'a>(case: &'a Value, kind: &str) -> Vec<&'a Value> {
    case["timeline"].as_array().unwrap().iter().filter(|e| e["type"] == kind).collect()
}

/// The sandbox's SMS to `number`, waiting up to 15 s for `count` of them.
async fn wait_for_sms_to(app: &TestApp, number: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let to: Vec<Value> = app.sent_sms().into_iter().filter(|l| l["to"] == number).collect();
        if to.len() >= count {
            return to;
        }
        assert!(Instant::now() < deadline, "{count} SMS to {number} never came: {:?}", app.sent_sms());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sandbox's emails (RFC 5322 text) to `address`.
fn emails_to(app: &TestApp, address: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(app.outbox().join("email")) else { return Vec::new() };
    dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).filter(|eml| eml.contains(address)).collect()
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// The first form action of the review page that matches `prefix…/acknowledge`.
fn ack_url(page: &str, prefix: &str) -> String {
    let at = page.find(prefix).unwrap_or_else(|| panic!("no {prefix} on the review page"));
    page[at..].split('"').next().unwrap().to_string()
}

async fn sent_pretext(app: &TestApp, case_ref: &str) {
    let (status, _) = app.post_outreach(&pretext(&format!("{case_ref}-req"), case_ref)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.wait_for_message(case_ref, "sent").await;
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_distress_reply_on_saturday_night_notifies_on_call_and_escalates_round_the_rota_until_acknowledged() {
        let app = spawn_with(Options { clock: Some(FRIDAY_6PM.into()), configure: Box::new(rota), ..Options::default() }).await;
        sent_pretext(&app, "OC-1").await;
        let app = app.restart_at(SATURDAY_2340, |_| {}).await;
        let started = Instant::now();
        let (status, reply) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": VICTIM, "body": "help he's here"})).await;
        assert_eq!((status, reply["classification"].as_str()), (StatusCode::OK, Some("distress")));

        // The first of each list, at 23:40 on a Saturday: quiet hours are for victims.
        let first = wait_for_sms_to(&app, FIRST, 1).await;
        eprintln!("ONCALL: first contact notified {:.2} s after the reply", started.elapsed().as_secs_f64());
        let review = format!("{}/staff/review", app.config.public_url);
        let wording = format!("safereach: an urgent reply is waiting for a person. Case OC-1. Review: {review}");
        assert_eq!(first[0]["body"], wording.as_str(), "our wording: no name, no number, no reply text");
        let deadline = Instant::now() + Duration::from_secs(10);
        while emails_to(&app, ONCALL_EMAIL).is_empty() {
            assert!(Instant::now() < deadline, "no email to the on-call address");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let eml = &emails_to(&app, ONCALL_EMAIL)[0];
        let email = mail_parser::MessageParser::default().parse(eml.as_bytes()).unwrap();
        assert_eq!(email.subject(), Some("safereach: an urgent reply is waiting for a person"));
        assert_eq!(email.body_text(0).unwrap().trim(), wording);
        assert!(!eml.contains("he's here") && !eml.contains("900555"), "{eml}");
        assert!(wait_for_sms_to(&app, SECOND, 0).await.is_empty(), "the second contact waits for the escalation");

        let case = app.wait_for_case("OC-1", "both notifications recorded", |c| events(c, "oncall_notified").len() == 2).await;
        let notified = events(&case, "oncall_notified");
        let channels: Vec<&str> = notified.iter().map(|e| e["channel"].as_str().unwrap()).collect();
        assert_eq!(channels.iter().filter(|c| **c == "sms").count(), 1, "{channels:?}");
        assert!(channels.contains(&"email"));
        for e in &notified {
            assert_eq!((e["detail"]["step"].as_i64(), e["detail"]["contact"].as_i64()), (Some(0), Some(0)), "{e}");
            assert_eq!(e["classification"], "distress");
            let text = e.to_string();
            assert!(!text.contains("900961") && !text.contains("duty.manager"), "no contact on the timeline: {text}");
        }
        assert_eq!(metric(&app, "safereach_urgent_items_open").await, 1.0);
        assert!(metric(&app, "safereach_urgent_oldest_age_seconds").await >= 0.0);

        // Nobody acknowledged it in 15 minutes: the next of each list (round the email list).
        let app = app.restart_at("2026-11-28T23:56:00Z", |_| {}).await;
        wait_for_sms_to(&app, SECOND, 1).await;
        let case = app.wait_for_case("OC-1", "step 1 recorded", |c| events(c, "oncall_notified").len() == 4).await;
        let steps: Vec<(i64, i64)> = events(&case, "oncall_notified")
            .iter()
            .map(|e| (e["detail"]["step"].as_i64().unwrap(), e["detail"]["contact"].as_i64().unwrap()))
            .collect();
        assert_eq!(steps.iter().filter(|(step, _)| *step == 1).count(), 2, "{steps:?}");
        assert!(steps.contains(&(1, 1)) && steps.contains(&(1, 0)), "SMS contact 2, email contact 1 again: {steps:?}");
        assert!(metric(&app, "safereach_urgent_oldest_age_seconds").await >= 16.0 * 60.0);

        // The duty manager acknowledges it on the review page: the escalation stops.
        let mut staff = StaffClient::new(&app);
        staff.login(APPROVER, PASSWORD).await;
        let page = staff.get("/staff/review").await;
        let url = ack_url(&page.body, "/staff/review/alerts/");
        let done = staff.post(&url, &[("reason", "called the victim back; police attending")]).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let (_, case) = app.get_case("OC-1").await;
        let ack = events(&case, "oncall_acknowledged");
        assert_eq!(ack.len(), 1, "{case:#}");
        assert_eq!(ack[0]["actor"], format!("staff:{APPROVER}"));
        let waited = ack[0]["detail"]["waited_seconds"].as_i64().unwrap();
        assert!((16 * 60..17 * 60).contains(&waited), "waited {waited} s");
        assert_eq!(metric(&app, "safereach_urgent_items_open").await, 0.0);
        assert_eq!(metric(&app, "safereach_urgent_oldest_age_seconds").await, 0.0);

        // The report: it arrived outside staffed hours (Saturday night) and waited 16 minutes.
        let (status, report) = app.get("/v1/reports/monthly?month=2026-11").await;
        assert_eq!(status, StatusCode::OK);
        let staffed = &report["staffed_hours"];
        assert_eq!(staffed["hours"], "mon-fri 08:00-20:00; sat 09:00-17:00");
        assert_eq!((staffed["urgent_items"].as_u64(), staffed["outside_staffed_hours"].as_u64()), (Some(1), Some(1)));
        assert_eq!(staffed["max_wait_seconds"].as_i64(), Some(waited));
        assert_eq!(staffed["median_wait_seconds"].as_i64(), Some(waited));
        assert_eq!(staffed["items"][0]["arrived_at"], "2026-11-28T23:40:00Z");
        assert_eq!(staffed["items"][0]["classification"], "distress");
        assert!(staffed["items"][0].get("case_ref").is_none(), "the commissioner's figures name no case");
        let page = staff.get("/staff/reports?month=2026-11").await.body;
        assert!(page.contains("<strong data-test=\"outside\">1</strong> of 1 urgent replies"), "{page}");
        assert!(page.contains("<strong data-test=\"max-wait\">16 min</strong>"));
        assert!(page.contains("href=\"/staff/cases/OC-1\""));

        let sent_before = app.sent_sms().len();
        let app = app.restart_at("2026-11-29T00:30:00Z", |_| {}).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(app.sent_sms().len(), sent_before, "nobody is notified after the acknowledgement");
        let steps: i64 = sqlx::query_scalar("SELECT MAX(step) FROM oncall_notifications")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(steps, 1);
        // Nothing was ever texted back to the victim.
        assert_eq!(app.sent_sms().iter().filter(|l| l["to"] == VICTIM).count(), 1);
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn an_unsafe_reply_and_distress_from_an_unknown_number_are_urgent_and_other_replies_are_not() {
        let app = spawn_with(Options {
            clock: Some("2026-11-23T10:00:00Z".into()),
            configure: Box::new(|c| c.oncall_sms = vec![FIRST.into()]),
            ..Options::default()
        })
        .await;
        sent_pretext(&app, "OC-2").await;
        for body in ["after 5 please", "ok thanks", "STOP"] {
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": VICTIM, "body": body})).await;
        }
        let (_, wrong) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": VICTIM, "body": "wrong number"})).await;
        assert_eq!(wrong["classification"], "unsafe");
        let unsafe_sms = wait_for_sms_to(&app, FIRST, 1).await;
        assert!(unsafe_sms[0]["body"].as_str().unwrap().contains("Case OC-2."));
        // An unknown number: on no case, so the wording says so.
        let (_, unknown) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900777", "body": "please help me"})).await;
        assert_eq!((unknown["classification"].as_str(), unknown["matched"].as_bool()), (Some("distress"), Some(false)));
        let both = wait_for_sms_to(&app, FIRST, 2).await;
        assert!(both[1]["body"].as_str().unwrap().contains("From a number on no case."), "{both:?}");
        // An unsafe reply from an unknown number is not urgent (no case to be unsafe about).
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900778", "body": "who is this"})).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(wait_for_sms_to(&app, FIRST, 2).await.len(), 2, "only the two urgent replies notified");
        assert_eq!(metric(&app, "safereach_urgent_items_open").await, 2.0);

        // Acknowledging the unknown number's reply stops its escalation.
        let mut staff = StaffClient::new(&app);
        staff.login(APPROVER, PASSWORD).await;
        let page = staff.get("/staff/review").await;
        let url = ack_url(&page.body, "/staff/review/replies/");
        assert_eq!(staff.post(&url, &[("reason", "a friend's phone; called back")]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(metric(&app, "safereach_urgent_items_open").await, 1.0);
        let open: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT classification, escalate_at FROM urgent_items WHERE acknowledged_at IS NULL")
                .fetch_all(app.state.store.pool())
                .await
                .unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].0, "unsafe");
        // Monday morning: both arrived in staffed hours.
        let (_, report) = app.get("/v1/reports/monthly?month=2026-11").await;
        let staffed = &report["staffed_hours"];
        assert_eq!((staffed["urgent_items"].as_u64(), staffed["outside_staffed_hours"].as_u64()), (Some(2), Some(0)));
        assert_eq!(staffed["items"], json!([]));
        // Erasure takes the case's reference off its urgent items too; the counts stay.
        let eraser = app.key_with(&["cases:erase"]).await;
        let erased = app.http.delete(app.url("/v1/cases/OC-2")).bearer_auth(&eraser).send().await.unwrap();
        assert!(erased.status().is_success(), "{}", erased.status());
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM urgent_items WHERE case_ref = 'OC-2'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
        let (_, after) = app.get("/v1/reports/monthly?month=2026-11").await;
        assert_eq!(after["staffed_hours"], report["staffed_hours"]);
        app.stop().await;
    }
}

/// The on-call work waiting in the database: (notification ids of `step`, the item id).
async fn oncall_ids(app: &TestApp, step: i64) -> (Vec<String>, String) {
    let pool = app.state.store.pool();
    let item: String = sqlx::query_scalar("SELECT id FROM urgent_items").fetch_one(pool).await.unwrap();
    let ids = sqlx::query_scalar("SELECT id FROM oncall_notifications WHERE step = $1 ORDER BY id")
        .bind(step)
        .fetch_all(pool)
        .await
        .unwrap();
    (ids, item)
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_provider_outage_fails_over_and_a_notification_in_doubt_goes_to_the_next_contact_not_again() {
        // Twilio first, the sandbox behind it. The test runs the worker itself, one step at a time.
        let twilio = TwilioStandIn::start().await;
        let base = twilio.base_url();
        let app = spawn_with(Options {
            clock: Some("2026-11-23T10:00:00Z".into()),
            role: Role::Api,
            configure: Box::new(move |c| {
                rota(c);
                c.oncall_email = vec![];
                c.sms_provider = "twilio,sandbox".into();
                c.twilio_account_sid = Some(standin::ACCOUNT_SID.into());
                c.twilio_auth_token = Some(standin::AUTH_TOKEN.into());
                c.twilio_from = Some(standin::FROM.into());
                c.twilio_base_url = base;
            }),
            ..Options::default()
        })
        .await;
        let worker = app.state.worker();
        let (_, unknown) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900777", "body": "999"})).await;
        assert_eq!(unknown["classification"], "distress");

        // Twilio answers 503 once our request reached it: it may have the text. Never sent again.
        twilio.shared.failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let (step0, item) = oncall_ids(&app, 0).await;
        assert_eq!(step0.len(), 1);
        assert_eq!(safereach::service::oncall::process(&worker, &step0[0]).await.unwrap(), Processed::DeadLettered);
        assert_eq!(twilio.requests(), 1);
        assert!(app.sent_sms().is_empty(), "not failed over either: the first contact may have it");
        // The escalation moved to now: the second contact is notified at once, not in 15 minutes.
        twilio.shared.failing.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(safereach::service::oncall::process(&worker, &item).await.unwrap(), Processed::Skipped);
        let (step1, _) = oncall_ids(&app, 1).await;
        assert_eq!(step1.len(), 1, "the next step was notified at once");
        assert!(matches!(safereach::service::oncall::process(&worker, &step1[0]).await.unwrap(), Processed::Sent { .. }));
        let created = twilio.created();
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].form["To"], SECOND);
        assert!(created[0].form["Body"].contains("From a number on no case"));
        // Run again (a queue delivering twice), the one in doubt still goes nowhere.
        assert_eq!(safereach::service::oncall::process(&worker, &step0[0]).await.unwrap(), Processed::Skipped);
        assert_eq!(twilio.requests(), 2);
        let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM oncall_notifications ORDER BY step")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(statuses, ["in_doubt", "sent"]);

        // Twilio stops answering at all (an outage: nothing reached it): the text fails over.
        twilio.stop().await;
        let (_, again) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900778", "body": "he's here help"})).await;
        assert_eq!(again["classification"], "distress");
        let id: String = sqlx::query_scalar(
            "SELECT n.id FROM oncall_notifications n JOIN urgent_items u ON u.id = n.item_id
             WHERE u.id <> $1 AND n.step = 0",
        )
        .bind(&item)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
        assert!(matches!(safereach::service::oncall::process(&worker, &id).await.unwrap(), Processed::Sent { .. }));
        let sms = app.sent_sms();
        assert_eq!(sms.len(), 1, "{sms:?}");
        assert_eq!(sms[0]["to"], FIRST);
        app.stop().await;
    }
}
