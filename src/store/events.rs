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

    /// Append to the timeline. The database adds its row to the outbox of case events to send
    /// (`event_outbox`, by trigger) in the same statement, so that no event is lost between the
    /// two. Returns the event's id.
    pub async fn append(&self, conn: &mut AnyConnection) -> Result<i64> {
        let sql = format!("{} RETURNING id", super::Dialect::of(conn).with_rows(&insert_sql(), 1, &event_columns()));
        Ok(sqlx::query_scalar(super::dynamic(sql)).bind(super::json(&[self.row()])).fetch_one(&mut *conn).await?)
    }

    /// `append` for many events: one statement however many there are.
    pub async fn append_all(conn: &mut AnyConnection, events: &[Event]) -> Result<()> {
        let mut writes = super::Writes::new(super::Dialect::of(conn));
        Event::write_all(&mut writes, events);
        writes.run(conn).await
    }

    /// `append_all` as one of a transaction's `Writes`.
    pub fn write_all(writes: &mut super::Writes, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let rows: Vec<serde_json::Value> = events.iter().map(Event::row).collect();
        writes.push(&insert_sql(), &event_columns(), super::json(&rows));
    }

    /// The event as a row of `insert_sql`.
    fn row(&self) -> serde_json::Value {
        serde_json::json!([
            self.case_ref,
            self.at,
            self.actor,
            self.kind.as_str(),
            self.outreach_id,
            self.message_id,
            self.outcome,
            self.reason,
            self.channel,
            self.status,
            self.classification,
            self.detail.as_ref().map(|d| d.to_string()),
        ])
    }
}

/// Insert the events of `$rows` (see `Event::row`).
fn insert_sql() -> String {
    format!("INSERT INTO events ({cols}) SELECT {cols} FROM $rows AS v", cols = COLUMNS.join(", "))
}

/// `COLUMNS` with their Postgres types.
fn event_columns() -> [(&'static str, &'static str); 12] {
    COLUMNS.map(|c| (c, if c == "at" { "bigint" } else { "text" }))
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
