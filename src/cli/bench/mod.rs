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
mod phases;
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
    /// Measure one backend only: `sqlite`, or `postgres` (Postgres + Redis). Both by default.
    #[arg(long, value_parser = ["sqlite", "postgres"])]
    pub backend: Option<String>,
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
    match args.backend.as_deref() {
        Some("sqlite") => backends.truncate(1),
        Some(_) if backends.len() < 2 => {
            return Err(BenchError::Usage("--backend postgres needs --postgres and SAFEREACH_REDIS_URL".into()));
        }
        Some(_) => {
            backends.remove(0);
        }
        None => {}
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
    if let Some(Backend::PostgresRedis { admin_url, .. }) = backends.last()
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
