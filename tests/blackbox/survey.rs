//! The Tier 1 satisfaction survey (issue 15) and the report as the commissioner reads it: surveys
//! decided under the safe-contact rules through the API, sent by the worker, answered by replies
//! through the sandbox callback and counted; the 2015 report's first line, the declined reasons
//! and the percents of referrals, in JSON, CSV and on the staff page.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, pretext, read, spawn_at};

/// Monday 23 November 2026, 10:00 in London: inside quiet hours.
const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

fn number(n: u32) -> String {
    format!("+4477009002{n:02}")
}

/// A survey to the victim's own mobile number `n`, with consent.
fn survey(case: &str, n: u32, categories: &[&str]) -> Value {
    json!({
        "request_id": format!("{case}-survey"), "case_ref": case, "kind": "satisfaction_survey",
        "referral": {"source": "police", "referred_at": "2026-11-02T09:00:00Z"},
        "crime": {"categories": categories},
        "victim": {"first_name": "Robin"},
        "contact": {"phones": [{"number": number(n), "belongs_to": "victim", "safe_to_text": true}]},
        "consent": {"survey": true}
    })
}

fn decision(answer: &Value) -> (String, String, String, String) {
    let d = &answer["decision"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    (text(&d["outcome"]), text(&d["reason"]), text(&d["channel"]), text(&d["template"]))
}

async fn accept(app: &TestApp, body: &Value) -> Value {
    let (status, answer) = app.post_outreach(body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer
}

async fn reply(app: &TestApp, from: &str, body: &str) -> Value {
    let (status, answer) =
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": from, "to": "60000", "body": body})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn report(app: &TestApp, query: &str) -> Value {
    let (status, report) = app.get(&format!("/v1/reports/{query}")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

async fn csv(app: &TestApp, query: &str) -> String {
    let url = app.url(&format!("/v1/reports/{query}&format=csv"));
    app.http.get(url).bearer_auth(&app.key).send().await.unwrap().text().await.unwrap()
}

fn events_of<'a>(case: &'a Value, kind: &str) -> Vec<&'a Value> {
    case["timeline"].as_array().unwrap().iter().filter(|e| e["type"] == kind).collect()
}

on_backends! {
    async fn a_survey_is_decided_by_every_safe_contact_rule_and_sent_discreetly_when_it_must_be() {
        let app = spawn_at(MONDAY_10AM).await;
        let send = |channel: &str, template: &str| ("send".to_string(), "-".to_string(), channel.to_string(), template.to_string());
        let block = |reason: &str| ("block".to_string(), reason.to_string(), "-".to_string(), "-".to_string());

        // By text, with the wording that names the service.
        let plain = accept(&app, &survey("SV-1", 1, &["burglary"])).await;
        assert_eq!(decision(&plain), send("sms", "satisfaction_survey"));
        let message = app.wait_for_message("SV-1", "sent").await;
        let body = message["body"].as_str().unwrap();
        assert!(body.contains("Northgate Victim Care") && body.contains("1 (not at all) to 5"), "{body}");
        // One per case (rule 11).
        let mut again = survey("SV-1", 1, &["burglary"]);
        again["request_id"] = json!("SV-1-survey-again");
        assert_eq!(decision(&accept(&app, &again).await), block("duplicate"));

        // Consent to the survey itself (rule 2): the pack's consent is not enough.
        let mut no_consent = survey("SV-2", 2, &["burglary"]);
        no_consent["consent"] = json!({"information_pack": true});
        assert_eq!(decision(&accept(&app, &no_consent).await), block("no_consent"));

        // A safety-sensitive case gets the discreet text: no name of the service.
        let mut sensitive = survey("SV-3", 3, &["domestic_abuse"]);
        sensitive["contact"]["preferred_method"] = json!("sms");
        assert_eq!(decision(&accept(&app, &sensitive).await), send("sms", "satisfaction_survey_discreet"));
        let discreet = app.wait_for_message("SV-3", "sent").await;
        let body = discreet["body"].as_str().unwrap().to_lowercase();
        for word in ["northgate", "victim", "crime", "support"] {
            assert!(!body.contains(word), "{word} in {body}");
        }
        // …and never by letter, nor by a method it did not choose (rule 8).
        let mut letter = survey("SV-4", 4, &["stalking"]);
        letter["contact"]["preferred_method"] = json!("letter");
        letter["contact"]["postal"] = json!({"name": "Robin Ash", "lines": ["1 High Street"], "postcode": "B1 1AA", "safe": true});
        assert_eq!(decision(&accept(&app, &letter).await), block("written_unsafe"));

        // Email when that is the preferred method.
        let mut email = survey("SV-5", 5, &["theft"]);
        email["contact"]["email"] = json!({"address": "robin.sv5@example.org"});
        email["contact"]["preferred_method"] = json!("email");
        assert_eq!(decision(&accept(&app, &email).await), send("email", "satisfaction_survey"));
        app.wait_for_message("SV-5", "sent").await;

        // A minor is held for a person (rule 5); a number that is someone else's too (rule 7).
        let mut minor = survey("SV-6", 6, &["theft"]);
        minor["victim"]["is_under_18"] = json!(true);
        assert_eq!(decision(&accept(&app, &minor).await).0, "hold");
        let mut conflict = survey("SV-7", 7, &["theft"]);
        conflict["contact"]["phones"] = json!([
            {"number": number(7), "belongs_to": "victim", "safe_to_text": true},
            {"number": number(7), "belongs_to": "partner"}
        ]);
        assert_eq!(decision(&accept(&app, &conflict).await), ("hold".into(), "number_conflict".into(), "-".into(), "-".into()));

        // A victim who declined on a call gets no survey (rule 1a).
        accept(&app, &pretext("sv-8-pretext", "SV-8")).await;
        let (status, _) = app
            .post_json("/v1/cases/SV-8/calls", &json!({"at": "2026-11-23T09:00:00Z", "outcome": "declined"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(decision(&accept(&app, &survey("SV-8", 8, &["robbery"])).await), block("declined"));

        // Bad input names the field and stores nothing.
        let mut bad = survey("SV-9", 9, &["theft"]);
        bad["consent"]["survey"] = json!("yes");
        let (status, problem) = app.post_outreach(&bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem.to_string().contains("consent.survey"), "{problem}");
        assert_eq!(app.get_case("SV-9").await.0, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

on_backends! {
    async fn answers_to_a_survey_are_read_counted_and_never_outrank_distress() {
        let app = spawn_at(MONDAY_10AM).await;
        for (case, n) in [("SA-A", 1), ("SA-B", 2), ("SA-C", 3), ("SA-D", 4), ("SA-E", 5)] {
            accept(&app, &survey(case, n, &["burglary"])).await;
            app.wait_for_message(case, "sent").await;
        }
        // A pre-text's number: a digit in reply to it is no survey answer.
        let mut pre = pretext("sa-p", "SA-P");
        pre["contact"]["phones"][0]["number"] = json!(number(6));
        accept(&app, &pre).await;
        app.wait_for_message("SA-P", "sent").await;
        // A test key's survey, answered: it counts for nothing.
        let options = safereach::store::KeyOptions { test: true, rate_limit: 3000 };
        let scopes = ["outreach:write".to_string()];
        let now = app.state.clock.now_ms();
        let test_key =
            safereach::service::accounts::create_api_key_with(&app.state.store, "triage-test", &scopes, options, now, "test")
                .await
                .unwrap();
        let response =
            app.http.post(app.url("/v1/outreach")).bearer_auth(&test_key).json(&survey("SA-T", 7, &["theft"])).send().await;
        assert_eq!(read(response.unwrap()).await.0, StatusCode::ACCEPTED);
        app.wait_for_message("SA-T", "sent").await;
        let texts_sent = app.sent_sms().len();

        let classification = |answer: &Value| answer["classification"].as_str().unwrap().to_string();
        assert_eq!(classification(&reply(&app, &number(1), "5").await), "survey_answer");
        assert_eq!(classification(&reply(&app, "07700 900202", "4 thank you, it helped a lot").await), "survey_answer");
        assert_eq!(classification(&reply(&app, &number(3), "4").await), "survey_answer");
        // The latest answer counts: C changes their mind.
        assert_eq!(classification(&reply(&app, &number(3), "2.").await), "survey_answer");
        // Distress wins over a score.
        assert_eq!(classification(&reply(&app, &number(4), "1 help he's here").await), "distress");
        assert_eq!(classification(&reply(&app, &number(6), "3").await), "other");
        assert_eq!(classification(&reply(&app, &number(7), "5").await), "survey_answer");

        // The answer with a comment is put before a person; a bare score is not.
        let (_, b) = app.get_case("SA-B").await;
        let alerts = events_of(&b, "alert");
        assert_eq!(alerts.len(), 1, "{b}");
        assert_eq!((alerts[0]["reason"].as_str(), alerts[0]["classification"].as_str()), (Some("survey_comment"), Some("survey_answer")));
        let (_, a) = app.get_case("SA-A").await;
        assert!(events_of(&a, "alert").is_empty(), "{a}");
        assert_eq!(a["replies"][0]["classification"], "survey_answer");
        let (_, d) = app.get_case("SA-D").await;
        assert_eq!(events_of(&d, "alert")[0]["reason"], "distress");
        // Nothing is ever texted back.
        assert_eq!(app.sent_sms().len(), texts_sent);
        // The comment waits in the staff review queue, named for what it is.
        let mut staff = crate::staff::StaffClient::new(&app);
        staff.login(crate::common::AUTHOR, crate::common::PASSWORD).await;
        let queue = staff.get("/staff/review").await.body;
        assert_eq!(queue.matches("Survey answer with a comment").count(), 1, "{queue}");

        // Five surveys sent (the test key's left out); A, B and C answered; A and B satisfied
        // (C's last word was 2).
        let r = report(&app, "monthly?month=2026-11").await;
        assert_eq!(
            r["survey"],
            json!({"sent": 5, "answered": 3, "answered_percent": 60.0, "satisfied": 2, "satisfied_percent": 40.0})
        );
        assert_eq!(r["outreach"]["by_kind"]["satisfaction_survey"], 5);
        assert_eq!(r["replies"]["by_classification"]["survey_answer"], 4);
        assert_eq!(r["replies"]["by_classification"]["distress"], 1);
        let lines = csv(&app, "monthly?month=2026-11").await;
        for want in ["survey,sent,5", "survey,answered,3", "survey,answered_percent,60.0", "survey,satisfied_percent,40.0"] {
            assert!(lines.lines().any(|l| l == want), "{want} not in\n{lines}");
        }
        // A survey counts in the month it was sent.
        assert_eq!(report(&app, "monthly?month=2026-12").await["survey"]["sent"], 0);
        assert_eq!(report(&app, "quarterly?quarter=2026-Q4").await["survey"]["satisfied"], 2);
        app.stop().await;
    }
}

on_backends! {
    async fn the_report_reads_as_the_commissioner_reads_it() {
        let app = spawn_at(MONDAY_10AM).await;
        let case = |case: &str, n: u32, referred: &str| {
            let mut job = pretext(&format!("{case}-pretext"), case);
            job["contact"]["phones"][0]["number"] = json!(number(n));
            job["referral"] = json!({"source": "police", "referred_at": referred});
            job
        };
        let a = &app;
        let call = |case: &str, at: &str, outcome: &str, reason: Option<&str>| {
            let body = json!({"at": at, "outcome": outcome, "reason": reason});
            let path = format!("/v1/cases/{case}/calls");
            async move {
                let (status, answer) = a.post_json(&path, &body).await;
                assert_eq!(status, StatusCode::CREATED, "{answer}");
            }
        };
        let delivered = |case: &'static str| async move {
            let message = a.wait_for_message(case, "sent").await;
            let body = json!({"provider_ref": message["provider_ref"], "status": "delivered"});
            assert_eq!(a.webhook("/webhooks/sandbox/status", &body).await.0, StatusCode::OK);
        };
        // R1: its pre-text delivered an hour after referral: contacted within 24 hours.
        accept(&app, &case("R1", 11, "2026-11-23T09:00:00Z")).await;
        delivered("R1").await;
        // R2: delivered three days after referral: not.
        accept(&app, &case("R2", 12, "2026-11-20T09:00:00Z")).await;
        delivered("R2").await;
        // R3: a call answered 8 hours after referral (its text still undelivered): within.
        accept(&app, &case("R3", 13, "2026-11-22T12:00:00Z")).await;
        call("R3", "2026-11-22T20:00:00Z", "answered", None).await;
        // R4: answered, but 2 days after referral.
        accept(&app, &case("R4", 14, "2026-11-20T09:00:00Z")).await;
        call("R4", "2026-11-22T09:00:00Z", "answered", None).await;
        // R5–R7 declined: the same reason written two ways, and none.
        for (case_ref, n, reason) in [
            ("R5", 15, Some("Has support from family")),
            ("R6", 16, Some("  has support FROM   family ")),
            ("R7", 17, None),
        ] {
            accept(&app, &case(case_ref, n, "2026-11-21T09:00:00Z")).await;
            call(case_ref, "2026-11-22T10:00:00Z", "declined", reason).await;
        }
        // R8 was referred in October and declined then, with a reason of its own.
        accept(&app, &case("R8", 18, "2026-10-30T09:00:00Z")).await;
        call("R8", "2026-10-30T15:00:00Z", "declined", Some("Moved away")).await;

        let r = report(&app, "monthly?month=2026-11").await;
        assert_eq!(r["contact"]["cases_referred"], 7);
        assert_eq!(r["contacted_within_24h"], json!({"count": 2, "percent": 28.6}));
        assert_eq!(
            r["declined"],
            json!({"count": 3, "percent": 42.9, "reasons": {"Has support from family": 2, "(none given)": 1}})
        );
        let heading = |key: &str| r["headings"].as_array().unwrap().iter().find(|h| h["key"] == key).unwrap().clone();
        assert_eq!((heading("declined")["count"].as_u64(), heading("declined")["percent"].as_f64()), (Some(3), Some(42.9)));
        assert_eq!(heading("duplicate")["percent"], 0.0);
        let october = report(&app, "monthly?month=2026-10").await;
        assert_eq!(october["declined"]["reasons"], json!({"Moved away": 1}));
        assert_eq!(october["contacted_within_24h"], json!({"count": 0, "percent": 0.0}));
        let quarter = report(&app, "quarterly?quarter=2026-Q4").await;
        assert_eq!(quarter["declined"]["count"], 4);
        assert_eq!(quarter["contacted_within_24h"]["percent"], 25.0, "2 of 8 referrals");

        let lines = csv(&app, "monthly?month=2026-11").await;
        for want in [
            "contacted_within_24h,count,2",
            "contacted_within_24h,percent,28.6",
            "declined,count,3",
            "declined,reasons.Has support from family,2",
            "declined,reasons.(none given),1",
            "headings,declined.percent,42.9",
        ] {
            assert!(lines.lines().any(|l| l == want), "{want} not in\n{lines}");
        }

        // The staff page shows the same.
        let mut staff = crate::staff::StaffClient::new(&app);
        staff.login(crate::common::AUTHOR, crate::common::PASSWORD).await;
        let page = staff.get("/staff/reports?month=2026-11").await.body;
        assert!(page.contains(r#"<td data-test="within-24h-count">2</td><td data-test="within-24h-percent">28.6%</td>"#), "{page}");
        assert!(page.contains("<tr><td>Has support from family</td><td>2</td></tr>"), "{page}");
        assert!(page.contains(r#"<strong data-test="declined-count">3</strong>"#), "{page}");
        assert!(page.contains("<td>Declined</td><td><code>contact.declined</code></td><td>3</td><td>42.9%</td>"), "{page}");
        app.stop().await;
    }
}
