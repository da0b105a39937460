//! Retention and erasure: the app started again on the same database with its clock moved on
//! (`SAFEREACH_CLOCK`), as an operator's service would be days later.

use reqwest::StatusCode;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{TestApp, read};
use crate::reports::{Month, build_month, report};

fn redactions(case: &Value) -> Vec<(String, String)> {
    case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "redacted")
        .map(|e| {
            (e["detail"]["what"].as_str().unwrap().to_string(), e["detail"]["retention"].as_str().unwrap().to_string())
        })
        .collect()
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(app.state.store.pool()).await.unwrap()
}

/// `table.column: value` for each of `values` found in any column of any table, read directly.
async fn personal_data_left(app: &TestApp, values: &[&str]) -> Vec<String> {
    let columns = crate::retention_doc::schema(&app.state.store).await;
    assert!(columns.len() > 100, "the whole schema: {columns:?}");
    let mut found = Vec::new();
    for column in &columns {
        let (table, name) = column.split_once('.').unwrap();
        // As bytes: some columns hold keyed hashes, which are not text.
        let as_bytes = match app.state.store.dialect() {
            safereach::store::Dialect::Sqlite => "BLOB",
            safereach::store::Dialect::Postgres => "BYTEA",
        };
        let sql = format!(
            "SELECT CAST(CAST(\"{name}\" AS TEXT) AS {as_bytes}) FROM \"{table}\" WHERE \"{name}\" IS NOT NULL"
        );
        let cells: Vec<Vec<u8>> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(app.state.store.pool()).await.unwrap();
        for value in values {
            if cells.iter().any(|cell| cell.windows(value.len()).any(|w| w == value.as_bytes())) {
                found.push(format!("{column}: {value}"));
            }
        }
    }
    found
}

async fn delete_case(app: &TestApp, key: &str, case: &str) -> (StatusCode, Value) {
    read(app.http.delete(app.url(&format!("/v1/cases/{case}"))).bearer_auth(key).send().await.unwrap()).await
}

#[tokio::test]
async fn personal_data_goes_on_schedule_and_the_reports_still_add_up() {
    let Month { app } = build_month().await;
    let november = report(&app, "monthly?month=2026-11").await;
    let quarter = report(&app, "quarterly?quarter=2026-Q4").await;
    let (_, a) = app.get_case("A").await;
    assert!(a["messages"][0]["body"].as_str().unwrap().contains("Robin"), "{a}");
    assert_eq!(a["replies"][0]["body"], "after 5 please");

    // Ten days on, with messages kept 14 days: only F, not taken up (a declined call; 7 days), is due.
    let app = app.restart_at("2026-11-20T09:00:00Z", |c| c.retention_days = 14).await;
    app.wait_for_case("F", "redaction", |c| c["messages"][0]["body"].is_null()).await;
    let f = app.wait_for_case("F", "the request's redaction", |c| !c["outreach"][0]["redacted_at"].is_null()).await;
    assert!(f["messages"][0]["redacted_at"].is_string());
    assert!(f["replies"].as_array().unwrap().iter().all(|r| r["body"].is_null()), "{f}");
    assert_eq!(f["replies"][0]["classification"], "opt_out", "the classification stays");
    let mut got = redactions(&f);
    got.sort();
    let want: Vec<(String, String)> = [
        ("message", "not_taken_up"),
        ("reply", "not_taken_up"),
        ("reply", "not_taken_up"),
        ("request", "not_taken_up"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .into();
    assert_eq!(got, want);
    let (_, a) = app.get_case("A").await;
    assert!(a["messages"][0]["body"].is_string() && a["replies"][0]["body"].is_string(), "A is kept 14 days: {a}");
    let (_, c) = app.get_case("C").await;
    assert!(c["outreach"][0]["redacted_at"].is_null(), "a job that reached no one is kept 30 days");

    // Forty days on, with the defaults (7 days; 30 for jobs that reached no one).
    let app = app.restart_at("2026-12-20T09:00:00Z", |c| c.retention_days = 7).await;
    let a = app.wait_for_case("A", "redaction", |c| !c["outreach"][0]["redacted_at"].is_null()).await;
    assert!(a["messages"][0]["body"].is_null() && a["replies"][0]["body"].is_null(), "{a}");
    assert_eq!(a["messages"][0]["status"], "delivered", "statuses stay");
    let mut got = redactions(&a);
    got.sort();
    let want: Vec<(String, String)> = [("message", "default"), ("reply", "default"), ("request", "default")]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .into();
    assert_eq!(got, want);
    for case in ["C", "D"] {
        let c = app.wait_for_case(case, "redaction", |c| !c["outreach"][0]["redacted_at"].is_null()).await;
        assert_eq!(redactions(&c), [("request".to_string(), "never_reached".to_string())]);
    }
    // B was held for a person, and nobody acted on it for 30 days: it is closed (cancelled,
    // `expired`, its decision kept) and its request reduced.
    let b = app.wait_for_case("B", "expiry", |c| !c["outreach"][0]["redacted_at"].is_null()).await;
    assert_eq!(b["outreach"][0]["status"], "cancelled", "{b}");
    assert_eq!(b["outreach"][0]["decision"]["outcome"], "hold", "why it waited stays: {b}");
    let expired = b["timeline"].as_array().unwrap().iter().any(|e| e["type"] == "expired" && e["actor"] == "retention");
    assert!(expired, "{b}");
    assert_eq!(redactions(&b), [("request".to_string(), "never_reached".to_string())]);
    // Everything else is gone from the database, the reply from an unknown number too.
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM messages WHERE body IS NOT NULL OR subject IS NOT NULL OR html IS NOT NULL OR to_address IS NOT NULL").await,
        0
    );
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM replies WHERE body IS NOT NULL OR from_number IS NOT NULL").await, 0);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM outreach WHERE redacted_at IS NULL").await, 0);
    let kept: Vec<String> = sqlx::query_scalar("SELECT request_json FROM outreach WHERE redacted_at IS NOT NULL")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    for request in &kept {
        for personal in ["Robin", "+4477009001", "7700900", "High Street", "BS1", "robin.g@", "not-an-email", "Jo\""] {
            assert!(!request.contains(personal), "{personal} kept in {request}");
        }
        assert!(request.contains("\"categories\""), "what reports and policy need stays: {request}");
    }
    // Direct queries over every column of every table of the schema (all that the retention
    // document lists, which `retention_doc` holds equal to the schema): none of the test data's
    // names, numbers, addresses or bodies is left anywhere.
    let leftovers = personal_data_left(
        &app,
        &["Robin", "+4477", "7700900", "High Street", "BS1 4DJ", "robin.g@", "not-an-email", "after 5 please"],
    )
    .await;
    assert!(leftovers.is_empty(), "personal data left after retention (table.column: value): {leftovers:?}");
    assert_eq!(report(&app, "monthly?month=2026-11").await, november, "the report adds up after redaction");
    assert_eq!(report(&app, "quarterly?quarter=2026-Q4").await, quarter);

    // A redacted job is finished: even put back on the queue by mistake, it is never decided again.
    let c_id = {
        let (_, c) = app.get_case("C").await;
        c["outreach"][0]["outreach_id"].as_str().unwrap().to_string()
    };
    sqlx::query("UPDATE outreach SET status = 'queued' WHERE id = $1")
        .bind(&c_id)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(app.state.worker().process(&c_id).await.unwrap(), Processed::Skipped);
    let (_, c) = app.get_case("C").await;
    assert!(c["messages"].as_array().unwrap().is_empty());
    assert_eq!(c["timeline"].as_array().unwrap().last().unwrap()["type"], "redacted", "no decision after it");
    sqlx::query("UPDATE outreach SET status = 'blocked' WHERE id = $1")
        .bind(&c_id)
        .execute(app.state.store.pool())
        .await
        .unwrap();

    // Erasure on request: an admin scope; the case is gone, its counts stay.
    let ordinary = app.key_with(&["outreach:write", "cases:read", "reports:read"]).await;
    assert_eq!(delete_case(&app, &ordinary, "B").await.0, StatusCode::FORBIDDEN);
    let admin = app.key_with(&["cases:erase"]).await;
    for case in ["A", "B"] {
        let (code, answer) = delete_case(&app, &admin, case).await;
        assert_eq!((code, answer), (StatusCode::OK, json!({"case_ref": case, "status": "erased"})));
        assert_eq!(app.get_case(case).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(delete_case(&app, &admin, "A").await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete_case(&app, &admin, "NEVER").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM outreach WHERE request_json LIKE '%Robin%'").await,
        0,
        "B's held request went"
    );
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM cases WHERE case_ref IN ('A', 'B')").await, 0);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM events WHERE case_ref IN ('A', 'B')").await, 0);
    let erased = "(SELECT case_ref FROM cases WHERE erased_at IS NOT NULL)";
    assert_eq!(
        scalar(&app, &format!("SELECT COUNT(*) FROM messages WHERE case_ref IN {erased}")).await,
        1,
        "A's message"
    );
    for (table, what) in [("messages", "provider_ref IS NOT NULL"), ("replies", "provider_ref IS NOT NULL")] {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE case_ref IN {erased} AND {what}");
        assert_eq!(scalar(&app, &sql).await, 0, "{table}: no provider reference leads back");
    }
    let pending = format!(
        "SELECT COUNT(*) FROM event_outbox o JOIN events e ON e.id = o.event_id WHERE o.case_ref IN {erased} AND e.type <> 'redacted'"
    );
    assert_eq!(scalar(&app, &pending).await, 0, "no case event left to send under the anonymous reference");
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM outreach WHERE request_id LIKE 'A-%' OR request_id LIKE 'B-%'").await,
        0
    );
    assert_eq!(report(&app, "monthly?month=2026-11").await, november, "the report adds up after erasure");
    // B's held job had expired before the erasure (nobody acted on it): its last decision, held
    // for want of a safe number, is what the quarter counts, before and after.
    assert_eq!(report(&app, "quarterly?quarter=2026-Q4").await, quarter, "the quarter adds up after erasure");
    // A's number no longer leads to anyone.
    let (_, answer) = app
        .webhook("/webhooks/sandbox/inbound", &json!({"from": "+447700900101", "to": "60000", "body": "hello"}))
        .await;
    assert_eq!(answer["matched"], false);
    app.stop().await;
}

#[tokio::test]
async fn staff_notes_go_with_retention_and_with_erasure() {
    let app = crate::common::spawn_with(crate::common::Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        role: safereach::app::Role::Api,
        ..crate::common::Options::default()
    })
    .await;
    let store = &app.state.store;
    let now = app.state.clock.now_ms();
    let mut minor = crate::common::pretext("note-1", "NOTE-1");
    minor["victim"]["is_under_18"] = json!(true);
    let (_, held) = app.post_outreach(&minor).await;
    let id = held["outreach_id"].as_str().unwrap();
    safereach::service::review::cancel_for_review(
        store,
        id,
        "staff:ana",
        "Spoke to Jonathan's mother at 9 Larkspur Mews",
        now,
    )
    .await
    .unwrap();
    let (_, other) = app.post_outreach(&crate::common::pretext("note-2", "NOTE-2")).await;
    let mut under = crate::common::pretext("note-3", "NOTE-3");
    under["victim"]["is_under_18"] = json!(true);
    let (_, held3) = app.post_outreach(&under).await;
    safereach::service::review::cancel_for_review(
        store,
        held3["outreach_id"].as_str().unwrap(),
        "staff:ana",
        "Quennell family asked",
        now,
    )
    .await
    .unwrap();
    let _ = other;
    // A reply from a number we never texted, acknowledged with a reason that names someone.
    let (_, stranger) =
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": "+447700900999", "body": "is this about Dan?"})).await;
    let reply_id = stranger["reply_id"].as_str().unwrap();
    safereach::service::review::acknowledge_unmatched_reply(
        store,
        reply_id,
        "staff:ana",
        "Rang back: Mrs Quennell's son",
        now,
    )
    .await
    .unwrap();

    // Not yet due: the note stays.
    let config = safereach::service::retention::RetentionConfig::from_config(&app.state.config);
    let metrics = &app.state.metrics;
    safereach::service::retention::sweep(store, &config, now, metrics).await.unwrap();
    assert_eq!(
        store.case_notes("NOTE-1").await.unwrap()[0].note.as_deref(),
        Some("Spoke to Jonathan's mother at 9 Larkspur Mews")
    );
    // Eight days on (the default retention is 7 days from when a note was written): the text goes.
    let later = now + 8 * 86_400_000;
    let swept = safereach::service::retention::sweep(store, &config, later, metrics).await.unwrap();
    assert_eq!(swept.notes, 2, "{swept:?}");
    assert_eq!(store.case_notes("NOTE-1").await.unwrap()[0].note, None);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM replies WHERE review_note IS NOT NULL OR body IS NOT NULL").await, 0);
    let (_, case) = app.get_case("NOTE-1").await;
    assert!(redactions(&case).contains(&("note".to_string(), "default".to_string())), "{case}");

    // Erasure takes a case's notes with it, whatever their age.
    let mut fresh = crate::common::pretext("note-4", "NOTE-4");
    fresh["victim"]["is_under_18"] = json!(true);
    let (_, held4) = app.post_outreach(&fresh).await;
    safereach::service::review::cancel_for_review(
        store,
        held4["outreach_id"].as_str().unwrap(),
        "staff:ana",
        "Marguerite will call",
        now,
    )
    .await
    .unwrap();
    safereach::service::erasure::erase_in_database(store, "NOTE-4", now, "admin").await.unwrap().unwrap();
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM staff_notes WHERE note LIKE '%Marguerite%'").await, 0);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM staff_notes WHERE case_ref = 'NOTE-4'").await, 0);
    app.stop().await;
}

on_backends! {
    sqlite, postgres_redis;
    async fn deferred_and_dead_lettered_jobs_nobody_acts_on_are_closed_and_lose_their_request() {
        use crate::common::{Options, pretext, spawn_with};
        use safereach::app::Role;
        // A dead letter: the only attempt fails (a file where the outbox should be, as a full disk).
        let app = spawn_with(Options {
            clock: Some("2026-11-23T10:00:00Z".into()),
            role: Role::Api,
            configure: Box::new(|c| {
                c.max_attempts = 1;
                c.outbox_dir = "/dev/null/outbox".into();
            }),
            ..Options::default()
        })
        .await;
        let (_, answer) = app.post_outreach(&pretext("dl-1", "STALE-DL")).await;
        let dead = answer["outreach_id"].as_str().unwrap().to_string();
        assert_eq!(app.state.worker().process(&dead).await.unwrap(), Processed::DeadLettered);
        // A deferral: a pre-text at night waits for the morning (nobody runs the worker here).
        let app = app.restart_as(Role::Api, "2026-11-23T22:30:00Z", |_| {}).await;
        let (_, answer) = app.post_outreach(&pretext("night-1", "STALE-NIGHT")).await;
        assert_eq!(answer["decision"]["outcome"], "defer", "{answer}");
        let deferred = answer["outreach_id"].as_str().unwrap().to_string();
        let names = "SELECT COUNT(*) FROM outreach WHERE request_json LIKE '%Robin%'";
        assert_eq!(scalar(&app, names).await, 2);

        let store = &app.state.store;
        let config = safereach::service::retention::RetentionConfig::from_config(&app.state.config);
        let now = app.state.clock.now_ms();
        let swept = safereach::service::retention::sweep(store, &config, now, &app.state.metrics).await.unwrap();
        assert_eq!(swept.expired, 0, "not yet: {swept:?}");
        let days = i64::from(app.state.config.retention_never_reached_days);
        let later = now + (days + 1) * 86_400_000;
        let swept = safereach::service::retention::sweep(store, &config, later, &app.state.metrics).await.unwrap();
        assert_eq!(swept.expired, 2, "{swept:?}");
        assert_eq!(scalar(&app, names).await, 0, "both requests reduced");
        for (case_ref, id, last) in [("STALE-DL", &dead, "dead_lettered"), ("STALE-NIGHT", &deferred, "accepted")] {
            let (_, case) = app.get_case(case_ref).await;
            assert_eq!(case["outreach"][0]["status"], "cancelled", "{case}");
            let types: Vec<&str> = case["timeline"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
            assert!(types.contains(&last) && types.contains(&"expired"), "{case_ref}: {types:?}");
            // Closed means closed: the worker does not take it up again.
            assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::Skipped);
        }
        app.stop().await;
    }
}
