//! Read-only figures for the reports and the metrics gauges. Every query reads columns that hold
//! no personal data (events, codes, times, the case's referral details), so the figures are the
//! same before and after retention or erasure. A test key's jobs, their messages and what
//! happened to them are left out of every figure (`not_test_job`, `not_test_message`).

use super::{Result, Store, dynamic};

/// Rows of `events` (the table or its alias) not about a test key's job.
fn not_test_job(events: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM outreach t WHERE t.id = {events}.outreach_id AND t.test = 1)")
}

/// The same for an event or reply naming a message.
fn not_test_message(rows: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM messages t WHERE t.id = {rows}.message_id AND t.test = 1)")
}

/// A job accepted in the period: its first decision, its final one, and what the reports group
/// it by.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct AcceptedRow {
    pub kind: String,
    /// The decision at acceptance (what the triage system was told).
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub referral_source: Option<String>,
    pub local_authority: Option<String>,
    pub categories: String,
    /// The job's last decision or cancellation before the period's end: a cancellation reads as
    /// `block`, `do_not_contact` (rule 1), which is what it is.
    pub final_outcome: Option<String>,
    pub final_reason: Option<String>,
}

/// A message handed over (or refused for good) in the period, with its latest status.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub message_id: String,
    pub channel: Option<String>,
    /// `sent`, or `failed` for a permanent refusal.
    pub status: Option<String>,
}

/// A case referred in the period, with the times the contact figures need.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRow {
    #[sqlx(try_from = "i64")]
    pub priority: super::Flag,
    pub referred_at: i64,
    pub first_pretext: Option<i64>,
    pub first_sent: Option<i64>,
    pub first_call: Option<i64>,
    pub calls: i64,
    pub answered: i64,
    pub declined: i64,
}

impl Store {
    /// `accepted` events in [from, to), joined to their job and case, each with the job's last
    /// decision (`accepted` or `decided`) or cancellation before `to`. A job's events stay on its
    /// case (erasure moves both), so the case's index finds them.
    pub async fn report_accepted(&self, from: i64, to: i64) -> Result<Vec<AcceptedRow>> {
        Ok(sqlx::query_as(
            "SELECT o.kind, e.outcome, e.reason, c.referral_source, c.local_authority, c.categories,
               CASE WHEN f.type = 'cancelled' THEN 'block' ELSE f.outcome END AS final_outcome,
               f.reason AS final_reason
             FROM events e JOIN outreach o ON o.id = e.outreach_id JOIN cases c ON c.case_ref = o.case_ref
             JOIN events f ON f.id = (
               SELECT MAX(l.id) FROM events l
               WHERE l.case_ref = e.case_ref AND l.outreach_id = e.outreach_id
                 AND l.type IN ('accepted', 'decided', 'cancelled') AND l.at < $2)
             WHERE e.type = 'accepted' AND e.at >= $1 AND e.at < $2 AND o.test = 0",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (outcome, reason) of each decision taken again (worker or staff) in [from, to).
    pub async fn report_redecisions(&self, from: i64, to: i64) -> Result<Vec<(Option<String>, Option<String>)>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT outcome, reason FROM events WHERE type = 'decided' AND at >= $1 AND at < $2 AND {}",
            not_test_job("events")
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Messages handed to a provider, or refused by it for good, in [from, to).
    pub async fn report_messages(&self, from: i64, to: i64) -> Result<Vec<MessageRow>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT message_id, channel, status FROM events
             WHERE ((type = 'sent') OR (type = 'send_failed' AND status = 'failed'))
               AND message_id IS NOT NULL AND at >= $1 AND at < $2 AND {}",
            not_test_message("events")
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Provider status reports that moved a message sent in [from, to), oldest first (whenever
    /// they arrived): the last one per message is its status now.
    pub async fn report_message_statuses(&self, from: i64, to: i64) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT s.message_id, s.status FROM events s
             JOIN events e ON e.message_id = s.message_id AND e.type = 'sent' AND e.at >= $1 AND e.at < $2
             WHERE s.type = 'status' AND s.status IS NOT NULL AND {}
             ORDER BY s.id",
            not_test_message("s")
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (classification, matched to a case) of each reply received in [from, to).
    pub async fn report_replies(&self, from: i64, to: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT classification, CAST(CASE WHEN case_ref IS NULL THEN 0 ELSE 1 END AS BIGINT) FROM replies
             WHERE received_at >= $1 AND received_at < $2 AND {}",
            not_test_message("replies")
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (type, reason) of suppression events (`suppressed`, `suppression_lifted`) in [from, to).
    pub async fn report_suppressions(&self, from: i64, to: i64) -> Result<Vec<(String, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT type, reason FROM events
             WHERE type IN ('suppressed', 'suppression_lifted') AND at >= $1 AND at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The outcome of each call attempt made in [from, to).
    pub async fn report_calls(&self, from: i64, to: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT outcome FROM calls WHERE at >= $1 AND at < $2")
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Cases referred in [from, to) (referral time, else when the case was created), each with
    /// its first pre-text sent, first message sent and first call, whenever they happened.
    pub async fn report_cases(&self, from: i64, to: i64) -> Result<Vec<CaseRow>> {
        Ok(sqlx::query_as(
            "SELECT c.priority, COALESCE(c.referred_at, c.created_at) AS referred_at,
               (SELECT MIN(e.at) FROM events e JOIN outreach o ON o.id = e.outreach_id
                 WHERE e.case_ref = c.case_ref AND e.type = 'sent' AND o.kind = 'priority_pretext' AND o.test = 0) AS first_pretext,
               (SELECT MIN(e.at) FROM events e JOIN outreach o ON o.id = e.outreach_id
                 WHERE e.case_ref = c.case_ref AND e.type = 'sent' AND o.test = 0) AS first_sent,
               (SELECT MIN(k.at) FROM calls k WHERE k.case_ref = c.case_ref) AS first_call,
               (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref) AS calls,
               (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref AND k.outcome = 'answered') AS answered,
               (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref AND k.outcome = 'declined') AS declined
             FROM cases c
             WHERE COALESCE(c.referred_at, c.created_at) >= $1 AND COALESCE(c.referred_at, c.created_at) < $2
               AND EXISTS (SELECT 1 FROM outreach o WHERE o.case_ref = c.case_ref AND o.test = 0)",

        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Outreach jobs by status, now (metrics).
    pub async fn outreach_status_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT status, COUNT(*) FROM outreach WHERE test = 0 GROUP BY status")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Messages by channel and status, now (metrics).
    pub async fn message_status_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as("SELECT channel, status, COUNT(*) FROM messages WHERE test = 0 GROUP BY channel, status")
            .fetch_all(&self.pool)
            .await?)
    }
}
