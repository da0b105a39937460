//! Safe-contact v2 over HTTP: a case remembers what it is about, a number is someone else's on
//! the same case too, one number has one key whichever way it is written, calls decide, the last
//! check is the claim, retries use the wording approved now, and a cancel says when it is too late.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use safereach::app::{AppState, Role};
use safereach::worker::{ClaimHook, Processed};
use serde_json::{Value, json};

use crate::common::{APPROVER, AUTHOR, Options, TestApp, pretext, spawn_with};
use crate::standin::{self, TwilioStandIn};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

async fn spawn(role: Role) -> TestApp {
    spawn_with(Options { clock: Some(MONDAY_10AM.into()), role, ..Options::default() }).await
}

fn job(request_id: &str, case_ref: &str, kind: &str, categories: &[&str], phones: Value) -> Value {
    json!({
        "request_id": request_id, "case_ref": case_ref, "kind": kind,
        "referral": {"source": "police", "referred_at": "2026-11-23T08:00:00Z"},
        "crime": {"categories": categories},
        "victim": {"first_name": "Robin"},
        "contact": {"phones": phones},
        "consent": {"information_pack": true}
    })
}

fn decision(answer: &Value) -> (&str, &str, &str) {
    let d = &answer["decision"];
    (d["outcome"].as_str().unwrap_or("-"), d["reason"].as_str().unwrap_or("-"), d["template"].as_str().unwrap_or("-"))
}

fn id_of(answer: &Value) -> String {
    answer["outreach_id"].as_str().expect("an outreach id").to_string()
}

async fn call(app: &TestApp, case_ref: &str, body: Value) -> Value {
    let (status, answer) = app.post_json(&format!("/v1/cases/{case_ref}/calls"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

fn job_in<'a>(case: &'a Value, id: &str) -> &'a Value {
    case["outreach"].as_array().unwrap().iter().find(|o| o["outreach_id"] == id).expect("the job is on the case")
}

on_backends! {
    async fn a_case_remembers_it_is_safety_sensitive_and_priority() {
        let app = spawn(Role::Serve).await;
        let safe = json!([{"number": "+447700900601", "belongs_to": "victim", "safe_to_text": true}]);
        let (_, first) = app.post_outreach(&job("mem-1", "MEM-1", "priority_pretext", &["domestic_abuse"], safe.clone())).await;
        assert_eq!(decision(&first), ("send", "-", "priority_pretext_discreet"));
        app.wait_for_message("MEM-1", "sent").await;

        // The follow-up says only `burglary`, to a phone never marked safe to text: the case is still
        // a domestic-abuse case, so no ordinary pack, and no text to an unmarked phone.
        let unmarked = json!([{"number": "07700 900602", "belongs_to": "victim"}]);
        let mut follow_up = job("mem-2", "MEM-1", "information_pack", &["burglary"], unmarked);
        follow_up["contact"]["preferred_method"] = json!("sms");
        let (_, second) = app.post_outreach(&follow_up).await;
        assert_eq!(decision(&second), ("block", "written_unsafe", "-"));

        // Retention removes the personal data of what went before (40 days on); the case still
        // remembers, so the pack to the safe phone is the discreet one.
        let store = &app.state.store;
        let config = safereach::service::retention::RetentionConfig::from_config(&app.state.config);
        let later = app.state.clock.now_ms() + 40 * 86_400_000;
        let swept = safereach::service::retention::sweep(store, &config, later, &app.state.metrics).await.unwrap();
        assert!(swept.requests >= 2 && swept.messages >= 1, "{swept:?}");
        let mut safe_pack = job("mem-3", "MEM-1", "information_pack", &["burglary"], safe);
        safe_pack["contact"]["preferred_method"] = json!("sms");
        let (_, third) = app.post_outreach(&safe_pack).await;
        assert_eq!(decision(&third), ("send", "-", "information_pack_discreet"));
        let case = app.wait_for_case("MEM-1", "the pack sent", |c| c["messages"].as_array().unwrap().len() == 2).await;
        assert_eq!(case["messages"][1]["template"], "information_pack_discreet");
        let body = case["messages"][1]["body"].as_str().unwrap();
        assert!(!body.contains("Victim Care"), "discreet wording names no organisation: {body}");

        // Priority too: a pack with `priority` absent on a case once priority waits for the calls
        // (rule 12) instead of being held as possible priority (rule 4).
        let mut priority_case = job("mem-4", "MEM-4", "priority_pretext", &["terrorism"], json!([{"number": "+447700900604"}]));
        priority_case["victim"]["first_name"] = json!("Sam");
        let (_, pretext_answer) = app.post_outreach(&priority_case).await;
        assert_eq!(decision(&pretext_answer).0, "send");
        let mut pack = job("mem-5", "MEM-4", "information_pack", &["burglary"], json!([{"number": "+447700900604"}]));
        pack["crime"]["summary"] = json!("her ex-partner broke in");
        let (_, pack_answer) = app.post_outreach(&pack).await;
        assert_eq!(decision(&pack_answer), ("defer", "calls_first", "information_pack"));
        assert_eq!(pack_answer["decision"]["not_before"], "2026-11-24T08:00:00Z");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_number_recorded_as_someone_elses_on_the_same_case_is_held() {
        let app = spawn(Role::Api).await;
        // The first job names the suspect's number.
        let phones = json!([
            {"number": "+447700900611", "belongs_to": "victim", "safe_to_text": true},
            {"number": "07700 900612", "belongs_to": "suspect"}
        ]);
        let (_, first) = app.post_outreach(&job("conf-1", "CONF-1", "priority_pretext", &["burglary"], phones)).await;
        assert_eq!(decision(&first).0, "send");
        // A later request on the same case lists that number, written another way, as the victim's.
        let later = json!([{"number": "0044 7700 900612", "belongs_to": "victim", "safe_to_text": true}]);
        let mut pack = job("conf-2", "CONF-1", "information_pack", &["burglary"], later);
        pack["contact"]["preferred_method"] = json!("sms");
        let (_, second) = app.post_outreach(&pack).await;
        assert_eq!(decision(&second), ("hold", "number_conflict", "-"));
        // And a single request that lists one number as both the victim's and the partner's.
        let both = json!([
            {"number": "+447700900613", "belongs_to": "victim", "safe_to_text": true},
            {"number": "447700900613", "belongs_to": "partner"}
        ]);
        let (_, third) = app.post_outreach(&job("conf-3", "CONF-3", "priority_pretext", &["burglary"], both)).await;
        assert_eq!(decision(&third), ("hold", "number_conflict", "-"));
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_stop_in_any_written_form_protects_the_number() {
        let app = spawn(Role::Serve).await;
        for (n, sender) in ["00447700900621", "447700900622", "07700 900623", "+44 (0)7700 900624"].iter().enumerate() {
            let number = format!("+44770090062{}", n + 1);
            let case_ref = format!("STOP-{n}");
            let mut first = pretext(&format!("stop-{n}"), &case_ref);
            first["contact"]["phones"][0]["number"] = json!(number);
            app.post_outreach(&first).await;
            app.wait_for_message(&case_ref, "sent").await;
            let (_, reply) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": sender, "to": "60000", "body": "STOP"})).await;
            assert_eq!((reply["classification"].as_str(), reply["matched"].as_bool()), (Some("opt_out"), Some(true)), "{sender}: {reply}");
            // Another case, the number written as E.164: suppressed.
            let mut again = pretext(&format!("stop-again-{n}"), &format!("STOP-AGAIN-{n}"));
            again["contact"]["phones"][0]["number"] = json!(number);
            let (_, answer) = app.post_outreach(&again).await;
            assert_eq!(decision(&answer), ("block", "suppressed", "-"), "{sender}");
        }
        let sent: Vec<String> = app.sent_sms().iter().map(|m| m["to"].as_str().unwrap().to_string()).collect();
        assert_eq!(sent.len(), 4, "one text each, none after the STOP: {sent:?}");
        app.stop().await;
    }
}

on_backends! {
    async fn a_declined_call_blocks_every_job_of_the_case_and_keeps_its_reason() {
        let app = spawn(Role::Api).await;
        let phones = json!([{"number": "+447700900631", "safe_to_text": true}]);
        // A priority pack waiting for calls, a pre-text queued (no worker runs), and a minor's pack held.
        let mut deferred = job("dec-1", "DEC-1", "information_pack", &["serious_violence"], phones.clone());
        deferred["priority"] = json!(true);
        let (_, deferred) = app.post_outreach(&deferred).await;
        assert_eq!(decision(&deferred).1, "calls_first");
        let (_, queued) = app.post_outreach(&job("dec-2", "DEC-1", "priority_pretext", &["serious_violence"], phones.clone())).await;
        assert_eq!(queued["status"], "queued");
        let mut minor = job("dec-3", "DEC-1", "information_pack", &["serious_violence"], phones.clone());
        minor["priority"] = json!(true);
        minor["victim"]["is_under_18"] = json!(true);
        minor["request_id"] = json!("dec-3");
        let (_, held) = app.post_outreach(&minor).await;
        assert_eq!(decision(&held).1, "minor");

        let reason = "Has support from her sister, does not want contact";
        let answer = call(&app, "DEC-1", json!({"at": "2026-11-23T09:45:00Z", "outcome": "declined", "reason": reason})).await;
        let stopped: Vec<(&str, &str)> = answer["stopped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["outreach_id"].as_str().unwrap(), s["reason"].as_str().unwrap()))
            .collect();
        let (d, q, h) = (id_of(&deferred), id_of(&queued), id_of(&held));
        assert_eq!(stopped, [(d.as_str(), "declined"), (q.as_str(), "declined"), (h.as_str(), "declined")], "{answer}");
        assert_eq!(answer["too_late"], json!([]));

        // The worker finds the queued job blocked: nothing is sent.
        assert_eq!(app.state.worker().process(&q).await.unwrap(), Processed::Skipped);
        let (_, case) = app.get_case("DEC-1").await;
        assert!(case["messages"].as_array().unwrap().is_empty(), "{case}");
        for id in [&d, &q, &h] {
            let job = job_in(&case, id);
            assert_eq!((job["status"].as_str(), job["decision"]["reason"].as_str()), (Some("blocked"), Some("declined")));
        }
        assert_eq!(case["calls"][0]["outcome"], "declined");
        assert_eq!(case["calls"][0]["reason"], reason, "kept for the report");
        let timeline = case["timeline"].as_array().unwrap();
        let call_event = timeline.iter().find(|e| e["type"] == "call").unwrap();
        assert_eq!(call_event["detail"]["outcome"], "declined");
        assert_eq!(call_event["detail"]["reason_given"], true);
        assert!(!call_event.to_string().contains("sister"), "the reason is not on the timeline: {call_event}");
        let decided = timeline.iter().filter(|e| e["type"] == "decided" && e["reason"] == "declined").count();
        assert_eq!(decided, 3);

        // A later job of the case is blocked at once.
        let (_, later) = app.post_outreach(&job("dec-4", "DEC-1", "information_pack", &["burglary"], phones)).await;
        assert_eq!(decision(&later), ("block", "declined", "-"));

        // Staff see the call, its outcome and its reason on the case page.
        let mut staff = crate::staff::StaffClient::new(&app);
        staff.login(AUTHOR, crate::common::PASSWORD).await;
        let page = staff.get("/staff/cases/DEC-1").await.body;
        assert!(page.contains(r#"data-test="call" data-outcome="declined""#), "{page}");
        assert!(page.contains(reason));
        assert!(page.contains("Call attempt"));

        // The reason is personal, but the report groups the reasons: retention keeps it past
        // the not-taken-up period (7 days) for SAFEREACH_RETENTION_CALL_REASON_DAYS (100), then
        // removes it.
        let config = safereach::service::retention::RetentionConfig::from_config(&app.state.config);
        let sweep_after = |days: i64| {
            let at = app.state.clock.now_ms() + days * 86_400_000;
            let (store, config, metrics) = (&app.state.store, &config, &app.state.metrics);
            async move { safereach::service::retention::sweep(store, config, at, metrics).await.unwrap() }
        };
        assert_eq!(sweep_after(8).await.call_reasons, 0);
        let (_, case) = app.get_case("DEC-1").await;
        assert_eq!(case["calls"][0]["reason"], reason, "kept for the quarter's report");
        let swept = sweep_after(101).await;
        assert_eq!(swept.call_reasons, 1, "{swept:?}");
        let (_, case) = app.get_case("DEC-1").await;
        assert_eq!((case["calls"][0]["outcome"].as_str(), case["calls"][0]["reason"].as_str()), (Some("declined"), None));
        app.stop().await;
    }
}

on_backends! {
    async fn a_wrong_number_suppresses_the_number_called_or_every_victim_number_of_the_case() {
        let app = spawn(Role::Api).await;
        // With the number: only that one.
        let phones = json!([
            {"number": "+447700900641", "safe_to_text": true},
            {"number": "+447700900642", "safe_to_text": true}
        ]);
        let (_, first) = app.post_outreach(&job("wn-1", "WN-1", "priority_pretext", &["burglary"], phones)).await;
        let answer = call(&app, "WN-1", json!({"at": "2026-11-23T09:50:00Z", "outcome": "wrong_number", "number": "07700 900641"})).await;
        assert_eq!(answer["suppressed_numbers"], 1);
        // The queued pre-text would use that number: stopped.
        assert_eq!(answer["stopped"], json!([{"outreach_id": id_of(&first), "status": "blocked", "reason": "suppressed"}]));
        let elsewhere = |n: &str, request: &str| {
            let mut j = pretext(request, &format!("{}-CASE", request.to_uppercase()));
            j["contact"]["phones"][0]["number"] = json!(n);
            j
        };
        let (_, a) = app.post_outreach(&elsewhere("+447700900641", "wn-2")).await;
        assert_eq!(decision(&a), ("block", "suppressed", "-"));
        let (_, b) = app.post_outreach(&elsewhere("+447700900642", "wn-3")).await;
        assert_eq!(decision(&b).0, "send", "the other number is not suppressed");
        // A START from the wrong number does not lift it (only an opt-out is lifted that way).
        let (_, start) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": "447700900641", "to": "60000", "body": "START"})).await;
        assert_eq!(start["classification"], "opt_in");
        let (_, c) = app.post_outreach(&elsewhere("+447700900641", "wn-4")).await;
        assert_eq!(decision(&c), ("block", "suppressed", "-"));

        // Without the number: every number recorded as the victim's on the case, not the suspect's.
        let phones = json!([
            {"number": "+447700900651", "safe_to_text": true},
            {"number": "07700 900652", "belongs_to": "victim"},
            {"number": "+447700900653", "belongs_to": "suspect"}
        ]);
        app.post_outreach(&job("wn-5", "WN-5", "priority_pretext", &["burglary"], phones)).await;
        let answer = call(&app, "WN-5", json!({"at": "2026-11-23T09:55:00Z", "outcome": "wrong_number"})).await;
        assert_eq!(answer["suppressed_numbers"], 2);
        for (n, request, want) in [
            ("+447700900651", "wn-6", "suppressed"),
            ("+447700900652", "wn-7", "suppressed"),
            // Not suppressed: rule 7 (someone else's number) is what holds it.
            ("+447700900653", "wn-8", "number_conflict"),
        ] {
            let (_, answer) = app.post_outreach(&elsewhere(n, request)).await;
            assert_eq!(decision(&answer).1, want, "{n}");
        }
        let (_, case) = app.get_case("WN-5").await;
        assert_eq!(case["calls"][0]["number_given"], false);
        let suppressed = case["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "suppressed").unwrap();
        assert_eq!((suppressed["reason"].as_str(), suppressed["detail"]["numbers"].as_i64()), (Some("wrong_number"), Some(2)));
        let (_, case) = app.get_case("WN-1").await;
        assert_eq!(case["calls"][0]["number_given"], true);
        // Erasure takes the call's number (its keyed hash) with the case; the suppression stays.
        let pool = app.state.store.pool().clone();
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
        };
        assert_eq!(count("SELECT COUNT(*) FROM calls WHERE number_key IS NOT NULL").await, 1);
        safereach::service::erasure::erase_in_database(&app.state.store, "WN-1", app.state.clock.now_ms(), "admin").await.unwrap().unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM calls WHERE number_key IS NOT NULL").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM case_categories WHERE case_ref = 'WN-1'").await, 0);
        let (_, d) = app.post_outreach(&elsewhere("+447700900641", "wn-9")).await;
        assert_eq!(decision(&d), ("block", "suppressed", "-"));
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn only_calls_that_tried_to_reach_the_victim_count_for_calls_first() {
        let app = spawn(Role::Api).await;
        let mut pack = job("cf-1", "CF-1", "information_pack", &["serious_violence"], json!([{"number": "+447700900661", "safe_to_text": true}]));
        pack["priority"] = json!(true);
        let (_, deferred) = app.post_outreach(&pack).await;
        assert_eq!(decision(&deferred).1, "calls_first");
        let id = id_of(&deferred);
        // A wrong number to another phone and a no-answer: one attempt, still waiting.
        call(&app, "CF-1", json!({"at": "2026-11-23T09:00:00Z", "outcome": "wrong_number", "number": "+447700900669"})).await;
        call(&app, "CF-1", json!({"at": "2026-11-23T09:10:00Z", "outcome": "no_answer"})).await;
        let processed = app.state.worker().process(&id).await.unwrap();
        assert!(matches!(&processed, Processed::Decided(d) if d.reason() == Some(safereach::domain::ReasonCode::CallsFirst)), "{processed:?}");
        // A voicemail: two attempts, the pack goes.
        call(&app, "CF-1", json!({"at": "2026-11-23T09:20:00Z", "outcome": "voicemail"})).await;
        assert!(matches!(app.state.worker().process(&id).await.unwrap(), Processed::Sent { .. }));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_call_is_validated_and_a_junk_one_stores_nothing() {
    let app = spawn(Role::Api).await;
    app.post_outreach(&pretext("val-1", "VAL-1")).await;
    for (body, field) in [
        (json!({"at": "2026-11-23T09:00:00Z", "outcome": "declined", "reason": "x".repeat(4001)}), "reason"),
        (json!({"at": "2026-11-23T09:00:00Z", "outcome": "wrong_number", "number": " "}), "number"),
        (json!({"at": "2026-11-23T09:00:00Z", "outcome": "declined", "reason": 7}), "reason"),
        (json!({"at": "2026-11-24T09:00:00Z", "outcome": "declined"}), "at"),
    ] {
        let (status, problem) = app.post_json("/v1/cases/VAL-1/calls", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (_, case) = app.get_case("VAL-1").await;
    assert!(case["calls"].as_array().unwrap().is_empty());
    assert_eq!(case["outreach"][0]["status"], "queued", "nothing was decided again");
    app.stop().await;
}

/// What the hook did while the worker was between its decision and its claim.
#[derive(Default)]
struct Between {
    /// The action's answer came back during the pause: it committed before the claim.
    committed_before_claim: AtomicBool,
    /// The action, still running when the pause ended.
    task: Mutex<Option<tokio::task::JoinHandle<(StatusCode, Value)>>>,
}

/// A hook that, between the worker's decision and its claim, fires `action` through the real API
/// and waits up to a second for it to commit.
fn pause_with(
    between: Arc<Between>,
    action: impl Fn() -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> ClaimHook {
    let action = Arc::new(action);
    Arc::new(move |_outreach_id: String| {
        let (between, action) = (between.clone(), action.clone());
        Box::pin(async move {
            let mut task = tokio::spawn(async move { crate::common::read(action().send().await.unwrap()).await });
            if tokio::time::timeout(Duration::from_secs(1), &mut task).await.is_ok() {
                between.committed_before_claim.store(true, Ordering::SeqCst);
            } else {
                *between.task.lock().unwrap() = Some(task);
            }
        })
    })
}

on_backends! {
    sqlite, postgres, postgres_redis;
    async fn an_opt_out_a_cancel_or_a_decline_between_decide_and_claim_cannot_slip_through() {
        let app = spawn(Role::Api).await;
        // The worker is another process on the same database (its own pool, and on SQLite its own
        // write turn): only the database keeps the two apart.
        let worker_process = AppState::build(app.config.clone(), false).await.expect("a second process");
        let http = reqwest::Client::new();
        let webhook = app.url(&format!("/webhooks/sandbox/inbound?token={}", app.token));
        let key = app.key.clone();
        type Action = Box<dyn Fn(&str) -> Box<dyn Fn() -> reqwest::RequestBuilder + Send + Sync> + Send + Sync>;
        let actions: Vec<(&str, Action)> = vec![
            ("opt-out", {
                let (http, webhook) = (http.clone(), webhook.clone());
                Box::new(move |_case: &str| {
                    let (http, webhook) = (http.clone(), webhook.clone());
                    // The victim's number (scenario 0's) as a provider may give it.
                    Box::new(move || http.post(&webhook).json(&json!({"from": "0044 7700 900700", "to": "60000", "body": "STOP"})))
                })
            }),
            ("case cancel", {
                let (http, base, key) = (http.clone(), app.base.clone(), key.clone());
                Box::new(move |case: &str| {
                    let (http, url, key) = (http.clone(), format!("{base}/v1/cases/{case}/cancel"), key.clone());
                    Box::new(move || http.post(&url).bearer_auth(&key).json(&json!({})))
                })
            }),
            ("declined call", {
                let (http, base, key) = (http.clone(), app.base.clone(), key.clone());
                Box::new(move |case: &str| {
                    let (http, url, key) = (http.clone(), format!("{base}/v1/cases/{case}/calls"), key.clone());
                    Box::new(move || http.post(&url).bearer_auth(&key).json(&json!({"at": MONDAY_10AM, "outcome": "declined"})))
                })
            }),
        ];
        for (n, (what, action)) in actions.iter().enumerate() {
            let case_ref = format!("RACE-{n}");
            let job = |request_id: String| {
                let mut job = pretext(&request_id, &case_ref);
                job["contact"]["phones"][0]["number"] = json!(format!("+44770090070{n}"));
                job
            };
            let (_, answer) = app.post_outreach(&job(format!("race-{n}"))).await;
            assert_eq!(answer["status"], "queued");
            let between = Arc::new(Between::default());
            let mut worker = worker_process.worker();
            worker.before_claim = Some(pause_with(between.clone(), action(&case_ref)));
            let sent_before = app.sent_sms().len();
            let processed = worker.process(&id_of(&answer)).await.unwrap();
            let late = between.task.lock().unwrap().take();
            if let Some(task) = late {
                let (status, late_answer) = task.await.unwrap();
                assert!(status.is_success(), "{what}: {status} {late_answer}");
                // A cancel or a call that came after the claim finds the message on its way (too
                // late) or already sent: it stops nothing else.
                if let Some(too_late) = late_answer["too_late"].as_array() {
                    assert!(too_late.is_empty() || too_late == &[json!(id_of(&answer))], "{what}: {late_answer}");
                    assert_eq!(late_answer["stopped"].as_array().map_or(0, Vec::len), 0, "{what}: {late_answer}");
                }
            }
            let sent = app.sent_sms().len() - sent_before;
            // The point: whatever committed before the claim stopped the send.
            if between.committed_before_claim.load(Ordering::SeqCst) {
                assert_eq!((sent, &processed), (0, &Processed::Skipped), "{what} committed before the claim, yet sent");
            } else {
                // It waited for the claim: the message was on its way, sent once.
                assert!(matches!(processed, Processed::Sent { .. }), "{what}: {processed:?}");
                assert_eq!(sent, 1, "{what}");
            }
            // Either way, from now on nothing more goes to the case or, after the STOP, the number.
            let (_, again) = app.post_outreach(&job(format!("race-again-{n}"))).await;
            assert_eq!(again["decision"]["outcome"], "block", "{what}: {again}");
        }
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres, postgres_redis;
    async fn a_cancel_says_too_late_for_a_message_being_handed_to_a_provider() {
        let app = spawn(Role::Api).await;
        let (_, first) = app.post_outreach(&pretext("late-1", "LATE-1")).await;
        let mut pack = job("late-2", "LATE-1", "information_pack", &["burglary"], json!([{"number": "+447700900555"}]));
        pack["contact"]["preferred_method"] = json!("sms");
        let (_, second) = app.post_outreach(&pack).await;
        assert_eq!(second["status"], "queued");
        let (first_id, second_id) = (id_of(&first), id_of(&second));
        app.start_sending(&first_id, "LATE-1").await;
        let (status, answer) = app.post_json(&format!("/v1/outreach/{first_id}/cancel"), &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["status"], "too_late", "{answer}");
        let (_, answer) = app.post_json("/v1/cases/LATE-1/cancel", &json!({})).await;
        assert_eq!(answer, json!({"case_ref": "LATE-1", "status": "cancelled", "too_late": [first_id]}));
        let (_, case) = app.get_case("LATE-1").await;
        assert_eq!(job_in(&case, &second_id)["status"], "cancelled");
        assert_eq!(job_in(&case, &first_id)["status"], "queued", "its message goes");
        // Once sent, a cancel says so.
        let message_id = case["messages"][0]["id"].as_str().unwrap().to_string();
        let mut tx = app.state.store.begin().await.unwrap();
        app.state.store.mark_sent(&mut tx, &message_id, "sandbox", &message_id, app.state.clock.now_ms()).await.unwrap();
        app.state.store.set_outreach_status(&mut tx, &first_id, safereach::domain::JobStatus::Sent, app.state.clock.now_ms()).await.unwrap();
        tx.commit().await.unwrap();
        let (_, answer) = app.post_json(&format!("/v1/outreach/{first_id}/cancel"), &json!({})).await;
        assert_eq!(answer["status"], "sent");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_retry_renders_the_wording_approved_now() {
        // Twilio cannot be reached at first: nothing is sent, the job is retried.
        let twilio = TwilioStandIn::start().await;
        let (base, port) = (twilio.base_url(), twilio.addr.port());
        let shared = twilio.stop().await;
        let app = spawn_with(Options {
            clock: Some(MONDAY_10AM.into()),
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
        let (_, answer) = app.post_outreach(&pretext("retry-1", "RETRY-1")).await;
        let id = id_of(&answer);
        assert!(matches!(app.state.worker().process(&id).await.unwrap(), Processed::Retrying { .. }));
        let (_, case) = app.get_case("RETRY-1").await;
        assert_eq!(
            (case["messages"][0]["status"].as_str(), case["messages"][0]["template_version"].as_i64()),
            (Some("queued"), Some(1))
        );

        // Meanwhile staff approve new wording; version 1 is retired.
        let store = &app.state.store;
        let now = app.state.clock.now_ms();
        let v1 = store
            .template_versions()
            .await
            .unwrap()
            .into_iter()
            .find(|v| v.name == "priority_pretext" && v.state == "approved")
            .unwrap();
        let mut source = safereach::service::templates::source_of(&v1).unwrap();
        source.content.body = "Hello{{#if first_name}} {{first_name}}{{/if}}, Northgate Victim Care here: we will ring you soon. When suits you? Reply any time.".into();
        let v2 = safereach::service::templates::save_draft(store, &source, AUTHOR, now).await.unwrap();
        safereach::service::templates::submit(store, &v2.id, AUTHOR, now).await.unwrap();
        safereach::service::templates::approve(store, &v2.id, APPROVER, None, now).await.unwrap();

        // Twilio is back: the retry sends version 2's wording, never the retired one.
        let twilio = TwilioStandIn::start_on(port, shared).await;
        assert!(matches!(app.state.worker().process(&id).await.unwrap(), Processed::Sent { .. }));
        let created = twilio.created();
        assert_eq!(created.len(), 1);
        assert_eq!(
            created[0].form["Body"],
            "Hello Robin, Northgate Victim Care here: we will ring you soon. When suits you? Reply any time."
        );
        let (_, case) = app.get_case("RETRY-1").await;
        let message = &case["messages"][0];
        assert_eq!(
            (message["template_version"].as_i64(), message["body"].as_str()),
            (Some(2), created[0].form.get("Body").map(String::as_str))
        );
        let sent = message["events"].as_array().unwrap().iter().find(|e| e["type"] == "sent").unwrap();
        assert_eq!(sent["detail"]["template_version"], 2);
        app.stop().await;
    }
}
