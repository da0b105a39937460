//! Dead letters: jobs the worker gave up on (transient failures past `max_attempts`, or a send
//! interrupted or unanswered so that nobody knows whether the provider got it). They wait for staff, who look
//! and requeue them (through the outbox, like any other work) or cancel them.

use sqlx::AnyConnection;

use super::events::Event;
use super::{OutreachRecord, Result, Store};
use crate::domain::JobStatus;
use crate::domain::event::EventType;

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

/// What asking to requeue a job came to.
#[derive(Debug)]
pub enum Requeue {
    Requeued(Box<OutreachRecord>),
    /// No such job.
    NotFound,
    /// The job is not dead-lettered (its status).
    NotDeadLettered(JobStatus),
}

impl Store {
    /// Put a job waiting for a person back to work, to be decided again: queued with its
    /// attempts reset, its message ready to send again if a send was in doubt (whoever asked has
    /// checked with the provider that it did not arrive; one the provider has reported on is past
    /// `sending`, and the worker records its job as sent), and a row in the outbox.
    pub(super) async fn back_to_work(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<()> {
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

    /// Put a dead-lettered job back to work: queued with its attempts reset, its message (if a
    /// send was interrupted) ready to send again, an event naming who asked, and a row in the
    /// outbox, all in one commit.
    pub async fn requeue_dead_letter(&self, id: &str, now: i64, actor: &str) -> Result<Requeue> {
        let mut tx = self.begin().await?;
        let Some(job) = self.outreach_for_update(&mut tx, id).await? else { return Ok(Requeue::NotFound) };
        if job.status != JobStatus::DeadLettered {
            return Ok(Requeue::NotDeadLettered(job.status));
        }
        self.back_to_work(&mut tx, id, now).await?;
        Event::new(&job.case_ref, now, actor, EventType::Requeued).outreach(id).append(&mut tx).await?;
        tx.commit().await?;
        Ok(match self.outreach(id).await? {
            Some(job) => Requeue::Requeued(Box::new(job)),
            None => Requeue::NotFound,
        })
    }
}
