//! `safereach bench` (run by scripts/bench.sh): the gateway's throughput and latency, each figure
//! beside a baseline measured in the same run on the same machine, so that the ratios mean
//! something wherever they are taken. See BENCHMARKS.md for what each figure is and the results.
//!
//! The gateway runs as real separate processes of this binary (`serve`, `api`, `worker`) on
//! fresh databases, driven over HTTP; this process is only the load generator, the baselines'
//! client and the referee. For each backend (SQLite; Postgres + Redis when `--postgres` and
//! `SAFEREACH_REDIS_URL` are given):
//!
//! 1. raw single-row inserts from a minimal client at concurrency 1, 16 and 64;
//! 2. intake (`POST /v1/outreach`, a mix of outcomes) against an `api` process, at the same
//!    concurrencies;
//! 3. Kannel's own `sendsms` rate, then end to end through Kannel (jobs accepted → every message
//!    at the fake SMSC, counted in its log, once each → every delivery report recorded), with one
//!    `serve` (SQLite only), and with `api` + 1 and `api` + 2 `worker` processes;
//! 4. delivery-report ingest: callbacks to `/webhooks/kannel/dlr` for messages sent earlier;
//! 5. intake at concurrency 16 with 100,000 jobs already stored, against the empty database;
//!
//! and each HTTP process's start-up time and every process's peak memory.

mod baseline;
mod gateway;
mod load;
mod seed;
mod smsc;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Config;
use gateway::{Backend, Deployment, Settings};
use load::{Measured, drive};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Tiny sizes: checks that every phase works, in well under a minute (figures meaningless).
    #[arg(long)]
    pub smoke: bool,
    /// Intake requests per concurrency level (a quarter of it at concurrency 1; at most 8,000).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Jobs taken end to end through Kannel, per process layout (at most 20,000).
    #[arg(long)]
    pub e2e_jobs: Option<usize>,
    /// Delivery reports sent in the ingest phase.
    #[arg(long)]
    pub reports: Option<usize>,
    /// Jobs already stored for the last intake measurement.
    #[arg(long)]
    pub stored: Option<usize>,
    /// Rows per concurrency level of the raw-insert baseline.
    #[arg(long)]
    pub baseline_rows: Option<usize>,
    /// A Postgres server to also run on (Postgres + Redis, with SAFEREACH_REDIS_URL): a URL to a
    /// maintenance database. The bench creates its own databases there and drops them after.
    #[arg(long, env = "SAFEREACH_BENCH_POSTGRES_URL")]
    pub postgres: Option<String>,
    /// The log of the fake SMSC's client (scripts/services/kannel.sh), where messages sent
    /// through Kannel (SAFEREACH_KANNEL_*) are counted. Without it, no end-to-end phase.
    #[arg(long, env = "SAFEREACH_BENCH_KANNEL_MT_LOG")]
    pub kannel_mt_log: Option<PathBuf>,
    /// Where the results go as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Setup(#[from] crate::cli::CliError),
    #[error("gateway: {0}")]
    Gateway(String),
    #[error("{0}")]
    Usage(String),
}

/// Sizes of one run.
#[derive(Debug, Clone, Serialize)]
struct Sizes {
    jobs: usize,
    e2e_jobs: usize,
    reports: usize,
    stored: usize,
    baseline_rows: usize,
    kannel_requests: usize,
    levels: [usize; 3],
    /// In flight while submitting end-to-end jobs, sending delivery reports, and for the
    /// 100,000-stored comparison.
    concurrency: usize,
}

impl Sizes {
    fn of(args: &BenchArgs) -> Sizes {
        let (jobs, e2e, reports, stored, rows) =
            if args.smoke { (32, 12, 24, 400, 200) } else { (3_000, 2_000, 3_000, 100_000, 10_000) };
        let e2e_jobs = args.e2e_jobs.unwrap_or(e2e).min(INTAKE_NUMBERS);
        Sizes {
            jobs: args.jobs.unwrap_or(jobs).clamp(4, 8_000),
            e2e_jobs: e2e_jobs.max(1),
            reports: args.reports.unwrap_or(reports).max(1),
            stored: args.stored.unwrap_or(stored),
            baseline_rows: args.baseline_rows.unwrap_or(rows).max(1),
            kannel_requests: if args.smoke { 50 } else { 5_000.min(90_000 - KANNEL_NUMBERS) },
            levels: [1, 16, 64],
            concurrency: 16,
        }
    }
}

/// Kannel as the gateway's SMS provider, and where its fake SMSC logs what it got.
struct Kannel {
    sendsms: String,
    user: String,
    password: String,
    mt_log: PathBuf,
}

/// One measured figure: its value, latencies where they apply, and its baseline and the ratio.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    backend: &'static str,
    measure: String,
    value: f64,
    unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Baseline>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
    #[serde(skip_serializing_if = "Value::is_null")]
    detail: Value,
}

#[derive(Debug, Clone, Serialize)]
struct Baseline {
    name: String,
    value: f64,
    unit: &'static str,
}

impl Figure {
    fn new(backend: &Backend, measure: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            backend: backend.key(),
            measure: measure.into(),
            value,
            unit,
            p50_ms: None,
            p99_ms: None,
            baseline: None,
            ratio: None,
            detail: Value::Null,
        }
    }

    fn rate(backend: &Backend, measure: impl Into<String>, m: &Measured, unit: &'static str) -> Figure {
        Figure { p50_ms: Some(m.ms(50.0)), p99_ms: Some(m.ms(99.0)), ..Figure::new(backend, measure, m.rate(), unit) }
    }

    fn against(mut self, name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        self.ratio = (value > 0.0).then(|| self.value / value);
        self.baseline = Some(Baseline { name: name.into(), value, unit });
        self
    }

    fn detail(mut self, detail: Value) -> Figure {
        self.detail = detail;
        self
    }
}

/// The state of a run: what it was given, and the figures so far.
struct Bench {
    sizes: Sizes,
    settings: Settings,
    kannel: Option<Kannel>,
    http: reqwest::Client,
    figures: Vec<Figure>,
    started: Instant,
    /// Senders numbers are unique per run and per phase, to count only our messages at the SMSC.
    sender_base: u64,
    senders: u64,
    warm_ups: usize,
}

/// Where the phone numbers of each load start (see `load::number`), so that no job shares a
/// number with another of the same database (which the rules would treat as a conflict). The
/// end-to-end jobs use the first ones.
const INTAKE_NUMBERS: usize = 20_000;
const STORED_NUMBERS: usize = 40_000;
const WARM_UP_NUMBERS: usize = 60_000;
const KANNEL_NUMBERS: usize = 85_000;

/// A Monday morning: every SMS is inside quiet hours, so sendable jobs are sent at once.
const CLOCK: &str = "2026-11-23T10:00:00Z";

pub async fn run(config: Config, args: BenchArgs) -> Result<(), crate::cli::CliError> {
    run_bench(config, args).await.map_err(|e| crate::cli::CliError::Usage(format!("bench: {e}")))
}

async fn run_bench(config: Config, args: BenchArgs) -> Result<(), BenchError> {
    crate::channels::install_crypto_provider();
    let sizes = Sizes::of(&args);
    let dir = std::env::temp_dir().join(format!("safereach-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kannel = match (&config.kannel_sendsms_url, &args.kannel_mt_log) {
        (Some(sendsms), Some(mt_log)) => Some(Kannel {
            sendsms: sendsms.clone(),
            user: config.kannel_user.clone().unwrap_or_default(),
            password: config.kannel_password.clone().unwrap_or_default(),
            mt_log: mt_log.clone(),
        }),
        _ => {
            eprintln!("bench: no Kannel (SAFEREACH_KANNEL_SENDSMS_URL and --kannel-mt-log): no end-to-end phases");
            None
        }
    };
    let mut backends = vec![Backend::Sqlite];
    match (&args.postgres, &config.redis_url) {
        (Some(admin_url), Some(redis_url)) => {
            backends.push(Backend::PostgresRedis { admin_url: admin_url.clone(), redis_url: redis_url.clone() })
        }
        _ => eprintln!("bench: no Postgres + Redis (--postgres and SAFEREACH_REDIS_URL): SQLite only"),
    }
    let mut bench = Bench {
        settings: Settings {
            exe: std::env::current_exe()?,
            dir: dir.clone(),
            clock: CLOCK.into(),
            sms: kannel
                .as_ref()
                .map(sms_settings)
                .unwrap_or_else(|| vec![("SAFEREACH_SMS_PROVIDER".into(), "sandbox".into())]),
        },
        sizes,
        kannel,
        // A request that hangs fails after 30 s instead of holding up the run.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(128)
            .build()
            .map_err(|e| BenchError::Usage(e.to_string()))?,
        figures: Vec::new(),
        started: Instant::now(),
        sender_base: 600_000_000 + u64::from(std::process::id() % 10_000) * 100,
        senders: 0,
        warm_ups: 0,
    };
    eprintln!("safereach bench: {} build, sizes {:?}", build(), bench.sizes);
    let mut outcome = Ok(());
    for backend in &backends {
        eprintln!("[{}]", backend.name());
        if let Err(e) = bench.backend(backend).await {
            outcome = Err(e);
            break;
        }
    }
    if let Some(Backend::PostgresRedis { admin_url, .. }) = backends.get(1)
        && let Err(e) = gateway::drop_databases(admin_url).await
    {
        eprintln!("bench: could not drop its databases: {e}");
    }
    outcome?;
    let results = bench.results(&args);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results).unwrap_or_default())?;
    print!("{}", table(&bench.figures, &results));
    println!("\nresults: {}", args.out.display());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn sms_settings(k: &Kannel) -> Vec<(String, String)> {
    vec![
        ("SAFEREACH_SMS_PROVIDER".into(), "kannel".into()),
        ("SAFEREACH_KANNEL_SENDSMS_URL".into(), k.sendsms.clone()),
        ("SAFEREACH_KANNEL_USER".into(), k.user.clone()),
        ("SAFEREACH_KANNEL_PASSWORD".into(), k.password.clone()),
    ]
}

fn build() -> &'static str {
    if cfg!(debug_assertions) { "debug" } else { "release" }
}

impl Bench {
    async fn backend(&mut self, backend: &Backend) -> Result<(), BenchError> {
        let sizes = self.sizes.clone();
        // 1. The raw insert rate at each concurrency.
        let scratch = gateway::scratch_database(backend, &self.settings.dir).await?;
        let mut raw = HashMap::new();
        for c in sizes.levels {
            let m = baseline::raw_inserts(&scratch, sizes.baseline_rows, c, &format!("raw inserts c={c}")).await?;
            raw.insert(c, m.rate());
            let mut figure = Figure::rate(backend, format!("raw insert c={c}"), &m, "rows/s");
            if backend.key() == "sqlite" {
                figure = figure.detail(json!({ "settings": baseline::SQLITE_SETTINGS }));
            }
            self.figures.push(figure);
        }

        // 2. Intake against an `api` process on an empty database (concurrency 16 first, while
        // it is really empty: the figure the 100,000-stored one is compared with).
        let mut intake = self.deploy(backend, "intake").await?;
        self.clock();
        let startup = intake.start("api", &self.settings).await?;
        self.startup(backend, "api, empty database", startup);
        self.warm_up(&intake).await;
        let mut first = INTAKE_NUMBERS;
        for c in [16, 1, 64] {
            let n = if c == 1 { sizes.jobs / 4 } else { sizes.jobs };
            let m = self.intake(&intake, &format!("i{c}"), first, n, c).await;
            first += n;
            let baseline = raw[&c];
            let figure = Figure::rate(backend, format!("intake c={c}"), &m, "req/s")
                .against(format!("raw insert c={c}"), baseline, "rows/s")
                .detail(json!({ "requests": n, "failed": m.failed }));
            self.figures.push(figure);
        }
        intake.stop().await;
        self.memory(backend, &intake);

        // 3. End to end through Kannel, per process layout.
        let Some(kannel_rate) = self.kannel_baseline(backend).await? else { return Ok(()) };
        let mut layouts = vec![("api + 1 worker", 1), ("api + 2 workers", 2)];
        if backend.key() == "sqlite" {
            layouts.insert(0, ("serve", 0));
        }
        let mut kept = None;
        for (i, (layout, workers)) in layouts.into_iter().enumerate() {
            let mut d = self.deploy(backend, &format!("e2e{i}")).await?;
            self.clock();
            let startup = if workers == 0 {
                d.start("serve", &self.settings).await?
            } else {
                let s = d.start("api", &self.settings).await?;
                for _ in 0..workers {
                    d.start("worker", &self.settings).await?;
                }
                s
            };
            if workers == 0 {
                self.startup(backend, "serve, empty database", startup);
            }
            let figure = self.end_to_end(backend, &d, layout, kannel_rate).await?;
            self.figures.push(figure);
            d.stop().await;
            self.memory(backend, &d);
            if kept.is_none() {
                kept = Some(d);
            }
        }
        let mut d = kept.expect("at least one layout ran");

        // 4. Delivery reports for messages sent earlier, against an `api` process alone.
        let seeds = d.count("SELECT COUNT(*) FROM messages").await?.max(1) as usize;
        let overrides = [
            ("messages", "status", "'sent'"),
            ("messages", "final_at", "NULL"),
            ("messages", "status_at", "t.sent_at"),
        ];
        seed::copy_jobs(&d.store, "E2E", 'd', sizes.reports.div_ceil(seeds), &overrides).await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM messages WHERE status = 'sent' AND id LIKE '%~d%' ORDER BY id")
                .fetch_all(d.store.pool())
                .await?;
        let ids: Vec<String> = ids.into_iter().take(sizes.reports).collect();
        self.clock();
        d.start("api", &self.settings).await?;
        self.warm_up(&d).await;
        let dlr = format!(
            "{}/webhooks/kannel/dlr?token={}&status=1&answer=id%3A1+stat%3ADELIVRD+err%3A000&id=",
            d.base(),
            d.webhook_token
        );
        let m = drive("delivery reports", ids.len(), sizes.concurrency, |i| {
            let request = self.http.get(format!("{dlr}{}", ids[i]));
            async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        let moved = d.count("SELECT COUNT(*) FROM messages WHERE status = 'delivered' AND id LIKE '%~d%'").await?;
        if moved as usize != ids.len() {
            eprintln!("  ! {moved} of {} delivery reports were recorded", ids.len());
        }
        let c = sizes.concurrency;
        self.figures.push(
            Figure::rate(backend, format!("delivery-report ingest c={c}"), &m, "reports/s")
                .against(format!("raw insert c={c}"), raw[&c], "rows/s")
                .detail(json!({ "reports": ids.len(), "failed": m.failed, "recorded": moved })),
        );
        d.stop().await;

        // 5. Intake with `stored` jobs already there (copies of the finished end-to-end jobs).
        let have = d.count("SELECT COUNT(*) FROM outreach").await? as usize;
        let finished = d
            .count("SELECT COUNT(*) FROM outreach WHERE case_ref LIKE 'E2E%' AND case_ref NOT LIKE '%~%'")
            .await?
            .max(1) as usize;
        let copies = sizes.stored.saturating_sub(have).div_ceil(finished);
        let progress = load::Progress::start("storing jobs", sizes.stored);
        progress.set(have);
        seed::copy_jobs(&d.store, "E2E", 's', copies, &[]).await?;
        let stored = d.count("SELECT COUNT(*) FROM outreach").await? as usize;
        progress.set(stored);
        progress.finish();
        // Against a fresh empty database, measured in turns with it (half the requests each,
        // twice), so that the machine's other load falls on both alike.
        let mut empty = self.deploy(backend, "empty").await?;
        self.clock();
        empty.start("api", &self.settings).await?;
        let startup = d.start("api", &self.settings).await?;
        self.startup(backend, &format!("api, {} jobs stored", number(stored as f64)), startup);
        self.warm_up(&empty).await;
        self.warm_up(&d).await;
        let half = sizes.jobs / 2;
        let (mut on_empty, mut on_stored) = (None, None);
        for round in 0..2 {
            let first = STORED_NUMBERS + round * half;
            let e = self.intake(&empty, &format!("s{round}"), first, half, c).await;
            let s = self.intake(&d, &format!("s{round}"), first, half, c).await;
            on_empty = Some(match on_empty {
                Some(m) => Measured::sum(m, e),
                None => e,
            });
            on_stored = Some(match on_stored {
                Some(m) => Measured::sum(m, s),
                None => s,
            });
        }
        let (e, m) = (on_empty.expect("two rounds"), on_stored.expect("two rounds"));
        self.figures.push(
            Figure::rate(backend, format!("intake c={c}, {} jobs stored", number(stored as f64)), &m, "req/s")
                .against(format!("intake c={c}, empty database"), e.rate(), "req/s")
                .detail(json!({
                    "requests": 2 * half,
                    "failed": m.failed,
                    "stored": stored,
                    "empty_p50_ms": e.ms(50.0),
                    "empty_p99_ms": e.ms(99.0),
                    "empty_failed": e.failed,
                })),
        );
        empty.stop().await;
        d.stop().await;
        self.memory(backend, &d);
        Ok(())
    }

    /// The clock of the processes started next: the bench's Monday morning, moved on by the time
    /// the run has taken, so that every process's clock agrees with the others'.
    fn clock(&mut self) {
        let at = CLOCK.parse::<chrono::DateTime<chrono::Utc>>().expect("valid");
        let now = at + chrono::TimeDelta::from_std(self.started.elapsed()).unwrap_or_default();
        self.settings.clock = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }

    fn startup(&mut self, backend: &Backend, what: &str, took: Option<Duration>) {
        if let Some(took) = took {
            self.figures.push(Figure::new(backend, format!("start-up ({what})"), took.as_secs_f64() * 1000.0, "ms"));
        }
    }

    /// Peak memory of each role of a deployment, after it stopped.
    fn memory(&mut self, backend: &Backend, d: &Deployment) {
        for (role, kib) in &d.peak_rss_kib {
            let measure = format!("peak RSS {role}");
            let mib = *kib as f64 / 1024.0;
            match self.figures.iter_mut().find(|f| f.backend == backend.key() && f.measure == measure) {
                Some(f) => f.value = f.value.max(mib),
                None => self.figures.push(Figure::new(backend, measure, mib, "MiB")),
            }
        }
    }

    /// A few requests before measuring, so that connections are open and caches filled as in a
    /// process that has been running (not measured).
    async fn warm_up(&mut self, d: &Deployment) {
        self.warm_ups += 1;
        let n = (self.sizes.jobs / 10).max(4);
        let first = WARM_UP_NUMBERS + (self.warm_ups % 5) * 5_000;
        let m = self.intake(d, &format!("w{}", self.warm_ups), first, n, self.sizes.concurrency).await;
        if m.failed > 0 {
            eprintln!("  ! {} of {n} warm-up requests failed", m.failed);
        }
    }

    async fn intake(&self, d: &Deployment, tag: &str, first: usize, n: usize, concurrency: usize) -> Measured {
        let url = format!("{}/v1/outreach", d.base());
        drive(&format!("intake c={concurrency}"), n, concurrency, |i| {
            let request = self.http.post(&url).bearer_auth(&d.key).json(&load::mixed_job(tag, first + i));
            async move { request.send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED) }
        })
        .await
    }

    /// A fresh deployment, sending SMS from a number of its own.
    async fn deploy(&mut self, backend: &Backend, name: &str) -> Result<Deployment, BenchError> {
        self.senders += 1;
        let sender = (self.sender_base + self.senders).to_string();
        Deployment::create(backend, name, &self.settings, sender).await
    }

    /// Kannel's own sendsms rate at the submitting concurrency, and how fast those messages
    /// reached the fake SMSC. None when there is no Kannel.
    async fn kannel_baseline(&mut self, backend: &Backend) -> Result<Option<f64>, BenchError> {
        self.senders += 1;
        let from = (self.sender_base + self.senders).to_string();
        let Some(k) = &self.kannel else { return Ok(None) };
        let (n, c) = (self.sizes.kannel_requests, self.sizes.concurrency);
        let mut log = smsc::MtLog::from_end(&k.mt_log)?;
        let started = Instant::now();
        let m = baseline::kannel_sendsms(&self.http, &k.sendsms, &k.user, &k.password, &from, n, c).await?;
        let mut tally = smsc::Tally::new(&from);
        let deadline = Instant::now() + Duration::from_secs(60);
        while tally.messages() < m.ok && Instant::now() < deadline {
            tally.add(&log.new_lines()?, Instant::now());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let at_smsc =
            tally.messages() as f64 / tally.last_arrival.map_or(f64::INFINITY, |t| (t - started).as_secs_f64());
        let figure = Figure::rate(backend, format!("Kannel sendsms c={c}"), &m, "req/s").detail(
            json!({ "requests": n, "failed": m.failed, "at_smsc": tally.messages(), "at_smsc_per_s": at_smsc }),
        );
        let rate = figure.value;
        self.figures.push(figure);
        Ok(Some(rate))
    }

    /// `e2e_jobs` SMS jobs submitted at the submitting concurrency: the rate from the first POST
    /// to the last message at the fake SMSC; each message's time from its POST to the SMSC; that
    /// each reached it exactly once; and when all their delivery reports were recorded.
    async fn end_to_end(
        &mut self,
        backend: &Backend,
        d: &Deployment,
        layout: &str,
        kannel_rate: f64,
    ) -> Result<Figure, BenchError> {
        let from = d.sender.clone();
        let k = self.kannel.as_ref().expect("checked by the caller");
        let (n, c) = (self.sizes.e2e_jobs, self.sizes.concurrency);
        let numbers: Vec<String> = (0..n).map(load::number).collect();
        // The deployment sends from its own number, so that only its messages are counted.
        let mut log = smsc::MtLog::from_end(&k.mt_log)?;
        let tally = Arc::new(Mutex::new(smsc::Tally::new(&from)));
        let watching = {
            let tally = tally.clone();
            tokio::spawn(async move {
                loop {
                    let lines = log.new_lines().unwrap_or_default();
                    tally.lock().expect("not poisoned").add(&lines, Instant::now());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let started = Instant::now();
        let posted: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
        let url = format!("{}/v1/outreach", d.base());
        let submitted = drive(&format!("end to end ({layout}): submit"), n, c, |i| {
            let request = self.http.post(&url).bearer_auth(&d.key).json(&load::sms_job("e2e", i));
            let posted = posted.clone();
            async move {
                posted.lock().expect("not poisoned")[i] = Some(Instant::now());
                request.send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED)
            }
        })
        .await;
        let deadline = started + Duration::from_secs(30) + Duration::from_millis(50) * n as u32;
        let progress = load::Progress::start(&format!("end to end ({layout}): at the SMSC"), n);
        loop {
            let reached = tally.lock().expect("not poisoned").check(&numbers).reached;
            progress.set(reached);
            if reached >= submitted.ok || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        progress.finish();
        let progress = load::Progress::start(&format!("end to end ({layout}): reports recorded"), n);
        let mut recorded = 0;
        while Instant::now() < deadline {
            recorded = d.count("SELECT COUNT(*) FROM messages WHERE status = 'delivered'").await? as usize;
            progress.set(recorded);
            if recorded >= submitted.ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reports_done = started.elapsed();
        progress.finish();
        // A little longer, for any message sent twice to show.
        tokio::time::sleep(Duration::from_millis(500)).await;
        watching.abort();
        let tally = tally.lock().expect("not poisoned");
        let delivery = tally.check(&numbers);
        let posted = posted.lock().expect("not poisoned");
        let mut latency = load::histogram();
        for (i, number) in numbers.iter().enumerate() {
            if let (Some(sent), Some(arrived)) = (posted[i], tally.first_arrival(number)) {
                latency.saturating_record(arrived.saturating_duration_since(sent).as_micros() as u64);
            }
        }
        let took = tally.last_arrival.map_or(Duration::MAX, |t| t - started);
        let m = Measured { ok: delivery.reached, failed: submitted.failed, elapsed: took, latency };
        eprintln!(
            "  end to end ({layout}): dup {}, lost {}, reports recorded {recorded} of {}",
            delivery.duplicates, delivery.lost, delivery.reached
        );
        Ok(Figure::rate(backend, format!("end to end via Kannel ({layout})"), &m, "msg/s")
            .against("Kannel sendsms", kannel_rate, "req/s")
            .detail(json!({
                "jobs": n,
                "rejected": submitted.failed,
                "at_smsc": delivery.reached,
                "dup": delivery.duplicates,
                "lost": delivery.lost,
                "reports_recorded": recorded,
                "reports_recorded_after_s": reports_done.as_secs_f64(),
                "submit_rate": submitted.rate(),
            })))
    }

    fn results(&self, args: &BenchArgs) -> Value {
        json!({
            "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "machine": machine(),
            "git_commit": git_commit(),
            "command": std::env::var("SAFEREACH_BENCH_COMMAND").unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
            "build": build(),
            "smoke": args.smoke,
            "sizes": self.sizes,
            "run_seconds": self.started.elapsed().as_secs_f64(),
            "figures": self.figures,
        })
    }
}

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string());
    let memory_kib: Option<u64> = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok());
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory_gib": memory_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
    })
}

/// The commit of the checkout the binary was built in (it lives in its `target/`).
fn git_commit() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(exe.parent()?)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The table printed at the end: one line per figure, its baseline and the ratio.
fn table(figures: &[Figure], results: &Value) -> String {
    let mut out = format!(
        "\nsafereach bench: {} build, {} cpus, {}, commit {}\n\n",
        results["build"].as_str().unwrap_or_default(),
        results["machine"]["cpus"],
        results["date"].as_str().unwrap_or_default(),
        results["git_commit"].as_str().unwrap_or("unknown"),
    );
    out.push_str(&format!(
        "{:<17} {:<44} {:>16} {:>9} {:>9}   {:<30} {:>7}\n",
        "backend", "measure", "value", "p50", "p99", "baseline", "ratio"
    ));
    for f in figures {
        let ms = |v: Option<f64>| match v {
            Some(v) if v >= 1000.0 => format!("{:.1} s", v / 1000.0),
            Some(v) => format!("{v:.1} ms"),
            None => String::new(),
        };
        let baseline = f.baseline.as_ref().map(|b| format!("{} {}", b.name, number(b.value))).unwrap_or_default();
        let ratio = f.ratio.map(|r| format!("{r:.3}")).unwrap_or_default();
        let mut line = format!(
            "{:<17} {:<44} {:>16} {:>9} {:>9}   {:<30} {:>7}",
            f.backend,
            f.measure,
            format!("{} {}", number(f.value), f.unit),
            ms(f.p50_ms),
            ms(f.p99_ms),
            baseline,
            ratio
        );
        if let Some(dup) = f.detail.get("dup") {
            line.push_str(&format!(
                "   dup {dup}, lost {}, reports {}/{}",
                f.detail["lost"], f.detail["reports_recorded"], f.detail["at_smsc"]
            ));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A figure rounded for reading: whole numbers from 100 up, else three significant digits.
fn number(v: f64) -> String {
    if v >= 100.0 {
        let whole = format!("{:.0}", v);
        let mut grouped = String::new();
        for (i, ch) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        grouped
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_easily() {
        assert_eq!(number(13243.4), "13,243");
        assert_eq!(number(635.0), "635");
        assert_eq!(number(45.26), "45.3");
        assert_eq!(number(0.0142), "0.01");
    }

    #[test]
    fn a_ratio_is_the_value_over_its_baseline() {
        let f =
            Figure::new(&Backend::Sqlite, "intake c=16", 400.0, "req/s").against("raw insert c=16", 6_498.0, "rows/s");
        assert!((f.ratio.unwrap() - 400.0 / 6_498.0).abs() < 1e-12);
        assert_eq!(Figure::new(&Backend::Sqlite, "x", 1.0, "ms").against("none", 0.0, "ms").ratio, None);
    }
}
