//! The append-only case timeline.

use sqlx::AnyConnection;

use super::{Result, Store};
use crate::domain::event::EventType;
use crate::domain::{Decision, MessageStatus};

/// An event to append, in the transaction of what it records: built by the application layer
/// (`service`) only. Never carries personal data: `detail` holds codes, ids and counts.
#[derive(Debug, Clone)]
pub struct Event {
    pub case_ref: String,
    pub at: i64,
    pub actor: String,
    pub kind: EventType,
    pub outreach_id: Option<String>,
    pub message_id: Option<String>,
    pub outcome: Option<&'static str>,
    pub reason: Option<String>,
    pub channel: Option<&'static str>,
    pub status: Option<&'static str>,
    pub classification: Option<&'static str>,
    pub detail: Option<serde_json::Value>,
}

impl Event {
    pub fn new(case_ref: &str, at: i64, actor: &str, kind: EventType) -> Event {
        Event {
            case_ref: case_ref.to_string(),
            at,
            actor: actor.to_string(),
            kind,
            outreach_id: None,
            message_id: None,
            outcome: None,
            reason: None,
            channel: None,
            status: None,
            classification: None,
            detail: None,
        }
    }

    pub fn outreach(mut self, id: &str) -> Event {
        self.outreach_id = Some(id.to_string());
        self
    }

    pub fn message(mut self, id: &str) -> Event {
        self.message_id = Some(id.to_string());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Event {
        self.reason = Some(reason.into());
        self
    }

    pub fn status(mut self, status: MessageStatus) -> Event {
        self.status = Some(status.as_str());
        self
    }

    pub fn channel(mut self, channel: &'static str) -> Event {
        self.channel = Some(channel);
        self
    }

    pub fn classification(mut self, classification: &'static str) -> Event {
        self.classification = Some(classification);
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Event {
        self.detail = Some(detail);
        self
    }

    /// Outcome, reason, channel, template and time of a decision.
    pub fn decision(mut self, decision: &Decision) -> Event {
        self.outcome = Some(decision.outcome().as_str());
        self.reason = decision.reason().map(|r| r.as_str().to_string());
        if let Some(route) = decision.route() {
            self.channel = Some(route.channel.as_str());
            let mut detail = serde_json::json!({ "template": route.template });
            if let Some(until) = decision.not_before() {
                detail["not_before"] = crate::time::rfc3339(until).into();
            }
            self.detail = Some(detail);
        }
        self
    }

    /// Append to the timeline, and to the outbox of case events to send (`event_outbox`) in the
    /// same transaction, so that no event is lost between the two. Returns the event's id.
    pub async fn append(&self, conn: &mut AnyConnection) -> Result<i64> {
        let ids = Event::append_all(conn, std::slice::from_ref(self)).await?;
        ids.first().copied().ok_or_else(|| super::StoreError::Corrupt("no event id returned".into()))
    }

    /// `append` for many events: two statements however many there are, each of one text
    /// whatever their number (the rows go as one JSON parameter). Returns their ids (in no
    /// particular order).
    pub async fn append_all(conn: &mut AnyConnection, events: &[Event]) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let dialect = super::Dialect::of(conn);
        let rows = dialect.json_rows(1, &COLUMNS.map(|c| (c, if c == "at" { "bigint" } else { "text" })));
        let sql = format!(
            "INSERT INTO events ({cols}) SELECT {cols} FROM {rows} AS v RETURNING id, case_ref, at",
            cols = COLUMNS.join(", ")
        );
        let rows: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.case_ref,
                    e.at,
                    e.actor,
                    e.kind.as_str(),
                    e.outreach_id,
                    e.message_id,
                    e.outcome,
                    e.reason,
                    e.channel,
                    e.status,
                    e.classification,
                    e.detail.as_ref().map(|d| d.to_string()),
                ])
            })
            .collect();
        let appended: Vec<(i64, String, i64)> =
            sqlx::query_as(super::dynamic(sql)).bind(super::json(&rows)).fetch_all(&mut *conn).await?;
        let outbox = dialect.json_rows(1, &[("event_id", "bigint"), ("case_ref", "text"), ("next_at", "bigint")]);
        let sql = format!(
            "INSERT INTO event_outbox (event_id, case_ref, next_at) SELECT event_id, case_ref, next_at FROM {outbox} AS v"
        );
        sqlx::query(super::dynamic(sql)).bind(super::json(&appended)).execute(&mut *conn).await?;
        Ok(appended.into_iter().map(|(id, _, _)| id).collect())
    }
}

/// The columns `append_all` writes, in the order of its rows.
const COLUMNS: [&str; 12] = [
    "case_ref",
    "at",
    "actor",
    "type",
    "outreach_id",
    "message_id",
    "outcome",
    "reason",
    "channel",
    "status",
    "classification",
    "detail",
];

/// An event as read back for a timeline.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub actor: String,
    pub outreach_id: Option<String>,
    pub message_id: Option<String>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub classification: Option<String>,
    pub detail: Option<String>,
}

impl Store {
    /// A case's timeline, oldest first.
    pub async fn case_events(&self, case_ref: &str) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, at, type, actor, outreach_id, message_id, outcome, reason, channel, status, classification, detail
             FROM events WHERE case_ref = $1 ORDER BY id",
        )
        .bind(case_ref)
        .fetch_all(&self.pool)
        .await?)
    }
}
