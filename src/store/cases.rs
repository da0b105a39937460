//! Cases: the row of each, its lock, its memory (categories) and the numbers recorded on it.

use sqlx::AnyConnection;

use std::collections::{BTreeMap, BTreeSet};

use super::{Result, Store, Writes, dynamic, json};
use crate::domain::{OutreachRequest, contact};

/// One case's row as a batch of acceptances writes it.
#[derive(Default)]
struct CaseRow {
    created_at: i64,
    referral_source: Option<String>,
    referred_at: Option<i64>,
    local_authority: Option<String>,
    categories: String,
    priority: bool,
    safety_sensitive: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRecord {
    pub case_ref: String,
    pub created_at: i64,
    pub referral_source: Option<String>,
    pub referred_at: Option<i64>,
    pub local_authority: Option<String>,
    pub categories: String,
    #[sqlx(try_from = "i64")]
    pub priority: super::Flag,
    #[sqlx(try_from = "i64")]
    pub safety_sensitive: super::Flag,
    pub cancelled_at: Option<i64>,
    pub call_window: Option<String>,
}

impl Store {
    /// Create the cases of a batch of accepted requests, or add to them: the first referral
    /// details win, priority and safety-sensitivity are remembered once set, and every category
    /// joins the case's memory. `accepted` is in the order the requests were accepted, each with
    /// its time, priority and safety-sensitivity; several of one case are merged in that order
    /// (one row per case, in case_ref order, in one statement). Takes the cases' row locks on
    /// Postgres, which `ensure_and_lock_cases` has already taken.
    pub fn upsert_cases(&self, writes: &mut Writes, accepted: &[(&OutreachRequest, i64, bool, bool)]) {
        if accepted.is_empty() {
            return;
        }
        let mut merged: BTreeMap<&str, CaseRow> = BTreeMap::new();
        let mut categories = BTreeSet::new();
        for &(req, now, priority, safety_sensitive) in accepted {
            let row = merged
                .entry(req.case_ref.as_str())
                .or_insert_with(|| CaseRow { created_at: now, ..CaseRow::default() });
            row.referral_source = row.referral_source.take().or_else(|| req.referral.source.clone());
            row.referred_at = row.referred_at.or(req.referral.referred_at.map(|t| t.timestamp_millis()));
            row.local_authority = row.local_authority.take().or_else(|| req.referral.local_authority.clone());
            if row.categories.is_empty() {
                row.categories = req.crime.categories.join(",");
            }
            row.priority |= priority;
            row.safety_sensitive |= safety_sensitive;
            categories.extend(super::history::case_categories(req).map(|c| (req.case_ref.as_str(), c)));
        }
        // The first referral details win; later jobs fill in what was missing. (`WHERE true`:
        // SQLite's parser needs it between an INSERT's SELECT and its ON CONFLICT.)
        let rows: Vec<serde_json::Value> = merged
            .iter()
            .map(|(case_ref, row)| {
                serde_json::json!([
                    case_ref,
                    row.created_at,
                    row.referral_source,
                    row.referred_at,
                    row.local_authority,
                    row.categories,
                    i64::from(row.priority),
                    i64::from(row.safety_sensitive),
                ])
            })
            .collect();
        writes.push(
            "INSERT INTO cases (case_ref, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive)
             SELECT case_ref, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive
             FROM $rows AS v WHERE true
             ON CONFLICT (case_ref) DO UPDATE SET
               referral_source = COALESCE(cases.referral_source, excluded.referral_source),
               referred_at = COALESCE(cases.referred_at, excluded.referred_at),
               local_authority = COALESCE(cases.local_authority, excluded.local_authority),
               categories = CASE WHEN cases.categories = '' THEN excluded.categories ELSE cases.categories END,
               priority = CASE WHEN cases.priority + excluded.priority > 0 THEN 1 ELSE 0 END,
               safety_sensitive = CASE WHEN cases.safety_sensitive + excluded.safety_sensitive > 0 THEN 1 ELSE 0 END",
            &[
                ("case_ref", "text"),
                ("created_at", "bigint"),
                ("referral_source", "text"),
                ("referred_at", "bigint"),
                ("local_authority", "text"),
                ("categories", "text"),
                ("priority", "bigint"),
                ("safety_sensitive", "bigint"),
            ],
            json(&rows),
        );
        // The case's memory: every accepted job's categories, whatever its decision.
        if !categories.is_empty() {
            let categories: Vec<(&str, String)> = categories.into_iter().collect();
            writes.push(
                "INSERT INTO case_categories (case_ref, category) SELECT case_ref, category FROM $rows AS v WHERE true
                 ON CONFLICT DO NOTHING",
                &[("case_ref", "text"), ("category", "text")],
                json(&categories),
            );
        }
    }

    /// Make sure the cases exist (a bare row, filled in by `upsert_cases` in the same
    /// transaction) and lock them (see `lock_case`), before anything is read: one statement, in
    /// case_ref order (`cases` is), so that two batches never wait for each other. Postgres only:
    /// SQLite's single writer already serialises.
    pub async fn ensure_and_lock_cases(&self, conn: &mut AnyConnection, cases: &[&str], now: i64) -> Result<()> {
        if self.dialect != super::Dialect::Postgres || cases.is_empty() {
            return Ok(());
        }
        // `DO UPDATE` of a column no index has: the row is locked as by `FOR UPDATE`.
        let sql = "INSERT INTO cases (case_ref, created_at) SELECT value, $2 FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS j(value, n)
             ORDER BY n ON CONFLICT (case_ref) DO UPDATE SET created_at = cases.created_at";
        sqlx::query(sql).bind(json(cases)).bind(now).execute(&mut *conn).await?;
        Ok(())
    }

    /// Decisions on one case take turns, so that rule 11 sees every other job's message, and
    /// whatever stops a send on the case (a call, a cancel) waits for a worker's decide-and-claim
    /// or is seen by it. Postgres only: SQLite's single writer already serialises them. Take it
    /// before any job row of the case and before any address lock (`lock_addresses`), the order
    /// every transaction uses, or two transactions could wait for each other.
    pub async fn lock_case(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<()> {
        self.lock_cases(conn, &[case_ref]).await
    }

    /// The case lock (see `lock_case`) for a job about to be decided again.
    pub async fn lock_case_of_job(&self, conn: &mut AnyConnection, outreach_id: &str) -> Result<()> {
        if self.dialect == super::Dialect::Postgres {
            let case_ref: Option<String> = sqlx::query_scalar("SELECT case_ref FROM outreach WHERE id = $1")
                .bind(outreach_id)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(case_ref) = case_ref {
                self.lock_case(conn, &case_ref).await?;
            }
        }
        Ok(())
    }

    /// `lock_case` for several cases at once, in case_ref order (whatever order they are given
    /// in), so that two batches never wait for each other.
    pub async fn lock_cases(&self, conn: &mut AnyConnection, cases: &[&str]) -> Result<()> {
        if self.dialect != super::Dialect::Postgres || cases.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT case_ref FROM cases WHERE {} ORDER BY case_ref FOR UPDATE",
            self.dialect.in_json("case_ref", 1, "text")
        );
        sqlx::query(dynamic(sql)).bind(json(cases)).execute(&mut *conn).await?;
        Ok(())
    }

    /// Remember whose each number is, so that rule 7 can spot a suspect's number on another case.
    pub fn record_phones(&self, writes: &mut Writes, requests: &[&OutreachRequest]) {
        let phones: BTreeSet<(&str, String, i64)> = requests
            .iter()
            .flat_map(|req| {
                req.contact.phones.iter().filter_map(|phone| {
                    let number = contact::normalise_uk_mobile(&phone.number)?;
                    Some((req.case_ref.as_str(), self.address_key(&number), i64::from(phone.is_victims())))
                })
            })
            .collect();
        if phones.is_empty() {
            return;
        }
        let phones: Vec<(&str, String, i64)> = phones.into_iter().collect();
        writes.push(
            "INSERT INTO case_phones (case_ref, number_key, is_victims) SELECT case_ref, number_key, is_victims FROM $rows AS v
             WHERE true ON CONFLICT DO NOTHING",
            &[("case_ref", "text"), ("number_key", "text"), ("is_victims", "bigint")],
            json(&phones),
        );
    }

    pub async fn case(&self, case_ref: &str) -> Result<Option<CaseRecord>> {
        Ok(sqlx::query_as(
            "SELECT case_ref, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive, cancelled_at, call_window
             FROM cases WHERE case_ref = $1",
        )
        .bind(case_ref)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Mark a case cancelled (the first time counts). False when there is no such case.
    pub async fn mark_case_cancelled(&self, conn: &mut AnyConnection, case_ref: &str, now: i64) -> Result<bool> {
        let updated = sqlx::query("UPDATE cases SET cancelled_at = COALESCE(cancelled_at, $2) WHERE case_ref = $1")
            .bind(case_ref)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        Ok(updated > 0)
    }

    /// The keyed hashes of the numbers recorded as the victim's on a case.
    pub async fn victim_number_keys(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT number_key FROM case_phones WHERE case_ref = $1 AND is_victims = 1")
            .bind(case_ref)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Whether a case exists (inside a transaction).
    pub async fn case_exists(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, String>("SELECT case_ref FROM cases WHERE case_ref = $1")
            .bind(case_ref)
            .fetch_optional(conn)
            .await?
            .is_some())
    }

    /// Every category of the case's accepted jobs (its memory), in order.
    pub async fn case_categories(&self, case_ref: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT category FROM case_categories WHERE case_ref = $1 ORDER BY category")
            .bind(case_ref)
            .fetch_all(&self.pool)
            .await?)
    }
}
