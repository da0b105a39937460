//! Dead letters: jobs the worker gave up on (transient failures past `max_attempts`, or a send
//! interrupted or unanswered so that nobody knows whether the provider got it). They wait for staff, who look
//! and requeue them (through the outbox, like any other work) or cancel them (`service::dead_letters`).

use sqlx::AnyConnection;

use super::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetter {
    pub outreach_id: String,
    pub case_ref: String,
    pub kind: String,
    pub channel: Option<String>,
    pub attempts: i64,
    /// When it was dead-lettered (ms).
    pub at: i64,
    /// Why: `retries_exhausted`, `send_interrupted` or `send_in_doubt`.
    pub reason: Option<String>,
}

impl Store {
    /// Put a job waiting for a person back to work, to be decided again: queued with its
    /// attempts reset, its message ready to send again if a send was in doubt (whoever asked has
    /// checked with the provider that it did not arrive; one the provider has reported on is past
    /// `sending`, and the worker records its job as sent), and a row in the outbox.
    pub async fn back_to_work(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE outreach SET status = 'queued', attempts = 0, updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE messages SET status = 'queued', claimed_until = NULL, status_at = $2 WHERE outreach_id = $1 AND status = 'sending'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        self.enqueue(conn, id, now).await
    }

    /// How many jobs are dead-lettered now (for metrics and the API).
    pub async fn dead_letter_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outreach WHERE status = 'dead_lettered'")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Dead-lettered jobs, oldest first, at most `limit`.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        Ok(sqlx::query_as(
            "SELECT o.id AS outreach_id, o.case_ref, o.kind, o.channel, o.attempts, o.updated_at AS at,
                    (SELECT e.reason FROM events e
                     WHERE e.case_ref = o.case_ref AND e.outreach_id = o.id AND e.type = 'dead_lettered'
                     ORDER BY e.id DESC LIMIT 1) AS reason
             FROM outreach o WHERE o.status = 'dead_lettered' ORDER BY o.updated_at, o.id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
