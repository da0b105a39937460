//! The outbox of case events to POST to `SAFEREACH_EVENTS_URL` (see `events_out`). `Event::append`
//! writes a row here with each event, in the same transaction; deliverers claim the oldest row of
//! each case (so a case's events go out in order), and delete it once delivered.

use super::{EventRow, Result, Store, dynamic, json};

/// A claimed event, with what the receiver is told about it (never personal data).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboundEvent {
    pub attempts: i64,
    pub case_ref: String,
    #[sqlx(flatten)]
    pub event: EventRow,
    /// The event is about a test key's job or its message.
    #[sqlx(try_from = "i64")]
    pub test: super::Flag,
}

impl Store {
    /// Claim, for `lease_ms`, up to `limit` due events that are the oldest still to send of their
    /// case. While one is claimed or waiting for a retry, the later events of its case wait too;
    /// a dead-lettered one no longer holds them up.
    pub async fn claim_due_events(&self, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<OutboundEvent>> {
        let skip_locked = match self.dialect {
            super::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Dialect::Sqlite => "",
        };
        let claim = format!(
            "UPDATE event_outbox SET claimed_until = $1
             WHERE claimed_until <= $2 AND event_id IN (
                 SELECT o.event_id FROM event_outbox o
                 WHERE o.dead_at IS NULL AND o.next_at <= $2 AND o.claimed_until <= $2
                   AND NOT EXISTS (SELECT 1 FROM event_outbox p
                                   WHERE p.case_ref = o.case_ref AND p.dead_at IS NULL AND p.event_id < o.event_id)
                 ORDER BY o.event_id LIMIT $3{skip_locked})
             RETURNING event_id"
        );
        let mut tx = self.begin().await?;
        let ids: Vec<i64> =
            sqlx::query_scalar(dynamic(claim)).bind(now + lease_ms).bind(now).bind(limit).fetch_all(&mut *tx).await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let read = format!(
            "SELECT o.attempts, e.case_ref, e.id, e.at, e.type, e.actor, e.outreach_id, e.message_id, e.outcome,
                    e.reason, e.channel, e.status, e.classification, e.detail,
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM outreach t WHERE t.id = e.outreach_id AND t.test = 1)
                                OR EXISTS (SELECT 1 FROM messages t WHERE t.id = e.message_id AND t.test = 1)
                         THEN 1 ELSE 0 END AS BIGINT) AS test
             FROM event_outbox o JOIN events e ON e.id = o.event_id
             WHERE {} ORDER BY o.event_id",
            self.dialect.in_json("o.event_id", 1, "bigint")
        );
        let events = sqlx::query_as(dynamic(read)).bind(json(&ids)).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(events)
    }

    /// The receiver took the event.
    pub async fn event_delivered(&self, event_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM event_outbox WHERE event_id = $1").bind(event_id).execute(&self.pool).await?;
        Ok(())
    }

    /// A try failed: try again at `retry_at`, or dead-letter the event when that is `None`.
    /// `error` is a status code or a transport failure, never a body.
    pub async fn event_failed(&self, event_id: i64, retry_at: Option<i64>, error: &str, now: i64) -> Result<()> {
        let query = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE event_outbox SET attempts = attempts + 1, claimed_until = 0, last_error = $2, next_at = $3
                 WHERE event_id = $1",
            )
            .bind(event_id)
            .bind(error)
            .bind(at),
            None => sqlx::query(
                "UPDATE event_outbox SET attempts = attempts + 1, claimed_until = 0, last_error = $2, dead_at = $3
                 WHERE event_id = $1",
            )
            .bind(event_id)
            .bind(error)
            .bind(now),
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// Forget events older than `before` that nobody sent (a process without `SAFEREACH_EVENTS_URL`
    /// keeps the outbox from growing; one that has it sends them long before this).
    pub async fn prune_event_outbox(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM event_outbox WHERE next_at < $1 AND dead_at IS NULL")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
