//! Urgent items and the notifications of staff on call (rows; the use cases are
//! `crate::service::oncall`).
//! A notification is a row of its own, worked on through the job outbox like an outreach job:
//! its outbox row carries the notification's id (`oncall_…`), and an urgent item's own row (its
//! id, `urgent_…`, at its escalation time) asks for the next step of the escalation.

use sqlx::AnyConnection;

use super::{Result, Store, dynamic, new_id};
use crate::domain::oncall::NotificationStatus;

/// Id prefixes of the outbox rows this module owns.
pub const ITEM_PREFIX: &str = "urgent_";
pub const NOTIFICATION_PREFIX: &str = "oncall_";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UrgentItem {
    pub id: String,
    pub case_ref: Option<String>,
    pub reply_id: String,
    pub alert_event_id: Option<i64>,
    pub classification: String,
    pub raised_at: i64,
    pub next_step: i64,
    pub escalate_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
}

const ITEM_COLUMNS: &str = "id, case_ref, reply_id, alert_event_id, classification, raised_at, next_step, escalate_at, acknowledged_at, acknowledged_by";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OncallNotification {
    pub id: String,
    pub item_id: String,
    pub step: i64,
    pub channel: String,
    pub contact_index: i64,
    /// Staff's number or address: never logged.
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub claimed_until: Option<i64>,
    pub provider: Option<String>,
    pub created_at: i64,
    pub status_at: i64,
    pub sent_at: Option<i64>,
}

const NOTIFICATION_COLUMNS: &str = "id, item_id, step, channel, contact_index, recipient, status, attempts, claimed_until, provider, created_at, status_at, sent_at";

impl OncallNotification {
    pub fn status(&self) -> NotificationStatus {
        NotificationStatus::parse(&self.status).unwrap_or(NotificationStatus::Queued)
    }
}

/// What an urgent item was raised by: the reply, and its alert when the reply is on a case.
#[derive(Debug, Clone)]
pub struct NewUrgentItem<'a> {
    pub case_ref: Option<&'a str>,
    pub reply_id: &'a str,
    pub alert_event_id: Option<i64>,
    pub classification: &'a str,
}

/// What staff acknowledged on the review page.
#[derive(Debug, Clone, Copy)]
pub enum Acknowledged<'a> {
    /// An alert on a case (its event id).
    Alert(i64),
    /// A reply from a number on no case.
    UnmatchedReply(&'a str),
}

impl Acknowledged<'_> {
    fn column(self) -> &'static str {
        match self {
            Acknowledged::Alert(_) => "alert_event_id",
            Acknowledged::UnmatchedReply(_) => "reply_id",
        }
    }
}

/// An urgent item as the staffed-hours report reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UrgentTiming {
    pub raised_at: i64,
    pub acknowledged_at: Option<i64>,
    pub case_ref: Option<String>,
    pub classification: String,
}

impl Store {
    /// Record an urgent item; notifying is the caller's next step (`crate::service::oncall`).
    pub async fn insert_urgent_item(
        &self,
        conn: &mut AnyConnection,
        item: &NewUrgentItem<'_>,
        now: i64,
    ) -> Result<String> {
        let id = new_id(ITEM_PREFIX.trim_end_matches('_'));
        sqlx::query(
            "INSERT INTO urgent_items (id, case_ref, reply_id, alert_event_id, classification, raised_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(item.case_ref)
        .bind(item.reply_id)
        .bind(item.alert_event_id)
        .bind(item.classification)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(id)
    }

    /// The item, locked until the transaction ends (Postgres; SQLite has one writer).
    pub async fn urgent_item_for_update(&self, conn: &mut AnyConnection, id: &str) -> Result<Option<UrgentItem>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {ITEM_COLUMNS} FROM urgent_items WHERE id = $1{}",
            self.for_update()
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?)
    }

    /// The urgent item a reply raised, if it was one.
    pub async fn urgent_item_of_reply(&self, reply_id: &str) -> Result<Option<UrgentItem>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {ITEM_COLUMNS} FROM urgent_items WHERE reply_id = $1")))
            .bind(reply_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The escalation's next step and when it is due (None: nothing more to do).
    pub async fn set_escalation(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        next_step: i64,
        at: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE urgent_items SET next_step = $2, escalate_at = $3 WHERE id = $1")
            .bind(id)
            .bind(next_step)
            .bind(at)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Bring the item's next step forward to `now` (a notification ended without reaching its
    /// contact) unless it was acknowledged or has moved on past `step` already.
    pub async fn escalate_now(&self, conn: &mut AnyConnection, id: &str, step: i64, now: i64) -> Result<bool> {
        let moved = sqlx::query(
            "UPDATE urgent_items SET escalate_at = $3
             WHERE id = $1 AND next_step = $2 + 1 AND acknowledged_at IS NULL AND escalate_at > $3",
        )
        .bind(id)
        .bind(step)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if moved == 1 {
            self.enqueue(conn, id, now).await?;
        }
        Ok(moved == 1)
    }

    pub async fn insert_oncall_notification(
        &self,
        conn: &mut AnyConnection,
        item_id: &str,
        step: i64,
        (channel, contact_index, recipient): (&str, i64, &str),
        now: i64,
    ) -> Result<String> {
        let id = new_id(NOTIFICATION_PREFIX.trim_end_matches('_'));
        sqlx::query(
            "INSERT INTO oncall_notifications (id, item_id, step, channel, contact_index, recipient, status, created_at, status_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)",
        )
        .bind(&id)
        .bind(item_id)
        .bind(step)
        .bind(channel)
        .bind(contact_index)
        .bind(recipient)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(id)
    }

    pub async fn oncall_notification_for_update(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Option<OncallNotification>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM oncall_notifications WHERE id = $1{}",
            self.for_update()
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?)
    }

    /// The urgent item a notification belongs to (no lock: lock the item first, then the notification).
    pub async fn oncall_notification_item(&self, conn: &mut AnyConnection, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT item_id FROM oncall_notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?)
    }

    /// The notifications of an urgent item, in the order they were made.
    pub async fn oncall_notifications(&self, item_id: &str) -> Result<Vec<OncallNotification>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM oncall_notifications WHERE item_id = $1 ORDER BY step, created_at, id"
        )))
        .bind(item_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether another notification of the same step was sent or may still be (then the step
    /// reached, or may reach, someone, and the escalation keeps its time).
    pub async fn step_may_reach_someone(&self, conn: &mut AnyConnection, n: &OncallNotification) -> Result<bool> {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM oncall_notifications
             WHERE item_id = $1 AND step = $2 AND id <> $3 AND status IN ('queued', 'sending', 'sent')",
        )
        .bind(&n.item_id)
        .bind(n.step)
        .bind(&n.id)
        .fetch_one(conn)
        .await?;
        Ok(others > 0)
    }

    /// Take the right to send: ours until `until`.
    pub async fn claim_oncall_notification(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        until: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE oncall_notifications SET status = 'sending', claimed_until = $2, status_at = $3 WHERE id = $1 AND status = 'queued'",
        )
        .bind(id)
        .bind(until)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Move a notification to `status` (a transient failure gives it back as `queued`, counted).
    pub async fn set_oncall_status(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        status: NotificationStatus,
        provider: Option<(&str, &str)>,
        now: i64,
    ) -> Result<()> {
        let attempt = i64::from(status == NotificationStatus::Queued);
        let sent_at = (status == NotificationStatus::Sent).then_some(now);
        sqlx::query(
            "UPDATE oncall_notifications SET status = $2, claimed_until = NULL, status_at = $3,
               attempts = attempts + $4, provider = COALESCE($5, provider), provider_ref = COALESCE($6, provider_ref),
               sent_at = COALESCE($7, sent_at)
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .bind(attempt)
        .bind(provider.map(|(p, _)| p))
        .bind(provider.map(|(_, r)| r))
        .bind(sent_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Mark the urgent item of what staff acknowledged on the review page (an alert or a reply) as
    /// acknowledged, so that it escalates no further; None when it was none, or was already.
    pub async fn set_urgent_acknowledged(
        &self,
        conn: &mut AnyConnection,
        what: Acknowledged<'_>,
        actor: &str,
        now: i64,
    ) -> Result<Option<UrgentItem>> {
        let column = what.column();
        let sql = dynamic(format!(
            "UPDATE urgent_items SET acknowledged_at = $2, acknowledged_by = $3, escalate_at = NULL
             WHERE {column} = $1 AND acknowledged_at IS NULL RETURNING {ITEM_COLUMNS}"
        ));
        let query = sqlx::query_as::<_, UrgentItem>(sql);
        let query = match what {
            Acknowledged::Alert(id) => query.bind(id),
            Acknowledged::UnmatchedReply(id) => query.bind(id),
        };
        Ok(query.bind(now).bind(actor).fetch_optional(conn).await?)
    }

    /// The item's notifications not yet handed over need not go now: `stopped`.
    pub async fn stop_queued_notifications(&self, conn: &mut AnyConnection, item_id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE oncall_notifications SET status = 'stopped', status_at = $2 WHERE item_id = $1 AND status = 'queued'",
        )
        .bind(item_id)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Urgent items not yet acknowledged, and when the oldest was raised.
    pub async fn urgent_open(&self) -> Result<(i64, Option<i64>)> {
        Ok(sqlx::query_as("SELECT COUNT(*), MIN(raised_at) FROM urgent_items WHERE acknowledged_at IS NULL")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Urgent items raised in `[from, to)`, oldest first.
    pub async fn urgent_items_between(&self, from: i64, to: i64) -> Result<Vec<UrgentTiming>> {
        Ok(sqlx::query_as(
            "SELECT raised_at, acknowledged_at, case_ref, classification FROM urgent_items
             WHERE raised_at >= $1 AND raised_at < $2 ORDER BY raised_at, id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Put back on the outbox on-call work the queue lost (a flushed Redis): notifications still
    /// `queued` since before `stale_before`, and escalations due before it, with no outbox row.
    pub async fn requeue_stale_oncall(&self, now: i64, stale_before: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let notifications = sqlx::query(
            "INSERT INTO job_outbox (outreach_id, run_at)
             SELECT n.id, $1 FROM oncall_notifications n
             WHERE n.status = 'queued' AND n.status_at < $2
               AND NOT EXISTS (SELECT 1 FROM job_outbox j WHERE j.outreach_id = n.id)",
        )
        .bind(now)
        .bind(stale_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let items = sqlx::query(
            "INSERT INTO job_outbox (outreach_id, run_at)
             SELECT u.id, $1 FROM urgent_items u
             WHERE u.acknowledged_at IS NULL AND u.escalate_at < $2
               AND NOT EXISTS (SELECT 1 FROM job_outbox j WHERE j.outreach_id = u.id)",
        )
        .bind(now)
        .bind(stale_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(notifications + items)
    }
}
