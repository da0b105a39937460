//! Cases: the row of each, its lock, its memory (categories) and the numbers recorded on it.

use sqlx::AnyConnection;

use super::{Result, Store};
use crate::domain::{OutreachRequest, contact};

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
    /// Create the case of an accepted request, or add to it: the first referral details win,
    /// priority and safety-sensitivity are remembered once set, and every category joins the
    /// case's memory. Takes the case lock (`lock_case`).
    pub async fn upsert_case(
        &self,
        conn: &mut AnyConnection,
        req: &OutreachRequest,
        now: i64,
        priority: bool,
        safety_sensitive: bool,
    ) -> Result<()> {
        // The first referral details win; later jobs fill in what was missing.
        sqlx::query(
            "INSERT INTO cases (case_ref, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (case_ref) DO UPDATE SET
               referral_source = COALESCE(cases.referral_source, excluded.referral_source),
               referred_at = COALESCE(cases.referred_at, excluded.referred_at),
               local_authority = COALESCE(cases.local_authority, excluded.local_authority),
               categories = CASE WHEN cases.categories = '' THEN excluded.categories ELSE cases.categories END,
               priority = CASE WHEN cases.priority + excluded.priority > 0 THEN 1 ELSE 0 END,
               safety_sensitive = CASE WHEN cases.safety_sensitive + excluded.safety_sensitive > 0 THEN 1 ELSE 0 END",
        )
        .bind(&req.case_ref)
        .bind(now)
        .bind(&req.referral.source)
        .bind(req.referral.referred_at.map(|t| t.timestamp_millis()))
        .bind(&req.referral.local_authority)
        .bind(req.crime.categories.join(","))
        .bind(i64::from(priority))
        .bind(i64::from(safety_sensitive))
        .execute(&mut *conn)
        .await?;
        self.lock_case(conn, &req.case_ref).await?;
        // The case's memory: every accepted job's categories, whatever its decision.
        for category in &req.crime.categories {
            let category = category.trim().to_ascii_lowercase();
            if category.is_empty() {
                continue;
            }
            sqlx::query("INSERT INTO case_categories (case_ref, category) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&req.case_ref)
                .bind(category)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Decisions on one case take turns, so that rule 11 sees every other job's message, and
    /// whatever stops a send on the case (a call, a cancel) waits for a worker's decide-and-claim
    /// or is seen by it. Postgres only: SQLite's single writer already serialises them. Take it
    /// before any job row of the case and before any address lock (`lock_addresses`), the order
    /// every transaction uses, or two transactions could wait for each other.
    pub async fn lock_case(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<()> {
        if self.dialect == super::Dialect::Postgres {
            sqlx::query("SELECT case_ref FROM cases WHERE case_ref = $1 FOR UPDATE")
                .bind(case_ref)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
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

    /// Remember whose each number is, so that rule 7 can spot a suspect's number on another case.
    pub async fn record_phones(&self, conn: &mut AnyConnection, req: &OutreachRequest) -> Result<()> {
        for phone in &req.contact.phones {
            let Some(number) = contact::normalise_uk_mobile(&phone.number) else { continue };
            sqlx::query(
                "INSERT INTO case_phones (case_ref, number_key, is_victims) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&req.case_ref)
            .bind(self.address_key(&number))
            .bind(i64::from(phone.is_victims()))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
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
