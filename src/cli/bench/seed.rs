//! Bulk-loading a database with jobs fast: copies of jobs the gateway itself took through their
//! whole life (accepted, decided, sent, reported), made with one INSERT … SELECT per table. Every
//! column is copied as it is, whatever columns the tables have by then, except the keys, which get
//! a suffix per copy (`~<tag><n>`), and the few columns a caller overrides.

use crate::store::{Dialect, Store};

use super::BenchError;

/// The tables of a job's life, parents first, with the columns that identify a row or link it
/// to a case, a job, a message or an address (made unique per copy).
const TABLES: &[(&str, &[&str])] = &[
    ("cases", &["case_ref"]),
    ("outreach", &["id", "request_id", "case_ref"]),
    ("messages", &["id", "outreach_id", "case_ref", "to_key", "provider_ref"]),
    ("events", &["case_ref", "outreach_id", "message_id"]),
    ("case_phones", &["case_ref", "number_key"]),
];

/// Copy `copies` times every job of the cases whose reference starts with `seed_prefix`
/// (originals only, not earlier copies), suffixing keys with `~<tag><n>`. `overrides` sets
/// columns of a table to an SQL expression over the original row `t`. Returns the jobs added.
pub async fn copy_jobs(
    store: &Store,
    seed_prefix: &str,
    tag: char,
    copies: usize,
    overrides: &[(&str, &str, &str)],
) -> Result<i64, BenchError> {
    if copies == 0 {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    let mut added = 0;
    for (table, keys) in TABLES {
        let columns = columns(store, table).await?;
        let mut names = Vec::new();
        let mut values = Vec::new();
        for column in &columns {
            // The events' own id is generated.
            if *table == "events" && column == "id" {
                continue;
            }
            let value = match overrides.iter().find(|(t, c, _)| t == table && c == column) {
                Some((_, _, expression)) => expression.to_string(),
                None if keys.contains(&column.as_str()) => format!("t.{column} || '~{tag}' || n.i"),
                None => format!("t.{column}"),
            };
            names.push(column.clone());
            values.push(value);
        }
        let sql = format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) \
             INSERT INTO {table} ({}) SELECT {} FROM {table} t CROSS JOIN n \
             WHERE t.case_ref LIKE '{seed_prefix}%' AND t.case_ref NOT LIKE '%~%'",
            names.join(", "),
            values.join(", ")
        );
        // Built from the tables' own column names, constants and numbers only.
        let done = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
        if *table == "outreach" {
            added = done.rows_affected() as i64;
        }
    }
    tx.commit().await?;
    // Leave the database as a running one would be, not busy digesting a bulk load while it is
    // measured: on Postgres what autovacuum would soon do (statistics for the planner, the
    // visibility map); on SQLite the checkpoint the gateway's next commit would otherwise make.
    let settle = match store.dialect() {
        Dialect::Postgres => "VACUUM ANALYZE",
        Dialect::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    sqlx::query(settle).execute(store.pool()).await?;
    Ok(added)
}

async fn columns(store: &Store, table: &str) -> Result<Vec<String>, BenchError> {
    let sql = match store.dialect() {
        Dialect::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
        Dialect::Postgres => {
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
    };
    let names: Vec<String> = sqlx::query_scalar(sql).bind(table).fetch_all(store.pool()).await?;
    if names.is_empty() {
        return Err(BenchError::Gateway(format!("no table {table} to copy jobs in")));
    }
    Ok(names)
}
