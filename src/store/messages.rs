//! Messages: one per outreach job, claimed by one worker at a time, moved forward by providers.

use sqlx::AnyConnection;

use super::{Result, Store, Writes, dynamic, new_id};
use crate::domain::{JobStatus, MessageStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRecord {
    pub id: String,
    pub outreach_id: String,
    pub case_ref: String,
    pub channel: String,
    pub template: String,
    pub template_version: i64,
    pub status: String,
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
    pub to_address: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub html: Option<String>,
    pub encoding: Option<String>,
    pub segments: Option<i64>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub status_at: i64,
    pub final_at: Option<i64>,
    pub redacted_at: Option<i64>,
    /// The language of the template version it was rendered from.
    pub language: String,
    /// A test key's job: sent to the sandbox only, left out of reports.
    #[sqlx(try_from = "i64")]
    pub test: super::Flag,
}

pub(super) const MESSAGE_COLUMNS: &str = "id, outreach_id, case_ref, channel, template, template_version, status, provider, provider_ref, to_address, subject, body, html, encoding, segments, created_at, sent_at, status_at, final_at, redacted_at, language, test";

impl MessageRecord {
    pub fn status(&self) -> MessageStatus {
        MessageStatus::parse(&self.status).unwrap_or(MessageStatus::Queued)
    }
}

/// A rendered message about to be sent.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub outreach_id: String,
    pub case_ref: String,
    pub channel: &'static str,
    pub template: String,
    pub template_version: i64,
    pub language: String,
    pub test: bool,
    /// Normalised address, used for the keyed hash.
    pub to_normalised: String,
    /// The recipient as JSON.
    pub to_address: String,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
    pub encoding: Option<&'static str>,
    pub segments: Option<i64>,
}

/// The answer to a worker asking for the right to send a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours to send until the lease runs out.
    Claimed,
    /// Another worker is sending it; its lease runs until then (ms).
    Busy { until: i64 },
    /// A worker took it and its lease ran out without a result: it died mid-send, and whether the
    /// provider got the message is unknown. Sending again could send twice, so a person decides.
    InDoubt,
    /// Already handed over or failed: nothing to do.
    Done,
}

/// How a provider callback names its message.
#[derive(Debug, Clone, Copy)]
pub enum MessageKey<'a> {
    /// Our message id, which we gave the provider (Kannel's dlr-url, the print reference, the
    /// query of Twilio's status callback). Works even when the report overtakes our own record of
    /// the send, as Kannel's often do.
    Ours(&'a str),
    /// The provider's own reference, as recorded when it took the message.
    Provider(&'a str),
    /// Our message id as a bounce names it (the returned email's Message-ID): only an email
    /// message matches, so that no report about an email can move an SMS or a letter.
    Email(&'a str),
}

impl Store {
    /// The job's message, created on first call. A retried job keeps its message and id; while
    /// the message is still `queued` (no attempt can have reached a provider: each gave its claim
    /// back after a failure that sent nothing), it takes `new`'s channel, recipient, template
    /// version, language and text, so a retry sends the wording approved now. Any other message is left
    /// as it is (in flight, in doubt or handed over: the claim says which).
    pub async fn message_for(&self, conn: &mut AnyConnection, new: &NewMessage, now: i64) -> Result<MessageRecord> {
        if let Some(existing) = self.message_of_outreach(conn, &new.outreach_id).await? {
            if existing.status() == MessageStatus::Queued {
                sqlx::query(
                    "UPDATE messages SET channel = $2, template = $3, template_version = $4, to_key = $5, to_address = $6,
                       subject = $7, body = $8, html = $9, encoding = $10, segments = $11, status_at = $12, language = $13
                     WHERE id = $1 AND status = 'queued'",
                )
                .bind(&existing.id)
                .bind(new.channel)
                .bind(&new.template)
                .bind(new.template_version)
                .bind(self.address_key(&new.to_normalised))
                .bind(&new.to_address)
                .bind(&new.subject)
                .bind(&new.body)
                .bind(&new.html)
                .bind(new.encoding)
                .bind(new.segments)
                .bind(now)
                .bind(&new.language)
                .execute(&mut *conn)
                .await?;
                return Ok(self.message_of_outreach(conn, &new.outreach_id).await?.expect("just updated"));
            }
            return Ok(existing);
        }
        sqlx::query(
            "INSERT INTO messages (id, outreach_id, case_ref, channel, template, template_version, status, to_key, to_address, subject, body, html, encoding, segments, created_at, status_at, language, test)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16)",
        )
        .bind(new_id("msg"))
        .bind(&new.outreach_id)
        .bind(&new.case_ref)
        .bind(new.channel)
        .bind(&new.template)
        .bind(new.template_version)
        .bind(self.address_key(&new.to_normalised))
        .bind(&new.to_address)
        .bind(&new.subject)
        .bind(&new.body)
        .bind(&new.html)
        .bind(new.encoding)
        .bind(new.segments)
        .bind(now)
        .bind(&new.language)
        .bind(i64::from(new.test))
        .execute(&mut *conn)
        .await?;
        Ok(self.message_of_outreach(conn, &new.outreach_id).await?.expect("just inserted"))
    }

    pub async fn message_of_outreach(
        &self,
        conn: &mut AnyConnection,
        outreach_id: &str,
    ) -> Result<Option<MessageRecord>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE outreach_id = $1")))
            .bind(outreach_id)
            .fetch_optional(conn)
            .await?)
    }

    pub async fn message(&self, id: &str) -> Result<Option<MessageRecord>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The messages of one job (at most one today), oldest first.
    pub async fn outreach_messages(&self, outreach_id: &str) -> Result<Vec<MessageRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE outreach_id = $1 ORDER BY created_at, id"
        )))
        .bind(outreach_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn case_messages(&self, case_ref: &str) -> Result<Vec<MessageRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE case_ref = $1 ORDER BY created_at, id"
        )))
        .bind(case_ref)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Take the right to send a message: only one worker holds it, for `lease_ms`, and only while
    /// its job is still to be sent. The job's row is locked first, as a cancel locks it, so a
    /// cancel and a claim never both win.
    pub async fn claim_message(&self, id: &str, now: i64, lease_ms: i64) -> Result<Claim> {
        let mut tx = self.begin().await?;
        let claim = self.claim_in(&mut tx, id, now, lease_ms).await?;
        tx.commit().await?;
        Ok(claim)
    }

    /// `claim_message` inside a transaction (the worker's decide-and-claim).
    pub async fn claim_in(&self, tx: &mut AnyConnection, id: &str, now: i64, lease_ms: i64) -> Result<Claim> {
        let job: Option<String> = sqlx::query_scalar("SELECT outreach_id FROM messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(job) = job else { return Ok(Claim::Done) };
        let job_status: String =
            sqlx::query_scalar(dynamic(format!("SELECT status FROM outreach WHERE id = $1{}", self.for_update())))
                .bind(&job)
                .fetch_one(&mut *tx)
                .await?;
        let claimed = if job_status == JobStatus::Queued.as_str() {
            sqlx::query(
                "UPDATE messages SET status = 'sending', claimed_until = $2, status_at = $3 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(now + lease_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        } else {
            false
        };
        let (status, until): (String, Option<i64>) =
            sqlx::query_as("SELECT status, claimed_until FROM messages WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        Ok(match (claimed, status.as_str(), until) {
            (true, _, _) => Claim::Claimed,
            (false, "sending", Some(until)) if until >= now => Claim::Busy { until },
            (false, "sending", _) => Claim::InDoubt,
            _ => Claim::Done,
        })
    }

    /// Give a claim back after a transient failure: nothing was handed over.
    pub async fn release_message(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE messages SET status = 'queued', claimed_until = NULL, status_at = $2 WHERE id = $1 AND status = 'sending'")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// A send whose answer never came: the provider may have the message. It stays `sending`
    /// (in doubt, as a send cut off mid-way), no longer held by this worker, with the provider
    /// that may have it, until staff requeue or cancel its job. A report that came in meanwhile
    /// has already moved it on: that status stays.
    pub async fn leave_in_doubt(&self, conn: &mut AnyConnection, id: &str, provider: &str) -> Result<()> {
        sqlx::query("UPDATE messages SET claimed_until = NULL, provider = $2 WHERE id = $1 AND status = 'sending'")
            .bind(id)
            .bind(provider)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The provider took the message. A delivery report that came in before this (Kannel's can)
    /// has already moved it further: that status stays.
    pub async fn mark_sent(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        provider: &str,
        provider_ref: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET status = CASE WHEN status IN ('queued', 'sending') THEN 'sent' ELSE status END,
                    status_at = CASE WHEN status IN ('queued', 'sending') THEN $4 ELSE status_at END,
                    provider = $2, provider_ref = $3, sent_at = $4, claimed_until = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(provider)
        .bind(provider_ref)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The provider refused the message for good.
    pub async fn mark_failed(&self, conn: &mut AnyConnection, id: &str, provider: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET status = 'failed', provider = $2, status_at = $3, final_at = $3, claimed_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(provider)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The latest message sent to an address (by keyed hash): where a reply from it belongs.
    pub async fn latest_message_to(&self, normalised: &str) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, case_ref FROM messages WHERE to_key = $1 AND sent_at IS NOT NULL ORDER BY sent_at DESC, id DESC LIMIT 1",
        )
        .bind(self.address_key(normalised))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A worker holds the job's message and is handing it to a provider now (its lease runs).
    pub async fn message_in_flight(&self, conn: &mut AnyConnection, outreach_id: &str, now: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE outreach_id = $1 AND status = 'sending' AND claimed_until >= $2",
        )
        .bind(outreach_id)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        Ok(n > 0)
    }

    /// The messages a batch of provider reports names, locked in id order: by our id (`ids`), or
    /// by a provider's reference (`refs`: provider and reference). Two statements at most,
    /// whatever the batch's size.
    pub async fn reported_messages_for_update(
        &self,
        conn: &mut AnyConnection,
        ids: &[&str],
        refs: &[(&str, &str)],
    ) -> Result<Vec<ReportedMessage>> {
        const COLUMNS: &str = "id, case_ref, status, channel, provider, provider_ref";
        let lock = self.for_update();
        let mut found: Vec<ReportedMessage> = Vec::new();
        if !ids.is_empty() {
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE {} ORDER BY id{lock}",
                self.dialect.in_json("id", 1, "text")
            );
            found = sqlx::query_as(dynamic(sql)).bind(super::json(ids)).fetch_all(&mut *conn).await?;
        }
        if !refs.is_empty() {
            let pairs = self.dialect.json_rows(1, &[("provider", "text"), ("provider_ref", "text")]);
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE (provider, provider_ref) IN (SELECT provider, provider_ref FROM {pairs} AS r)
                 ORDER BY id{lock}"
            );
            let pairs: Vec<[&str; 2]> = refs.iter().map(|(p, r)| [*p, *r]).collect();
            let more: Vec<ReportedMessage> =
                sqlx::query_as(dynamic(sql)).bind(super::json(&pairs)).fetch_all(&mut *conn).await?;
            // A message named both ways is read once.
            let known: std::collections::HashSet<String> = found.iter().map(|m| m.id.clone()).collect();
            found.extend(more.into_iter().filter(|m| !known.contains(&m.id)));
        }
        Ok(found)
    }

    /// Move messages to new statuses (one statement): each `(id, status, at, final_at)` sets its
    /// status and status time, and its `final_at` when given.
    pub fn set_message_statuses(&self, writes: &mut Writes, moves: &[(&str, MessageStatus, i64, Option<i64>)]) {
        if moves.is_empty() {
            return;
        }
        let moves: Vec<serde_json::Value> = moves
            .iter()
            .map(|(id, status, at, final_at)| serde_json::json!([id, status.as_str(), at, final_at]))
            .collect();
        writes.push(
            "UPDATE messages SET status = v.status, status_at = v.at, final_at = COALESCE(v.final_at, messages.final_at)
             FROM $rows AS v WHERE messages.id = v.id",
            &[("id", "text"), ("status", "text"), ("at", "bigint"), ("final_at", "bigint")],
            super::json(&moves),
        );
    }
}

/// A message as a provider's report finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportedMessage {
    pub id: String,
    pub case_ref: String,
    pub status: String,
    pub channel: String,
    /// The provider that took it (none yet while it is being handed over; empty when it was
    /// refused for good before any provider took it).
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
}
