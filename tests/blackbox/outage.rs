//! Backends going away and coming back, on servers of the test's own (a Redis it starts, the
//! spare Postgres cluster of scripts/test.sh), so that no other test is disturbed:
//! `/readyz` says what is down and recovers by itself; the API answers 503 with Retry-After
//! and stores nothing it cannot store; jobs survive a restart of Redis (appendonly) and of the
//! worker.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use safereach::app::{self, Role};
use serde_json::Value;

use crate::common::{Backend, Options, TestApp, fresh_postgres_database, pretext, read, service, spawn_with};

/// A Redis server of this test's own, on a port that stays the same across restarts.
pub struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start(binary: &str) -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = OwnRedis { port, dir: tempfile::tempdir().unwrap(), child: None };
        redis.restart(binary);
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self, binary: &str) {
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_until("Redis listens", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// SIGTERM: Redis writes its append-only file and exits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn readyz(app: &TestApp) -> (StatusCode, Value, Option<String>) {
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let (status, body) = read(response).await;
    (status, body, retry)
}

async fn wait_ready(app: &TestApp, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body, _) = readyz(app).await;
        if status == StatusCode::OK {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "not ready again after {within:?}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn outbox_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM job_outbox").fetch_one(app.state.store.pool()).await.unwrap()
}

#[tokio::test]
async fn redis_going_away_is_reported_work_is_kept_and_jobs_survive_its_restart() {
    let (Some(binary), Some(admin)) = (service("SAFEREACH_TEST_REDIS_SERVER"), service("SAFEREACH_TEST_POSTGRES_URL"))
    else {
        return;
    };
    let mut redis = OwnRedis::start(&binary);
    let (database, redis_url) = (fresh_postgres_database(&admin).await, redis.url());
    // The API only: jobs wait in Redis until a worker starts.
    let app = spawn_with(Options {
        role: Role::Api,
        clock: Some("2026-11-23T10:00:00Z".into()),
        backend: Some(Backend::PostgresRedis),
        configure: Box::new(move |c| {
            c.database_url = database;
            c.redis_url = Some(redis_url);
        }),
        ..Options::default()
    })
    .await;
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    let (status, first) = app.post_outreach(&pretext("redis-1", "REDIS-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for _ in 0..100 {
        if outbox_rows(&app).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outbox_rows(&app).await, 0, "the relay moved the job onto Redis");

    redis.stop();
    let (status, body, retry) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!((body["database"].as_str(), body["ready"].as_bool()), (Some("ok"), Some(false)));
    // Anyone may ask: the answer names what is down, never why (the log says why).
    assert_eq!(body, serde_json::json!({"ready": false, "database": "ok", "queue": "unavailable"}));
    assert_eq!(retry.as_deref(), Some("5"));
    // The database still stores work: the request is accepted and waits in the outbox.
    let (status, second) = app.post_outreach(&pretext("redis-2", "REDIS-2")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(outbox_rows(&app).await, 1, "kept (not lost, not stuck in a lease) while Redis is down");

    redis.restart(&binary);
    let took = wait_ready(&app, Duration::from_secs(20)).await;
    eprintln!("ready again {took:?} after Redis came back");
    // A worker starts now: the job pushed before the restart (kept by the append-only file) and
    // the one that waited in the outbox are both sent, once.
    let worker = app::start(app.state.config.clone(), Role::Worker, false).await.unwrap();
    for case in ["REDIS-1", "REDIS-2"] {
        app.wait_for_message(case, "sent").await;
    }
    let sent = app.sent_sms();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let _ = (first, second);
    worker.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn postgres_going_away_answers_503_stores_nothing_and_recovers_by_itself() {
    let (Some(admin), Some(ctl)) =
        (service("SAFEREACH_TEST_POSTGRES_SPARE_URL"), service("SAFEREACH_TEST_POSTGRES_SPARE_CTL"))
    else {
        return;
    };
    let database = fresh_postgres_database(&admin).await;
    // Queue in Postgres too: the worker must come back by itself as well.
    let app = spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        backend: Some(Backend::Postgres),
        configure: Box::new(move |c| c.database_url = database),
        ..Options::default()
    })
    .await;
    app.post_outreach(&pretext("pg-1", "PG-1")).await;
    app.wait_for_message("PG-1", "sent").await;

    let cluster = |action: &str| {
        let status = Command::new(&ctl).arg(action).status().unwrap();
        assert!(status.success(), "{ctl} {action}");
    };
    cluster("stop");
    let outcome = std::panic::AssertUnwindSafe(async {
        let (status, body, retry) = readyz(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["database"], "unavailable", "{body}");
        assert_eq!(body.as_object().unwrap().len(), 3, "ready, database and queue only: {body}");
        assert_eq!(retry.as_deref(), Some("5"));
        let response = app
            .http
            .post(app.url("/v1/outreach"))
            .bearer_auth(&app.key)
            .json(&pretext("pg-2", "PG-2"))
            .send()
            .await
            .unwrap();
        let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        let (status, problem) = read(response).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
        assert_eq!((retry.as_deref(), content_type.as_str()), (Some("5"), "application/problem+json"));
        assert_eq!(app.get_case("PG-1").await.0, StatusCode::SERVICE_UNAVAILABLE);
    });
    let result = futures::FutureExt::catch_unwind(outcome).await;
    cluster("start");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    let took = wait_ready(&app, Duration::from_secs(30)).await;
    eprintln!("ready again {took:?} after Postgres came back");
    assert_eq!(app.get_case("PG-2").await.0, StatusCode::NOT_FOUND, "the refused request left no trace");
    let (status, _) = app.post_outreach(&pretext("pg-2", "PG-2")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The worker came back by itself too.
    app.wait_for_message("PG-2", "sent").await;
    assert_eq!(app.sent_sms().len(), 2);
    app.stop().await;
}
