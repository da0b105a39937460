//! Start the real app on 127.0.0.1:0 with a temporary database and drive it over HTTP, as the
//! triage system and providers do.
//!
//! Tests written with `on_backends!` run once per backend: the embedded SQLite default, and
//! Postgres with the queue in Redis (or in Postgres), each test on a freshly created database of
//! the servers scripts/test.sh started.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use safereach::app::{self, AppState, Role, Running};
use safereach::config::Config;
use serde_json::{Value, json};

pub const AUTHOR: &str = "test.author";
pub const APPROVER: &str = "test.approver";
pub const PASSWORD: &str = "a long test password";

/// A strong secret (32 random bytes, hex), as a webhook token or hash key must be.
pub fn strong_secret() -> String {
    safereach::secrets::generate()
}

pub struct TestApp {
    pub base: String,
    pub state: Arc<AppState>,
    pub key: String,
    /// The sandbox's webhook token the app was started with (the other providers' are in
    /// `state.webhooks`).
    pub token: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub config: Config,
    running: Option<Running>,
}

/// Where a test app keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: an SQLite file with the queue in it.
    Sqlite,
    /// A fresh Postgres database with the queue in it (apalis-postgres).
    Postgres,
    /// A fresh Postgres database and the queue in Redis.
    PostgresRedis,
}

tokio::task_local! {
    /// The backend of the test running in this task (set by `on_backends!`).
    static BACKEND: Backend;
}

/// Run a test body with `backend` as the one `spawn_*` uses; skipped (or failed, under
/// scripts/test.sh) when that backend's servers are not there.
pub async fn on_backend(backend: Backend, test: impl Future<Output = ()>) {
    if backend != Backend::Sqlite && postgres_admin_url().is_none() {
        return;
    }
    if backend == Backend::PostgresRedis && service("SAFEREACH_TEST_REDIS_URL").is_none() {
        return;
    }
    BACKEND.scope(backend, test).await
}

/// `on_backends! { async fn name() { … } }` defines `name::sqlite`, `name::postgres` and
/// `name::postgres_redis`; `on_backends!(sqlite, postgres_redis; async fn …)` picks some.
macro_rules! on_backends {
    ($($backend:ident),+ ; $(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run() $body
            $(
                #[tokio::test]
                async fn $backend() {
                    $crate::common::on_backend($crate::common::backend_named(stringify!($backend)), run()).await
                }
            )+
        }
    };
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        on_backends!(sqlite, postgres, postgres_redis; $(#[$meta])* async fn $name() $body);
    };
}

pub fn backend_named(name: &str) -> Backend {
    match name {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        "postgres_redis" => Backend::PostgresRedis,
        other => panic!("no backend {other}"),
    }
}

/// The backend of the running test (SQLite outside `on_backends!`).
pub fn current_backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// The Postgres server of scripts/test.sh, as a URL to its `postgres` database.
pub fn postgres_admin_url() -> Option<String> {
    service("SAFEREACH_TEST_POSTGRES_URL")
}

/// Create a database with a unique name on the server of `admin_url`; its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("test Postgres answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (server, _) = admin_url.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{name}")
}

/// Point `config` at fresh storage for `backend` in `dir`.
pub async fn use_backend(config: &mut Config, backend: Backend, dir: &std::path::Path) {
    match backend {
        Backend::Sqlite => config.database_url = format!("sqlite://{}", dir.join("test.db").display()),
        Backend::Postgres | Backend::PostgresRedis => {
            let admin = postgres_admin_url().expect("on_backend checked");
            config.database_url = fresh_postgres_database(&admin).await;
            // Postgres keeps no hash key: it is given, as in production.
            config.hash_key = Some(strong_secret());
            if backend == Backend::PostgresRedis {
                config.redis_url = service("SAFEREACH_TEST_REDIS_URL");
            }
        }
    }
}

pub struct Options {
    pub clock: Option<String>,
    /// `Role::Api` leaves the worker out, so a test can run `worker().process(…)` itself.
    pub role: Role,
    pub approve_templates: bool,
    /// Load the Welsh default wording too (approved with the rest): off, so that version
    /// numbers in other tests count English versions only.
    pub welsh: bool,
    /// The backend, when not the running test's (`on_backends!`).
    pub backend: Option<Backend>,
    /// Runs last: may point the app anywhere.
    pub configure: Box<dyn FnOnce(&mut Config)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: None,
            role: Role::Serve,
            approve_templates: true,
            welsh: false,
            backend: None,
            configure: Box::new(|_| {}),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_at(clock: &str) -> TestApp {
    spawn_with(Options { clock: Some(clock.to_string()), ..Options::default() }).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    if let Some(dir) = log_dir() {
        log_to(&dir);
    } else if std::env::var("RUST_LOG").is_ok() {
        // RUST_LOG=… shows the app's logs with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    safereach::channels::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::defaults();
    // A port known before start, so that the public URL providers call back on is the real one.
    let port = free_port();
    config.bind = format!("127.0.0.1:{port}");
    config.public_url = format!("http://127.0.0.1:{port}");
    use_backend(&mut config, options.backend.unwrap_or_else(current_backend), dir.path()).await;
    config.outbox_dir = dir.path().join("outbox").display().to_string();
    // Each provider its own strong token (used when that provider is configured).
    config.sandbox_webhook_token = Some(strong_secret());
    config.kannel_webhook_token = Some(strong_secret());
    config.print_webhook_token = Some(strong_secret());
    config.bounce_webhook_token = Some(strong_secret());
    config.clock = options.clock.map(|c| c.parse().expect("clock is RFC 3339"));
    config.allow_clock = true;
    config.retry_base_secs = 1;
    (options.configure)(&mut config);
    let running = app::start(config.clone(), options.role, true).await.expect("app starts");
    let state = running.state.clone();
    let token = state.webhooks.sandbox.clone().unwrap_or_default();
    let store = &state.store;
    let now = state.clock.now_ms();
    safereach::service::accounts::create_account(store, AUTHOR, "author", PASSWORD, now, "cli").await.unwrap();
    safereach::service::accounts::create_account(store, APPROVER, "approver", PASSWORD, now, "cli").await.unwrap();
    if options.approve_templates {
        let sources: Vec<_> = safereach::templates::load_dir(&templates_dir())
            .unwrap()
            .into_iter()
            .filter(|s| options.welsh || s.language == "en")
            .collect();
        safereach::service::templates::load_sources(store, &sources, AUTHOR, now).await.unwrap();
        safereach::service::templates::approve_submitted(store, None, APPROVER, now).await.unwrap();
    }
    // The tests' own key may go as fast as a test drives it (the rate limit has tests of its own).
    let unlimited = safereach::store::KeyOptions { test: false, rate_limit: u32::MAX };
    let scopes = ["outreach:write".into(), "cases:read".into(), "reports:read".into()];
    let key = safereach::service::accounts::create_api_key_with(store, "triage", &scopes, unlimited, now, "cli")
        .await
        .unwrap();
    TestApp {
        base: format!("http://{}", running.addr.expect("serves HTTP")),
        state,
        key,
        token,
        http: reqwest::Client::new(),
        dir,
        config,
        running: Some(running),
    }
}

/// The suite's log directory (`SAFEREACH_TEST_LOG_DIR`, set by scripts/test.sh): every app a test
/// starts, in this process or as the binary, logs there, and the last step of scripts/test.sh
/// scans all of it for the test data's personal data (`scripts/scan-logs.sh`).
pub fn log_dir() -> Option<PathBuf> {
    std::env::var_os("SAFEREACH_TEST_LOG_DIR").filter(|d| !d.is_empty()).map(PathBuf::from)
}

/// The apps of this test process log to a file of their own in `dir`, named after the test
/// (nextest runs each test in a process of its own), at debug level for our own code and the
/// HTTP layers: more than production logs, so that a leak at any level is seen.
fn log_to(dir: &std::path::Path) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let test = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_else(|| "tests".into());
        let name: String = test.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '.' }).collect();
        let path = dir.join(format!("{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&path).expect("the suite's log directory is writable");
        let filter = tracing_subscriber::EnvFilter::new("info,safereach=debug,tower_http=debug,reqwest=debug");
        let _ = tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_env_filter(filter)
            .try_init();
    });
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("message_templates")
}

/// A pre-text to +447700900555 as the worker would prepare it for the job.
pub fn sms_to_robin(outreach_id: &str, case_ref: &str) -> safereach::store::NewMessage {
    safereach::store::NewMessage {
        outreach_id: outreach_id.into(),
        case_ref: case_ref.into(),
        channel: "sms",
        template: "priority_pretext".into(),
        template_version: 1,
        language: "en".into(),
        test: false,
        to_normalised: "+447700900555".into(),
        to_address: serde_json::to_string(&safereach::domain::Recipient::Phone { number: "+447700900555".into() })
            .unwrap(),
        subject: None,
        body: "Hello Robin".into(),
        html: None,
        encoding: Some("gsm7"),
        segments: Some(1),
    }
}

impl TestApp {
    /// Prepare the job's message to +447700900555 and claim it for sending as a worker would,
    /// with the configured lease: a send under way. Returns the message id.
    pub async fn start_sending(&self, outreach_id: &str, case_ref: &str) -> String {
        let store = &self.state.store;
        let new = sms_to_robin(outreach_id, case_ref);
        let now = self.state.clock.now_ms();
        let mut tx = store.begin().await.unwrap();
        let message = store.message_for(&mut tx, &new, now).await.unwrap();
        tx.commit().await.unwrap();
        let lease = self.state.config.send_lease_secs as i64 * 1000;
        assert_eq!(store.claim_message(&message.id, now, lease).await.unwrap(), safereach::store::Claim::Claimed);
        message.id
    }

    /// The worker sending `message_id` died: its lease is over with no result (a send in doubt).
    pub async fn cut_off(&self, message_id: &str) {
        sqlx::query("UPDATE messages SET claimed_until = $2 WHERE id = $1")
            .bind(message_id)
            .bind(self.state.clock.now_ms() - 1)
            .execute(self.state.store.pool())
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(&self.key).json(body).send().await.expect("request");
        read(response).await
    }

    pub async fn post_outreach(&self, body: &Value) -> (StatusCode, Value) {
        self.post_json("/v1/outreach", body).await
    }

    pub async fn get_case(&self, case_ref: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(&format!("/v1/cases/{case_ref}")))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request");
        read(response).await
    }

    pub async fn webhook(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let url = self.url(&format!("{path}?token={}", self.token));
        read(self.http.post(url).json(body).send().await.expect("request")).await
    }

    /// Poll the case until `done` holds (the worker runs in the background), or fail.
    pub async fn wait_for_case(&self, case_ref: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..150 {
            let (status, case) = self.get_case(case_ref).await;
            if status == StatusCode::OK && done(&case) {
                return case;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, case) = self.get_case(case_ref).await;
        panic!("timed out waiting for {what} on {case_ref}: {case:#}");
    }

    /// Wait until the case's first message is in `status`.
    pub async fn wait_for_message(&self, case_ref: &str, status: &str) -> Value {
        let case = self
            .wait_for_case(case_ref, &format!("a message {status}"), |c| c["messages"][0]["status"] == status)
            .await;
        case["messages"][0].clone()
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// The lines of the sandbox SMS outbox.
    pub fn sent_sms(&self) -> Vec<Value> {
        std::fs::read_to_string(self.outbox().join("sms.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("outbox lines are JSON"))
            .collect()
    }

    /// Stop, then start again on the same database and outbox with the clock at `clock` (as an
    /// operator restarts the service days later), changing the configuration with `configure`.
    pub async fn restart_at(self, clock: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
        self.restart_as(Role::Serve, clock, configure).await
    }

    /// `restart_at`, in `role` (`Role::Api`: no worker takes jobs off the queue).
    pub async fn restart_as(mut self, role: Role, clock: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let mut config = self.config.clone();
        config.clock = Some(clock.parse().expect("clock is RFC 3339"));
        configure(&mut config);
        let running = app::start(config.clone(), role, true).await.expect("app starts again");
        self.state = running.state.clone();
        self.token = self.state.webhooks.sandbox.clone().unwrap_or_default();
        self.base = format!("http://{}", running.addr.expect("serves HTTP"));
        self.config = config;
        self.running = Some(running);
        self
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        read(self.http.get(self.url(path)).bearer_auth(&self.key).send().await.expect("request")).await
    }

    /// An API key with these scopes only.
    pub async fn key_with(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        safereach::service::accounts::create_api_key(
            &self.state.store,
            "scoped",
            &scopes,
            self.state.clock.now_ms(),
            "cli",
        )
        .await
        .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value =
        if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(json!({ "text": text })) };
    (status, value)
}

/// A minimal valid pre-text request for a non-safety-sensitive case.
pub fn pretext(request_id: &str, case_ref: &str) -> Value {
    json!({
        "request_id": request_id,
        "case_ref": case_ref,
        "kind": "priority_pretext",
        "crime": { "categories": ["robbery"] },
        "victim": { "first_name": "Robin" },
        "contact": { "phones": [{ "number": "+447700900555", "belongs_to": "victim", "safe_to_text": true }] }
    })
}

/// Where a server started by scripts/test.sh listens (a `SAFEREACH_TEST_*` variable). Under
/// scripts/test.sh a missing server fails the test; under a bare `cargo test` the test is skipped
/// with a note, so that a developer without the servers can still run the rest.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("SAFEREACH_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{var} is not set: scripts/test.sh should have started this server")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (run scripts/test.sh for the servers this test needs)");
            None
        }
    }
}
