//! Outreach jobs: their rows, the decision each carries, and its status.

use std::collections::HashMap;

use sqlx::AnyConnection;

use super::{Result, Store, StoreError, Writes, dynamic};
use crate::domain::{Decision, JobStatus, OutreachRequest};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutreachRecord {
    pub id: String,
    pub request_id: String,
    pub case_ref: String,
    pub kind: String,
    #[sqlx(try_from = "i64")]
    pub priority: super::Flag,
    pub request_json: Option<String>,
    pub accepted_at: i64,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub outcome: String,
    pub reason: Option<String>,
    pub channel: Option<String>,
    pub template: Option<String>,
    pub not_before: Option<i64>,
    pub attempts: i64,
    pub updated_at: i64,
    /// Set once retention or erasure removed the request's personal data: the job is finished.
    pub redacted_at: Option<i64>,
    /// Accepted with a test key: sent only to the sandbox, left out of reports.
    #[sqlx(try_from = "i64")]
    pub test: super::Flag,
}

/// The columns `insert_outreach` writes, in the order of its rows, with their Postgres types.
const NEW_OUTREACH_COLUMNS: [(&str, &str); 19] = [
    ("id", "text"),
    ("request_id", "text"),
    ("case_ref", "text"),
    ("kind", "text"),
    ("priority", "bigint"),
    ("request_json", "text"),
    ("accepted_at", "bigint"),
    ("status", "text"),
    ("outcome", "text"),
    ("reason", "text"),
    ("channel", "text"),
    ("template", "text"),
    ("not_before", "bigint"),
    ("attempts", "bigint"),
    ("updated_at", "bigint"),
    ("redacted_at", "bigint"),
    ("test", "bigint"),
    ("request_hash", "text"),
    ("response_json", "text"),
];

pub(super) const OUTREACH_COLUMNS: &str = "id, request_id, case_ref, kind, priority, request_json, accepted_at, status, outcome, reason, channel, template, not_before, attempts, updated_at, redacted_at, test";

impl OutreachRecord {
    /// This job as the history sees it (`Histories::of`).
    pub fn as_this(&self) -> super::ThisJob<'_> {
        super::ThisJob { id: &self.id, accepted_at: self.accepted_at, status: self.status, test: self.test.0 }
    }

    /// The request as accepted. A redacted job has none left: it can never be decided again.
    pub fn request(&self) -> Result<OutreachRequest> {
        if self.redacted_at.is_some() {
            return Err(StoreError::Redacted);
        }
        let json = self.request_json.as_deref().ok_or(StoreError::Redacted)?;
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("outreach request: {e}")))
    }
}

/// A job to insert, as decided on acceptance.
pub struct NewOutreach<'a> {
    pub id: &'a str,
    pub request: &'a OutreachRequest,
    /// The keyed fingerprint of the request (`Store::request_fingerprint`).
    pub request_hash: &'a str,
    pub priority: bool,
    pub now: i64,
    pub decision: &'a Decision,
    /// The answer given, kept to give again to a repeat of the request.
    pub answer: &'a serde_json::Value,
    pub test: bool,
}

impl Store {
    /// The fingerprint and stored answer of the job accepted for each of `request_ids` that was.
    pub async fn accepted_requests(
        &self,
        conn: &mut AnyConnection,
        request_ids: &[String],
    ) -> Result<HashMap<String, (String, String)>> {
        if request_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT request_id, request_hash, response_json FROM outreach WHERE {}",
            self.dialect.in_json("request_id", 1, "text")
        );
        let rows: Vec<(String, String, String)> =
            sqlx::query_as(dynamic(sql)).bind(super::json(request_ids)).fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(|(id, hash, answer)| (id, (hash, answer))).collect())
    }

    /// Insert newly accepted jobs with their first decisions (one statement).
    pub fn insert_outreach(&self, writes: &mut Writes, jobs: &[NewOutreach<'_>]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let columns = NEW_OUTREACH_COLUMNS.map(|(c, _)| c).join(", ");
        let sql = format!("INSERT INTO outreach ({columns}) SELECT {columns} FROM $rows AS v");
        let mut rows = Vec::with_capacity(jobs.len());
        for new in jobs {
            let (req, decision) = (new.request, new.decision);
            let request_json = serde_json::to_string(req).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            rows.push(serde_json::json!([
                new.id,
                req.request_id,
                req.case_ref,
                req.kind.as_str(),
                i64::from(new.priority),
                request_json,
                new.now,
                JobStatus::for_outcome(decision.outcome()).as_str(),
                decision.outcome().as_str(),
                decision.reason().map(|r| r.as_str()),
                decision.route().map(|r| r.channel.as_str()),
                decision.route().map(|r| r.template),
                decision.not_before().map(|t| t.timestamp_millis()),
                // attempts, updated_at, redacted_at
                0_i64,
                new.now,
                None::<i64>,
                i64::from(new.test),
                new.request_hash,
                new.answer.to_string(),
            ]));
        }
        writes.push(&sql, &NEW_OUTREACH_COLUMNS, super::json(&rows));
        Ok(())
    }

    pub async fn outreach(&self, id: &str) -> Result<Option<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {OUTREACH_COLUMNS} FROM outreach WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Lock and read a job inside a transaction.
    pub async fn outreach_for_update(&self, conn: &mut AnyConnection, id: &str) -> Result<Option<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE id = $1{}",
            self.for_update()
        )))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
    }

    pub async fn case_outreach(&self, case_ref: &str) -> Result<Vec<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE case_ref = $1 ORDER BY accepted_at, id"
        )))
        .bind(case_ref)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every job of a case, locked, oldest first.
    pub async fn case_outreach_for_update(
        &self,
        conn: &mut AnyConnection,
        case_ref: &str,
    ) -> Result<Vec<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE case_ref = $1 ORDER BY accepted_at, id{}",
            self.for_update()
        )))
        .bind(case_ref)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// The jobs of a case that may still lead to a send or wait for a person (queued, deferred,
    /// held), locked, oldest first. A redacted job is finished and never among them.
    pub async fn pending_jobs_for_update(
        &self,
        conn: &mut AnyConnection,
        case_ref: &str,
    ) -> Result<Vec<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE case_ref = $1 AND status IN ('queued', 'deferred', 'held')
               AND redacted_at IS NULL ORDER BY accepted_at, id{}",
            self.for_update()
        )))
        .bind(case_ref)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Record a new decision on a job's row: its status follows the outcome.
    pub async fn set_decision(&self, conn: &mut AnyConnection, id: &str, decision: &Decision, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outreach SET status = $2, outcome = $3, reason = $4, channel = $5, template = $6, not_before = $7, updated_at = $8
             WHERE id = $1",
        )
        .bind(id)
        .bind(JobStatus::for_outcome(decision.outcome()).as_str())
        .bind(decision.outcome().as_str())
        .bind(decision.reason().map(|r| r.as_str()))
        .bind(decision.route().map(|r| r.channel.as_str()))
        .bind(decision.route().map(|r| r.template))
        .bind(decision.not_before().map(|t| t.timestamp_millis()))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Hold a job for a reason the policy does not give (`render_failed`).
    pub async fn set_held(&self, conn: &mut AnyConnection, id: &str, reason: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outreach SET status = 'held', outcome = 'hold', reason = $2, channel = NULL, template = NULL, not_before = NULL,
               updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(reason)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Rule 1's decision replaces the one before: the job reads `cancelled`, `block`,
    /// `do_not_contact`.
    pub async fn set_cancelled(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outreach SET status = 'cancelled', outcome = 'block', reason = 'do_not_contact',
             channel = NULL, template = NULL, not_before = NULL, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Set a job's status (sent, failed, dead_lettered, …) without a new decision.
    pub async fn set_outreach_status(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        status: JobStatus,
        now: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE outreach SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(status.as_str())
            .bind(now)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn count_attempt(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE outreach SET attempts = attempts + 1, updated_at = $2 WHERE id = $1 RETURNING attempts",
        )
        .bind(id)
        .bind(now)
        .fetch_one(conn)
        .await?)
    }
}
