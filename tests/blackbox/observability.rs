//! `/metrics` after a run, and `/openapi.json` checked against the routes it describes.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, pretext, read, spawn_at, spawn_with};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    response.text().await.unwrap()
}

/// The value of the sample `name{labels}` (exactly as rendered), or panic.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_decisions_sends_statuses_rejections_and_the_queue() {
    let app = spawn_at(MONDAY_10AM).await;
    app.post_outreach(&pretext("m-1", "M-1")).await;
    let mut no_consent = pretext("m-2", "M-2");
    no_consent["kind"] = json!("information_pack");
    app.post_outreach(&no_consent).await;
    let message = app.wait_for_message("M-1", "sent").await;
    app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": message["provider_ref"], "status": "delivered"}))
        .await;
    app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": message["provider_ref"], "status": "failed"}))
        .await;
    app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": "nobody", "status": "delivered"})).await;
    let bad = app
        .http
        .post(app.url("/webhooks/sandbox/status?token=wrong"))
        .json(&json!({"provider_ref": message["provider_ref"], "status": "failed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    app.webhook("/webhooks/sandbox/inbound", &json!({"from": "+447700900555", "to": "1", "body": "STOP"})).await;

    let text = scrape(&app).await;
    let expect = [
        (r#"safereach_outreach_accepted_total{outcome="send",reason="none"}"#, 1.0),
        (r#"safereach_outreach_accepted_total{outcome="block",reason="no_consent"}"#, 1.0),
        (r#"safereach_provider_requests_total{channel="sms",provider="sandbox",result="accepted"}"#, 1.0),
        (r#"safereach_provider_send_seconds_count{channel="sms",provider="sandbox"}"#, 1.0),
        (r#"safereach_messages{channel="sms",status="delivered"}"#, 1.0),
        (r#"safereach_messages{channel="sms",status="sent"}"#, 0.0),
        (r#"safereach_outreach_jobs{status="sent"}"#, 1.0),
        (r#"safereach_outreach_jobs{status="blocked"}"#, 1.0),
        (r#"safereach_status_callbacks_total{provider="sandbox",result="moved"}"#, 1.0),
        (r#"safereach_status_callbacks_total{provider="sandbox",result="ignored"}"#, 1.0),
        (r#"safereach_status_callbacks_total{provider="sandbox",result="unknown_message"}"#, 1.0),
        (r#"safereach_callback_rejections_total{reason="bad_token"}"#, 1.0),
        (r#"safereach_replies_total{classification="opt_out"}"#, 1.0),
        // The worker took everything: nothing waits (the backlog is tested below).
        ("safereach_queue_depth", 0.0),
        ("safereach_queue_oldest_due_seconds", 0.0),
        ("safereach_dead_letters", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), value, "{series}");
    }
    assert!(text.contains("# TYPE safereach_provider_send_seconds histogram"), "{text}");
    assert!(!text.contains("7700900555"), "no number in any label");
    app.stop().await;
}

/// Wait until the relay has left exactly `rows` rows on the outbox (those not due yet).
async fn outbox_settles_at(app: &TestApp, rows: i64) {
    let mut left = -1;
    for _ in 0..100 {
        left = sqlx::query_scalar("SELECT COUNT(*) FROM job_outbox").fetch_one(app.state.store.pool()).await.unwrap();
        if left == rows {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{left} rows on the outbox, not {rows}");
}

on_backends! {
    async fn the_queue_metrics_count_the_jobs_waiting_for_a_worker() {
        // No worker (Role::Api), but a relay: due work leaves the outbox for the queue backend at
        // once and waits there. The queue metrics must see it wherever it waits.
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let with = |id: &str, change: &dyn Fn(&mut Value)| {
            let mut body = pretext(id, &id.to_uppercase());
            change(&mut body);
            body
        };
        let window = |day: &str, from: &str| {
            let window = json!([{"days": [day], "from": from, "to": "12:00"}]);
            move |b: &mut Value| b["contact"]["safe_times"] = window.clone()
        };
        let jobs = [
            (with("q-1", &|_| {}), "send"),
            (with("q-2", &|_| {}), "send"),
            (with("q-3", &|_| {}), "send"),
            // Due at 10:05, the start of the victim's safe window.
            (with("q-soon", &window("mon", "10:05")), "defer"),
            // Due tomorrow: a wait, not a backlog.
            (with("q-tomorrow", &window("tue", "10:00")), "defer"),
            // Not for the queue at all.
            (with("q-minor", &|b| b["victim"]["is_under_18"] = json!(true)), "hold"),
            (with("q-no-consent", &|b| b["kind"] = json!("information_pack")), "block"),
        ];
        for (body, outcome) in &jobs {
            let (status, answer) = app.post_outreach(body).await;
            assert_eq!((status, answer["decision"]["outcome"].as_str()), (StatusCode::ACCEPTED, Some(*outcome)), "{answer}");
        }
        outbox_settles_at(&app, 2).await;
        let text = scrape(&app).await;
        assert_eq!(sample(&text, "safereach_queue_depth"), 3.0, "the three sends wait for a worker");
        let oldest = sample(&text, "safereach_queue_oldest_due_seconds");
        assert!((0.0..60.0).contains(&oldest), "the oldest has waited {oldest} s");

        // Ten minutes on, still without a worker: the 10:05 job waits too, and the oldest has
        // waited ten minutes.
        let app = app.restart_as(Role::Api, "2026-11-23T10:10:00Z", |_| {}).await;
        outbox_settles_at(&app, 1).await;
        let text = scrape(&app).await;
        assert_eq!(sample(&text, "safereach_queue_depth"), 4.0);
        let oldest = sample(&text, "safereach_queue_oldest_due_seconds");
        assert!((560.0..660.0).contains(&oldest), "the oldest has waited {oldest} s, not about 600");
        assert_eq!(sample(&text, r#"safereach_outreach_jobs{status="queued"}"#), 3.0);
        assert_eq!(sample(&text, r#"safereach_outreach_jobs{status="deferred"}"#), 2.0);
        app.stop().await;
    }
}

#[tokio::test]
async fn provider_errors_and_dead_letters_are_counted() {
    let app = spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        role: Role::Api,
        configure: Box::new(|c| {
            c.max_attempts = 2;
            // Every sandbox write fails, as a full disk would: a transient error.
            c.outbox_dir = "/dev/null/outbox".into();
        }),
        ..Options::default()
    })
    .await;
    let (_, answer) = app.post_outreach(&pretext("dl-1", "DL-1")).await;
    let id = answer["outreach_id"].as_str().unwrap();
    assert!(matches!(app.state.worker().process(id).await.unwrap(), Processed::Retrying { .. }));
    assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::DeadLettered);
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, r#"safereach_provider_errors_total{channel="sms",provider="sandbox",kind="transient"}"#),
        2.0
    );
    assert_eq!(sample(&text, r#"safereach_provider_send_seconds_count{channel="sms",provider="sandbox"}"#), 2.0);
    assert_eq!(sample(&text, "safereach_dead_letters"), 1.0);
    assert_eq!(sample(&text, r#"safereach_outreach_jobs{status="dead_lettered"}"#), 1.0);
    app.stop().await;
}

/// Every `/v1` route of the contract, as OpenAPI names them.
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/outreach"),
    ("post", "/v1/outreach/{outreach_id}/cancel"),
    ("get", "/v1/cases/{case_ref}"),
    ("delete", "/v1/cases/{case_ref}"),
    ("post", "/v1/cases/{case_ref}/cancel"),
    ("post", "/v1/cases/{case_ref}/calls"),
    ("get", "/v1/reports/monthly"),
    ("get", "/v1/reports/quarterly"),
    // Dead letters (production issue): staff see and requeue what the worker gave up on.
    ("get", "/v1/dead-letters"),
    ("post", "/v1/outreach/{outreach_id}/requeue"),
    // The triage system's view of one job (issue 15).
    ("get", "/v1/outreach/{outreach_id}"),
];

fn refs(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.insert(r.clone());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

fn has_example(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.contains_key("example") || map.contains_key("examples") || map.values().any(has_example)
        }
        Value::Array(items) => items.iter().any(has_example),
        _ => false,
    }
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let app = spawn_at(MONDAY_10AM).await;
    let (status, doc) = read(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    // It parses as an OpenAPI document.
    serde_json::from_value::<utoipa::openapi::OpenApi>(doc.clone()).expect("a valid OpenAPI document");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.keys().any(|c| c.starts_with('2')), "{method} {path} has a success answer");
            assert!(
                responses["401"]["content"]["application/problem+json"]["schema"]["$ref"]
                    == "#/components/schemas/Problem",
                "{method} {path} documents its problem+json errors"
            );
            assert!(has_example(operation), "{method} {path} has an example");
            assert_eq!(
                operation["security"][0]["api_key"].as_array().map(Vec::len),
                Some(1),
                "{method} {path} names its scope"
            );
        }
    }
    let contract: BTreeSet<(String, String)> = CONTRACT.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, contract, "the document lists exactly the contract's /v1 routes");
    // Issue 15's fields: messages carry their language everywhere, jobs say whether they are a
    // test's, the victim's language is a field of the request, and every route may answer 429.
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("MessageView", "language"),
        ("MessageView", "test"),
        ("OutreachMessageView", "language"),
        ("OutreachMessageView", "status"),
        ("OutreachStatusView", "decision"),
        ("OutreachStatusView", "messages"),
        ("OutreachView", "test"),
        ("Victim", "language"),
        // The survey and the report as the commissioner reads it.
        ("Consent", "survey"),
        ("Report", "contacted_within_24h"),
        ("Report", "declined"),
        ("Report", "survey"),
        ("Heading", "percent"),
        ("CountPercent", "percent"),
        ("DeclinedCounts", "reasons"),
        ("SurveyCounts", "answered_percent"),
        ("SurveyCounts", "satisfied_percent"),
    ] {
        assert!(schemas[schema]["properties"][field].is_object(), "{schema}.{field} in the document");
    }
    assert!(schemas["Kind"]["enum"].as_array().unwrap().contains(&json!("satisfaction_survey")), "{}", schemas["Kind"]);
    let get_outreach = &doc["paths"]["/v1/outreach/{outreach_id}"]["get"];
    assert_eq!(get_outreach["security"][0]["api_key"][0], "cases:read");
    assert!(get_outreach["responses"]["404"].is_object() && get_outreach["responses"]["429"].is_object());

    // Every documented operation is served: without a key it is 401, never 404 or 405.
    for (method, path) in &documented {
        let url = app.url(&path.replace("{outreach_id}", "out_x").replace("{case_ref}", "C-1"));
        let request = match method.as_str() {
            "get" => app.http.get(url),
            "post" => app.http.post(url).json(&json!({})),
            "delete" => app.http.delete(url),
            other => panic!("{other}"),
        };
        assert_eq!(request.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // And nothing else under /v1 is: an undocumented route is the fallback's 404.
    let (status, problem) = app.get("/v1/reports/yearly").await;
    assert_eq!((status, problem["detail"].as_str()), (StatusCode::NOT_FOUND, Some("no such route")));

    // Every schema referred to exists.
    let mut found = BTreeSet::new();
    refs(&doc, &mut found);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in &found {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }
    for name in ["OutreachRequest", "OutreachAnswer", "CaseView", "Report", "Problem", "FieldError"] {
        assert!(schemas.contains_key(name), "{name} is described");
    }
    // Every optional field of a request may be null (read as absent).
    for name in ["OutreachRequest", "Referral", "Crime", "Victim", "Contact", "Phone", "Email", "Postal", "Consent"] {
        let schema = &schemas[name];
        let required: Vec<&Value> = schema["required"].as_array().map(|r| r.iter().collect()).unwrap_or_default();
        for (field, property) in schema["properties"].as_object().unwrap() {
            let nullable = property["type"].as_array().is_some_and(|t| t.contains(&json!("null")))
                || property["oneOf"].as_array().is_some_and(|o| o.contains(&json!({"type": "null"})));
            assert_eq!(nullable, !required.contains(&&json!(field)), "{name}.{field}: {property}");
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
    // The documented request example is one the API accepts.
    let example = &doc["paths"]["/v1/outreach"]["post"]["requestBody"]["content"]["application/json"]["example"];
    let (status, answer) = app.post_outreach(example).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    app.stop().await;
}
