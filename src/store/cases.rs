//! Cases and their outreach jobs: acceptance, the history the policy reads, cancellation, calls.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row};

use super::events::Event;
use super::{Result, Store, StoreError, dynamic, new_id, placeholders};
use crate::domain::call::CallOutcome;
use crate::domain::event::EventType;
use crate::domain::{CaseHistory, Channel, Decision, Kind, Outcome, OutreachRequest, contact};

/// A job's status as the API reports it.
pub fn status_for(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Send => "queued",
        Outcome::Defer => "deferred",
        Outcome::Hold => "held",
        Outcome::Block => "blocked",
    }
}

/// Statuses of a job that may still lead to a send (rule 11 counts sent ones too).
const ACTIVE_STATUSES: &str = "'queued', 'deferred', 'sent'";

pub struct AcceptInput<'a> {
    pub request: &'a OutreachRequest,
    /// SHA-256 of the canonical request body: same id with another body is a conflict.
    pub request_hash: String,
    pub priority: bool,
    pub safety_sensitive: bool,
    pub now: i64,
    pub actor: String,
    /// Accepted with a test key: decided and recorded, sent only to the sandbox.
    pub test: bool,
}

#[derive(Debug)]
pub enum AcceptResult {
    /// Newly accepted: the answer to give, and the decision taken.
    Created { answer: serde_json::Value, decision: Decision },
    /// The same request again: the first answer.
    Replayed { answer: serde_json::Value },
    /// The same request id with a different body.
    Conflict,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutreachRecord {
    pub id: String,
    pub request_id: String,
    pub case_ref: String,
    pub kind: String,
    #[sqlx(try_from = "i64")]
    pub priority: super::Flag,
    pub request_json: Option<String>,
    pub accepted_at: i64,
    pub status: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub channel: Option<String>,
    pub template: Option<String>,
    pub not_before: Option<i64>,
    pub attempts: i64,
    pub updated_at: i64,
    /// Set once retention or erasure removed the request's personal data: the job is finished.
    pub redacted_at: Option<i64>,
    /// Accepted with a test key: sent only to the sandbox, left out of reports.
    #[sqlx(try_from = "i64")]
    pub test: super::Flag,
}

pub(super) const OUTREACH_COLUMNS: &str = "id, request_id, case_ref, kind, priority, request_json, accepted_at, status, outcome, reason, channel, template, not_before, attempts, updated_at, redacted_at, test";

impl OutreachRecord {
    /// The request as accepted. A redacted job has none left: it can never be decided again.
    pub fn request(&self) -> Result<OutreachRequest> {
        if self.redacted_at.is_some() {
            return Err(StoreError::Redacted);
        }
        let json = self.request_json.as_deref().ok_or(StoreError::Redacted)?;
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("outreach request: {e}")))
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRecord {
    pub case_ref: String,
    pub created_at: i64,
    pub referral_source: Option<String>,
    pub referred_at: Option<i64>,
    pub local_authority: Option<String>,
    pub categories: String,
    #[sqlx(try_from = "i64")]
    pub priority: super::Flag,
    #[sqlx(try_from = "i64")]
    pub safety_sensitive: super::Flag,
    pub cancelled_at: Option<i64>,
    pub call_window: Option<String>,
}

/// What cancelling a job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Stopped: nothing of it will be sent.
    Cancelled,
    /// Its message is being handed to a provider right now: it goes, too late to stop.
    TooLate,
    /// Already past cancelling (sent, failed, blocked, cancelled): nothing changed.
    Finished,
}

/// A call attempt to record.
#[derive(Debug, Clone, Copy)]
pub struct NewCall<'a> {
    pub case_ref: &'a str,
    /// When the call was made (ms).
    pub at: i64,
    pub outcome: CallOutcome,
    /// The number called, normalised (a UK mobile in E.164, else as given, trimmed).
    pub number: Option<&'a str>,
    /// Why the victim declined: free text, personal.
    pub reason: Option<&'a str>,
}

/// A recorded call attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallRecord {
    pub id: String,
    pub at: i64,
    pub outcome: String,
    /// Why the victim declined; None when not given or once redacted.
    pub reason: Option<String>,
    /// Keyed hash of the number called, if one was given (never shown).
    pub number_key: Option<String>,
    pub redacted_at: Option<i64>,
}

/// What `history` reads from the case row.
#[derive(Debug, Default, sqlx::FromRow)]
struct CaseFacts {
    cancelled_at: Option<i64>,
    #[sqlx(try_from = "i64")]
    priority: super::Flag,
    #[sqlx(try_from = "i64")]
    safety_sensitive: super::Flag,
    call_attempts: i64,
    declined: i64,
}

impl Store {
    /// Accept an outreach request: create or extend its case, decide it (with `decide`, given the
    /// case's history inside the same transaction), and record the job, its event and — when it
    /// is to be sent or deferred — the work for the queue, all in one commit.
    pub async fn accept_outreach(
        &self,
        input: AcceptInput<'_>,
        decide: impl Fn(&CaseHistory) -> Decision,
    ) -> Result<AcceptResult> {
        match self.try_accept(&input, &decide).await {
            // Another process accepted the same request id meanwhile: answer as it did.
            Err(e) if e.is_unique_violation() => self.try_accept(&input, &decide).await,
            result => result,
        }
    }

    async fn try_accept(
        &self,
        input: &AcceptInput<'_>,
        decide: &impl Fn(&CaseHistory) -> Decision,
    ) -> Result<AcceptResult> {
        let req = input.request;
        let mut tx = self.begin().await?;
        if let Some(row) = sqlx::query("SELECT request_hash, response_json FROM outreach WHERE request_id = $1")
            .bind(&req.request_id)
            .fetch_optional(&mut *tx)
            .await?
        {
            let hash: String = row.try_get(0)?;
            if hash != input.request_hash {
                return Ok(AcceptResult::Conflict);
            }
            let answer: String = row.try_get(1)?;
            return Ok(AcceptResult::Replayed { answer: parse_json(&answer)? });
        }

        self.upsert_case(&mut tx, input).await?;
        self.record_phones(&mut tx, req).await?;
        let history = self.history_of(&mut tx, req, None, input.now, input.test).await?;
        let decision = decide(&history);

        let id = new_id("out");
        let status = status_for(decision.outcome());
        let answer = answer_json(&id, &req.case_ref, status, &decision);
        sqlx::query(dynamic(format!(
            "INSERT INTO outreach ({OUTREACH_COLUMNS}, request_hash, response_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $7, NULL, $16, $14, $15)"
        )))
        .bind(&id)
        .bind(&req.request_id)
        .bind(&req.case_ref)
        .bind(req.kind.as_str())
        .bind(i64::from(input.priority))
        .bind(serde_json::to_string(req).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(input.now)
        .bind(status)
        .bind(decision.outcome().as_str())
        .bind(decision.reason().map(|r| r.as_str()))
        .bind(decision.route().map(|r| r.channel.as_str()))
        .bind(decision.route().map(|r| r.template))
        .bind(decision.not_before().map(|t| t.timestamp_millis()))
        .bind(&input.request_hash)
        .bind(answer.to_string())
        .bind(i64::from(input.test))
        .execute(&mut *tx)
        .await?;
        Event::new(&req.case_ref, input.now, &input.actor, EventType::Accepted)
            .outreach(&id)
            .decision(&decision)
            .append(&mut tx)
            .await?;
        if let Some(run_at) = run_at(&decision, input.now) {
            self.enqueue(&mut tx, &id, run_at).await?;
        }
        tx.commit().await?;
        Ok(AcceptResult::Created { answer, decision })
    }

    async fn upsert_case(&self, conn: &mut AnyConnection, input: &AcceptInput<'_>) -> Result<()> {
        let req = input.request;
        // The first referral details win; later jobs fill in what was missing.
        sqlx::query(
            "INSERT INTO cases (case_ref, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (case_ref) DO UPDATE SET
               referral_source = COALESCE(cases.referral_source, excluded.referral_source),
               referred_at = COALESCE(cases.referred_at, excluded.referred_at),
               local_authority = COALESCE(cases.local_authority, excluded.local_authority),
               categories = CASE WHEN cases.categories = '' THEN excluded.categories ELSE cases.categories END,
               priority = CASE WHEN cases.priority + excluded.priority > 0 THEN 1 ELSE 0 END,
               safety_sensitive = CASE WHEN cases.safety_sensitive + excluded.safety_sensitive > 0 THEN 1 ELSE 0 END",
        )
        .bind(&req.case_ref)
        .bind(input.now)
        .bind(&req.referral.source)
        .bind(req.referral.referred_at.map(|t| t.timestamp_millis()))
        .bind(&req.referral.local_authority)
        .bind(req.crime.categories.join(","))
        .bind(i64::from(input.priority))
        .bind(i64::from(input.safety_sensitive))
        .execute(&mut *conn)
        .await?;
        self.lock_case(conn, &req.case_ref).await?;
        // The case's memory: every accepted job's categories, whatever its decision.
        for category in &req.crime.categories {
            let category = category.trim().to_ascii_lowercase();
            if category.is_empty() {
                continue;
            }
            sqlx::query("INSERT INTO case_categories (case_ref, category) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&req.case_ref)
                .bind(category)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Decisions on one case take turns, so that rule 11 sees every other job's message, and
    /// whatever stops a send on the case (a call, a cancel) waits for a worker's decide-and-claim
    /// or is seen by it. Postgres only: SQLite's single writer already serialises them. Take it
    /// before any job row of the case and before any address lock (`lock_addresses`), the order
    /// every transaction uses, or two transactions could wait for each other.
    pub async fn lock_case(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<()> {
        if self.dialect == super::Dialect::Postgres {
            sqlx::query("SELECT case_ref FROM cases WHERE case_ref = $1 FOR UPDATE")
                .bind(case_ref)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The case lock (see `lock_case`) for a job about to be decided again.
    pub async fn lock_case_of_job(&self, conn: &mut AnyConnection, outreach_id: &str) -> Result<()> {
        if self.dialect == super::Dialect::Postgres {
            let case_ref: Option<String> = sqlx::query_scalar("SELECT case_ref FROM outreach WHERE id = $1")
                .bind(outreach_id)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(case_ref) = case_ref {
                self.lock_case(conn, &case_ref).await?;
            }
        }
        Ok(())
    }

    /// Remember whose each number is, so that rule 7 can spot a suspect's number on another case.
    async fn record_phones(&self, conn: &mut AnyConnection, req: &OutreachRequest) -> Result<()> {
        for phone in &req.contact.phones {
            let Some(number) = contact::normalise_uk_mobile(&phone.number) else { continue };
            sqlx::query(
                "INSERT INTO case_phones (case_ref, number_key, is_victims) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&req.case_ref)
            .bind(self.address_key(&number))
            .bind(i64::from(phone.is_victims()))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// What the policy needs to know about the case of `req`. `this` is the job being decided
    /// (id and acceptance time) when it is already stored.
    pub async fn history(
        &self,
        conn: &mut AnyConnection,
        req: &OutreachRequest,
        this: Option<(&str, i64)>,
        now: i64,
    ) -> Result<CaseHistory> {
        let test = match this {
            Some((id, _)) => {
                sqlx::query_scalar::<_, i64>("SELECT test FROM outreach WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    == Some(1)
            }
            None => false,
        };
        self.history_of(conn, req, this, now, test).await
    }

    /// `history` for a live job or, with `test`, a test key's job. A test job never counts for a
    /// live one (rule 11 would otherwise block the real pre-text as a duplicate of a test's);
    /// a test job sees both.
    async fn history_of(
        &self,
        conn: &mut AnyConnection,
        req: &OutreachRequest,
        this: Option<(&str, i64)>,
        now: i64,
        test: bool,
    ) -> Result<CaseHistory> {
        let case_ref = &req.case_ref;
        let case: Option<CaseFacts> = sqlx::query_as(
            "SELECT cancelled_at, priority, safety_sensitive,
               (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref
                  AND k.outcome IN ('answered', 'no_answer', 'voicemail')) AS call_attempts,
               (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref AND k.outcome = 'declined') AS declined
             FROM cases c WHERE case_ref = $1",
        )
        .bind(case_ref)
        .fetch_optional(&mut *conn)
        .await?;
        let case = case.unwrap_or_default();
        let case_categories: BTreeSet<String> =
            sqlx::query_scalar::<_, String>("SELECT category FROM case_categories WHERE case_ref = $1")
                .bind(case_ref)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        let (this_id, accepted_at) = this.unwrap_or(("", now));
        // Jobs accepted before this one; a job not yet stored comes after every stored one, even
        // one accepted in the same millisecond.
        let before_this =
            if this.is_some() { "(accepted_at < $3 OR (accepted_at = $3 AND id < $2))" } else { "accepted_at <= $3" };
        let outreach_cancelled = match this {
            Some((id, _)) => {
                sqlx::query_scalar::<_, String>("SELECT status FROM outreach WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?
                    == "cancelled"
            }
            None => false,
        };
        // Rule 11: another job of the kind counts when it was accepted earlier and may still be
        // sent, or, whenever it was accepted, when it is sent, its message is prepared, or its
        // send is in flight or in doubt (cut off mid-way). A job held, then released after a
        // later one went, must not send a second time.
        let other_active = |kind: Kind| {
            format!(
                "SELECT COUNT(*) FROM outreach o WHERE case_ref = $1 AND kind = '{}' AND id <> $2 AND o.test <= $4
                 AND ((status IN ({ACTIVE_STATUSES}) AND {before_this})
                      OR status = 'sent'
                      OR EXISTS (SELECT 1 FROM messages m WHERE m.outreach_id = o.id
                                 AND (o.status = 'queued' OR m.status = 'sending')))",
                kind.as_str()
            )
        };
        let mut other = [false; Kind::ALL.len()];
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            let n: i64 = sqlx::query_scalar(dynamic(other_active(kind)))
                .bind(case_ref)
                .bind(this_id)
                .bind(accepted_at)
                .bind(i64::from(test))
                .fetch_one(&mut *conn)
                .await?;
            other[i] = n > 0;
        }

        let addresses: Vec<String> = contact::addresses_in(&req.contact).into_iter().collect();
        let suppressed = self
            .matching_keys(
                conn,
                "SELECT address_key FROM suppressions WHERE lifted_at IS NULL AND address_key IN",
                &addresses,
            )
            .await?;
        let numbers: Vec<String> =
            req.contact.phones.iter().filter_map(|p| contact::normalise_uk_mobile(&p.number)).collect();
        // Rule 7: recorded as someone else's on any case, this one included.
        let numbers_of_others = self
            .matching_keys(conn, "SELECT number_key FROM case_phones WHERE is_victims = 0 AND number_key IN", &numbers)
            .await?;
        let approved_templates = self.approved_template_set(conn).await?;
        Ok(CaseHistory {
            case_cancelled: case.cancelled_at.is_some(),
            outreach_cancelled,
            accepted_at: Some(crate::time::from_ms(accepted_at)),
            call_attempts: u32::try_from(case.call_attempts).unwrap_or(u32::MAX),
            declined: case.declined > 0,
            case_categories,
            case_priority: case.priority.0,
            case_safety_sensitive: case.safety_sensitive.0,
            other_pretext_active: other[0],
            other_information_pack_active: other[1],
            other_survey_active: other[2],
            suppressed,
            numbers_of_others,
            approved_templates,
        })
    }

    /// Those of `plain` whose keyed hash the query (ending in `IN`) finds.
    async fn matching_keys(
        &self,
        conn: &mut AnyConnection,
        select_in: &str,
        plain: &[String],
    ) -> Result<BTreeSet<String>> {
        if plain.is_empty() {
            return Ok(BTreeSet::new());
        }
        let sql = format!("{select_in} ({})", placeholders(1, plain.len()));
        let mut query = sqlx::query_scalar::<_, String>(dynamic(sql));
        let keys: Vec<String> = plain.iter().map(|p| self.address_key(p)).collect();
        for k in &keys {
            query = query.bind(k);
        }
        let found: BTreeSet<String> = query.fetch_all(&mut *conn).await?.into_iter().collect();
        Ok(plain.iter().zip(&keys).filter(|(_, k)| found.contains(*k)).map(|(p, _)| p.clone()).collect())
    }

    async fn approved_template_set(&self, conn: &mut AnyConnection) -> Result<BTreeSet<(String, Channel)>> {
        let rows: Vec<(String, String)> =
            // Rule 14 is about English: a job in another language without its own approved
            // version is sent the English one.
            sqlx::query_as("SELECT name, channel FROM template_versions WHERE state = 'approved' AND language = 'en'")
                .fetch_all(&mut *conn)
                .await?;
        Ok(rows.into_iter().filter_map(|(n, c)| Some((n, Channel::parse(&c)?))).collect())
    }

    pub async fn outreach(&self, id: &str) -> Result<Option<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {OUTREACH_COLUMNS} FROM outreach WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Lock and read a job inside a transaction.
    pub async fn outreach_for_update(&self, conn: &mut AnyConnection, id: &str) -> Result<Option<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE id = $1{}",
            self.for_update()
        )))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
    }

    pub async fn case_outreach(&self, case_ref: &str) -> Result<Vec<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE case_ref = $1 ORDER BY accepted_at, id"
        )))
        .bind(case_ref)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn case(&self, case_ref: &str) -> Result<Option<CaseRecord>> {
        Ok(sqlx::query_as(
            "SELECT case_ref, created_at, referral_source, referred_at, local_authority, categories, priority, safety_sensitive, cancelled_at, call_window
             FROM cases WHERE case_ref = $1",
        )
        .bind(case_ref)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Record a new decision for a job (worker or staff), with its event and any queue work.
    pub async fn record_decision(
        &self,
        conn: &mut AnyConnection,
        job: &OutreachRecord,
        decision: &Decision,
        now: i64,
        actor: &str,
        kind: EventType,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outreach SET status = $2, outcome = $3, reason = $4, channel = $5, template = $6, not_before = $7, updated_at = $8
             WHERE id = $1",
        )
        .bind(&job.id)
        .bind(status_for(decision.outcome()))
        .bind(decision.outcome().as_str())
        .bind(decision.reason().map(|r| r.as_str()))
        .bind(decision.route().map(|r| r.channel.as_str()))
        .bind(decision.route().map(|r| r.template))
        .bind(decision.not_before().map(|t| t.timestamp_millis()))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Event::new(&job.case_ref, now, actor, kind).outreach(&job.id).decision(decision).append(conn).await?;
        if decision.outcome() == Outcome::Defer
            && let Some(run_at) = run_at(decision, now)
        {
            self.enqueue(conn, &job.id, run_at).await?;
        }
        Ok(())
    }

    /// Hold a job for staff for a reason the policy does not give (`render_failed`): the row and
    /// the timeline say held, with that reason.
    pub async fn hold_for_staff(
        &self,
        conn: &mut AnyConnection,
        job: &OutreachRecord,
        reason: &str,
        now: i64,
        actor: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outreach SET status = 'held', outcome = 'hold', reason = $2, channel = NULL, template = NULL, not_before = NULL,
               updated_at = $3 WHERE id = $1",
        )
        .bind(&job.id)
        .bind(reason)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let mut event = Event::new(&job.case_ref, now, actor, EventType::Decided).outreach(&job.id).reason(reason);
        event.outcome = Some(Outcome::Hold.as_str());
        event.append(conn).await?;
        Ok(())
    }

    /// Set a job's status (sent, failed, dead_lettered, …) without a new decision.
    pub async fn set_outreach_status(&self, conn: &mut AnyConnection, id: &str, status: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE outreach SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(now)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn count_attempt(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE outreach SET attempts = attempts + 1, updated_at = $2 WHERE id = $1 RETURNING attempts",
        )
        .bind(id)
        .bind(now)
        .fetch_one(conn)
        .await?)
    }

    /// Cancel one job: anything not yet sent stops, blocked by rule 1 (`do_not_contact`).
    /// None when the job is unknown; otherwise the job as it is now and what the cancel did.
    pub async fn cancel_outreach(&self, id: &str, now: i64, actor: &str) -> Result<Option<(OutreachRecord, Cancel)>> {
        let mut tx = self.begin().await?;
        let Some(job) = self.outreach_for_update(&mut tx, id).await? else { return Ok(None) };
        let done = self.cancel_job(&mut tx, &job, now, actor).await?;
        tx.commit().await?;
        Ok(self.outreach(id).await?.map(|job| (job, done)))
    }

    /// Cancel a case and every job of it not yet sent. None when the case is unknown; otherwise
    /// the jobs whose message is being handed to a provider right now (too late to stop).
    pub async fn cancel_case(&self, case_ref: &str, now: i64, actor: &str) -> Result<Option<Vec<String>>> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query("UPDATE cases SET cancelled_at = COALESCE(cancelled_at, $2) WHERE case_ref = $1")
            .bind(case_ref)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        let jobs: Vec<OutreachRecord> = sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE case_ref = $1 ORDER BY accepted_at, id{}",
            self.for_update()
        )))
        .bind(case_ref)
        .fetch_all(&mut *tx)
        .await?;
        let mut too_late = Vec::new();
        for job in &jobs {
            if self.cancel_job(&mut tx, job, now, actor).await? == Cancel::TooLate {
                too_late.push(job.id.clone());
            }
        }
        Event::new(case_ref, now, actor, EventType::Cancelled).reason("do_not_contact").append(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(too_late))
    }

    /// Cancel a job that is not sent yet; nothing is recorded when it is past that, or when its
    /// message is being handed to a provider right now.
    pub(super) async fn cancel_job(
        &self,
        conn: &mut AnyConnection,
        job: &OutreachRecord,
        now: i64,
        actor: &str,
    ) -> Result<Cancel> {
        if !matches!(job.status.as_str(), "queued" | "deferred" | "held" | "dead_lettered") {
            return Ok(Cancel::Finished);
        }
        // A message a worker is handing to a provider right now goes out: too late to stop it. One
        // whose send was cut off (its lease ran out: in doubt) can be stopped from going again.
        if self.message_in_flight(conn, &job.id, now).await? {
            return Ok(Cancel::TooLate);
        }
        // Rule 1's decision replaces the one before: the job reads `block`, `do_not_contact`.
        sqlx::query(
            "UPDATE outreach SET status = 'cancelled', outcome = 'block', reason = 'do_not_contact',
             channel = NULL, template = NULL, not_before = NULL, updated_at = $2 WHERE id = $1",
        )
        .bind(&job.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Event::new(&job.case_ref, now, actor, EventType::Cancelled)
            .outreach(&job.id)
            .reason("do_not_contact")
            .append(conn)
            .await?;
        Ok(Cancel::Cancelled)
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

    /// Record a call attempt (its number as a keyed hash, `number` normalised; the reason is
    /// personal) with its timeline event. The caller holds the case lock.
    pub async fn insert_call(
        &self,
        conn: &mut AnyConnection,
        call: &NewCall<'_>,
        now: i64,
        actor: &str,
    ) -> Result<String> {
        let id = new_id("call");
        sqlx::query(
            "INSERT INTO calls (id, case_ref, at, outcome, recorded_at, number_key, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(call.case_ref)
        .bind(call.at)
        .bind(call.outcome.as_str())
        .bind(now)
        .bind(call.number.map(|n| self.address_key(n)))
        .bind(call.reason)
        .execute(&mut *conn)
        .await?;
        // Whether a number or a reason was given, never what they are.
        Event::new(call.case_ref, now, actor, EventType::Call)
            .detail(serde_json::json!({
                "outcome": call.outcome.as_str(),
                "at": crate::time::rfc3339_ms(call.at),
                "call_id": id,
                "number_given": call.number.is_some(),
                "reason_given": call.reason.is_some(),
            }))
            .append(conn)
            .await?;
        Ok(id)
    }

    /// The jobs of a case that may still lead to a send or wait for a person (queued, deferred,
    /// held), locked, oldest first. A redacted job is finished and never among them.
    pub async fn pending_jobs_for_update(
        &self,
        conn: &mut AnyConnection,
        case_ref: &str,
    ) -> Result<Vec<OutreachRecord>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {OUTREACH_COLUMNS} FROM outreach WHERE case_ref = $1 AND status IN ('queued', 'deferred', 'held')
               AND redacted_at IS NULL ORDER BY accepted_at, id{}",
            self.for_update()
        )))
        .bind(case_ref)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// The keyed hashes of the numbers recorded as the victim's on a case.
    pub async fn victim_number_keys(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT number_key FROM case_phones WHERE case_ref = $1 AND is_victims = 1")
            .bind(case_ref)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Whether a case exists (inside a transaction).
    pub async fn case_exists(&self, conn: &mut AnyConnection, case_ref: &str) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, String>("SELECT case_ref FROM cases WHERE case_ref = $1")
            .bind(case_ref)
            .fetch_optional(conn)
            .await?
            .is_some())
    }

    /// The calls of a case, in the order they were made.
    pub async fn calls(&self, case_ref: &str) -> Result<Vec<CallRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, at, outcome, reason, number_key, redacted_at FROM calls WHERE case_ref = $1 ORDER BY at, id",
        )
        .bind(case_ref)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every category of the case's accepted jobs (its memory), in order.
    pub async fn case_categories(&self, case_ref: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT category FROM case_categories WHERE case_ref = $1 ORDER BY category")
            .bind(case_ref)
            .fetch_all(&self.pool)
            .await?)
    }
}

/// When the queue should run a job after this decision.
fn run_at(decision: &Decision, now: i64) -> Option<i64> {
    match decision {
        Decision::Send(_) => Some(now),
        Decision::Defer { until, .. } => Some(until.timestamp_millis()),
        Decision::Hold(_) | Decision::Block(_) => None,
    }
}

/// The 202 answer of `POST /v1/outreach` (contract shape).
pub fn answer_json(id: &str, case_ref: &str, status: &str, decision: &Decision) -> serde_json::Value {
    serde_json::json!({
        "outreach_id": id,
        "case_ref": case_ref,
        "status": status,
        "decision": {
            "outcome": decision.outcome().as_str(),
            "reason": decision.reason().map(|r| r.as_str()),
            "channel": decision.route().map(|r| r.channel.as_str()),
            "template": decision.route().map(|r| r.template),
            "not_before": decision.not_before().map(crate::time::rfc3339),
        }
    })
}

fn parse_json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}
