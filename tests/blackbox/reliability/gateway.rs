//! The gateway as deployed: the real binary started as separate `serve`, `api` and `worker`
//! processes on a database of their own, that a test can kill, stop and start again while it
//! drives them over HTTP. Their logs go to the suite's log directory (scanned for personal
//! data at the end of scripts/test.sh), or beside the database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use safereach::store::{HashKeySource, KeyOptions, Store};
use serde_json::{Value, json};

use crate::common::{free_port, fresh_postgres_database, log_dir};

const BIN: &str = env!("CARGO_BIN_EXE_safereach");

/// Where the deployment keeps its data.
pub enum Storage<'a> {
    /// The embedded default: an SQLite file, the queue in it.
    Sqlite,
    /// A fresh database on the Postgres server of this admin URL, and maybe the queue in Redis.
    Postgres { admin_url: &'a str, redis_url: Option<String> },
}

pub struct Gateway {
    /// Names its log files.
    name: String,
    dir: tempfile::TempDir,
    pub store: Store,
    /// An API key with every scope and no practical rate limit.
    pub key: String,
    /// The port of the first HTTP process: providers call back there (`SAFEREACH_PUBLIC_URL`).
    pub port: u16,
    env: Vec<(String, String)>,
    processes: Vec<Process>,
}

struct Process {
    role: &'static str,
    child: Child,
    port: Option<u16>,
    log: PathBuf,
}

impl Gateway {
    /// A fresh database, migrated, with staff, approved templates and an API key; no process yet.
    pub async fn new(name: &str, storage: Storage<'_>) -> Gateway {
        // The test's own HTTP client needs TLS set up, as the app's does.
        safereach::channels::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (database_url, redis_url) = match storage {
            Storage::Sqlite => (format!("sqlite://{}", dir.path().join("gateway.db").display()), None),
            Storage::Postgres { admin_url, redis_url } => (fresh_postgres_database(admin_url).await, redis_url),
        };
        let hash_key = safereach::secrets::generate();
        let store = Store::open(&database_url, true, &HashKeySource::Given(hash_key.clone())).await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        safereach::cli::demo::set_up(&store, now).await.unwrap();
        let scopes = safereach::http::auth::ALL_SCOPES.map(String::from);
        let unlimited = KeyOptions { test: false, rate_limit: u32::MAX };
        let key = safereach::service::accounts::create_api_key_with(&store, "load", &scopes, unlimited, now, "cli")
            .await
            .unwrap();
        let port = free_port();
        let sandbox_token = safereach::secrets::generate();
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("SAFEREACH_DATABASE_URL".into(), database_url.clone()),
            ("SAFEREACH_HASH_KEY".into(), hash_key),
            ("SAFEREACH_OUTBOX_DIR".into(), dir.path().join("outbox").display().to_string()),
            ("SAFEREACH_SANDBOX_WEBHOOK_TOKEN".into(), sandbox_token.clone()),
            ("SAFEREACH_PUBLIC_URL".into(), format!("http://127.0.0.1:{port}")),
            // Real time (each process's own SAFEREACH_CLOCK would start where it started), with
            // SMS allowed all day.
            ("SAFEREACH_QUIET_HOURS".into(), "00:00-23:59".into()),
            ("SAFEREACH_SHUTDOWN_TIMEOUT_SECS".into(), "20".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        if let Some(redis) = redis_url {
            env.push(("SAFEREACH_REDIS_URL".into(), redis));
        }
        Gateway { name: name.to_string(), dir, store, key, port, env, processes: Vec::new() }
    }

    /// Set a variable for the processes started from now on.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.into()));
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// Start `role`; an HTTP role listens on the deployment's port. Its index. Does not wait.
    pub fn start(&mut self, role: &'static str) -> usize {
        let port = (role != "worker").then_some(self.port);
        self.start_on(role, port)
    }

    /// Start `role` listening on `port` (HTTP roles).
    pub fn start_on(&mut self, role: &'static str, port: Option<u16>) -> usize {
        let n = self.processes.len();
        let dir = log_dir().unwrap_or_else(|| self.dir.path().to_path_buf());
        let log = dir.join(format!("{}-{role}-{n}-{}.log", self.name, std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let bind = format!("127.0.0.1:{}", port.unwrap_or(0));
        let child = Command::new(BIN)
            .arg(role)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SAFEREACH_BIND", bind)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        self.processes.push(Process { role, child, port, log });
        n
    }

    pub fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.processes[i].port.expect("an HTTP process"))
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.processes[i].child.id()
    }

    /// Whether process `i` still runs.
    pub fn alive(&mut self, i: usize) -> bool {
        self.processes[i].child.try_wait().unwrap().is_none()
    }

    /// The end of process `i`'s log, for a failure's message.
    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.processes[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Wait until HTTP process `i` answers `path` with 200 (it listens, or it is ready).
    pub async fn wait_for(&mut self, i: usize, path: &str, within: Duration) -> Duration {
        let started = Instant::now();
        let url = format!("{}{path}", self.base(i));
        let http = reqwest::Client::new();
        loop {
            let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|r| r.status() == StatusCode::OK) {
                return started.elapsed();
            }
            assert!(self.alive(i), "{} exited:\n{}", self.processes[i].role, self.log_tail(i));
            assert!(started.elapsed() < within, "{path} of {} not 200 within {within:?}", self.processes[i].role);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the process ends at once, mid-whatever it was doing.
    pub fn kill(&mut self, i: usize) {
        let _ = self.processes[i].child.kill();
        self.processes[i].child.wait().unwrap();
    }

    /// SIGTERM, and wait for the exit.
    pub fn terminate(&mut self, i: usize, within: Duration) -> ExitStatus {
        let pid = self.pid(i).to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.processes[i].child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop within {within:?}", self.processes[i].role);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop every process still running (SIGTERM); each must exit 0.
    pub fn stop_all(&mut self) {
        for i in 0..self.processes.len() {
            if self.alive(i) {
                let status = self.terminate(i, Duration::from_secs(30));
                assert!(status.success(), "{} exits 0 on SIGTERM, got {status:?}", self.processes[i].role);
            }
        }
    }

    /// How many rows `sql` (one number) counts now.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(self.store.pool()).await.unwrap()
    }

    /// Jobs by status.
    pub async fn statuses(&self) -> std::collections::BTreeMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>("SELECT status, COUNT(*) FROM outreach GROUP BY status")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Wait until no job is `queued` or `deferred` (each is sent, dead-lettered or otherwise
    /// final), or fail after `within`.
    pub async fn wait_all_final(&self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let waiting = self.count("SELECT COUNT(*) FROM outreach WHERE status IN ('queued', 'deferred')").await;
            if waiting == 0 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{waiting} jobs still waiting after {within:?}: {:?}",
                self.statuses().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The dead-lettered jobs: (job id, request id, why).
    pub async fn dead_letters(&self) -> Vec<(String, String, Option<String>)> {
        sqlx::query_as("SELECT id, request_id, reason FROM outreach WHERE status = 'dead_lettered'")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
    }

    /// Put a dead-lettered job back to work through the API, as staff do once they know the
    /// provider never got it.
    pub async fn requeue(&self, base: &str, outreach_id: &str) {
        let url = format!("{base}/v1/outreach/{outreach_id}/requeue");
        let answer = reqwest::Client::new().post(url).bearer_auth(&self.key).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "requeue {outreach_id}");
    }

    /// The lines of the sandbox SMS outbox.
    pub fn sandbox_sms(&self) -> Vec<Value> {
        read_jsonl(&self.outbox().join("sms.jsonl"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

/// A sendable pre-text to its own number: `+4477` and eight digits of `n`.
pub fn pretext_to(prefix: &str, n: u64) -> Value {
    json!({
        "request_id": format!("{prefix}-{n}"),
        "case_ref": format!("{}-{n:07}", prefix.to_uppercase()),
        "kind": "priority_pretext",
        "crime": {"categories": ["robbery"]},
        "victim": {"first_name": "Robin"},
        "contact": {"phones": [{"number": number(n), "belongs_to": "victim", "safe_to_text": true}]},
        "personalisation": {"advocate_name": "Jo"}
    })
}

/// The number of job `n`.
pub fn number(n: u64) -> String {
    format!("+4477{:08}", n % 100_000_000)
}

/// What one POST got back.
#[derive(Debug)]
pub struct Answer {
    pub status: Option<StatusCode>,
    pub retry_after: bool,
    pub body: Value,
    pub took: Duration,
}

/// POST `body` to `url` with `key`; a transport failure (nothing listening, connection reset)
/// is `status: None`.
pub async fn post(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Answer {
    let started = Instant::now();
    match http.post(url).bearer_auth(key).json(body).timeout(Duration::from_secs(30)).send().await {
        Ok(response) => {
            let status = response.status();
            let retry_after = response.headers().contains_key("retry-after");
            let text = response.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(json!({ "text": text }));
            Answer { status: Some(status), retry_after, body, took: started.elapsed() }
        }
        Err(e) => {
            Answer { status: None, retry_after: false, body: json!({"error": e.to_string()}), took: started.elapsed() }
        }
    }
}

/// Sends are allowed until 23:59 London time (the gateway runs on real time): don't start a run
/// just before midnight.
pub async fn not_near_midnight(minutes: u32) {
    use chrono::Timelike;
    let london = chrono::Utc::now().with_timezone(&chrono_tz::Europe::London);
    let minute_of_day = london.hour() * 60 + london.minute();
    if minute_of_day + minutes >= 24 * 60 - 1 {
        let wait = u64::from(24 * 60 - minute_of_day) * 60 + 5;
        eprintln!("waiting {wait} s for midnight to pass");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}
