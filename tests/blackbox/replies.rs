//! Inbound replies through the sandbox callback: matched to the case of the latest message to
//! the number, classified, and acted on (suppression, alerts, call windows). Never answered.

use reqwest::StatusCode;
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, pretext, spawn_at, spawn_with};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";
const NUMBER: &str = "+447700900555";

fn events_of<'a>(case: &'a Value, kind: &str) -> Vec<&'a Value> {
    case["timeline"].as_array().unwrap().iter().filter(|e| e["type"] == kind).collect()
}

on_backends! {
    sqlite, postgres_redis;
    async fn stop_suppresses_the_number_and_a_queued_job_is_then_blocked_before_sending() {
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let (_, first) = app.post_outreach(&pretext("rep-1", "REP-1")).await;
        assert!(matches!(
            app.state.worker().process(first["outreach_id"].as_str().unwrap()).await.unwrap(),
            Processed::Sent { .. }
        ));
        // A second case for the same number is accepted while the number is still fine…
        let (_, second) = app.post_outreach(&pretext("rep-2", "REP-2")).await;
        assert_eq!(second["decision"]["outcome"], "send");
        // …then the victim replies STOP to the first message.
        let (status, reply) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900555", "to": "60000", "body": "STOP"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((reply["classification"].as_str(), reply["matched"].as_bool()), (Some("opt_out"), Some(true)));
        // The worker decides again right before sending: blocked, nothing sent.
        let processed = app.state.worker().process(second["outreach_id"].as_str().unwrap()).await.unwrap();
        assert!(
            matches!(processed, Processed::Decided(ref d) if d.reason().map(|r| r.as_str()) == Some("suppressed")),
            "{processed:?}"
        );
        assert_eq!(app.sent_sms().len(), 1);
        let (_, case) = app.get_case("REP-1").await;
        assert_eq!(case["replies"][0]["classification"], "opt_out");
        assert_eq!(case["replies"][0]["from_known"], true);
        assert_eq!(events_of(&case, "suppressed")[0]["reason"], "opt_out");
        assert_eq!(events_of(&case, "alert")[0]["reason"], "opt_out");
        // START lifts the opt-out: new jobs may go again.
        let (_, start) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "start"})).await;
        assert_eq!(start["classification"], "opt_in");
        let (_, third) = app.post_outreach(&pretext("rep-3", "REP-3")).await;
        assert_eq!(third["decision"]["outcome"], "send", "{third}");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn distress_alerts_urgently_and_an_unsafe_reply_is_never_lifted_by_start() {
        let app = spawn_at(MONDAY_10AM).await;
        app.post_outreach(&pretext("rep-4", "REP-4")).await;
        app.wait_for_message("REP-4", "sent").await;
        let (_, distress) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "STOP he's here"})).await;
        assert_eq!(distress["classification"], "distress");
        let (_, case) = app.get_case("REP-4").await;
        let alert = events_of(&case, "alert")[0];
        assert_eq!((alert["reason"].as_str(), alert["detail"]["urgency"].as_str()), (Some("distress"), Some("urgent")));
        assert_eq!(events_of(&case, "suppressed")[0]["reason"], "opt_out", "a frightened STOP still suppresses");

        let (_, wrong) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "wrong number, who is this?"})).await;
        assert_eq!(wrong["classification"], "unsafe");
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "START"})).await;
        let (_, again) = app.post_outreach(&pretext("rep-5", "REP-5")).await;
        assert_eq!(again["decision"]["reason"], "suppressed", "only staff can clear an unsafe number: {again}");
        // Nothing is ever sent back.
        assert_eq!(app.sent_sms().len(), 1);
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_time_preference_is_recorded_and_a_reply_from_an_unknown_number_is_kept_for_staff() {
        let app = spawn_at(MONDAY_10AM).await;
        app.post_outreach(&pretext("rep-6", "REP-6")).await;
        app.wait_for_message("REP-6", "sent").await;
        let (_, pref) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "after 5 is best"})).await;
        assert_eq!(pref["classification"], "time_preference");
        let (_, case) = app.get_case("REP-6").await;
        let window: Value = serde_json::from_str(case["call_window"].as_str().unwrap()).unwrap();
        assert_eq!(window["from"], "17:00:00");
        assert_eq!(events_of(&case, "alert")[0]["reason"], "time_preference");

        let (status, stranger) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": "+447700900999", "body": "hello?"})).await;
        assert_eq!((status, stranger["matched"].as_bool()), (StatusCode::OK, Some(false)));
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM replies WHERE case_ref IS NULL")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(kept, 1);
        let (bad, _) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER})).await;
        assert_eq!(bad, StatusCode::UNPROCESSABLE_ENTITY);
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres;
    async fn a_reply_goes_to_the_case_of_the_latest_message_to_the_number() {
        // One phone, two cases (a victim referred twice): the reply answers the latest text.
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        for case in ["LATEST-1", "LATEST-2"] {
            let (_, answer) = app.post_outreach(&pretext(&case.to_lowercase(), case)).await;
            let processed = app.state.worker().process(answer["outreach_id"].as_str().unwrap()).await.unwrap();
            assert!(matches!(processed, Processed::Sent { .. }), "{processed:?}");
        }
        let (_, reply) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "after 5 works"})).await;
        assert_eq!(reply["matched"], true);
        let (_, older) = app.get_case("LATEST-1").await;
        let (_, latest) = app.get_case("LATEST-2").await;
        assert!(older["replies"].as_array().unwrap().is_empty(), "{older}");
        assert_eq!(latest["replies"][0]["classification"], "time_preference");
        assert_eq!(events_of(&latest, "alert")[0]["reason"], "time_preference");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn stop_later_in_a_reply_suppresses_nothing_and_a_person_reads_please_stop() {
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let (_, first) = app.post_outreach(&pretext("rep-7", "REP-7")).await;
        assert!(matches!(
            app.state.worker().process(first["outreach_id"].as_str().unwrap()).await.unwrap(),
            Processed::Sent { .. }
        ));
        // "stop" as a place, not a request: the call time is recorded and the number stays usable.
        let (_, bus) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "meet me at the bus stop after 5"})).await;
        assert_eq!(bus["classification"], "time_preference");
        let (_, case) = app.get_case("REP-7").await;
        let window: Value = serde_json::from_str(case["call_window"].as_str().unwrap()).unwrap();
        assert_eq!(window["from"], "17:00:00");
        // "please stop" is not a clear opt-out: it waits for a person, and suppresses nothing.
        let (_, please) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": NUMBER, "body": "please stop"})).await;
        assert_eq!(please["classification"], "other");
        let (_, case) = app.get_case("REP-7").await;
        assert!(events_of(&case, "suppressed").is_empty(), "{case:#}");
        let alerts: Vec<&str> = events_of(&case, "alert").iter().map(|a| a["reason"].as_str().unwrap()).collect();
        assert_eq!(alerts, ["time_preference", "reply_needs_review"]);
        let (_, second) = app.post_outreach(&pretext("rep-8", "REP-8")).await;
        assert_eq!(second["decision"]["outcome"], "send", "the number is not suppressed: {second}");
        app.stop().await;
    }
}
