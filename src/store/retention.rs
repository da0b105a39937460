//! Removing personal data: what retention finds due, the redaction of one record, and the
//! erasure of a whole case. Every redaction leaves the columns the reports read (codes, times,
//! referral details, keyed hashes) and is recorded as a `redacted` event.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use super::{Result, Store, dynamic, json};
use crate::domain::JobStatus;

/// Job statuses that are an end: nothing more will happen to the job (`JobStatus::is_finished`).
fn finished_statuses() -> String {
    JobStatus::sql_list(&JobStatus::ALL.iter().copied().filter(|s| s.is_finished()).collect::<Vec<_>>())
}

/// A message whose last status is older than some cutoff, not yet redacted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueMessage {
    pub id: String,
    pub case_ref: String,
    pub outreach_id: String,
    pub status_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueReply {
    pub id: String,
    pub case_ref: Option<String>,
    pub received_at: i64,
    pub classification: String,
}

/// A finished job not yet redacted, and the state of its message if it has one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FinishedJob {
    pub id: String,
    pub case_ref: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub updated_at: i64,
    pub request_json: Option<String>,
    pub message_id: Option<String>,
    pub message_redacted_at: Option<i64>,
}

/// A staff note old enough for some retention.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueNote {
    pub id: String,
    pub case_ref: String,
    pub at: i64,
}

/// A call whose reason (free text) is old enough for some retention, with its outcome: the
/// reason a victim declined is kept longer, for the report.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueCallReason {
    pub id: String,
    pub case_ref: String,
    pub at: i64,
    pub outcome: String,
}

/// Where a page of candidates ended: (time, id) of its last row.
pub type Cursor = (i64, String);

/// Job statuses that wait for a person or a time: held, deferred, dead-lettered.
fn waiting_statuses() -> String {
    JobStatus::sql_list(&JobStatus::ALL.iter().copied().filter(|s| s.is_waiting()).collect::<Vec<_>>())
}

/// A job that has waited untouched long enough to be closed by retention.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaleJob {
    pub id: String,
    pub case_ref: String,
    pub updated_at: i64,
    pub request_json: Option<String>,
}

impl Store {
    /// Messages not yet redacted whose last status is before `before`, in (status_at, id) order
    /// after the cursor `after` (pages through them all, whichever retention each falls under).
    /// A message not handed over yet waits while its job may still send it; once the job has
    /// ended without it (blocked when decided again, or cancelled, a send in doubt too) it is due.
    pub async fn messages_due_for_redaction(&self, before: i64, after: &Cursor, limit: i64) -> Result<Vec<DueMessage>> {
        Ok(sqlx::query_as(
            "SELECT id, case_ref, outreach_id, status_at FROM messages m
             WHERE redacted_at IS NULL AND status_at < $1
               AND (status NOT IN ('queued', 'sending') OR EXISTS (
                     SELECT 1 FROM outreach o WHERE o.id = m.outreach_id AND o.status IN ('blocked', 'cancelled')))
               AND (status_at > $2 OR (status_at = $2 AND id > $3))
             ORDER BY status_at, id LIMIT $4",
        )
        .bind(before)
        .bind(after.0)
        .bind(&after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Staff notes not yet redacted, written before `before`, after the cursor.
    pub async fn notes_due_for_redaction(&self, before: i64, after: &Cursor, limit: i64) -> Result<Vec<DueNote>> {
        Ok(sqlx::query_as(
            "SELECT id, case_ref, at FROM staff_notes WHERE redacted_at IS NULL AND at < $1
               AND (at > $2 OR (at = $2 AND id > $3))
             ORDER BY at, id LIMIT $4",
        )
        .bind(before)
        .bind(after.0)
        .bind(&after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn redact_note(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE staff_notes SET note = NULL, redacted_at = $2 WHERE id = $1 AND redacted_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(conn)
                .await?
                .rows_affected();
        Ok(done == 1)
    }

    /// Calls whose reason (free text) is not yet redacted, recorded before `before`, after the
    /// cursor. (`at` of the answer is when the call was recorded.)
    pub async fn call_reasons_due_for_redaction(
        &self,
        before: i64,
        after: &Cursor,
        limit: i64,
    ) -> Result<Vec<DueCallReason>> {
        Ok(sqlx::query_as(
            "SELECT id, case_ref, recorded_at AS at, outcome FROM calls
             WHERE reason IS NOT NULL AND redacted_at IS NULL AND recorded_at < $1
               AND (recorded_at > $2 OR (recorded_at = $2 AND id > $3))
             ORDER BY recorded_at, id LIMIT $4",
        )
        .bind(before)
        .bind(after.0)
        .bind(&after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn redact_call_reason(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE calls SET reason = NULL, redacted_at = $2 WHERE id = $1 AND reason IS NOT NULL AND redacted_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    pub async fn replies_due_for_redaction(&self, before: i64, after: &Cursor, limit: i64) -> Result<Vec<DueReply>> {
        Ok(sqlx::query_as(
            "SELECT id, case_ref, received_at, classification FROM replies WHERE redacted_at IS NULL AND received_at < $1
               AND (received_at > $2 OR (received_at = $2 AND id > $3))
             ORDER BY received_at, id LIMIT $4",
        )
        .bind(before)
        .bind(after.0)
        .bind(&after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn jobs_due_for_redaction(&self, before: i64, after: &Cursor, limit: i64) -> Result<Vec<FinishedJob>> {
        let finished = finished_statuses();
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT o.id, o.case_ref, o.status, o.updated_at, o.request_json, m.id AS message_id,
                    m.redacted_at AS message_redacted_at
             FROM outreach o LEFT JOIN messages m ON m.outreach_id = o.id
             WHERE o.redacted_at IS NULL AND o.status IN ({finished}) AND o.updated_at < $1
               AND (o.updated_at > $2 OR (o.updated_at = $2 AND o.id > $3))
             ORDER BY o.updated_at, o.id LIMIT $4"
        )))
        .bind(before)
        .bind(after.0)
        .bind(&after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Jobs held, deferred or dead-lettered with no change since before `before` (and, when
    /// deferred, due before it too), after the cursor: nobody acted on them, and they keep a
    /// whole request.
    pub async fn stale_waiting_jobs(&self, before: i64, after: &Cursor, limit: i64) -> Result<Vec<StaleJob>> {
        let waiting = waiting_statuses();
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT id, case_ref, updated_at, request_json FROM outreach
             WHERE redacted_at IS NULL AND status IN ({waiting}) AND updated_at < $1
               AND (not_before IS NULL OR not_before < $1)
               AND (updated_at > $2 OR (updated_at = $2 AND id > $3))
             ORDER BY updated_at, id LIMIT $4"
        )))
        .bind(before)
        .bind(after.0)
        .bind(&after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Close a job that waited too long: `cancelled`, its last decision left as it is (the
    /// reports count it by that). False when it moved on.
    pub async fn expire_waiting_job(&self, conn: &mut AnyConnection, job: &StaleJob, now: i64) -> Result<bool> {
        let waiting = waiting_statuses();
        let n = sqlx::query(dynamic(format!(
            "UPDATE outreach SET status = 'cancelled', updated_at = $3
             WHERE id = $1 AND updated_at = $2 AND status IN ({waiting})"
        )))
        .bind(&job.id)
        .bind(job.updated_at)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Clear the call window a reply asked for once no reply asking for one is left unredacted.
    pub async fn clear_call_window_without_reply(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<()> {
        sqlx::query(
            "UPDATE cases SET call_window = NULL WHERE case_ref = $1 AND call_window IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.case_ref = $1
                                 AND r.classification = 'time_preference' AND r.redacted_at IS NULL)",
        )
        .bind(case_ref)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Forget failed-login counts nobody has added to since `before` (keyed hashes of typed
    /// usernames and client addresses).
    pub async fn forget_login_failures(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM login_throttle WHERE last_failed_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// When each of `case_refs` stopped being taken up: the first `declined` call, or the case's
    /// cancellation, whichever came first. Cases still being taken up are absent.
    pub async fn not_taken_up_since(&self, case_refs: &[&str]) -> Result<BTreeMap<String, i64>> {
        let listed = self.dialect.in_json("case_ref", 1, "text");
        let sql = format!(
            "SELECT case_ref, MIN(at) FROM calls WHERE outcome = 'declined' AND {listed} GROUP BY case_ref
             UNION ALL
             SELECT case_ref, cancelled_at FROM cases WHERE cancelled_at IS NOT NULL AND {listed}"
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(dynamic(sql)).bind(json(case_refs)).fetch_all(&self.pool).await?;
        let mut found = BTreeMap::new();
        for (case_ref, at) in rows {
            let entry = found.entry(case_ref).or_insert(at);
            *entry = (*entry).min(at);
        }
        Ok(found)
    }

    /// Remove a message's text and recipient. False when it was redacted already (or is being
    /// sent right now).
    pub async fn redact_message(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE messages SET to_address = NULL, subject = NULL, body = NULL, html = NULL, redacted_at = $2
             WHERE id = $1 AND redacted_at IS NULL AND NOT (status = 'sending' AND COALESCE(claimed_until, 0) >= $2)",
        )
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn redact_reply(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE replies SET from_number = NULL, body = NULL, review_note = NULL, redacted_at = $2
             WHERE id = $1 AND redacted_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Replace a finished job's request with `reduced` (what is not personal). From then on the
    /// job can never be decided again.
    /// Its fingerprint (`request_hash`) goes too: a repeat of its `request_id` is then a conflict.
    pub async fn redact_outreach(&self, conn: &mut AnyConnection, id: &str, reduced: &str, now: i64) -> Result<bool> {
        let finished = finished_statuses();
        let n = sqlx::query(dynamic(format!(
            "UPDATE outreach SET request_json = $2, request_hash = '', redacted_at = $3
             WHERE id = $1 AND redacted_at IS NULL AND status IN ({finished})"
        )))
        .bind(id)
        .bind(reduced)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Messages of a case a worker is handing to a provider right now (their lease runs).
    pub async fn case_messages_in_flight(&self, conn: &mut AnyConnection, case_ref: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE case_ref = $1 AND status = 'sending' AND claimed_until >= $2",
        )
        .bind(case_ref)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?)
    }

    /// Erase a case's rows: every piece of personal data goes, and what is left (codes, times,
    /// counts) moves under `anonymous_ref`, so that the reports still add up and nothing leads
    /// back to the person. Returns the ids of the case's messages (their copies outside the
    /// database go too).
    pub async fn erase_case_rows(
        &self,
        conn: &mut AnyConnection,
        case_ref: &str,
        anonymous_ref: &str,
        now: i64,
    ) -> Result<Vec<String>> {
        let message_ids: Vec<String> = sqlx::query_scalar("SELECT id FROM messages WHERE case_ref = $1")
            .bind(case_ref)
            .fetch_all(&mut *conn)
            .await?;
        // Replies from the victim's numbers that matched no case (sent before any message, or
        // after a later message to another number) hold their words and number too.
        sqlx::query(
            "UPDATE replies SET from_key = '', from_number = NULL, body = NULL, review_note = NULL, provider_ref = NULL,
               redacted_at = COALESCE(redacted_at, $2), reviewed_at = COALESCE(reviewed_at, $2),
               reviewed_by = COALESCE(reviewed_by, 'erasure')
             WHERE case_ref IS NULL AND from_key <> '' AND from_key IN (
               SELECT number_key FROM case_phones WHERE case_ref = $1 AND is_victims = 1
               UNION SELECT to_key FROM messages WHERE case_ref = $1)",
        )
        .bind(case_ref)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // The new case row first (foreign keys), then everything that points at the old one.
        sqlx::query(
            "INSERT INTO cases (case_ref, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive, cancelled_at, erased_at)
             SELECT $2, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive, cancelled_at, $3
             FROM cases WHERE case_ref = $1",
        )
        .bind(case_ref)
        .bind(anonymous_ref)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // The request goes whole; its id (which the triage system may have built from the case
        // reference) and the stored answer (which names the case) are replaced.
        let moved_and_redacted = [
            "UPDATE outreach SET case_ref = $2, request_json = NULL, request_id = id, request_hash = '',
               response_json = '{}', redacted_at = COALESCE(redacted_at, $3) WHERE case_ref = $1",
            // No reply may be matched to the erased case again: the address keys go too, and the
            // providers' references, which a provider can map back to the number.
            "UPDATE messages SET case_ref = $2, to_key = '', to_address = NULL, subject = NULL, body = NULL,
               html = NULL, provider_ref = NULL, redacted_at = COALESCE(redacted_at, $3) WHERE case_ref = $1",
            "UPDATE replies SET case_ref = $2, from_key = '', from_number = NULL, body = NULL, provider_ref = NULL,
               redacted_at = COALESCE(redacted_at, $3) WHERE case_ref = $1",
            // Staff's reasons are free text that may name people; so is why a victim declined.
            "UPDATE staff_notes SET case_ref = $2, note = NULL, redacted_at = COALESCE(redacted_at, $3)
               WHERE case_ref = $1",
            "UPDATE calls SET case_ref = $2, reason = NULL, number_key = NULL, redacted_at = COALESCE(redacted_at, $3)
               WHERE case_ref = $1",
        ];
        for sql in moved_and_redacted {
            sqlx::query(sql).bind(case_ref).bind(anonymous_ref).bind(now).execute(&mut *conn).await?;
        }
        // The victim's own numbers go; a number recorded as someone else's (a suspect's) stays,
        // keyed, so that rule 7 still protects other victims from it.
        sqlx::query("DELETE FROM case_phones WHERE case_ref = $1 AND is_victims = 1")
            .bind(case_ref)
            .execute(&mut *conn)
            .await?;
        let moved = [
            "UPDATE case_phones SET case_ref = $2 WHERE case_ref = $1",
            "UPDATE case_categories SET case_ref = $2 WHERE case_ref = $1",
            "UPDATE events SET case_ref = $2 WHERE case_ref = $1",
            "UPDATE urgent_items SET case_ref = $2 WHERE case_ref = $1",
        ];
        for sql in moved {
            sqlx::query(sql).bind(case_ref).bind(anonymous_ref).execute(&mut *conn).await?;
        }
        // Suppressions stay (an opt-out must be honoured), no longer linked to the case; then the
        // old case row, which nothing points at any more, goes.
        // Case events not yet sent to the events receiver are dropped: sent under the anonymous
        // reference, they would tie it to job and message ids the receiver saw under the real one.
        let last = [
            "UPDATE suppressions SET case_ref = NULL WHERE case_ref = $1",
            "DELETE FROM event_outbox WHERE case_ref = $1",
            "DELETE FROM cases WHERE case_ref = $1",
        ];
        for sql in last {
            sqlx::query(sql).bind(case_ref).execute(&mut *conn).await?;
        }
        Ok(message_ids)
    }
}
