//! The staff review queue: what the gateway held back, open alerts and replies from unknown
//! numbers, and the rows staff actions write (notes, acknowledgements). The actions themselves
//! are `service::review`.

use sqlx::AnyConnection;

use super::events::EventRow;
use super::{Result, Store, dynamic, new_id};
use crate::domain::JobStatus;

#[derive(sqlx::FromRow)]
struct AlertRow {
    case_ref: String,
    #[sqlx(flatten)]
    event: EventRow,
}

/// A staff note: the reason given for an action.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffNote {
    pub id: String,
    pub at: i64,
    pub actor: String,
    /// None once redacted.
    pub note: Option<String>,
}

/// An alert with what staff need to judge it.
#[derive(Debug, Clone)]
pub struct OpenAlert {
    pub case_ref: String,
    pub event: EventRow,
    /// The reply that raised it, when there is one.
    pub reply_id: Option<String>,
    pub reply_body: Option<String>,
    pub urgency: String,
}

/// One thing waiting for a person.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub item: WaitingItem,
    /// What it waits for: a hold reason, `dead_lettered`, or an alert's reason.
    pub code: String,
    /// When the job last changed, or when the alert was raised.
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitingItem {
    Job(String),
    /// The alert's event id.
    Alert(i64),
    /// A reply from a number we had not texted (on no case); its code is its classification.
    UnmatchedReply(String),
}

/// A reply from a number we had not texted, as staff review it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnmatchedReply {
    pub id: String,
    pub received_at: i64,
    pub classification: String,
    /// None once redacted.
    pub body: Option<String>,
}

/// Why a job waits for review: its hold reason (a policy reason or `render_failed`), or
/// `dead_lettered`.
pub fn review_code(status: JobStatus, reason: Option<&str>) -> String {
    if status == JobStatus::DeadLettered {
        return status.to_string();
    }
    reason.unwrap_or(JobStatus::Held.as_str()).to_string()
}

impl Store {
    /// The case of an alert event, inside a transaction.
    pub async fn alert_case(&self, conn: &mut AnyConnection, event_id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT case_ref FROM events WHERE id = $1 AND type = 'alert'")
            .bind(event_id)
            .fetch_optional(&mut *conn)
            .await?)
    }

    /// Record that staff acknowledged an alert. False when it was acknowledged already.
    pub async fn insert_alert_acknowledgement(
        &self,
        conn: &mut AnyConnection,
        event_id: i64,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO alert_acknowledgements (event_id, actor, at) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(actor)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Mark a reply that matched no case reviewed, with who and why. False when it is not such a
    /// reply waiting for review.
    pub async fn set_unmatched_reply_reviewed(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE replies SET reviewed_at = $2, reviewed_by = $3, review_note = $4
             WHERE id = $1 AND case_ref IS NULL AND reviewed_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(actor)
        .bind(note)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Everything that waits for a person, in brief: enough to rank and count it all without
    /// loading it, so that the queue can put the most urgent first however long it grows.
    pub async fn waiting_for_review(&self) -> Result<Vec<Waiting>> {
        let review = JobStatus::sql_list(&[JobStatus::Held, JobStatus::DeadLettered]);
        let jobs: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(dynamic(format!(
            "SELECT id, status, reason, updated_at FROM outreach WHERE status IN ({review})"
        )))
        .fetch_all(&self.pool)
        .await?;
        let alerts: Vec<(i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, reason, at FROM events e WHERE type = 'alert'
               AND NOT EXISTS (SELECT 1 FROM alert_acknowledgements a WHERE a.event_id = e.id)",
        )
        .fetch_all(&self.pool)
        .await?;
        let replies: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, classification, received_at FROM replies WHERE case_ref IS NULL AND reviewed_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let jobs = jobs.into_iter().map(|(id, status, reason, at)| Waiting {
            code: review_code(JobStatus::parse(&status).unwrap_or(JobStatus::Held), reason.as_deref()),
            item: WaitingItem::Job(id),
            at,
        });
        let alerts = alerts.into_iter().map(|(id, reason, at)| Waiting {
            code: reason.unwrap_or_default(),
            item: WaitingItem::Alert(id),
            at,
        });
        let replies = replies.into_iter().map(|(id, classification, at)| Waiting {
            code: classification,
            item: WaitingItem::UnmatchedReply(id),
            at,
        });
        Ok(jobs.chain(alerts).chain(replies).collect())
    }

    /// One alert event (acknowledged or not), with its reply.
    pub async fn alert(&self, event_id: i64) -> Result<Option<OpenAlert>> {
        let event: Option<AlertRow> = sqlx::query_as(
            "SELECT case_ref, id, at, type, actor, outreach_id, message_id, outcome, reason, channel, status, classification, detail
             FROM events WHERE id = $1 AND type = 'alert'",
        )
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        match event {
            Some(event) => Ok(Some(self.alert_with_reply(event).await?)),
            None => Ok(None),
        }
    }

    async fn alert_with_reply(&self, AlertRow { case_ref, event }: AlertRow) -> Result<OpenAlert> {
        let detail: serde_json::Value =
            event.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
        let reply_id = detail["reply_id"].as_str().map(str::to_string);
        let urgency = detail["urgency"].as_str().unwrap_or("normal").to_string();
        let reply_body = match &reply_id {
            Some(id) => sqlx::query_scalar::<_, Option<String>>("SELECT body FROM replies WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
            None => None,
        };
        Ok(OpenAlert { case_ref, event, reply_id, reply_body, urgency })
    }

    /// A reply that matched no case, reviewed or not.
    pub async fn unmatched_reply(&self, id: &str) -> Result<Option<UnmatchedReply>> {
        Ok(sqlx::query_as(
            "SELECT id, received_at, classification, body FROM replies WHERE id = $1 AND case_ref IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn is_acknowledged(&self, event_id: i64) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT event_id FROM alert_acknowledgements WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// The notes staff wrote on a case, oldest first.
    pub async fn case_notes(&self, case_ref: &str) -> Result<Vec<StaffNote>> {
        Ok(sqlx::query_as("SELECT id, at, actor, note FROM staff_notes WHERE case_ref = $1 ORDER BY at, id")
            .bind(case_ref)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn add_note(
        &self,
        conn: &mut AnyConnection,
        case_ref: &str,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<String> {
        let id = new_id("note");
        sqlx::query("INSERT INTO staff_notes (id, case_ref, at, actor, note) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(case_ref)
            .bind(now)
            .bind(actor)
            .bind(note)
            .execute(conn)
            .await?;
        Ok(id)
    }

    /// The keyed hash of the number a reply came from.
    pub async fn reply_from_key(&self, reply_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT from_key FROM replies WHERE id = $1")
            .bind(reply_id)
            .fetch_optional(&self.pool)
            .await?)
    }
}
