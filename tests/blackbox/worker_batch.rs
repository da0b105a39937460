//! The worker's batches (`Delivery::process_together`, what the worker's pipeline does with the
//! jobs that arrive together): jobs decided and claimed in one transaction each get the decision
//! they would get alone, one after the other, and a batch that fails is done one job at a time.

use safereach::app::Role;
use safereach::domain::{Decision, JobStatus};
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, pretext, read, spawn_with};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

async fn spawn() -> TestApp {
    spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await
}

fn id_of(answer: &Value) -> String {
    answer["outreach_id"].as_str().unwrap().to_string()
}

/// A pre-text for `case_ref` to its own number.
fn pretext_to(request_id: &str, case_ref: &str, number: &str) -> Value {
    let mut job = pretext(request_id, case_ref);
    job["contact"]["phones"][0]["number"] = json!(number);
    job
}

fn decided(processed: &Processed) -> (&'static str, &'static str) {
    match processed {
        Processed::Decided(d @ Decision::Block(reason)) => (d.outcome().as_str(), reason.as_str()),
        other => panic!("expected a block, got {other:?}"),
    }
}

on_backends! {
    sqlite, postgres;
    async fn jobs_decided_together_get_the_decision_each_would_get_alone() {
        let app = spawn().await;
        // Two pre-texts of one case, both to be sent, and rule 11 allows one. A came with a test
        // key, B with a live one after it: a live job never sees a test job, so B was answered
        // send; a test job sees live ones, so A may go only while B has no message on its way.
        let now = app.state.clock.now_ms();
        let options = safereach::store::KeyOptions { test: true, rate_limit: 3000 };
        let scopes = ["outreach:write".to_string(), "cases:read".to_string()];
        let test_key =
            safereach::service::accounts::create_api_key_with(&app.state.store, "batch-test", &scopes, options, now, "test")
                .await
                .unwrap();
        let post = |key: String, body: Value| {
            let request = app.http.post(app.url("/v1/outreach")).bearer_auth(key).json(&body);
            async move { read(request.send().await.unwrap()).await.1 }
        };
        let a = post(test_key, pretext_to("batch-a", "BATCH-1", "+447700900801")).await;
        assert_eq!(a["status"], "queued", "{a}");
        let b = post(app.key.clone(), pretext_to("batch-b", "BATCH-1", "+447700900801")).await;
        assert_eq!(b["status"], "queued", "{b}");
        // C's number opted out (committed before the batch); D is an ordinary send.
        let (_, c) = app.post_outreach(&pretext_to("batch-c", "BATCH-2", "+447700900802")).await;
        assert_eq!(c["status"], "queued", "{c}");
        let (_, stop) =
            app.webhook("/webhooks/sandbox/inbound", &json!({"from": "+447700900802", "to": "60000", "body": "STOP"})).await;
        assert_eq!(stop["classification"], "opt_out", "{stop}");
        let (_, d) = app.post_outreach(&pretext_to("batch-d", "BATCH-3", "+447700900803")).await;

        // B first: its message, claimed in this batch, is what A must see.
        let ids = [id_of(&b), id_of(&a), id_of(&c), id_of(&d)];
        let done: Vec<Processed> =
            app.state.worker().process_together(&ids).await.into_iter().map(Result::unwrap).collect();
        assert!(matches!(done[0], Processed::Sent { .. }), "B, decided first, goes: {done:?}");
        assert_eq!(decided(&done[1]), ("block", "duplicate"), "A sees B's message, claimed in the same batch");
        assert_eq!(decided(&done[2]), ("block", "suppressed"), "the opt-out stops C");
        assert!(matches!(done[3], Processed::Sent { .. }), "{done:?}");
        let mut sent: Vec<String> = app.sent_sms().iter().map(|m| m["to"].as_str().unwrap().to_string()).collect();
        sent.sort();
        assert_eq!(sent, ["+447700900801", "+447700900803"], "one text to each number that may have one");

        // Each job's record says what it came to, with its timeline events.
        let store = &app.state.store;
        for (id, status) in [(&ids[0], JobStatus::Sent), (&ids[1], JobStatus::Blocked), (&ids[2], JobStatus::Blocked)] {
            assert_eq!(store.outreach(id).await.unwrap().unwrap().status, status, "{id}");
        }
        assert_eq!(store.outreach_messages(&ids[1]).await.unwrap().len(), 0, "A has no message");
        let events: Vec<(String, Option<String>)> = store
            .case_events("BATCH-1")
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.actor == "worker")
            .map(|e| (e.kind, e.reason))
            .collect();
        let expected = [("decided", None), ("decided", Some("duplicate")), ("sent", None)];
        let expected: Vec<(String, Option<String>)> =
            expected.iter().map(|(k, r)| (k.to_string(), r.map(str::to_string))).collect();
        let mut events = events;
        events.sort();
        assert_eq!(events, expected);
        // Looked at again, together or alone, nothing more goes.
        let again = app.state.worker().process_together(&ids).await;
        assert!(again.iter().all(|p| matches!(p, Ok(Processed::Skipped))), "{again:?}");
        assert_eq!(app.sent_sms().len(), 2);
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres;
    async fn a_batch_that_fails_is_done_one_job_at_a_time() {
        let app = spawn().await;
        let mut ids = Vec::new();
        for n in 1..=3 {
            let (_, answer) = app.post_outreach(&pretext_to(&format!("fail-{n}"), &format!("FAIL-{n}"), &format!("+44770090081{n}"))).await;
            assert_eq!(answer["status"], "queued", "{answer}");
            ids.push(id_of(&answer));
        }
        // The middle job's stored request can no longer be read: deciding it fails, and with it
        // the batch's transaction.
        sqlx::query("UPDATE outreach SET request_json = 'not a request' WHERE id = $1")
            .bind(&ids[1])
            .execute(app.state.store.pool())
            .await
            .unwrap();
        // The same job twice in the batch (the queue may hand a job over twice): looked at once.
        let batch = [ids[0].clone(), ids[1].clone(), ids[2].clone(), ids[0].clone()];
        let done = app.state.worker().process_together(&batch).await;
        assert!(matches!(done[0], Ok(Processed::Sent { .. })), "{done:?}");
        assert!(done[1].as_ref().is_err_and(|e| e.to_string().contains("outreach request")), "{done:?}");
        assert!(matches!(done[2], Ok(Processed::Sent { .. })), "{done:?}");
        assert!(matches!(done[3], Ok(Processed::Skipped)), "{done:?}");
        let mut sent: Vec<String> = app.sent_sms().iter().map(|m| m["to"].as_str().unwrap().to_string()).collect();
        sent.sort();
        assert_eq!(sent, ["+447700900811", "+447700900813"], "the others went, once each");
        let job = app.state.store.outreach(&ids[1]).await.unwrap().unwrap();
        assert_eq!(job.status, safereach::domain::JobStatus::Queued, "the failed job is left as it was");
        assert!(app.state.store.outreach_messages(&ids[1]).await.unwrap().is_empty());
        app.stop().await;
    }
}
