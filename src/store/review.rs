//! The staff review queue: what the gateway held back, open alerts, and the actions staff take on
//! them. Every action records who did it and the reason they gave (a staff note) on the timeline.

use serde_json::json;
use sqlx::AnyConnection;

use super::events::{Event, EventRow};
use super::replies::SuppressionKind;
use super::{OutreachRecord, Result, Store, StoreError, new_id};
use crate::domain::event::EventType;

/// Job statuses that wait for a person.
const REVIEW_STATUSES: [&str; 2] = ["held", "dead_lettered"];

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
pub fn review_code(status: &str, reason: Option<&str>) -> String {
    if status == "dead_lettered" {
        return "dead_lettered".into();
    }
    reason.unwrap_or("held").to_string()
}

impl Store {
    /// Everything that waits for a person, in brief: enough to rank and count it all without
    /// loading it, so that the queue can put the most urgent first however long it grows.
    pub async fn waiting_for_review(&self) -> Result<Vec<Waiting>> {
        let jobs: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, status, reason, updated_at FROM outreach WHERE status IN ('held', 'dead_lettered')",
        )
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
            code: review_code(&status, reason.as_deref()),
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

    /// Staff have dealt with a reply that matched no case: it leaves the review queue, with who
    /// did it and the reason they gave.
    pub async fn acknowledge_unmatched_reply(&self, id: &str, actor: &str, note: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE replies SET reviewed_at = $2, reviewed_by = $3, review_note = $4
             WHERE id = $1 AND case_ref IS NULL AND reviewed_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(actor)
        .bind(note)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            self.acknowledge_urgent(&mut tx, super::Acknowledged::UnmatchedReply(id), actor, now).await?;
        }
        tx.commit().await?;
        match (updated, self.unmatched_reply(id).await?) {
            (1, _) => Ok(()),
            (_, Some(_)) => Err(StoreError::Conflict("this reply was acknowledged already".into())),
            (_, None) => Err(StoreError::NotFound),
        }
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

    async fn add_note(
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

    /// Lock a job that waits for review, or say why not.
    async fn job_under_review(&self, conn: &mut AnyConnection, id: &str) -> Result<OutreachRecord> {
        let job = self.outreach_for_update(conn, id).await?.ok_or(StoreError::NotFound)?;
        if REVIEW_STATUSES.contains(&job.status.as_str()) {
            Ok(job)
        } else {
            Err(StoreError::Conflict(format!("this job is {} now, not waiting for review", job.status)))
        }
    }

    /// Release a held or dead-lettered job: it goes back to `queued` with a fresh count of
    /// attempts and onto the outbox, so the worker decides again with the policy, exactly as for
    /// any job, and sends only if the rules now allow it.
    pub async fn release_outreach(&self, id: &str, actor: &str, note: &str, now: i64) -> Result<OutreachRecord> {
        let mut tx = self.begin().await?;
        let job = self.job_under_review(&mut tx, id).await?;
        let note_id = self.add_note(&mut tx, &job.case_ref, actor, note, now).await?;
        self.back_to_work(&mut tx, &job.id, now).await?;
        Event::new(&job.case_ref, now, actor, EventType::Released)
            .outreach(&job.id)
            .reason("staff_release")
            .detail(json!({ "note_id": note_id, "was": job.status }))
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(job)
    }

    /// Cancel a job waiting for review.
    pub async fn cancel_for_review(&self, id: &str, actor: &str, note: &str, now: i64) -> Result<OutreachRecord> {
        let mut tx = self.begin().await?;
        let job = self.job_under_review(&mut tx, id).await?;
        if self.cancel_job(&mut tx, &job, now, actor).await? != super::Cancel::Cancelled {
            return Err(StoreError::Conflict("its message is being handed to a provider right now".into()));
        }
        let note_id = self.add_note(&mut tx, &job.case_ref, actor, note, now).await?;
        Event::new(&job.case_ref, now, actor, EventType::StaffAction)
            .outreach(&job.id)
            .reason("cancel")
            .detail(json!({ "note_id": note_id }))
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(job)
    }

    /// Suppress a number as unsafe on staff's word. `key` is its keyed hash (`address_key`).
    /// `about` says what the staff member was looking at (an outreach or an alert id).
    pub async fn mark_unsafe(
        &self,
        case_ref: &str,
        key: &str,
        about: serde_json::Value,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let note_id = self.add_note(&mut tx, case_ref, actor, note, now).await?;
        self.suppress_key(&mut tx, key, SuppressionKind::Unsafe, Some(case_ref), now).await?;
        Event::new(case_ref, now, actor, EventType::Suppressed).reason("unsafe").append(&mut tx).await?;
        let mut detail = json!({ "note_id": note_id });
        if let (Some(d), serde_json::Value::Object(about)) = (detail.as_object_mut(), about) {
            d.extend(about);
        }
        Event::new(case_ref, now, actor, EventType::StaffAction)
            .reason("mark_unsafe")
            .detail(detail)
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The keyed hash of the number a reply came from.
    pub async fn reply_from_key(&self, reply_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT from_key FROM replies WHERE id = $1")
            .bind(reply_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Acknowledge an alert: it leaves the queue; the note goes on the case's timeline.
    pub async fn acknowledge_alert(&self, event_id: i64, actor: &str, note: &str, now: i64) -> Result<String> {
        let mut tx = self.begin().await?;
        let case_ref: String = sqlx::query_scalar("SELECT case_ref FROM events WHERE id = $1 AND type = 'alert'")
            .bind(event_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let inserted = sqlx::query(
            "INSERT INTO alert_acknowledgements (event_id, actor, at) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict("this alert was acknowledged already".into()));
        }
        let note_id = self.add_note(&mut tx, &case_ref, actor, note, now).await?;
        self.acknowledge_urgent(&mut tx, super::Acknowledged::Alert(event_id), actor, now).await?;
        Event::new(&case_ref, now, actor, EventType::StaffAction)
            .reason("acknowledge")
            .detail(json!({ "note_id": note_id, "alert_event_id": event_id }))
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(case_ref)
    }
}
