//! `safereach bench`: throughput and latency of the gateway, each put beside a baseline measured
//! in the same run on the same machine, so the figures mean something wherever they are taken:
//!
//! - accepting jobs (`POST /v1/outreach`, which decides and commits case, job, event and outbox
//!   row together) against the raw rate of single-row inserts into the same database;
//! - sending (accepted → decided again → rendered → handed to the provider → recorded) against
//!   Kannel's own `sendsms` rate, when Kannel is the SMS provider (scripts/bench.sh starts one).
//!
//! It runs against a fresh database: a temporary SQLite file by default, or the Postgres (and
//! Redis) the configuration names — use a throw-away database for that.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::error::CliError;
use crate::app::{self, Role};
use crate::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Outreach jobs to submit (and raw inserts and sendsms requests for the baselines).
    #[arg(long, default_value_t = 2000)]
    pub jobs: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// A Monday morning: every SMS is inside quiet hours, so sendable jobs are sent at once.
const CLOCK: &str = "2026-11-23T10:00:00Z";

pub async fn run(mut config: Config, args: BenchArgs) -> Result<(), CliError> {
    let dir = std::env::temp_dir().join(format!("safereach-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    if config.is_sqlite() {
        config.database_url = format!("sqlite://{}", dir.join("bench.db").display());
    }
    config.outbox_dir = dir.join("outbox").display().to_string();
    config.clock = CLOCK.parse().ok();
    // The benchmark's own throw-away database: a shifted clock is allowed there.
    config.allow_clock = true;
    // Providers call back (Kannel's delivery reports): the public URL must be our own address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    config.bind = format!("127.0.0.1:{port}");
    config.public_url = format!("http://127.0.0.1:{port}");
    let kannel = config.sms_provider.contains("kannel").then(|| kannel_baseline_url(&config)).flatten();
    let backend = format!(
        "{} database, {} queue, SMS via {}",
        if config.is_sqlite() { "SQLite" } else { "Postgres" },
        if config.redis_url.is_some() { "Redis" } else { "database" },
        config.sms_provider
    );

    let running = app::start(config, Role::Serve, true).await?;
    let state = running.state.clone();
    let setup = super::demo::set_up(&state.store, state.clock.now_ms()).await?;
    let base = format!("http://{}", running.addr.expect("serves HTTP"));
    let http = crate::channels::http_client().map_err(|e| CliError::Usage(e.to_string()))?;

    println!("safereach bench: {} jobs, {} in flight, {backend}", args.jobs, args.concurrency);
    let inserts = raw_inserts(&state.store, args.jobs, args.concurrency).await?;
    println!("  baseline: raw single-row inserts   {:>9.0}/s", inserts.rate());

    let started = Instant::now();
    let bodies: Vec<Value> = (0..args.jobs).map(job).collect();
    let sendable = bodies.iter().filter(|b| b["case_ref"].as_str().is_some_and(|c| c.ends_with("-S"))).count();
    let accepted = timed(bodies, args.concurrency, |body| {
        let (http, url, key) = (http.clone(), format!("{base}/v1/outreach"), setup.key.clone());
        async move {
            let response = http.post(url).bearer_auth(key).json(&body).send().await;
            response.is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED)
        }
    })
    .await;
    println!(
        "  accept POST /v1/outreach          {:>9.0}/s  = {:>5.1}% of raw inserts; latency p50 {} p95 {} p99 {}",
        accepted.rate(),
        100.0 * accepted.rate() / inserts.rate(),
        ms(accepted.percentile(50)),
        ms(accepted.percentile(95)),
        ms(accepted.percentile(99)),
    );
    if accepted.failures > 0 {
        println!("  ! {} requests were not accepted", accepted.failures);
    }

    // Everything sendable is sent: wait for it, then read per-message latency from the store.
    let deadline = Instant::now() + Duration::from_secs(600);
    let sent = loop {
        let sent = count(&state.store, "SELECT COUNT(*) FROM messages WHERE sent_at IS NOT NULL").await?;
        if sent as usize >= sendable || Instant::now() > deadline {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let end_to_end = started.elapsed();
    let mut waits = latencies(&state.store).await?;
    waits.sort_unstable();
    let pct = |p: usize| waits.get((waits.len().saturating_sub(1)) * p / 100).copied().unwrap_or_default();
    let send_rate = sent as f64 / end_to_end.as_secs_f64();
    println!(
        "  send (accept → handed over)       {:>9.0}/s  {sent} of {sendable} sent; accept→sent p50 {} p95 {} p99 {}",
        send_rate,
        ms(Duration::from_millis(pct(50))),
        ms(Duration::from_millis(pct(95))),
        ms(Duration::from_millis(pct(99))),
    );
    if let Some(url) = kannel {
        let kannel = timed((0..args.jobs).collect(), args.concurrency, |i| {
            let (http, url) = (http.clone(), format!("{url}&to=%2B4477009{:05}&text=baseline+{i}", i % 100_000));
            async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        println!("  baseline: Kannel sendsms           {:>9.0}/s", kannel.rate());
        println!("  send rate is {:.1}% of Kannel's own sendsms rate", 100.0 * send_rate / kannel.rate());
    }
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The sendsms URL with credentials, for the Kannel baseline (no delivery reports asked for).
fn kannel_baseline_url(config: &Config) -> Option<String> {
    let url = config.kannel_sendsms_url.as_deref()?;
    let user = config.kannel_user.as_deref().unwrap_or_default();
    let password = config.kannel_password.as_deref().unwrap_or_default();
    Some(format!("{url}?username={user}&password={password}&from=60000"))
}

/// Job `i`: mostly sendable (pre-texts, email and letter packs, ending in `-S`), some held or
/// blocked, the mix the service sees.
fn job(i: usize) -> Value {
    let phone = format!("+4477009{:05}", i % 100_000);
    let (suffix, kind, contact, consent) = match i % 10 {
        0 => (
            "E-S",
            "information_pack",
            json!({"email": {"address": format!("v{i}@example.org"), "safe": true}, "preferred_method": "email"}),
            true,
        ),
        1 => (
            "L-S",
            "information_pack",
            json!({"postal": {"name": "A Victim", "lines": ["1 High Street"], "postcode": "CV1 2AB", "safe": true}, "preferred_method": "letter"}),
            true,
        ),
        2 => (
            "B",
            "information_pack",
            json!({"email": {"address": format!("v{i}@example.org")}, "preferred_method": "email"}),
            false,
        ),
        3 => ("H", "priority_pretext", json!({"phones": [{"number": phone, "safe_to_text": false}]}), false),
        _ => (
            "P-S",
            "priority_pretext",
            json!({"phones": [{"number": phone, "belongs_to": "victim", "safe_to_text": true}]}),
            false,
        ),
    };
    let category = if suffix == "H" { "hate_crime" } else { "robbery" };
    json!({
        "request_id": format!("bench-{i}"),
        "case_ref": format!("BENCH-{i}-{suffix}"),
        "kind": kind,
        "crime": {"categories": [category]},
        "victim": {"first_name": "Sam"},
        "contact": contact,
        "consent": {"information_pack": consent},
        "personalisation": {"advocate_name": "Jo"},
    })
}

struct Timings {
    elapsed: Duration,
    each: Vec<Duration>,
    failures: usize,
}

impl Timings {
    fn rate(&self) -> f64 {
        self.each.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: usize) -> Duration {
        let mut sorted = self.each.clone();
        sorted.sort_unstable();
        sorted.get((sorted.len().saturating_sub(1)) * p / 100).copied().unwrap_or_default()
    }
}

/// Run `op` on every item, `concurrency` at a time, timing each.
async fn timed<T, F, Fut>(items: Vec<T>, concurrency: usize, op: F) -> Timings
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = futures::stream::iter(items.into_iter().map(|item| {
        let fut = op(item);
        async move {
            let t = Instant::now();
            let ok = fut.await;
            (t.elapsed(), ok)
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .collect()
    .await;
    let failures = results.iter().filter(|(_, ok)| !ok).count();
    Timings { elapsed: started.elapsed(), each: results.into_iter().map(|(d, _)| d).collect(), failures }
}

async fn raw_inserts(store: &crate::store::Store, n: usize, concurrency: usize) -> Result<Timings, CliError> {
    let pool = store.pool();
    sqlx::query("CREATE TABLE bench_baseline (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .execute(pool)
        .await
        .map_err(db)?;
    let t = timed((0..n).collect(), concurrency, |i| async move {
        sqlx::query("INSERT INTO bench_baseline (id, body) VALUES ($1, $2)")
            .bind(format!("row-{i}"))
            .bind("{\"a\": \"typical json of a few hundred bytes\"}")
            .execute(pool)
            .await
            .is_ok()
    })
    .await;
    sqlx::query("DROP TABLE bench_baseline").execute(pool).await.map_err(db)?;
    Ok(t)
}

async fn count(store: &crate::store::Store, sql: &'static str) -> Result<i64, CliError> {
    sqlx::query_scalar(sql).fetch_one(store.pool()).await.map_err(db)
}

/// Milliseconds from acceptance to hand-over, per sent message.
async fn latencies(store: &crate::store::Store) -> Result<Vec<u64>, CliError> {
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT m.sent_at - o.accepted_at FROM messages m JOIN outreach o ON o.id = m.outreach_id WHERE m.sent_at IS NOT NULL",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(|v| v.max(0) as u64).collect())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn db(e: sqlx::Error) -> CliError {
    CliError::Store(e.into())
}
