//! Start the real app on 127.0.0.1:0 with a temporary database and drive it over HTTP, as the
//! triage system and providers do.

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
pub const WEBHOOK_TOKEN: &str = "test-webhook-token";

pub struct TestApp {
    pub base: String,
    pub state: Arc<AppState>,
    pub key: String,
    /// The webhook token the app was started with.
    pub token: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub config: Config,
    running: Option<Running>,
}

pub struct Options {
    pub clock: Option<String>,
    /// `Role::Api` leaves the worker out, so a test can run `worker().process(…)` itself.
    pub role: Role,
    pub approve_templates: bool,
    pub configure: Box<dyn FnOnce(&mut Config)>,
}

impl Default for Options {
    fn default() -> Self {
        Options { clock: None, role: Role::Serve, approve_templates: true, configure: Box::new(|_| {}) }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_at(clock: &str) -> TestApp {
    spawn_with(Options { clock: Some(clock.to_string()), ..Options::default() }).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    // RUST_LOG=… shows the app's logs with a failing test's output.
    if std::env::var("RUST_LOG").is_ok() {
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
    config.database_url = format!("sqlite://{}", dir.path().join("test.db").display());
    config.outbox_dir = dir.path().join("outbox").display().to_string();
    config.webhook_token = Some(WEBHOOK_TOKEN.into());
    config.clock = options.clock.map(|c| c.parse().expect("clock is RFC 3339"));
    config.retry_base_secs = 1;
    (options.configure)(&mut config);
    let token = config.webhook_token.clone().unwrap_or_default();
    let running = app::start(config.clone(), options.role, true).await.expect("app starts");
    let state = running.state.clone();
    let store = &state.store;
    let now = state.clock.now_ms();
    safereach::staff::create_account(store, AUTHOR, "author", PASSWORD, now).await.unwrap();
    safereach::staff::create_account(store, APPROVER, "approver", PASSWORD, now).await.unwrap();
    if options.approve_templates {
        safereach::templates::workflow::load_dir(store, &templates_dir(), AUTHOR, now).await.unwrap();
        safereach::templates::workflow::approve_submitted(store, None, APPROVER, now).await.unwrap();
    }
    let key = store
        .create_api_key("triage", &["outreach:write".into(), "cases:read".into(), "reports:read".into()], now)
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

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("message_templates")
}

impl TestApp {
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
    pub async fn restart_at(mut self, clock: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let mut config = self.config.clone();
        config.clock = Some(clock.parse().expect("clock is RFC 3339"));
        configure(&mut config);
        let running = app::start(config.clone(), Role::Serve, true).await.expect("app starts again");
        self.state = running.state.clone();
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
        self.state.store.create_api_key("scoped", &scopes, self.state.clock.now_ms()).await.unwrap()
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
