//! From acceptance to the outbox: the worker decides again, renders the approved template, sends
//! once, and records; provider callbacks move the message forward only.

use reqwest::StatusCode;
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, pretext, read, spawn_at, spawn_with};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

fn types(case: &Value) -> Vec<String> {
    case["timeline"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
}

on_backends! {
    async fn a_pretext_is_sent_once_from_the_approved_template_and_recorded() {
        let app = spawn_at(MONDAY_10AM).await;
        let (status, answer) = app.post_outreach(&pretext("flow-1", "FLOW-1")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(answer["decision"]["template"], "priority_pretext");
        let message = app.wait_for_message("FLOW-1", "sent").await;
        assert_eq!(message["template"], "priority_pretext");
        assert_eq!(message["template_version"], 1);
        assert_eq!(message["provider"], "sandbox");
        assert_eq!(message["provider_ref"], message["id"], "our message id is the provider reference");
        assert_eq!(message["segments"], 1);
        let body = message["body"].as_str().unwrap();
        assert!(body.contains("Robin"), "personalised: {body}");

        let sent = app.sent_sms();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["to"], "+447700900555");
        assert_eq!(sent[0]["id"], message["id"]);
        assert_eq!(sent[0]["body"], body);

        // Running the job again (a duplicate delivery from the queue) sends nothing more.
        let id = answer["outreach_id"].as_str().unwrap();
        assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::Skipped);
        assert_eq!(app.sent_sms().len(), 1);

        let (_, case) = app.get_case("FLOW-1").await;
        assert_eq!(types(&case), ["accepted", "decided", "sent"]);
        for event in case["timeline"].as_array().unwrap() {
            assert!(event["at"].as_str().unwrap().starts_with("2026-11-23T10:0"), "events carry the clock's time: {event}");
            assert!(!event["actor"].as_str().unwrap().is_empty());
        }
        assert_eq!(case["outreach"][0]["status"], "sent");
        app.stop().await;
    }
}

on_backends! {
    async fn email_and_letter_information_packs_reach_the_outbox() {
        let app = spawn_at(MONDAY_10AM).await;
        let email = json!({
            "request_id": "pack-email", "case_ref": "PACK-1", "kind": "information_pack",
            "crime": {"categories": ["theft"]}, "victim": {"first_name": "Priya"},
            "contact": {"email": {"address": "Priya@Example.org", "safe": true}, "preferred_method": "email"},
            "consent": {"information_pack": true}
        });
        let letter = json!({
            "request_id": "pack-letter", "case_ref": "PACK-2", "kind": "information_pack",
            "crime": {"categories": ["burglary"]}, "victim": {"first_name": "Lee"},
            "contact": {"postal": {"name": "Lee Jones", "lines": ["2 Station Road", "Coventry"], "postcode": "cv12ab", "safe": true}, "preferred_method": "letter"},
            "consent": {"information_pack": true}
        });
        for body in [&email, &letter] {
            let (status, answer) = app.post_outreach(body).await;
            assert_eq!((status, answer["decision"]["outcome"].as_str()), (StatusCode::ACCEPTED, Some("send")), "{answer}");
        }
        let sent_email = app.wait_for_message("PACK-1", "sent").await;
        let eml = std::fs::read_to_string(app.outbox().join(format!("email/{}.eml", sent_email["id"].as_str().unwrap())))
            .unwrap();
        assert!(eml.contains(&format!("Message-ID: <{}@", sent_email["id"].as_str().unwrap())), "{eml}");
        assert!(eml.contains("To: priya@example.org"));
        assert!(eml.contains("multipart/alternative"));
        assert!(sent_email["subject"].as_str().is_some_and(|s| !s.is_empty()));

        let sent_letter = app.wait_for_message("PACK-2", "sent").await;
        let pdf = std::fs::read(app.outbox().join(format!("letters/{}.pdf", sent_letter["id"].as_str().unwrap()))).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        app.stop().await;
    }
}

on_backends! {
    async fn callbacks_move_statuses_forward_only_and_need_the_token() {
        let app = spawn_at(MONDAY_10AM).await;
        app.post_outreach(&pretext("cb-1", "CB-1")).await;
        let message = app.wait_for_message("CB-1", "sent").await;
        let provider_ref = message["provider_ref"].as_str().unwrap();

        let bad = read(
            app.http
                .post(app.url("/webhooks/sandbox/status?token=wrong"))
                .json(&json!({"provider_ref": provider_ref, "status": "failed"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(bad.0, StatusCode::FORBIDDEN);
        let missing = app
            .http
            .post(app.url("/webhooks/sandbox/status"))
            .json(&json!({"provider_ref": provider_ref, "status": "failed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.get_case("CB-1").await.1["messages"][0]["status"], "sent", "a refused callback changes nothing");

        let (status, moved) =
            app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": provider_ref, "status": "delivered"})).await;
        assert_eq!((status, moved["result"].as_str()), (StatusCode::OK, Some("moved")));
        for late in ["sent", "failed", "delivered"] {
            let (status, ignored) =
                app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": provider_ref, "status": late})).await;
            assert_eq!((status, ignored["result"].as_str()), (StatusCode::OK, Some("ignored")), "{late}");
        }
        let (status, unknown) =
            app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": "msg_unknown", "status": "delivered"})).await;
        assert_eq!((status, unknown["result"].as_str()), (StatusCode::OK, Some("unknown_message")));
        let (status, _) =
            app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": provider_ref, "status": "teleported"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (_, case) = app.get_case("CB-1").await;
        assert_eq!(case["messages"][0]["status"], "delivered");
        let statuses: Vec<(&str, &str)> = case["messages"][0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["type"].as_str().unwrap(), e["status"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(
            statuses,
            [
                ("sent", "sent"),
                ("status", "delivered"),
                ("status_ignored", "sent"),
                ("status_ignored", "failed"),
                ("status_ignored", "delivered")
            ]
        );
        app.stop().await;
    }
}

on_backends! {
    async fn two_workers_racing_for_one_job_send_it_once() {
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let (_, answer) = app.post_outreach(&pretext("race-1", "RACE-1")).await;
        let id = answer["outreach_id"].as_str().unwrap().to_string();
        let (a, b) = (app.state.worker(), app.state.worker());
        let (first, second) = tokio::join!(a.process(&id), b.process(&id));
        let results = [first.unwrap(), second.unwrap()];
        assert_eq!(results.iter().filter(|r| matches!(r, Processed::Sent { .. })).count(), 1, "{results:?}");
        assert_eq!(app.sent_sms().len(), 1);
        app.stop().await;
    }
}

on_backends! {
    async fn transient_failures_retry_with_backoff_then_dead_letter() {
        let app = spawn_with(Options {
            clock: Some(MONDAY_10AM.into()),
            role: Role::Api,
            configure: Box::new(|c| {
                c.max_attempts = 2;
                // A file where the outbox directory should be: every write fails, as a full disk would.
                c.outbox_dir = "/dev/null/outbox".into();
            }),
            ..Options::default()
        })
        .await;
        let (_, answer) = app.post_outreach(&pretext("retry-1", "RETRY-1")).await;
        let id = answer["outreach_id"].as_str().unwrap();
        let before = app.state.clock.now_ms();
        let first = app.state.worker().process(id).await.unwrap();
        let Processed::Retrying { at } = first else { panic!("expected a retry, got {first:?}") };
        // retry_base_secs is 1 in tests: the first retry comes 0.8 to 1.2 s later.
        assert!(at - before >= 700 && at - before <= 1_500, "retry in {} ms", at - before);
        assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::DeadLettered);
        let (_, case) = app.get_case("RETRY-1").await;
        assert_eq!(types(&case), ["accepted", "decided", "send_failed", "decided", "send_failed", "dead_lettered"]);
        assert_eq!(case["outreach"][0]["status"], "dead_lettered");
        assert_eq!(case["messages"][0]["status"], "queued", "nothing was handed over");
        // Dead letters stay put until staff requeue them.
        assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::Skipped);
        app.stop().await;
    }
}

on_backends! {
    async fn a_deferred_job_waits_in_the_outbox_until_its_time() {
        let app = spawn_at("2026-11-23T22:30:00Z").await;
        let (_, answer) = app.post_outreach(&pretext("night-1", "NIGHT-1")).await;
        assert_eq!(answer["decision"]["not_before"], "2026-11-24T08:00:00Z");
        let id = answer["outreach_id"].as_str().unwrap();
        let run_at: i64 = sqlx::query_scalar("SELECT run_at FROM job_outbox WHERE outreach_id = $1")
            .bind(id)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        assert_eq!(safereach::time::rfc3339_ms(run_at), "2026-11-24T08:00:00Z");
        // Woken early (say, by a duplicate), the worker decides again and defers again: nothing sent.
        let again = app.state.worker().process(id).await.unwrap();
        assert!(
            matches!(again, Processed::Decided(ref d) if d.outcome() == safereach::domain::Outcome::Defer),
            "{again:?}"
        );
        assert!(app.sent_sms().is_empty());
        app.stop().await;
    }
}

on_backends! {
    async fn jobs_the_queue_lost_are_put_back_and_then_sent_once() {
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let (_, answer) = app.post_outreach(&pretext("lost-1", "LOST-1")).await;
        let id = answer["outreach_id"].as_str().unwrap();
        let store = &app.state.store;
        // The relay pushed it and the queue lost it: no outbox row, nothing ran.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        sqlx::query("DELETE FROM job_outbox").execute(store.pool()).await.unwrap();
        let now = app.state.clock.now_ms();
        assert_eq!(store.requeue_stale(now, now - 60_000).await.unwrap(), 0, "a fresh job is not stale yet");
        assert_eq!(store.requeue_stale(now, now + 1).await.unwrap(), 1, "a stale queued job goes back");
        assert_eq!(store.requeue_stale(now, now + 1).await.unwrap(), 0, "only once while its row waits");
        assert!(matches!(app.state.worker().process(id).await.unwrap(), Processed::Sent { .. }));
        assert_eq!(store.requeue_stale(now, now + 1).await.unwrap(), 0, "a sent job is never requeued");
        assert_eq!(app.sent_sms().len(), 1);
        app.stop().await;
    }
}

on_backends! {
    async fn the_worker_keeps_picking_up_jobs_one_after_another() {
        // A regression test: with apalis's own interval strategy a worker could sleep for 30 s after a
        // slow fetch (see queue::Tick).
        let app = spawn_at(MONDAY_10AM).await;
        for i in 0..20 {
            let case = format!("SEQ-{i}");
            app.post_outreach(&pretext(&format!("seq-{i}"), &case)).await;
            app.wait_for_message(&case, "sent").await;
        }
        assert_eq!(app.sent_sms().len(), 20);
        app.stop().await;
    }
}

/// apalis-sqlite's acknowledgement (its `queries/task/ack.sql`, version 1.0.0): planned by
/// `lock_by` it would read the batch's JSON once for every job the worker ever locked; the queue
/// tells SQLite that `lock_by` is not selective (`queue::SQLITE_PLANNER_HINT`), so each job is
/// looked up by id.
#[tokio::test]
async fn the_sqlite_queue_acknowledges_each_job_by_its_id() {
    let app = spawn_at(MONDAY_10AM).await;
    let safereach::queue::Queue::Sqlite(storage) = &app.state.queue else { panic!("the embedded default") };
    let explain_ack =
        "EXPLAIN QUERY PLAN WITH j AS (SELECT value ->> 'task_id' AS task_id, value ->> 'attempt' AS attempt,
                   value ->> 'result' AS result, value ->> 'status' AS status FROM json_each(?1))
               UPDATE Jobs SET status = j.status, attempts = j.attempt, last_result = j.result,
                   done_at = strftime('%s', 'now')
               FROM j WHERE Jobs.id = j.task_id AND Jobs.lock_by = ?2";
    let plan: Vec<String> = sqlx::query(explain_ack)
        .fetch_all(storage.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
        .collect();
    assert!(plan.iter().any(|step| step.contains("Jobs USING INDEX sqlite_autoindex_Jobs_1 (id=?)")), "{plan:?}");
    assert!(!plan.iter().any(|step| step.contains("LIdx")), "{plan:?}");
    app.stop().await;
}

on_backends! {
    async fn finished_jobs_are_tidied_from_the_queue() {
        let app = spawn_at(MONDAY_10AM).await;
        app.post_outreach(&pretext("tidy-1", "TIDY-1")).await;
        app.wait_for_message("TIDY-1", "sent").await;
        let queue = &app.state.queue;
        // The queue acknowledges the job just after the worker returns.
        let mut tidied = 0;
        for _ in 0..50 {
            tidied += queue.tidy(std::time::Duration::ZERO).await.unwrap();
            if tidied > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(tidied, 1, "the finished job went from the {} queue", queue.kind());
        assert_eq!(queue.tidy(std::time::Duration::ZERO).await.unwrap(), 0);
        assert_eq!(queue.tidy(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
        // Redis: its id went from the done set as well (apalis's vacuum leaves it there).
        if let Some(url) = &app.state.config.redis_url {
            let name = safereach::queue::queue_name(&app.state.config.database_url);
            let done = apalis_redis::Config::default().queue(&name).done_jobs_set();
            let mut redis = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
            let kept: i64 = redis::cmd("SCARD").arg(&done).query_async(&mut redis).await.unwrap();
            assert_eq!(kept, 0);
        }
        app.stop().await;
    }
}

on_backends! {
    async fn a_send_cut_off_mid_way_is_dead_lettered_for_staff_never_resent_by_itself() {
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let (_, answer) = app.post_outreach(&pretext("doubt-1", "DOUBT-1")).await;
        let id = answer["outreach_id"].as_str().unwrap();
        let store = &app.state.store;
        // Another worker took the message and is still within its lease: we look again later.
        let message = app.start_sending(id, "DOUBT-1").await;
        let lease = app.state.config.send_lease_secs as i64 * 1000;
        let now = app.state.clock.now_ms();
        sqlx::query("DELETE FROM job_outbox").execute(store.pool()).await.unwrap();
        assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::Skipped);
        let run_at: i64 = sqlx::query_scalar("SELECT run_at FROM job_outbox WHERE outreach_id = $1")
            .bind(id)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(run_at > now + lease, "looked at again once the lease is over");

        // That worker died: its lease ran out with no result. Whether the provider got the text
        // is unknown, so it is not sent again but dead-lettered for staff.
        app.cut_off(&message).await;
        assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::DeadLettered);
        assert!(app.sent_sms().is_empty());
        let (_, listed) = read(app.http.get(app.url("/v1/dead-letters")).bearer_auth(&app.key).send().await.unwrap()).await;
        assert_eq!(listed["count"], 1);
        assert_eq!(listed["dead_letters"][0]["reason"], "send_interrupted");
        assert_eq!(app.state.worker().process(id).await.unwrap(), Processed::Skipped, "stays put");

        // Staff see it from the command line too, check the provider (it never got it) and
        // requeue it: it goes, once.
        // (Off the runtime's thread: the app in this test runs on it meanwhile.)
        // (With the app's clock: what the command records is dated by it.)
        let cli = |args: Vec<String>| {
            let database_url = app.state.config.database_url.clone();
            // On Postgres the hash key is given, as to the app.
            let hash_key = app.state.config.hash_key.clone().unwrap_or_default();
            let clock = app.state.clock.now().to_rfc3339();
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_safereach"))
                    .args(&args)
                    .env_clear()
                    .env("SAFEREACH_DATABASE_URL", database_url)
                    .env("SAFEREACH_CLOCK", clock)
                    .env("SAFEREACH_ALLOW_CLOCK", "1")
                    .env("SAFEREACH_HASH_KEY", hash_key)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout).to_string()
            })
        };
        let list = cli(vec!["dead-letters".into(), "list".into()]).await.unwrap();
        assert!(list.starts_with("1 dead-lettered job(s)") && list.contains(id) && list.contains("send_interrupted"), "{list}");
        assert!(cli(vec!["dead-letters".into(), "requeue".into(), id.into()]).await.unwrap().contains("requeued"));
        let (status, _) = app.post_json(&format!("/v1/outreach/{id}/requeue"), &json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "only a dead letter can be requeued");
        assert!(matches!(app.state.worker().process(id).await.unwrap(), Processed::Sent { .. }));
        assert_eq!(app.sent_sms().len(), 1);
        let (_, case) = app.get_case("DOUBT-1").await;
        assert_eq!(types(&case), ["accepted", "decided", "decided", "dead_lettered", "requeued", "decided", "sent"]);
        let requeued = case["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "requeued").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(requeued["at"].as_str().unwrap()).unwrap();
        assert!((app.state.clock.now() - at.to_utc()).num_seconds().abs() < 60, "requeued by the clock: {requeued}");
        app.stop().await;
    }
}

on_backends! {
    async fn wording_that_cannot_be_filled_in_holds_the_job_with_its_reason() {
        // The submission checks refuse an unguarded variable, so store such wording directly, as
        // if the checks had been bypassed: the worker must still hold rather than send a gap.
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let store = &app.state.store;
        let now = app.state.clock.now_ms();
        let new = safereach::store::NewVersion {
            name: "priority_pretext",
            channel: "sms",
            kind: "priority_pretext",
            discreet: false,
            language: "en",
            subject: None,
            body: "Hello {{first_name}}, we will call.",
            html: None,
            author: crate::common::AUTHOR,
            state: safereach::store::TemplateState::Submitted,
        };
        let version = store.insert_template_version(&new, now).await.unwrap();
        assert!(store.approve_template_version(&version, crate::common::APPROVER, None, now).await.unwrap());
        let mut nameless = pretext("render-1", "RENDER-1");
        nameless["victim"] = json!({});
        let (_, answer) = app.post_outreach(&nameless).await;
        let id = answer["outreach_id"].as_str().unwrap();
        assert!(matches!(app.state.worker().process(id).await.unwrap(), Processed::Decided(_)));
        let (_, case) = app.get_case("RENDER-1").await;
        assert_eq!(case["outreach"][0]["status"], "held");
        assert_eq!(case["outreach"][0]["decision"]["outcome"], "hold");
        assert_eq!(case["outreach"][0]["decision"]["reason"], "render_failed");
        assert!(case["messages"].as_array().unwrap().is_empty());
        assert!(app.sent_sms().is_empty());
        app.stop().await;
    }
}

on_backends! {
    async fn a_forged_callback_is_refused_before_its_body_is_read() {
        // The print service is configured (at an address where nothing listens), so its route is there.
        let app = spawn_with(Options {
            clock: Some(MONDAY_10AM.into()),
            configure: Box::new(|c| {
                c.letter_provider = "http".into();
                c.print_url = Some("http://127.0.0.1:1/letters".into());
            }),
            ..Options::default()
        })
        .await;
        for path in ["/webhooks/sandbox/status", "/webhooks/sandbox/inbound", "/webhooks/print/status"] {
            let response = app.http.post(app.url(&format!("{path}?token=wrong"))).json(&json!({"junk": true})).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
            let response = app.http.post(app.url(path)).body("not json").send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        }
        app.stop().await;
    }
}
