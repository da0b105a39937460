//! The performance report, from a month of known events made through the real API and worker
//! (with `SAFEREACH_CLOCK`), checked figure by figure.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, read, spawn_at};

pub const OCTOBER: &str = "2026-10-31T12:00:00Z";
pub const NOVEMBER: &str = "2026-11-10T09:00:00Z";

/// The cases of November and what each is for.
pub struct Month {
    pub app: TestApp,
}

fn number(n: u32) -> String {
    format!("+4477009001{n:02}")
}

fn pretext(case: &str, n: u32, categories: &[&str], referral: Value, safe: bool) -> Value {
    json!({
        "request_id": format!("{case}-pretext"), "case_ref": case, "kind": "priority_pretext",
        "referral": referral, "crime": {"categories": categories},
        "victim": {"first_name": "Robin"},
        "contact": {"phones": [{"number": number(n), "belongs_to": "victim", "safe_to_text": safe}]},
        "personalisation": {"advocate_name": "Jo"}
    })
}

fn pack(case: &str, categories: &[&str], referral: Value, consent: bool, contact: Value) -> Value {
    json!({
        "request_id": format!("{case}-pack"), "case_ref": case, "kind": "information_pack",
        "referral": referral, "crime": {"categories": categories},
        "victim": {"first_name": "Robin"}, "contact": contact,
        "consent": {"information_pack": consent}
    })
}

fn referral(source: Option<&str>, at: Option<&str>, la: Option<&str>) -> Value {
    json!({"source": source, "referred_at": at, "local_authority": la})
}

async fn accept(app: &TestApp, body: Value, outcome: &str) {
    let (status, answer) = app.post_outreach(&body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["decision"]["outcome"], outcome, "{}: {answer}", body["case_ref"]);
}

async fn status(app: &TestApp, case: &str, wait_for: &str, to: &str) {
    let message = app.wait_for_message(case, wait_for).await;
    let (code, answer) =
        app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": message["provider_ref"], "status": to})).await;
    assert_eq!((code, answer["result"].as_str()), (StatusCode::OK, Some("moved")), "{answer}");
}

async fn reply(app: &TestApp, from: &str, body: &str, classification: &str) {
    let (code, answer) =
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": from, "to": "60000", "body": body})).await;
    assert_eq!((code, answer["classification"].as_str()), (StatusCode::OK, Some(classification)), "{answer}");
}

async fn call(app: &TestApp, case: &str, at: &str, outcome: &str) {
    let (code, answer) =
        app.post_json(&format!("/v1/cases/{case}/calls"), &json!({"at": at, "outcome": outcome})).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
}

/// One job in October, then seven in November:
///
/// | case | job | categories | source | authority | referred | decision | then |
/// |---|---|---|---|---|---|---|---|
/// | OCT | pre-text | robbery | police | Birmingham | 31 Oct 10:00 | send | sent (no receipt) |
/// | A | pre-text | robbery | police | Birmingham | 10 Nov 08:00 | send | delivered; reply "after 5" |
/// | B | pre-text | domestic_abuse | police | Coventry | 9 Nov 09:00 | hold no_safe_number | calls: no answer, voicemail |
/// | C | pack | burglary | self | Birmingham | 10 Nov 07:00 | block no_consent | |
/// | D | pack (bad email) | burglary | police | — | — | block insufficient_contact_info | |
/// | E | pack by letter | criminal_damage | self | Bristol, City of | 5 Nov 10:00 | send | printed, posted |
/// | F | pre-text | kidnap, robbery | police | Coventry | 8 Nov 09:00 | send | undelivered; call declined; STOP, START |
/// | G | pack by email | theft | — | Birmingham | — | send | delivered |
///
/// and a reply from a number never texted.
pub async fn build_month() -> Month {
    let app = spawn_at(OCTOBER).await;
    accept(
        &app,
        pretext(
            "OCT",
            44,
            &["robbery"],
            referral(Some("police"), Some("2026-10-31T10:00:00Z"), Some("Birmingham")),
            true,
        ),
        "send",
    )
    .await;
    app.wait_for_message("OCT", "sent").await;

    let app = app.restart_at(NOVEMBER, |_| {}).await;
    let postal = json!({"name": "Robin Ash", "lines": ["1 High Street", "Bristol"], "postcode": "BS1 4DJ"});
    accept(
        &app,
        pretext("A", 1, &["robbery"], referral(Some("police"), Some("2026-11-10T08:00:00Z"), Some("Birmingham")), true),
        "send",
    )
    .await;
    accept(
        &app,
        pretext(
            "B",
            2,
            &["domestic_abuse"],
            referral(Some("police"), Some("2026-11-09T09:00:00Z"), Some("Coventry")),
            false,
        ),
        "hold",
    )
    .await;
    let c_contact = json!({"phones": [{"number": number(3)}], "preferred_method": "sms"});
    accept(
        &app,
        pack(
            "C",
            &["burglary"],
            referral(Some("self"), Some("2026-11-10T07:00:00Z"), Some("Birmingham")),
            false,
            c_contact,
        ),
        "block",
    )
    .await;
    let d_contact = json!({"email": {"address": "not-an-email"}, "preferred_method": "email"});
    accept(&app, pack("D", &["burglary"], referral(Some("police"), None, None), true, d_contact), "block").await;
    let e_contact = json!({"postal": postal, "preferred_method": "letter"});
    accept(
        &app,
        pack(
            "E",
            &["criminal_damage"],
            referral(Some("self"), Some("2026-11-05T10:00:00Z"), Some("Bristol, City of")),
            true,
            e_contact,
        ),
        "send",
    )
    .await;
    accept(
        &app,
        pretext(
            "F",
            6,
            &["kidnap", "robbery"],
            referral(Some("police"), Some("2026-11-08T09:00:00Z"), Some("Coventry")),
            true,
        ),
        "send",
    )
    .await;
    let g_contact = json!({"email": {"address": "robin.g@example.org"}, "preferred_method": "email"});
    accept(&app, pack("G", &["theft"], referral(None, None, Some("Birmingham")), true, g_contact), "send").await;

    status(&app, "A", "sent", "delivered").await;
    status(&app, "F", "sent", "undelivered").await;
    status(&app, "G", "sent", "delivered").await;
    status(&app, "E", "sent", "printed").await;
    status(&app, "E", "printed", "posted").await;

    call(&app, "B", "2026-11-10T08:30:00Z", "no_answer").await;
    call(&app, "B", "2026-11-10T08:45:00Z", "voicemail").await;
    call(&app, "F", "2026-11-10T08:50:00Z", "declined").await;

    reply(&app, &number(1), "after 5 please", "time_preference").await;
    reply(&app, &number(6), "STOP", "opt_out").await;
    reply(&app, &number(6), "START", "opt_in").await;
    reply(&app, "+447700900999", "hello there", "other").await;
    Month { app }
}

pub async fn report(app: &TestApp, query: &str) -> Value {
    let (code, report) = app.get(&format!("/v1/reports/{query}")).await;
    assert_eq!(code, StatusCode::OK, "{report}");
    report
}

fn zero_reasons() -> Value {
    let reasons = [
        "do_not_contact",
        "declined",
        "no_consent",
        "suppressed",
        "possible_priority",
        "minor",
        "no_safe_number",
        "no_mobile_number",
        "number_conflict",
        "written_unsafe",
        "insufficient_contact_info",
        "duplicate",
        "calls_first",
        "outside_safe_hours",
        "no_approved_template",
    ];
    Value::Object(reasons.iter().map(|r| (r.to_string(), json!(0))).collect())
}

#[tokio::test]
async fn a_month_of_known_events_gives_every_figure() {
    let Month { app } = build_month().await;
    let r = report(&app, "monthly?month=2026-11").await;

    assert_eq!(
        r["period"],
        json!({"label": "2026-11", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "timezone": "Europe/London"})
    );
    assert_eq!(
        r["outreach"],
        json!({
            "total": 7,
            "by_kind": {"priority_pretext": 3, "information_pack": 4, "satisfaction_survey": 0},
            "by_referral_source": {"police": 4, "self": 2, "unknown": 1},
            "by_category_group": {"safety_sensitive": 1, "other_priority": 1, "non_priority": 5},
            "by_category": {"robbery": 2, "domestic_abuse": 1, "burglary": 2, "criminal_damage": 1, "kidnap": 1, "theft": 1},
            "by_local_authority": {"Birmingham": 3, "Coventry": 2, "Bristol, City of": 1, "unknown": 1},
        })
    );
    let mut reasons = zero_reasons();
    reasons["no_safe_number"] = json!(1);
    reasons["no_consent"] = json!(1);
    reasons["insufficient_contact_info"] = json!(1);
    assert_eq!(
        r["decisions"],
        json!({"total": 7, "by_outcome": {"send": 4, "defer": 0, "hold": 1, "block": 2}, "by_reason": reasons})
    );
    // The worker decided each of the four sends again before sending.
    assert_eq!(
        r["redecisions"],
        json!({"total": 4, "by_outcome": {"send": 4, "defer": 0, "hold": 0, "block": 0}, "by_reason": zero_reasons()})
    );
    let headings: Vec<(String, u64)> = r["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["key"].as_str().unwrap().to_string(), h["count"].as_u64().unwrap()))
        .collect();
    let want: Vec<(String, u64)> = [
        ("no_safe_phone_contact", 1),
        ("no_mobile_number", 0),
        ("insufficient_contact_info", 1),
        ("written_contact_unsafe", 0),
        ("no_consent", 1),
        ("do_not_contact", 0),
        ("duplicate", 0),
        ("held_for_review", 0),
        ("phone_unsuccessful", 1),
        ("declined", 1),
    ]
    .map(|(k, n)| (k.to_string(), n))
    .into();
    assert_eq!(headings, want);
    assert_eq!(r["headings"][0]["title"], "No contacts – safe phone contact for DV and hate referrals not provided");
    // Each heading also as a percent of the 7 cases referred, one decimal.
    let percents: Vec<f64> = r["headings"].as_array().unwrap().iter().map(|h| h["percent"].as_f64().unwrap()).collect();
    assert_eq!(percents, [14.3, 0.0, 14.3, 0.0, 14.3, 0.0, 0.0, 0.0, 14.3, 14.3]);
    // The 2015 report's first line: only A was reached within 24 hours (its pre-text delivered).
    assert_eq!(r["contacted_within_24h"], json!({"count": 1, "percent": 14.3}));
    // F declined without giving a reason; no survey went out.
    assert_eq!(r["declined"], json!({"count": 1, "percent": 14.3, "reasons": {"(none given)": 1}}));
    assert_eq!(
        r["survey"],
        json!({"sent": 0, "answered": 0, "answered_percent": 0.0, "satisfied": 0, "satisfied_percent": 0.0})
    );
    assert_eq!(
        r["messages"],
        json!({
            "total": 4, "delivered": 3, "delivery_rate": 0.75,
            "by_channel": {
                "sms": {"total": 2, "delivered": 1, "delivery_rate": 0.5,
                        "by_status": {"sent": 0, "delivered": 1, "failed": 0, "undelivered": 1}},
                "email": {"total": 1, "delivered": 1, "delivery_rate": 1.0,
                          "by_status": {"sent": 0, "delivered": 1, "failed": 0, "bounced": 0}},
                "letter": {"total": 1, "delivered": 1, "delivery_rate": 1.0,
                           "by_status": {"sent": 0, "printed": 0, "posted": 1, "delivered": 0, "failed": 0, "returned": 0}},
            }
        })
    );
    assert_eq!(
        r["replies"],
        json!({"total": 4, "unmatched": 1, "by_classification":
            {"distress": 0, "unsafe": 0, "opt_out": 1, "opt_in": 1, "survey_answer": 0, "time_preference": 1, "other": 1}})
    );
    assert_eq!(r["suppressions"], json!({"opt_outs": 1, "unsafe_numbers": 0, "opt_ins": 1}));
    assert_eq!(
        r["calls"],
        json!({"attempts": 3, "by_outcome": {"answered": 0, "no_answer": 1, "voicemail": 1, "wrong_number": 0, "declined": 1}})
    );
    // Referral to first contact: G minutes, A about 1 h, B 23.5 h (its first call), F 47 h 50 min
    // (its call came before its text), E about 5 days: the median is B's.
    assert_eq!(
        r["contact"],
        json!({
            "cases_referred": 7, "priority_cases": 3, "priority_pretext_within_24h": 1,
            "priority_pretext_within_24h_share": 0.3333, "cases_contacted": 5,
            "median_seconds_to_first_contact": 84_600,
            "phone_unsuccessful_no_other_contact": 1, "declined": 1,
        })
    );

    // October holds its one job; the quarter holds both months, its share taken over the quarter.
    let october = report(&app, "monthly?month=2026-10").await;
    assert_eq!((october["outreach"]["total"].as_u64(), october["messages"]["total"].as_u64()), (Some(1), Some(1)));
    assert_eq!(october["messages"]["by_channel"]["sms"]["by_status"]["sent"], 1, "no receipt came");
    let q4 = report(&app, "quarterly?quarter=2026-Q4").await;
    assert_eq!(q4["period"]["from"], "2026-09-30T23:00:00Z", "1 October, midnight BST");
    assert_eq!(q4["outreach"]["total"], 8);
    assert_eq!(q4["messages"]["total"], 5);
    assert_eq!(q4["contact"]["priority_cases"], 4);
    assert_eq!(q4["contact"]["priority_pretext_within_24h_share"], 0.5);
    assert_eq!(report(&app, "monthly?month=2026-12").await["outreach"]["total"], 0);

    // CSV: the same figures, one per row, quoted where a value needs it.
    let response = app
        .http
        .get(app.url("/v1/reports/monthly?month=2026-11&format=csv"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "section,key,value");
    for want in [
        "outreach,total,7",
        "outreach,\"by_local_authority.Bristol, City of\",1",
        "messages,by_channel.sms.delivery_rate,0.5",
        "contact,median_seconds_to_first_contact,84600",
        "headings,no_safe_phone_contact.title,No contacts – safe phone contact for DV and hate referrals not provided",
        "headings,no_safe_phone_contact.counts,no_safe_number",
        "headings,no_safe_phone_contact.count,1",
        "headings,no_safe_phone_contact.percent,14.3",
        "contacted_within_24h,count,1",
        "contacted_within_24h,percent,14.3",
        "declined,reasons.(none given),1",
        "survey,answered_percent,0.0",
        "period,label,2026-11",
    ] {
        assert!(lines.contains(&want), "{want:?} not in:\n{csv}");
    }
    let accept_csv = app
        .http
        .get(app.url("/v1/reports/monthly?month=2026-11"))
        .header("accept", "text/csv")
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(accept_csv.text().await.unwrap(), csv, "Accept: text/csv asks for the same");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_period_is_a_422_naming_the_field_and_the_scope_is_checked() {
    let app = spawn_at(NOVEMBER).await;
    for query in ["monthly?month=2026-13", "monthly?month=2026-1", "monthly", "monthly?month=nov"] {
        let (code, problem) = app.get(&format!("/v1/reports/{query}")).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "month", "{query}");
    }
    let (code, problem) = app.get("/v1/reports/quarterly?quarter=2026-Q5").await;
    assert_eq!((code, problem["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("quarter")));
    let (code, problem) = app.get("/v1/reports/monthly?month=2026-11&format=xml").await;
    assert_eq!((code, problem["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("format")));
    let key = app.key_with(&["cases:read"]).await;
    let response = app.http.get(app.url("/v1/reports/monthly?month=2026-11")).bearer_auth(key).send().await.unwrap();
    assert_eq!(read(response).await.0, StatusCode::FORBIDDEN);
    app.stop().await;
}

/// The heading each job of `report` counts under, by key, with the non-zero counts only.
fn headings(report: &Value) -> Vec<(String, u64)> {
    report["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["key"].as_str().unwrap().to_string(), h["count"].as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

on_backends! {
    async fn headings_count_each_job_by_its_final_outcome_in_the_period() {
        // Monday 9 November, 21:00: outside quiet hours, so pre-texts are deferred to 08:00.
        let app = spawn_at("2026-11-09T21:00:00Z").await;
        let police = || referral(Some("police"), Some("2026-11-09T20:00:00Z"), Some("Coventry"));
        // X: deferred, then cancelled by the triage system before it went.
        let (_, x) = app.post_outreach(&pretext("X", 11, &["robbery"], police(), true)).await;
        assert_eq!(x["decision"]["reason"], "outside_safe_hours", "{x}");
        let x_id = x["outreach_id"].as_str().unwrap();
        let (code, answer) = app.post_json(&format!("/v1/outreach/{x_id}/cancel"), &json!({})).await;
        assert_eq!((code, answer["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{answer}");
        // S: deferred; its number opts out overnight, so the worker's decision at 08:00 blocks it.
        accept(&app, pretext("S", 12, &["robbery"], police(), true), "defer").await;
        reply(&app, &number(12), "STOP", "opt_out").await;
        // H: the victim is 17 until tomorrow: held (minor); released then, and sent.
        let mut h = pretext("H", 13, &["robbery"], police(), true);
        h["victim"]["date_of_birth"] = json!("2008-11-10");
        let (_, held) = app.post_outreach(&h).await;
        assert_eq!((held["decision"]["outcome"].as_str(), held["decision"]["reason"].as_str()), (Some("hold"), Some("minor")));
        let h_id = held["outreach_id"].as_str().unwrap().to_string();
        // K: domestic abuse without a safe number: held; the case is cancelled in December.
        accept(&app, pretext("K", 14, &["domestic_abuse"], police(), false), "hold").await;

        let app = app.restart_at("2026-11-10T09:00:00Z", |_| {}).await;
        app.wait_for_case("S", "the worker's decision", |c| c["outreach"][0]["status"] == "blocked").await;
        let mut staff = crate::staff::StaffClient::new(&app);
        staff.login(crate::common::AUTHOR, crate::common::PASSWORD).await;
        staff.get("/staff/review").await;
        let page = staff.post(&format!("/staff/review/outreach/{h_id}/release"), &[("reason", "18 today")]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        app.wait_for_message("H", "sent").await;
        let (_, s) = app.get_case("S").await;
        assert_eq!(s["outreach"][0]["decision"]["reason"], "suppressed", "{s}");

        let november = report(&app, "monthly?month=2026-11").await;
        // The first decisions are what the triage system was told, and stay as they were.
        let mut reasons = zero_reasons();
        reasons["outside_safe_hours"] = json!(2);
        reasons["minor"] = json!(1);
        reasons["no_safe_number"] = json!(1);
        assert_eq!(
            november["decisions"],
            json!({"total": 4, "by_outcome": {"send": 0, "defer": 2, "hold": 2, "block": 0}, "by_reason": reasons})
        );
        // The headings count final outcomes: X cancelled and S suppressed are "asked not to be
        // contacted", H was sent (not held), K still waits for a person at the month's end.
        assert_eq!(headings(&november), counts(&[("no_safe_phone_contact", 1), ("do_not_contact", 2)]));

        // K's case is cancelled on 1 December: November's report keeps it where the month ended,
        // and the quarter (which holds that cancellation) counts it as cancelled.
        let app = app.restart_at("2026-12-01T10:00:00Z", |_| {}).await;
        let (code, answer) = app.post_json("/v1/cases/K/cancel", &json!({})).await;
        assert_eq!(code, StatusCode::OK, "{answer}");
        assert_eq!(report(&app, "monthly?month=2026-11").await, november);
        let quarter = report(&app, "quarterly?quarter=2026-Q4").await;
        assert_eq!(headings(&quarter), counts(&[("do_not_contact", 3)]));
        assert_eq!(quarter["decisions"], november["decisions"]);
        app.stop().await;
    }
}
