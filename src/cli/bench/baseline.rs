//! Baselines measured in the same run, on the same machine and servers, so that the gateway's
//! figures read as ratios: the raw rate of single-row inserts from a minimal client, and
//! Kannel's own `sendsms` rate.

use std::str::FromStr;
use std::time::Duration;

use super::BenchError;
use super::load::{Measured, drive};

/// A row about as wide as an accepted job's (`outreach`: ids, a few short columns, the request
/// and the answer as JSON, times).
const CREATE: &str = "CREATE TABLE raw_inserts (id TEXT PRIMARY KEY, case_ref TEXT NOT NULL, kind TEXT NOT NULL, \
    status TEXT NOT NULL, request_json TEXT NOT NULL, response_json TEXT NOT NULL, accepted_at BIGINT NOT NULL)";

fn request_json(i: usize) -> String {
    let body = super::load::mixed_job("raw", i).to_string();
    format!("{body}{}", " ".repeat(600usize.saturating_sub(body.len())))
}

/// How the SQLite baseline is set: as the app's connections (src/store/mod.rs), which leave
/// `synchronous` at SQLite's default.
pub const SQLITE_SETTINGS: &str = "WAL, synchronous=FULL, one connection";

/// The INSERT of row `i` (the same for both drivers).
macro_rules! insert {
    ($i:expr) => {{
        let i: usize = $i;
        sqlx::query(
            "INSERT INTO raw_inserts (id, case_ref, kind, status, request_json, response_json, accepted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(format!("out_{:032x}", i))
        .bind(format!("RAW-{i}"))
        .bind("priority_pretext")
        .bind("queued")
        .bind(request_json(i))
        .bind(r#"{"outreach_id":"out_0","status":"queued","decision":{"outcome":"send","reason":"ok"}}"#)
        .bind(i as i64)
    }};
}

/// Single-row autocommit INSERTs at `concurrency` into a fresh table of `url`'s database.
///
/// Postgres: a pool of `concurrency` connections. SQLite: one connection with the app's pragmas
/// (WAL, synchronous=FULL, foreign keys, busy timeout): SQLite has one writer, and more
/// connections only wait for its lock in the busy handler's sleeps (the app, too, writes through
/// one writer at a time).
pub async fn raw_inserts(url: &str, rows: usize, concurrency: usize, label: &str) -> Result<Measured, BenchError> {
    if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        sqlx::query("DROP TABLE IF EXISTS raw_inserts").execute(&pool).await?;
        sqlx::query(CREATE).execute(&pool).await?;
        let measured = drive(label, rows, concurrency, |i| {
            let pool = pool.clone();
            async move { insert!(i).execute(&pool).await.is_ok() }
        })
        .await;
        pool.close().await;
        Ok(measured)
    } else {
        use sqlx::postgres::PgPoolOptions;
        let pool = PgPoolOptions::new()
            .max_connections(concurrency as u32)
            .min_connections(concurrency as u32)
            .connect(url)
            .await?;
        sqlx::query("DROP TABLE IF EXISTS raw_inserts").execute(&pool).await?;
        sqlx::query(CREATE).execute(&pool).await?;
        let measured = drive(label, rows, concurrency, |i| {
            let pool = pool.clone();
            async move { insert!(i).execute(&pool).await.is_ok() }
        })
        .await;
        pool.close().await;
        Ok(measured)
    }
}

/// Kannel's own rate: `sendsms` GETs at `concurrency` (no delivery reports asked for), from
/// `from` to fictional numbers, each answered 2xx when Kannel took the message.
pub async fn kannel_sendsms(
    http: &reqwest::Client,
    sendsms: &str,
    user: &str,
    password: &str,
    from: &str,
    requests: usize,
    concurrency: usize,
) -> Result<Measured, BenchError> {
    let base = reqwest::Url::parse(sendsms).map_err(|e| BenchError::Usage(format!("Kannel sendsms URL: {e}")))?;
    Ok(drive("Kannel sendsms", requests, concurrency, |i| {
        let mut url = base.clone();
        url.query_pairs_mut()
            .append_pair("username", user)
            .append_pair("password", password)
            .append_pair("from", from)
            .append_pair("to", &super::load::number(super::KANNEL_NUMBERS + i))
            .append_pair("text", &format!("baseline {i}"));
        let request = http.get(url);
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await)
}
