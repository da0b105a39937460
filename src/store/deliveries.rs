//! The worker's reads and writes for a batch of jobs (`service::deliver`): one statement for the
//! lot wherever one row each would cost a statement (a round trip, or a hop to SQLite's thread)
//! each. Called inside the batch's transaction.

use std::collections::{BTreeMap, HashMap};

use sqlx::AnyConnection;

use super::messages::MESSAGE_COLUMNS;
use super::outreach::OUTREACH_COLUMNS;
use super::rows::{ROWS_PER_STATEMENT, bind_all, value_rows};
use super::templates::VERSION_COLUMNS;
use super::{Claim, MessageRecord, NewMessage, OutreachRecord, Result, Store, TemplateVersion, dynamic, placeholders};
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
            "SELECT DISTINCT case_ref FROM outreach WHERE id IN ({}) ORDER BY case_ref",
            placeholders(1, ids.len())
        );
        Ok(bind_all(sqlx::query_scalar(dynamic(sql)), ids).fetch_all(&mut *conn).await?)
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
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE id IN ({}) ORDER BY id{}",
            placeholders(1, ids.len()),
            self.for_update()
        );
        let jobs: Vec<OutreachRecord> = bind_all(sqlx::query_as(dynamic(sql)), ids).fetch_all(&mut *conn).await?;
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
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE outreach_id IN ({}) ORDER BY created_at DESC, id DESC",
            placeholders(1, ids.len())
        );
        let messages: Vec<MessageRecord> = bind_all(sqlx::query_as(dynamic(sql)), ids).fetch_all(&mut *conn).await?;
        // Newest first, so the oldest is inserted last and stays.
        Ok(messages.into_iter().map(|m| (m.outreach_id.clone(), m)).collect())
    }

    /// Every approved template version (a few dozen rows): the worker picks each job's from them.
    pub async fn approved_versions(&self, conn: &mut AnyConnection) -> Result<Vec<TemplateVersion>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {VERSION_COLUMNS} FROM template_versions WHERE state = 'approved'")))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// `set_decision` for many jobs: one `UPDATE` per distinct decision (a batch of sends to the
    /// same channel and template is one statement).
    pub async fn set_decisions(&self, conn: &mut AnyConnection, decided: &[(&str, &Decision)], now: i64) -> Result<()> {
        type Key =
            (&'static str, &'static str, Option<&'static str>, Option<&'static str>, Option<String>, Option<i64>);
        let mut groups: BTreeMap<Key, Vec<String>> = BTreeMap::new();
        for (id, decision) in decided {
            let key = (
                JobStatus::for_outcome(decision.outcome()).as_str(),
                decision.outcome().as_str(),
                decision.reason().map(|r| r.as_str()),
                decision.route().map(|r| r.channel.as_str()),
                decision.route().map(|r| r.template.to_string()),
                decision.not_before().map(|t| t.timestamp_millis()),
            );
            groups.entry(key).or_default().push(id.to_string());
        }
        for ((status, outcome, reason, channel, template, not_before), ids) in &groups {
            let sql = format!(
                "UPDATE outreach SET status = $1, outcome = $2, reason = $3, channel = $4, template = $5, not_before = $6,
                   updated_at = $7 WHERE id IN ({})",
                placeholders(8, ids.len())
            );
            let query = sqlx::query(dynamic(sql))
                .bind(*status)
                .bind(*outcome)
                .bind(*reason)
                .bind(*channel)
                .bind(template.as_deref())
                .bind(*not_before)
                .bind(now);
            bind_all(query, ids).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Insert new messages (`queued`) in one statement.
    pub async fn insert_messages(&self, conn: &mut AnyConnection, rows: &[NewMessageRow<'_>], now: i64) -> Result<()> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO messages (id, outreach_id, case_ref, channel, template, template_version, status, to_key, to_address,
                   subject, body, html, encoding, segments, created_at, status_at, language, test)
                 VALUES {}",
                value_rows(1, chunk.len(), 18)
            );
            let mut query = sqlx::query(dynamic(sql));
            for NewMessageRow { id, new } in chunk {
                query = query
                    .bind(*id)
                    .bind(&new.outreach_id)
                    .bind(&new.case_ref)
                    .bind(new.channel)
                    .bind(&new.template)
                    .bind(new.template_version)
                    .bind("queued")
                    .bind(self.address_key(&new.to_normalised))
                    .bind(&new.to_address)
                    .bind(&new.subject)
                    .bind(&new.body)
                    .bind(&new.html)
                    .bind(new.encoding)
                    .bind(new.segments)
                    .bind(now)
                    .bind(now)
                    .bind(&new.language)
                    .bind(i64::from(new.test));
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
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
             WHERE status = 'queued' AND id IN ({})
               AND EXISTS (SELECT 1 FROM outreach o WHERE o.id = messages.outreach_id AND o.status = 'queued')
             RETURNING id",
            placeholders(3, ids.len())
        );
        let query = sqlx::query_scalar::<_, String>(dynamic(sql)).bind(now + lease_ms).bind(now);
        let claimed: Vec<String> = bind_all(query, ids).fetch_all(&mut *conn).await?;
        let mut claims: HashMap<String, Claim> = claimed.into_iter().map(|id| (id, Claim::Claimed)).collect();
        let rest: Vec<String> = ids.iter().filter(|id| !claims.contains_key(*id)).cloned().collect();
        if !rest.is_empty() {
            let sql =
                format!("SELECT id, status, claimed_until FROM messages WHERE id IN ({})", placeholders(1, rest.len()));
            let found: Vec<(String, String, Option<i64>)> =
                bind_all(sqlx::query_as(dynamic(sql)), &rest).fetch_all(&mut *conn).await?;
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

    /// `mark_sent` for many messages (id, provider, provider's reference), in one statement.
    pub async fn mark_sent_all(&self, conn: &mut AnyConnection, sent: &[(&str, &str, &str)], now: i64) -> Result<()> {
        for chunk in sent.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE messages SET
                   status = CASE WHEN messages.status IN ('queued', 'sending') THEN 'sent' ELSE messages.status END,
                   status_at = CASE WHEN messages.status IN ('queued', 'sending') THEN $1 ELSE messages.status_at END,
                   provider = v.column2, provider_ref = v.column3, sent_at = $1, claimed_until = NULL
                 FROM (VALUES {}) AS v WHERE messages.id = v.column1",
                value_rows(2, chunk.len(), 3)
            );
            let mut query = sqlx::query(dynamic(sql)).bind(now);
            for (id, provider, reference) in chunk {
                query = query.bind(*id).bind(*provider).bind(*reference);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// `set_outreach_status` for many jobs: one `UPDATE` per status.
    pub async fn set_outreach_statuses(
        &self,
        conn: &mut AnyConnection,
        jobs: &[(&str, JobStatus)],
        now: i64,
    ) -> Result<()> {
        let mut groups: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (id, status) in jobs {
            groups.entry(status.as_str()).or_default().push(id.to_string());
        }
        for (status, ids) in &groups {
            let sql = format!(
                "UPDATE outreach SET status = $1, updated_at = $2 WHERE id IN ({})",
                placeholders(3, ids.len())
            );
            bind_all(sqlx::query(dynamic(sql)).bind(*status).bind(now), ids).execute(&mut *conn).await?;
        }
        Ok(())
    }
}
