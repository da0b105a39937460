//! The gateway under test: this binary started as separate `serve`, `api` and `worker`
//! processes on a fresh database, exactly as deployed; their start-up time (spawn → `/readyz`
//! answers ok) and peak resident memory (VmHWM).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::BenchError;
use crate::store::{KeyOptions, Store};

/// Where a deployment keeps its data: an SQLite file, or a Postgres database of its own (and the
/// Redis queue, whose keys are named after the database).
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    PostgresRedis { admin_url: String, redis_url: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::PostgresRedis { .. } => "Postgres + Redis",
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::PostgresRedis { .. } => "postgres_redis",
        }
    }
}

/// A fresh database made ready (migrated, templates approved, an API key without a practical
/// rate limit) and the processes started on it.
pub struct Deployment {
    pub store: Store,
    pub key: String,
    pub webhook_token: String,
    /// The number its SMS are sent from.
    pub sender: String,
    env: Vec<(String, String)>,
    dir: PathBuf,
    /// The HTTP port of the deployment's API (or `serve`) process: providers call back there.
    pub port: u16,
    processes: Vec<Process>,
    /// The highest VmHWM seen, per role, over the processes stopped so far.
    pub peak_rss_kib: Vec<(&'static str, u64)>,
}

struct Process {
    role: &'static str,
    child: Child,
}

/// Settings every process of a deployment gets (beside its database and address).
pub struct Settings {
    pub exe: PathBuf,
    pub dir: PathBuf,
    /// RFC 3339: the clock of the process started now (see `Bench::clock`).
    pub clock: String,
    pub sms: Vec<(String, String)>,
}

impl Deployment {
    /// A fresh database on `backend` named `name`, set up and ready for processes.
    pub async fn create(
        backend: &Backend,
        name: &str,
        settings: &Settings,
        sender: String,
    ) -> Result<Deployment, BenchError> {
        let dir = settings.dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let (database_url, redis_url) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.join("safereach.db").display()), None),
            Backend::PostgresRedis { admin_url, redis_url } => {
                (create_database(admin_url, name).await?, Some(redis_url.clone()))
            }
        };
        // The hash key is given to every process of the deployment (Postgres keeps none).
        let hash_key = crate::secrets::generate();
        let store = Store::open(&database_url, true, &crate::store::HashKeySource::Given(hash_key.clone())).await?;
        let now = chrono::Utc::now().timestamp_millis();
        crate::cli::demo::set_up(&store, now).await?;
        let scopes = crate::http::auth::ALL_SCOPES.map(String::from);
        let unlimited = KeyOptions { test: false, rate_limit: 100_000_000 };
        let key =
            crate::service::accounts::create_api_key_with(&store, "bench", &scopes, unlimited, now, "bench").await?;
        // Strong tokens, one per provider (the bench's own delivery reports carry Kannel's).
        let webhook_token = crate::secrets::generate();
        let port = free_port()?;
        let mut env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("SAFEREACH_DATABASE_URL".into(), database_url.clone()),
            ("SAFEREACH_PUBLIC_URL".into(), format!("http://127.0.0.1:{port}")),
            ("SAFEREACH_OUTBOX_DIR".into(), dir.join("outbox").display().to_string()),
            ("SAFEREACH_KANNEL_WEBHOOK_TOKEN".into(), webhook_token.clone()),
            ("SAFEREACH_SANDBOX_WEBHOOK_TOKEN".into(), crate::secrets::generate()),
            ("SAFEREACH_HASH_KEY".into(), hash_key),
            ("SAFEREACH_ALLOW_CLOCK".into(), "1".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        if let Some(redis) = &redis_url {
            env.push(("SAFEREACH_REDIS_URL".into(), redis.clone()));
        }
        env.extend(settings.sms.iter().cloned());
        env.push(("SAFEREACH_KANNEL_FROM".into(), sender.clone()));
        Ok(Deployment {
            store,
            key,
            webhook_token,
            sender,
            env,
            dir,
            port,
            processes: Vec::new(),
            peak_rss_kib: Vec::new(),
        })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start `role` (serve, api or worker). An HTTP role listens on the deployment's port and is
    /// waited for until `/readyz` answers ok: the time that took is returned.
    pub async fn start(&mut self, role: &'static str, settings: &Settings) -> Result<Option<Duration>, BenchError> {
        let n = self.processes.len();
        let log = std::fs::File::create(self.dir.join(format!("{role}-{n}.log")))?;
        let http = role != "worker";
        let bind = if http { format!("127.0.0.1:{}", self.port) } else { "127.0.0.1:0".into() };
        let spawned = Instant::now();
        let child = Command::new(&settings.exe)
            .arg(role)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SAFEREACH_BIND", bind)
            .env("SAFEREACH_CLOCK", &settings.clock)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        // The pid, for profiling a process while it is measured (BENCHMARKS.md).
        eprintln!("\r\x1b[2K  started {role} (pid {})", child.id().unwrap_or_default());
        self.processes.push(Process { role, child });
        if !http {
            return Ok(None);
        }
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.base());
        let deadline = spawned + Duration::from_secs(120);
        loop {
            let ready = client.get(&url).timeout(Duration::from_secs(2)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(Some(spawned.elapsed()));
            }
            let process = self.processes.last_mut().expect("just pushed");
            if let Some(status) = process.child.try_wait()? {
                return Err(BenchError::Gateway(format!(
                    "{role} exited ({status}) before it was ready: see {}",
                    self.dir.display()
                )));
            }
            if Instant::now() > deadline {
                return Err(BenchError::Gateway(format!("{role} not ready within 120 s: see {}", self.dir.display())));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stop every process (SIGTERM, then SIGKILL after 15 s), noting each one's peak memory.
    pub async fn stop(&mut self) {
        for mut p in std::mem::take(&mut self.processes) {
            let Some(pid) = p.child.id() else { continue };
            if let Some(kib) = peak_rss_kib(pid) {
                match self.peak_rss_kib.iter_mut().find(|(role, _)| *role == p.role) {
                    Some((_, peak)) => *peak = (*peak).max(kib),
                    None => self.peak_rss_kib.push((p.role, kib)),
                }
            }
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            if tokio::time::timeout(Duration::from_secs(15), p.child.wait()).await.is_err() {
                let _ = p.child.kill().await;
            }
        }
    }

    /// Count rows with a query answering one number.
    pub async fn count(&self, sql: &'static str) -> Result<i64, BenchError> {
        Ok(sqlx::query_scalar(sql).fetch_one(self.store.pool()).await?)
    }
}

/// A process's peak resident set (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// A loopback port nothing listens on now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Create database `name` (made unique to this run) on the server of `admin_url`; its URL.
async fn create_database(admin_url: &str, name: &str) -> Result<String, BenchError> {
    use sqlx::Connection;
    let name = database_name(name);
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    let (server, _) = admin_url
        .rsplit_once('/')
        .ok_or_else(|| BenchError::Usage("--postgres needs a URL naming a database".into()))?;
    Ok(format!("{server}/{name}"))
}

/// The databases of this run are named `safereach_bench_<pid>_<name>`.
fn database_name(name: &str) -> String {
    format!("safereach_bench_{}_{}", std::process::id(), name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

/// Drop every database this run created on the server.
pub async fn drop_databases(admin_url: &str) -> Result<(), BenchError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    let prefix = format!("safereach_bench_{}_%", std::process::id());
    let names: Vec<String> = sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
        .bind(prefix)
        .fetch_all(&mut conn)
        .await?;
    for name in names {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// A scratch database for the raw-insert baseline, beside the deployments' (its URL).
pub async fn scratch_database(backend: &Backend, dir: &Path) -> Result<String, BenchError> {
    match backend {
        Backend::Sqlite => Ok(format!("sqlite://{}", dir.join("raw-inserts.db").display())),
        Backend::PostgresRedis { admin_url, .. } => create_database(admin_url, "raw").await,
    }
}
