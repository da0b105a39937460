//! The worker's reads and writes for a batch of jobs (`service::deliver`): one statement for the
//! lot wherever one row each would cost a statement (a round trip, or a hop to SQLite's thread)
//! each. Called inside the batch's transaction. Lists and rows are bound as one JSON parameter
//! (`Dialect::in_json`, `json_rows`), so each statement has one text whatever the batch's size.

use std::collections::HashMap;

use sqlx::AnyConnection;

use super::messages::MESSAGE_COLUMNS;
use super::outreach::OUTREACH_COLUMNS;
use super::templates::VERSION_COLUMNS;
use super::{Claim, MessageRecord, NewMessage, OutreachRecord, Result, Store, TemplateVersion, Writes, dynamic, json};
use crate::domain::{Decision, JobStatus};

/// A new message to insert (its id chosen by the caller).
pub struct NewMessageRow<'a> {
    pub id: &'a str,
    pub new: &'a NewMessage,
}

impl Store {
    /// The cases of these jobs, in case_ref order: to lock them (`lock_cases`) before the jobs.
    /// Postgres only (SQLite's single writer serialises): empty there.
    pub async fn cases_of_jobs(&self, conn: &mut AnyConnection, ids: &[String]) -> Result<Vec<String>> {
        if self.dialect != super::Dialect::Postgres || ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT DISTINCT case_ref FROM outreach WHERE {} ORDER BY case_ref",
            self.dialect.in_json("id", 1, "text")
        );
        Ok(sqlx::query_scalar(dynamic(sql)).bind(json(ids)).fetch_all(&mut *conn).await?)
    }

    /// These jobs, read and locked (in id order), by id.
    pub async fn outreach_many_for_update(
        &self,
        conn: &mut AnyConnection,
        ids: &[String],
    ) -> Result<HashMap<String, OutreachRecord>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE {} ORDER BY id{}",
            self.dialect.in_json("id", 1, "text"),
            self.for_update()
        );
        let jobs: Vec<OutreachRecord> = sqlx::query_as(dynamic(sql)).bind(json(ids)).fetch_all(&mut *conn).await?;
        Ok(jobs.into_iter().map(|j| (j.id.clone(), j)).collect())
    }

    /// The message of each of these jobs that has one, by job id (the oldest, as
    /// `message_of_outreach` finds it; there is at most one today).
    pub async fn messages_of_jobs(
        &self,
        conn: &mut AnyConnection,
        ids: &[String],
    ) -> Result<HashMap<String, MessageRecord>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {} ORDER BY created_at DESC, id DESC",
            self.dialect.in_json("outreach_id", 1, "text")
        );
        let messages: Vec<MessageRecord> = sqlx::query_as(dynamic(sql)).bind(json(ids)).fetch_all(&mut *conn).await?;
        // Newest first, so the oldest is inserted last and stays.
        Ok(messages.into_iter().map(|m| (m.outreach_id.clone(), m)).collect())
    }

    /// Every approved template version (a few dozen rows): the worker picks each job's from them.
    pub async fn approved_versions(&self, conn: &mut AnyConnection) -> Result<Vec<TemplateVersion>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {VERSION_COLUMNS} FROM template_versions WHERE state = 'approved'")))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// `set_decision` for many jobs, in one statement.
    pub fn set_decisions(&self, writes: &mut Writes, decided: &[(&str, &Decision)], now: i64) {
        if decided.is_empty() {
            return;
        }
        let rows: Vec<serde_json::Value> = decided
            .iter()
            .map(|(id, decision)| {
                serde_json::json!([
                    id,
                    JobStatus::for_outcome(decision.outcome()).as_str(),
                    decision.outcome().as_str(),
                    decision.reason().map(|r| r.as_str()),
                    decision.route().map(|r| r.channel.as_str()),
                    decision.route().map(|r| r.template),
                    decision.not_before().map(|t| t.timestamp_millis()),
                    now,
                ])
            })
            .collect();
        writes.push(
            "UPDATE outreach SET status = v.status, outcome = v.outcome, reason = v.reason, channel = v.channel,
               template = v.template, not_before = v.not_before, updated_at = v.updated_at
             FROM $rows AS v WHERE outreach.id = v.id",
            &[
                ("id", "text"),
                ("status", "text"),
                ("outcome", "text"),
                ("reason", "text"),
                ("channel", "text"),
                ("template", "text"),
                ("not_before", "bigint"),
                ("updated_at", "bigint"),
            ],
            json(&rows),
        );
    }

    /// Insert new messages (`queued`) in one statement.
    pub fn insert_messages(&self, writes: &mut Writes, rows: &[NewMessageRow<'_>], now: i64) {
        if rows.is_empty() {
            return;
        }
        const COLUMNS: [(&str, &str); 17] = [
            ("id", "text"),
            ("outreach_id", "text"),
            ("case_ref", "text"),
            ("channel", "text"),
            ("template", "text"),
            ("template_version", "bigint"),
            ("to_key", "text"),
            ("to_address", "text"),
            ("subject", "text"),
            ("body", "text"),
            ("html", "text"),
            ("encoding", "text"),
            ("segments", "bigint"),
            ("language", "text"),
            ("test", "bigint"),
            ("created_at", "bigint"),
            ("status_at", "bigint"),
        ];
        let names = COLUMNS.map(|(name, _)| name).join(", ");
        let sql = format!("INSERT INTO messages ({names}, status) SELECT {names}, 'queued' FROM $rows AS v");
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|NewMessageRow { id, new }| {
                serde_json::json!([
                    id,
                    new.outreach_id,
                    new.case_ref,
                    new.channel,
                    new.template,
                    new.template_version,
                    self.address_key(&new.to_normalised),
                    new.to_address,
                    new.subject,
                    new.body,
                    new.html,
                    new.encoding,
                    new.segments,
                    new.language,
                    i64::from(new.test),
                    now,
                    now,
                ])
            })
            .collect();
        writes.push(&sql, &COLUMNS, json(&rows));
    }

    /// `claim_in` for many messages at once: each is claimed only while it is `queued` and its
    /// job is still to be sent (`queued`); the caller holds the jobs' rows locked. The answer of
    /// each message, by id.
    pub async fn claim_messages(
        &self,
        conn: &mut AnyConnection,
        ids: &[String],
        now: i64,
        lease_ms: i64,
    ) -> Result<HashMap<String, Claim>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "UPDATE messages SET status = 'sending', claimed_until = $1, status_at = $2
             WHERE status = 'queued' AND {}
               AND EXISTS (SELECT 1 FROM outreach o WHERE o.id = messages.outreach_id AND o.status = 'queued')
             RETURNING id",
            self.dialect.in_json("id", 3, "text")
        );
        let query = sqlx::query_scalar::<_, String>(dynamic(sql)).bind(now + lease_ms).bind(now).bind(json(ids));
        let claimed: Vec<String> = query.fetch_all(&mut *conn).await?;
        let mut claims: HashMap<String, Claim> = claimed.into_iter().map(|id| (id, Claim::Claimed)).collect();
        let rest: Vec<String> = ids.iter().filter(|id| !claims.contains_key(*id)).cloned().collect();
        if !rest.is_empty() {
            let sql = format!(
                "SELECT id, status, claimed_until FROM messages WHERE {}",
                self.dialect.in_json("id", 1, "text")
            );
            let found: Vec<(String, String, Option<i64>)> =
                sqlx::query_as(dynamic(sql)).bind(json(&rest)).fetch_all(&mut *conn).await?;
            for (id, status, until) in found {
                let claim = match (status.as_str(), until) {
                    ("sending", Some(until)) if until >= now => Claim::Busy { until },
                    ("sending", _) => Claim::InDoubt,
                    _ => Claim::Done,
                };
                claims.insert(id, claim);
            }
        }
        Ok(claims)
    }

    /// Lock these messages in id order, the order a batch of provider reports locks them in
    /// (`reported_messages_for_update`). A report can come while its send is being recorded;
    /// had the record's writes taken the rows in another order, the two transactions could
    /// deadlock, and Postgres finds that only after `deadlock_timeout` (a second) and then fails
    /// one of them. Postgres only: SQLite's single writer serialises.
    pub async fn lock_messages(&self, conn: &mut AnyConnection, ids: &[&str]) -> Result<()> {
        if self.dialect != super::Dialect::Postgres || ids.is_empty() {
            return Ok(());
        }
        let sql =
            format!("SELECT id FROM messages WHERE {} ORDER BY id FOR UPDATE", self.dialect.in_json("id", 1, "text"));
        sqlx::query(dynamic(sql)).bind(json(ids)).execute(&mut *conn).await?;
        Ok(())
    }

    /// `mark_sent` for many messages (id, provider, provider's reference), in one statement.
    pub fn mark_sent_all(&self, writes: &mut Writes, sent: &[(&str, &str, &str)], now: i64) {
        if sent.is_empty() {
            return;
        }
        let sent: Vec<serde_json::Value> =
            sent.iter().map(|(id, provider, reference)| serde_json::json!([id, provider, reference, now])).collect();
        writes.push(
            "UPDATE messages SET
               status = CASE WHEN messages.status IN ('queued', 'sending') THEN 'sent' ELSE messages.status END,
               status_at = CASE WHEN messages.status IN ('queued', 'sending') THEN v.sent_at ELSE messages.status_at END,
               provider = v.provider, provider_ref = v.provider_ref, sent_at = v.sent_at, claimed_until = NULL
             FROM $rows AS v WHERE messages.id = v.id",
            &[("id", "text"), ("provider", "text"), ("provider_ref", "text"), ("sent_at", "bigint")],
            json(&sent),
        );
    }

    /// `set_outreach_status` for many jobs, in one statement.
    pub fn set_outreach_statuses(&self, writes: &mut Writes, jobs: &[(&str, JobStatus)], now: i64) {
        if jobs.is_empty() {
            return;
        }
        let jobs: Vec<serde_json::Value> =
            jobs.iter().map(|(id, status)| serde_json::json!([id, status.as_str(), now])).collect();
        writes.push(
            "UPDATE outreach SET status = v.status, updated_at = v.updated_at FROM $rows AS v WHERE outreach.id = v.id",
            &[("id", "text"), ("status", "text"), ("updated_at", "bigint")],
            json(&jobs),
        );
    }
}
