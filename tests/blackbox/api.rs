//! The outreach API's contract: validation, authentication and scopes, idempotency, cancel,
//! calls and the case view. A refused request leaves no trace.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{pretext, read, spawn_app};

const CLOCK: &str = "2026-11-23T10:00:00Z";

async fn count(app: &crate::common::TestApp, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

/// Nothing was stored or queued.
async fn assert_no_trace(app: &crate::common::TestApp) {
    for table in ["cases", "outreach", "events", "job_outbox", "messages"] {
        assert_eq!(count(app, table).await, 0, "{table} must be empty");
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn bad_input_is_refused_with_the_field_named_and_nothing_stored() {
        let app = crate::common::spawn_at(CLOCK).await;
        let cases: Vec<(&str, String, StatusCode, Option<&str>)> = vec![
            ("malformed", "{\"request_id\": ".into(), StatusCode::BAD_REQUEST, None),
            ("missing kind", json!({"request_id": "r1", "case_ref": "C1", "crime": {"categories": []}, "contact": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("kind")),
            ("missing contact", json!({"request_id": "r1", "case_ref": "C1", "kind": "priority_pretext", "crime": {"categories": []}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("contact")),
            ("missing categories", json!({"request_id": "r1", "case_ref": "C1", "kind": "priority_pretext", "crime": {}, "contact": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("crime.categories")),
            ("unknown kind", json!({"request_id": "r1", "case_ref": "C1", "kind": "postcard", "crime": {"categories": []}, "contact": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("kind")),
            ("unknown method", json!({"request_id": "r1", "case_ref": "C1", "kind": "information_pack", "crime": {"categories": []}, "contact": {"preferred_method": "pigeon"}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("contact.preferred_method")),
            ("wrong type", json!({"request_id": "r1", "case_ref": "C1", "kind": "priority_pretext", "priority": "yes", "crime": {"categories": []}, "contact": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("priority")),
            ("bad date", json!({"request_id": "r1", "case_ref": "C1", "kind": "priority_pretext", "crime": {"categories": []}, "victim": {"date_of_birth": "01/04/1990"}, "contact": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("victim.date_of_birth")),
            ("bad safe time", json!({"request_id": "r1", "case_ref": "C1", "kind": "priority_pretext", "crime": {"categories": []}, "contact": {"safe_times": [{"days": ["mon"], "from": "9am", "to": "17:00"}]}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("contact.safe_times[0].from")),
            ("bad day", json!({"request_id": "r1", "case_ref": "C1", "kind": "priority_pretext", "crime": {"categories": []}, "contact": {"safe_times": [{"days": ["monday"], "from": "09:00", "to": "17:00"}]}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("contact.safe_times[0].days[0]")),
            ("empty request id", json!({"request_id": "", "case_ref": "C1", "kind": "priority_pretext", "crime": {"categories": []}, "contact": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, Some("request_id")),
            ("oversized", json!({"request_id": "r1", "case_ref": "C1", "kind": "priority_pretext", "crime": {"categories": [], "summary": "x".repeat(70_000)}, "contact": {}}).to_string(), StatusCode::PAYLOAD_TOO_LARGE, None),
        ];
        for (name, body, expected, field) in cases {
            let response = app
                .http
                .post(app.url("/v1/outreach"))
                .bearer_auth(&app.key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
            let (status, problem) = read(response).await;
            assert_eq!(status, expected, "{name}: {problem}");
            assert_eq!(content_type, "application/problem+json", "{name}");
            assert_eq!(problem["status"], expected.as_u16(), "{name}");
            if let Some(field) = field {
                let fields: Vec<&str> =
                    problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
                assert!(fields.contains(&field), "{name}: expected {field} in {fields:?}");
            }
        }
        let response = app.http.post(app.url("/v1/outreach")).bearer_auth(&app.key).body("{}").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_no_trace(&app).await;
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn keys_and_scopes_are_enforced() {
        let app = crate::common::spawn_at(CLOCK).await;
        let body = pretext("auth-1", "AUTH-1");
        let no_key = read(app.http.post(app.url("/v1/outreach")).json(&body).send().await.unwrap()).await;
        assert_eq!(no_key.0, StatusCode::UNAUTHORIZED);
        let bad_key =
            read(app.http.post(app.url("/v1/outreach")).bearer_auth("sr_nope").json(&body).send().await.unwrap()).await;
        assert_eq!(bad_key.0, StatusCode::UNAUTHORIZED);
        let now = app.state.clock.now_ms();
        let reader = safereach::service::accounts::create_api_key(&app.state.store, "reader", &["cases:read".into()], now, "cli").await.unwrap();
        let wrong_scope =
            read(app.http.post(app.url("/v1/outreach")).bearer_auth(&reader).json(&body).send().await.unwrap()).await;
        assert_eq!(wrong_scope.0, StatusCode::FORBIDDEN);
        assert!(wrong_scope.1["detail"].as_str().unwrap().contains("outreach:write"));
        assert_no_trace(&app).await;
        // The reader may read, the writer may write.
        let (status, _) = app.post_outreach(&body).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let read_case = read(app.http.get(app.url("/v1/cases/AUTH-1")).bearer_auth(&reader).send().await.unwrap()).await;
        assert_eq!(read_case.0, StatusCode::OK);
        let writer = safereach::service::accounts::create_api_key(&app.state.store, "writer", &["outreach:write".into()], now, "cli").await.unwrap();
        let denied = read(app.http.get(app.url("/v1/cases/AUTH-1")).bearer_auth(&writer).send().await.unwrap()).await;
        assert_eq!(denied.0, StatusCode::FORBIDDEN);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_authorization_scheme_is_case_insensitive() {
    let app = crate::common::spawn_at(CLOCK).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response =
            app.http.get(app.url("/v1/dead-letters")).header("authorization", format!("{scheme} {}", app.key)).send();
        assert_eq!(response.await.unwrap().status(), StatusCode::OK, "{scheme}");
    }
    for wrong in [format!("Basic {}", app.key), format!("Bearer{}", app.key), app.key.clone()] {
        let response = app.http.get(app.url("/v1/dead-letters")).header("authorization", wrong.as_str()).send();
        assert_eq!(response.await.unwrap().status(), StatusCode::UNAUTHORIZED, "{wrong}");
    }
    app.stop().await;
}

on_backends! {
    sqlite, postgres_redis;
    async fn the_same_request_id_replays_the_first_answer_and_a_different_body_conflicts() {
        let app = crate::common::spawn_at(CLOCK).await;
        let body = pretext("idem-1", "IDEM-1");
        let (first_status, first) = app.post_outreach(&body).await;
        assert_eq!(first_status, StatusCode::ACCEPTED);
        // Same content, other key order: the same request.
        let reordered: Value = serde_json::from_str(&serde_json::to_string_pretty(&body).unwrap()).unwrap();
        let (again_status, again) = app.post_outreach(&reordered).await;
        assert_eq!(again_status, StatusCode::OK);
        assert_eq!(again, first);
        // A null member reads as absent: still the same request.
        let mut with_nulls = body.clone();
        with_nulls["referral"] = Value::Null;
        with_nulls["victim"]["date_of_birth"] = Value::Null;
        assert_eq!(app.post_outreach(&with_nulls).await, (StatusCode::OK, first.clone()));
        let mut changed = body.clone();
        changed["victim"]["first_name"] = json!("Someone Else");
        let (conflict, problem) = app.post_outreach(&changed).await;
        assert_eq!(conflict, StatusCode::CONFLICT, "{problem}");
        assert_eq!(count(&app, "outreach").await, 1);
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn junk_contact_data_is_accepted_decided_and_counted() {
        let app = crate::common::spawn_at(CLOCK).await;
        let body = json!({
            "request_id": "junk-1", "case_ref": "JUNK-1", "kind": "information_pack",
            "crime": {"categories": ["fraud"]},
            "contact": {"phones": [{"number": "12345"}], "email": {"address": "not-an-email"}, "preferred_method": "email"},
            "consent": {"information_pack": true}
        });
        let (status, answer) = app.post_outreach(&body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["decision"]["outcome"], "block");
        assert_eq!(answer["decision"]["reason"], "insufficient_contact_info");
        assert_eq!(answer["status"], "blocked");
        let (_, case) = app.get_case("JUNK-1").await;
        assert_eq!(case["timeline"][0]["reason"], "insufficient_contact_info");
        // Safe times that allow no minute (no day named, or a window that ends where it starts)
        // fit the schema: accepted, and held for a person rather than guessed at.
        let mut empty_windows = crate::common::pretext("junk-2", "JUNK-2");
        empty_windows["contact"]["safe_times"] =
            json!([{"days": [], "from": "09:00", "to": "17:00"}, {"days": ["mon"], "from": "12:00", "to": "12:00"}]);
        let (status, answer) = app.post_outreach(&empty_windows).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!((answer["status"].as_str(), answer["decision"]["reason"].as_str()), (Some("held"), Some("outside_safe_hours")));
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn unknown_cases_and_jobs_are_404() {
        let app = spawn_app().await;
        assert_eq!(app.get_case("NOPE").await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.post_json("/v1/cases/NOPE/cancel", &json!({})).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.post_json("/v1/outreach/out_nope/cancel", &json!({})).await.0, StatusCode::NOT_FOUND);
        let call = json!({"at": "2026-11-23T09:00:00Z", "outcome": "no_answer"});
        assert_eq!(app.post_json("/v1/cases/NOPE/calls", &call).await.0, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_cancelled_job_is_never_sent_and_the_cancel_is_on_the_timeline() {
        // 22:30: the text is deferred to the morning, and cancelled before then.
        let app = crate::common::spawn_at("2026-11-23T22:30:00Z").await;
        let (_, answer) = app.post_outreach(&pretext("cancel-1", "CANCEL-1")).await;
        assert_eq!(answer["status"], "deferred");
        let id = answer["outreach_id"].as_str().unwrap();
        let (status, cancelled) = app.post_json(&format!("/v1/outreach/{id}/cancel"), &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cancelled["status"], "cancelled");
        // The worker looks at it anyway (as if the deferral fired): it must not send.
        let processed = app.state.worker().process(id).await.unwrap();
        assert_eq!(processed, safereach::worker::Processed::Skipped);
        let (_, case) = app.get_case("CANCEL-1").await;
        assert!(case["messages"].as_array().unwrap().is_empty());
        // Rule 1 now blocks it: the deferral's decision is replaced.
        let job = &case["outreach"][0];
        assert_eq!(job["status"], "cancelled");
        assert_eq!(
            job["decision"],
            json!({"outcome": "block", "reason": "do_not_contact", "channel": null, "template": null, "not_before": null})
        );
        let types: Vec<&str> = case["timeline"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["accepted", "cancelled"]);
        // A new job for a cancelled case is blocked do_not_contact.
        let (_, case_cancel) = app.post_json("/v1/cases/CANCEL-1/cancel", &json!({})).await;
        assert_eq!(case_cancel["status"], "cancelled");
        let (_, again) = app.post_outreach(&pretext("cancel-2", "CANCEL-1")).await;
        assert_eq!(again["decision"]["reason"], "do_not_contact");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn calls_are_recorded_validated_and_release_a_calls_first_deferral() {
        let app = crate::common::spawn_at(CLOCK).await;
        let body = json!({
            "request_id": "calls-1", "case_ref": "CALLS-1", "kind": "information_pack", "priority": true,
            "referral": {"source": "police", "referred_at": "2026-11-23T08:00:00Z"},
            "crime": {"categories": ["serious_violence"]},
            "contact": {"phones": [{"number": "07700 900321", "safe_to_text": true}], "preferred_method": "phone"},
            "consent": {"information_pack": true}
        });
        let (_, answer) = app.post_outreach(&body).await;
        assert_eq!(answer["decision"]["reason"], "calls_first");
        assert_eq!(answer["decision"]["not_before"], "2026-11-24T08:00:00Z");
        let bad =
            app.post_json("/v1/cases/CALLS-1/calls", &json!({"at": "2026-11-23T09:00:00Z", "outcome": "maybe"})).await;
        assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.1["errors"][0]["field"], "outcome");
        for at in ["2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z"] {
            let (status, _) = app.post_json("/v1/cases/CALLS-1/calls", &json!({"at": at, "outcome": "no_answer"})).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        // Two unanswered calls: the written follow-up goes now.
        let message = app.wait_for_message("CALLS-1", "sent").await;
        assert_eq!(message["channel"], "sms");
        assert_eq!(message["template"], "information_pack");
        let (_, case) = app.get_case("CALLS-1").await;
        assert_eq!(case["calls"].as_array().unwrap().len(), 2);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_wrong_method_or_an_unreadable_path_or_query_is_problem_json() {
    use reqwest::Method;
    let app = crate::common::spawn_at(CLOCK).await;
    let key = app.key_with(&["outreach:write", "cases:read", "cases:erase"]).await;
    // A route that exists with a method it does not take (405 naming those it takes); a path
    // parameter that is not UTF-8, on every route that takes one; a query that can't be read.
    let cases = [
        (Method::GET, "/v1/outreach", StatusCode::METHOD_NOT_ALLOWED, Some("POST")),
        (Method::PUT, "/v1/cases/X", StatusCode::METHOD_NOT_ALLOWED, Some("GET,DELETE")),
        (Method::DELETE, "/v1/outreach/out_x/cancel", StatusCode::METHOD_NOT_ALLOWED, Some("POST")),
        (Method::POST, "/v1/dead-letters", StatusCode::METHOD_NOT_ALLOWED, Some("GET")),
        (Method::GET, "/v1/cases/%FF", StatusCode::BAD_REQUEST, None),
        (Method::DELETE, "/v1/cases/%FF", StatusCode::BAD_REQUEST, None),
        (Method::POST, "/v1/cases/%FF/calls", StatusCode::BAD_REQUEST, None),
        (Method::POST, "/v1/cases/%FF/cancel", StatusCode::BAD_REQUEST, None),
        (Method::POST, "/v1/outreach/%FF/cancel", StatusCode::BAD_REQUEST, None),
        (Method::POST, "/v1/outreach/%FF/requeue", StatusCode::BAD_REQUEST, None),
        (Method::GET, "/v1/dead-letters?limit=many", StatusCode::BAD_REQUEST, None),
    ];
    for (method, path, expected, allowed) in cases {
        let response = app.http.request(method.clone(), app.url(path)).bearer_auth(&key).send().await.unwrap();
        let header = |name| response.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let (content_type, allow) = (header("content-type"), header("allow"));
        let (status, problem) = read(response).await;
        assert_eq!(status, expected, "{method} {path}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        assert_eq!(problem["status"], expected.as_u16(), "{method} {path}");
        for m in allowed.iter().flat_map(|a| a.split(',')) {
            assert!(allow.split(',').any(|a| a.trim() == m), "{method} {path}: Allow {allow:?} names {m}");
        }
    }
    assert_no_trace(&app).await;
    app.stop().await;
}

/// `value` without its `null` members, at any depth.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn null_is_absent_for_every_optional_field_and_refused_for_a_required_one() {
    let app = crate::common::spawn_at(CLOCK).await;
    let phone = json!({"number": "+447700900555", "belongs_to": null, "safe_to_text": true, "safe_to_voicemail": null});
    let top_level = json!({
        "request_id": "null-1", "case_ref": "NULL-1", "kind": "priority_pretext", "priority": null,
        "referral": null, "crime": {"categories": ["robbery"], "summary": null}, "victim": null,
        "contact": {"phones": [phone], "email": null, "postal": null, "preferred_method": null,
            "safe_times": null, "do_not_contact": null},
        "consent": null, "personalisation": null
    });
    let nested = json!({
        "request_id": "null-2", "case_ref": "NULL-2", "kind": "information_pack",
        "referral": {"source": null, "referred_at": null, "local_authority": null},
        "crime": {"categories": ["robbery"]},
        "victim": {"first_name": null, "date_of_birth": null, "is_under_18": null, "vulnerabilities": null, "language": null},
        "contact": {"phones": null, "email": {"address": "sam@example.org", "safe": null},
            "postal": {"name": null, "lines": null, "postcode": null, "safe": null}, "preferred_method": "email"},
        "consent": {"information_pack": null, "recorded_at": null}
    });
    for body in [top_level, nested] {
        let (status, answer) = app.post_outreach(&body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}: {answer}");
        // Decided as the same request without the nulls (on another case: not a duplicate).
        let mut absent = without_nulls(&body);
        for id in ["request_id", "case_ref"] {
            absent[id] = json!(format!("{}-absent", body[id].as_str().unwrap()));
        }
        let (status, expected) = app.post_outreach(&absent).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{absent}: {expected}");
        assert_eq!(answer["decision"], expected["decision"], "{body}");
    }
    // A required field is still required when it is null.
    let valid = json!({"request_id": "null-3", "case_ref": "NULL-3", "kind": "priority_pretext",
        "crime": {"categories": []}, "contact": {"phones": [{"number": "+447700900555"}], "email": {"address": "a@b.c"}}});
    let required = [
        ("request_id", "/request_id"),
        ("case_ref", "/case_ref"),
        ("kind", "/kind"),
        ("crime", "/crime"),
        ("crime.categories", "/crime/categories"),
        ("contact", "/contact"),
        ("contact.phones[0].number", "/contact/phones/0/number"),
        ("contact.email.address", "/contact/email/address"),
    ];
    for (field, pointer) in required {
        let mut body = valid.clone();
        *body.pointer_mut(pointer).unwrap() = Value::Null;
        let (status, problem) = app.post_outreach(&body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(app.get_case("NULL-3").await.0, StatusCode::NOT_FOUND, "nothing was stored");
    app.stop().await;
}

on_backends! {
    async fn requests_for_one_case_at_once_are_decided_as_if_one_after_the_other() {
        let app = crate::common::spawn_at(CLOCK).await;
        // 24 pre-texts for one case at once, with the first one's request sent four times more.
        let mut bodies: Vec<Value> = (0..24).map(|i| pretext(&format!("many-{i}"), "MANY-1")).collect();
        bodies.extend((0..4).map(|_| pretext("many-0", "MANY-1")));
        let answers = futures::future::join_all(bodies.iter().map(|b| app.post_outreach(b))).await;
        let created: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED).map(|(_, a)| a).collect();
        assert_eq!(created.len(), 24, "one job per request id: {answers:?}");
        let sends: Vec<&&Value> = created.iter().filter(|a| a["decision"]["outcome"] == "send").collect();
        assert_eq!(sends.len(), 1, "rule 11: one pre-text for the case");
        for other in created.iter().filter(|a| a["decision"]["outcome"] != "send") {
            assert_eq!(other["decision"]["outcome"], "block", "{other}");
            assert_eq!(other["decision"]["reason"], "duplicate", "{other}");
        }
        let replays: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, a)| a).collect();
        assert_eq!(replays.len(), 4, "{answers:?}");
        assert!(replays.iter().all(|r| *r == replays[0]), "every repeat gets the one first answer");
        assert!(created.contains(&replays[0]), "the first answer is the one the job was created with");
        assert_eq!(count(&app, "outreach").await, 24);
        assert_eq!(count(&app, "cases").await, 1);
        app.stop().await;
    }
}
