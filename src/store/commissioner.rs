//! Figures of the report as the commissioner reads it (the 2015 report's lines): cases contacted
//! within 24 hours of referral, and why victims declined. Read-only; a test key's jobs count for
//! nothing (see `reports.rs`).

use super::{Result, Store};

/// 24 hours in milliseconds.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// A declined call of the period: the reason as recorded (None when none was given or it was
/// removed), and whether it was removed (retention or erasure).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct DeclinedRow {
    pub reason: Option<String>,
    pub redacted_at: Option<i64>,
}

impl Store {
    /// Cases referred in [from, to) (referral time, else when the case was created) that were
    /// contacted within 24 hours of referral: a call answered by then, or a pre-text reported
    /// delivered by then.
    pub async fn report_contacted_within_24h(&self, from: i64, to: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM cases c
             WHERE COALESCE(c.referred_at, c.created_at) >= $1 AND COALESCE(c.referred_at, c.created_at) < $2
               AND EXISTS (SELECT 1 FROM outreach o WHERE o.case_ref = c.case_ref AND o.test = 0)
               AND (EXISTS (SELECT 1 FROM calls k WHERE k.case_ref = c.case_ref AND k.outcome = 'answered'
                              AND k.at <= COALESCE(c.referred_at, c.created_at) + $3)
                    OR EXISTS (SELECT 1 FROM events s JOIN messages m ON m.id = s.message_id
                                 JOIN outreach o ON o.id = m.outreach_id
                               WHERE s.case_ref = c.case_ref AND s.type = 'status' AND s.status = 'delivered'
                                 AND o.kind = 'priority_pretext' AND m.test = 0
                                 AND s.at <= COALESCE(c.referred_at, c.created_at) + $3))",
        )
        .bind(from)
        .bind(to)
        .bind(DAY_MS)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Calls with outcome `declined` made in [from, to), oldest first.
    pub async fn report_declined_calls(&self, from: i64, to: i64) -> Result<Vec<DeclinedRow>> {
        Ok(sqlx::query_as(
            "SELECT reason, redacted_at FROM calls WHERE outcome = 'declined' AND at >= $1 AND at < $2 ORDER BY at, id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }
}
