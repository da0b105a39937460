//! Backend restarts during a run at full rate: Redis, then Postgres, each stopped and started
//! again while clients post as fast as they are answered. While a backend is down the API answers
//! 503 with `Retry-After`, never another 5xx, and never drops a connection; every request that
//! got a 2xx is processed exactly once; a process started while a backend is down listens,
//! answers `/healthz` 200 and everything else 503, and comes up by itself when the backend does.
//!
//! On servers of the test's own — a Redis it starts, and the spare Postgres cluster of
//! scripts/test.sh (shared with `outage::postgres_going_away…` through a nextest test group) —
//! so that no other test is disturbed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::gateway::{Gateway, Storage, not_near_midnight, number, post, pretext_to};
use super::load::Load;
use super::{Figures, sized};
use crate::common::service;
use crate::outage::OwnRedis;

/// Job `n` and the status it must end in: one in four is sent, the others blocked (a landline
/// for a pre-text) or held (a minor), so that the API runs at full rate while the worker keeps
/// up.
fn job(n: u64) -> (Value, &'static str) {
    let mut body = pretext_to("restart", n);
    match n % 4 {
        0 => (body, "sent"),
        1 | 2 => {
            body["contact"]["phones"][0]["number"] = json!("0121 496 0000");
            (body, "blocked")
        }
        _ => {
            body["victim"]["is_under_18"] = json!(true);
            (body, "held")
        }
    }
}

/// What a process started while a backend is down does: listens, `/healthz` 200, the API 503
/// with `Retry-After`, and it keeps running.
async fn serves_503_while_starting(gateway: &mut Gateway, i: usize) {
    gateway.wait_for(i, "/healthz", Duration::from_secs(30)).await;
    let http = reqwest::Client::new();
    let answer = post(&http, &format!("{}/v1/outreach", gateway.base(i)), &gateway.key, &job(9_999_999).0).await;
    assert_eq!((answer.status, answer.retry_after), (Some(StatusCode::SERVICE_UNAVAILABLE), true), "{:?}", answer.body);
    assert_eq!(answer.body["status"], 503, "problem+json: {}", answer.body);
    let ready = http.get(format!("{}/readyz", gateway.base(i))).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(gateway.alive(i), "it waits for the backend rather than exiting:\n{}", gateway.log_tail(i));
}

#[tokio::test]
async fn redis_then_postgres_restart_under_full_load_and_nothing_is_lost_or_doubled() {
    let (Some(redis_server), Some(spare), Some(ctl)) = (
        service("SAFEREACH_TEST_REDIS_SERVER"),
        service("SAFEREACH_TEST_POSTGRES_SPARE_URL"),
        service("SAFEREACH_TEST_POSTGRES_SPARE_CTL"),
    ) else {
        return;
    };
    let (warm, down, clients): (u64, u64, usize) = (sized(3, 20), sized(5, 60), sized(16, 32));
    not_near_midnight(10).await;
    let mut redis = OwnRedis::start(&redis_server);
    let mut gateway =
        Gateway::new("restarts", Storage::Postgres { admin_url: &spare, redis_url: Some(redis.url()) }).await;
    let (api, worker) = (gateway.start("api"), gateway.start("worker"));
    gateway.wait_for(api, "/readyz", Duration::from_secs(60)).await;
    let cluster = |action: &str| {
        let status = Command::new(&ctl).arg(action).status().unwrap();
        assert!(status.success(), "{ctl} {action}");
    };

    let url = format!("{}/v1/outreach", gateway.base(api));
    let load = Load::closed(vec![url], &gateway.key, Arc::new(|n| job(n).0), clients);
    let mut detail = serde_json::Map::new();
    tokio::time::sleep(Duration::from_secs(warm)).await;

    // Redis goes away (SIGTERM: it writes its append-only file) and comes back.
    let before = load.answers();
    redis.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late_api = gateway.start_on("api", Some(crate::common::free_port()));
    let late_worker = gateway.start("worker");
    serves_503_while_starting(&mut gateway, late_api).await;
    tokio::time::sleep(Duration::from_secs(down.saturating_sub(1))).await;
    let during_redis = load.answers() - before;
    redis.restart(&redis_server);
    let back = Instant::now();
    gateway.wait_for(api, "/readyz", Duration::from_secs(60)).await;
    let api_ready = back.elapsed();
    gateway.wait_for(late_api, "/readyz", Duration::from_secs(60)).await;
    detail.insert(
        "redis".into(),
        json!({"down_s": down, "answers_while_down": during_redis, "api_ready_after_ms": api_ready.as_millis() as u64,
               "started_while_down_ready_after_ms": back.elapsed().as_millis() as u64}),
    );
    tokio::time::sleep(Duration::from_secs(warm)).await;

    // Postgres goes away (a fast shutdown: connections are cut) and comes back. A guard starts it
    // again if an assertion fails while it is down, for the tests that come after.
    let before = load.answers();
    cluster("stop");
    let started_again = scopeguard(|| {
        let _ = Command::new(&ctl).arg("start").status();
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pg_api = gateway.start_on("api", Some(crate::common::free_port()));
    let pg_worker = gateway.start("worker");
    serves_503_while_starting(&mut gateway, pg_api).await;
    tokio::time::sleep(Duration::from_secs(down.saturating_sub(1))).await;
    let during_postgres = load.answers() - before;
    drop(started_again);
    let back = Instant::now();
    gateway.wait_for(api, "/readyz", Duration::from_secs(60)).await;
    let api_ready = back.elapsed();
    gateway.wait_for(pg_api, "/readyz", Duration::from_secs(60)).await;
    detail.insert(
        "postgres".into(),
        json!({"down_s": down, "answers_while_down": during_postgres, "api_ready_after_ms": api_ready.as_millis() as u64,
               "started_while_down_ready_after_ms": back.elapsed().as_millis() as u64}),
    );
    // The process started while Postgres was down takes work now.
    let http = reqwest::Client::new();
    let late = post(&http, &format!("{}/v1/outreach", gateway.base(pg_api)), &gateway.key, &job(9_999_996).0).await;
    assert_eq!(late.status, Some(StatusCode::ACCEPTED), "{:?}", late.body);
    tokio::time::sleep(Duration::from_secs(warm)).await;
    let run = load.started.elapsed();
    let stats = load.stop().await;

    // Every job taken is processed: sent ones reach the sandbox once, the rest are recorded.
    let settled = gateway.wait_all_final(Duration::from_secs(sized(240, 900))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A send cut off by an outage is dead-lettered in doubt, never sent again by itself. Our
    // reference (the number, one per job) in the sandbox says whether the provider took it: those
    // it took are counted, the others put back to work as staff would, and must then be sent.
    let sandbox_numbers: BTreeSet<String> =
        gateway.sandbox_sms().iter().filter_map(|l| l["to"].as_str().map(String::from)).collect();
    let (mut in_doubt_taken, mut in_doubt_requeued) = (Vec::new(), Vec::new());
    for (id, request_id, reason) in gateway.dead_letters().await {
        let n: u64 = request_id.trim_start_matches("restart-").parse().unwrap();
        let entry = json!({"request_id": request_id, "reason": reason});
        if sandbox_numbers.contains(&number(n)) {
            in_doubt_taken.push(n);
            detail.entry("in_doubt_taken").or_insert(json!([])).as_array_mut().unwrap().push(entry);
        } else {
            gateway.requeue(&gateway.base(api), &id).await;
            in_doubt_requeued.push(n);
            detail.entry("in_doubt_requeued").or_insert(json!([])).as_array_mut().unwrap().push(entry);
        }
    }
    gateway.wait_all_final(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stored: BTreeMap<String, (String, i64)> = sqlx::query_as::<_, (String, String, i64)>(
        "SELECT request_id, MIN(status), COUNT(*) FROM outreach GROUP BY request_id",
    )
    .fetch_all(gateway.store.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|(id, status, n)| (id, (status, n)))
    .collect();
    let mut sent_to: BTreeMap<String, u64> = BTreeMap::new();
    for line in gateway.sandbox_sms() {
        *sent_to.entry(line["to"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let mut lost = Vec::new();
    let mut doubled = 0;
    let mut accepted: Vec<u64> = stats.accepted.clone();
    accepted.extend([9_999_996]);
    for &n in &accepted {
        let (body, expected) = job(n);
        let id = body["request_id"].as_str().unwrap();
        match stored.get(id) {
            Some((status, 1)) if status == expected => {}
            Some((status, 1)) if status == "dead_lettered" && in_doubt_taken.contains(&n) => {}
            other => lost.push(format!("{id}: {other:?}, expected {expected}")),
        }
        let copies = sent_to.get(&number(n)).copied().unwrap_or(0);
        match expected {
            "sent" if copies == 0 => lost.push(format!("{id}: never reached the sandbox")),
            "sent" => doubled += copies - 1,
            _ => doubled += copies,
        }
    }
    let unique: BTreeSet<u64> = accepted.iter().copied().collect();
    assert_eq!(unique.len(), accepted.len(), "each job taken once by the load");
    detail.insert("lost_first".into(), json!(lost.iter().take(5).collect::<Vec<_>>()));
    detail.insert("jobs_accepted".into(), json!(accepted.len()));
    detail.insert("answers".into(), json!(stats.by_status));
    detail.insert("transport_errors".into(), json!(stats.transport_errors));
    detail.insert("never_taken".into(), json!(stats.gave_up.len()));
    detail.insert("refused".into(), json!(stats.refused.len()));
    detail.insert("run_s".into(), json!(run.as_secs()));
    detail.insert("rate_per_s".into(), json!((stats.answers() as f64 / run.as_secs_f64()).round()));
    detail.insert("all_final_after_load_s".into(), json!(settled.as_secs()));
    let figures = Figures {
        fault: "backend restarts (Redis, then Postgres)",
        backend: "Postgres + Redis",
        size: accepted.len() as u64,
        unit: "jobs",
        lost: lost.len() as u64 + stats.gave_up.len() as u64,
        doubled,
        server_errors: stats.server_errors() + stats.transport_errors,
        combinations: None,
        detail: Value::Object(detail),
    };
    figures.record_and_check();
    assert!(
        stats.refused.is_empty(),
        "no request refused for good: {:?}",
        &stats.refused[..stats.refused.len().min(5)]
    );
    assert!(stats.count(503) > 0, "the API did answer 503 while Postgres was down");
    assert!(during_redis > 0 && during_postgres > 0, "the load went on through both outages");
    for i in [api, worker, late_api, late_worker, pg_api, pg_worker] {
        assert!(gateway.alive(i), "process {i} ran through the restarts:\n{}", gateway.log_tail(i));
    }
    gateway.stop_all();
}

/// Runs `f` when dropped (a `defer`).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    Guard(Some(f))
}
