//! The history the policy reads about a case: its memory, its other jobs, suppressions and the
//! numbers recorded as someone else's. Read for a whole batch at once (`Store::histories`: a few
//! `IN (…)` queries whatever the batch's size), then asked job by job (`Histories::of`) in the
//! batch's order; what the batch does meanwhile is noted in (`add_request`, `add_job`), so that a
//! later job of a case sees an earlier one exactly as if they had been decided one after the other.

use std::collections::{BTreeSet, HashMap};

use sqlx::AnyConnection;

use super::{Result, Store, dynamic, json};
use crate::domain::{CaseHistory, Channel, JobStatus, Kind, OutreachRequest, contact};

/// What `histories` reads from each case row.
#[derive(Debug, Default, Clone, sqlx::FromRow)]
struct CaseFacts {
    case_ref: String,
    cancelled_at: Option<i64>,
    #[sqlx(try_from = "i64")]
    priority: super::Flag,
    #[sqlx(try_from = "i64")]
    safety_sensitive: super::Flag,
    call_attempts: i64,
    declined: i64,
}

/// A job of the case that rule 11 may count: still to be sent, sent, or with a message in flight.
#[derive(Debug, Clone, sqlx::FromRow)]
struct JobFacts {
    id: String,
    case_ref: String,
    kind: String,
    #[sqlx(try_from = "i64")]
    test: super::Flag,
    #[sqlx(try_from = "String")]
    status: JobStatus,
    accepted_at: i64,
    /// It has a message (prepared, in flight or handed over).
    messages: i64,
    /// Its message is being handed over, or was cut off mid-way (in doubt).
    sending: i64,
}

/// The job being decided, when it is stored already (the worker, a call deciding again).
#[derive(Debug, Clone, Copy)]
pub struct ThisJob<'a> {
    pub id: &'a str,
    pub accepted_at: i64,
    pub status: JobStatus,
    /// A test key's job: it sees live jobs too; a live job never sees a test one.
    pub test: bool,
}

/// What the policy needs about the cases of a batch (see the module's comment).
#[derive(Debug, Default)]
pub struct Histories {
    cases: HashMap<String, CaseFacts>,
    categories: HashMap<String, BTreeSet<String>>,
    jobs: HashMap<String, Vec<JobFacts>>,
    suppressed: BTreeSet<String>,
    numbers_of_others: BTreeSet<String>,
    approved_templates: BTreeSet<(String, Channel)>,
}

impl Histories {
    /// The history of `req` for a job not stored yet (`this` None: an acceptance, which comes
    /// after every job stored) or for a stored one.
    pub fn of(&self, req: &OutreachRequest, this: Option<ThisJob<'_>>, now: i64, test: bool) -> CaseHistory {
        let case_ref = &req.case_ref;
        let case = self.cases.get(case_ref).cloned().unwrap_or_default();
        let (this_id, accepted_at) = this.map_or(("", now), |t| (t.id, t.accepted_at));
        let test = this.map_or(test, |t| t.test);
        // Jobs accepted before this one; a job not yet stored comes after every stored one (and
        // every earlier one of its batch), even one stamped later: a batch that waited for the
        // case lock while another committed took its time before the other did.
        let before_this = |j: &JobFacts| match this {
            Some(_) => j.accepted_at < accepted_at || (j.accepted_at == accepted_at && j.id.as_str() < this_id),
            None => true,
        };
        // Rule 11: another job of the kind counts when it was accepted earlier and may still be
        // sent, or, whenever it was accepted, when it is sent, its message is prepared, or its
        // send is in flight or in doubt (cut off mid-way). A job held, then released after a
        // later one went, must not send a second time.
        let other_active = |kind: Kind| {
            self.jobs.get(case_ref).into_iter().flatten().any(|j| {
                j.kind == kind.as_str()
                    && j.id != this_id
                    && (!j.test.0 || test)
                    && ((matches!(j.status, JobStatus::Queued | JobStatus::Deferred | JobStatus::Sent)
                        && before_this(j))
                        || j.status == JobStatus::Sent
                        || (j.messages > 0 && j.status == JobStatus::Queued)
                        || j.sending > 0)
            })
        };
        let numbers: BTreeSet<String> =
            req.contact.phones.iter().filter_map(|p| contact::normalise_uk_mobile(&p.number)).collect();
        CaseHistory {
            case_cancelled: case.cancelled_at.is_some(),
            outreach_cancelled: this.is_some_and(|t| t.status == JobStatus::Cancelled),
            accepted_at: Some(crate::time::from_ms(accepted_at)),
            call_attempts: u32::try_from(case.call_attempts).unwrap_or(u32::MAX),
            declined: case.declined > 0,
            case_categories: self.categories.get(case_ref).cloned().unwrap_or_default(),
            case_priority: case.priority.0,
            case_safety_sensitive: case.safety_sensitive.0,
            other_pretext_active: other_active(Kind::PriorityPretext),
            other_information_pack_active: other_active(Kind::InformationPack),
            other_survey_active: other_active(Kind::SatisfactionSurvey),
            suppressed: contact::addresses_in(&req.contact).intersection(&self.suppressed).cloned().collect(),
            numbers_of_others: numbers.intersection(&self.numbers_of_others).cloned().collect(),
            approved_templates: self.approved_templates.clone(),
        }
    }

    /// A request of the batch is being accepted: its case remembers its categories, priority and
    /// safety-sensitivity, and its phones are recorded (as `upsert_case` and `record_phones` will
    /// store them), before it is decided.
    pub fn add_request(&mut self, req: &OutreachRequest, priority: bool, safety_sensitive: bool) {
        let case = self
            .cases
            .entry(req.case_ref.clone())
            .or_insert_with(|| CaseFacts { case_ref: req.case_ref.clone(), ..CaseFacts::default() });
        case.priority.0 |= priority;
        case.safety_sensitive.0 |= safety_sensitive;
        self.categories.entry(req.case_ref.clone()).or_default().extend(case_categories(req));
        for phone in req.contact.phones.iter().filter(|p| !p.is_victims()) {
            if let Some(number) = contact::normalise_uk_mobile(&phone.number) {
                self.numbers_of_others.insert(number);
            }
        }
    }

    /// A job of the batch was decided (accepted, or decided again): later jobs see it with this
    /// status, and with a message when one was prepared or claimed for it.
    pub fn add_job(&mut self, case_ref: &str, job: JobNote<'_>) {
        let jobs = self.jobs.entry(case_ref.to_string()).or_default();
        let note = JobFacts {
            id: job.id.to_string(),
            case_ref: case_ref.to_string(),
            kind: job.kind.to_string(),
            test: super::Flag(job.test),
            status: job.status,
            accepted_at: job.accepted_at,
            messages: i64::from(job.message),
            sending: i64::from(job.sending),
        };
        match jobs.iter_mut().find(|j| j.id == job.id) {
            Some(known) => {
                // A message, once made, stays; so does a send in flight.
                let (messages, sending) = (known.messages.max(note.messages), known.sending.max(note.sending));
                *known = JobFacts { messages, sending, ..note };
            }
            None => jobs.push(note),
        }
    }
}

/// A job as `Histories::add_job` notes it.
#[derive(Debug, Clone, Copy)]
pub struct JobNote<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub test: bool,
    pub status: JobStatus,
    pub accepted_at: i64,
    /// A message was prepared for it.
    pub message: bool,
    /// Its message is being handed over.
    pub sending: bool,
}

/// A request's categories as the case's memory keeps them (trimmed, lower-case, none empty).
pub(super) fn case_categories(req: &OutreachRequest) -> impl Iterator<Item = String> + '_ {
    req.crime.categories.iter().map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty())
}

impl Store {
    /// What the policy needs to know about the case of `req`: `histories` for a batch of one.
    /// `this` is the job being decided when it is already stored.
    pub async fn history(
        &self,
        conn: &mut AnyConnection,
        req: &OutreachRequest,
        this: Option<ThisJob<'_>>,
        now: i64,
    ) -> Result<CaseHistory> {
        Ok(self.histories(conn, std::slice::from_ref(&req)).await?.of(req, this, now, false))
    }

    /// What the policy needs about the cases and addresses of `requests`, in six queries however
    /// many there are. Read inside the transaction that decides, after the cases are locked.
    pub async fn histories(&self, conn: &mut AnyConnection, requests: &[&OutreachRequest]) -> Result<Histories> {
        let cases: Vec<String> =
            requests.iter().map(|r| r.case_ref.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let addresses: Vec<String> = requests
            .iter()
            .flat_map(|r| contact::addresses_in(&r.contact))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let numbers: Vec<String> = requests
            .iter()
            .flat_map(|r| r.contact.phones.iter().filter_map(|p| contact::normalise_uk_mobile(&p.number)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut history = Histories::default();
        // One statement text however many cases (see `Dialect::in_json`).
        let (in_cases, cases) = (|column| self.dialect.in_json(column, 1, "text"), json(&cases));
        let facts: Vec<CaseFacts> = sqlx::query_as(dynamic(format!(
            "SELECT case_ref, cancelled_at, priority, safety_sensitive,
                   (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref
                      AND k.outcome IN ('answered', 'no_answer', 'voicemail')) AS call_attempts,
                   (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref AND k.outcome = 'declined') AS declined
                 FROM cases c WHERE {}",
            in_cases("c.case_ref")
        )))
        .bind(&cases)
        .fetch_all(&mut *conn)
        .await?;
        history.cases = facts.into_iter().map(|f| (f.case_ref.clone(), f)).collect();
        let categories: Vec<(String, String)> = sqlx::query_as(dynamic(format!(
            "SELECT case_ref, category FROM case_categories WHERE {}",
            in_cases("case_ref")
        )))
        .bind(&cases)
        .fetch_all(&mut *conn)
        .await?;
        for (case_ref, category) in categories {
            history.categories.entry(case_ref).or_default().insert(category);
        }
        // Only the jobs rule 11 might count (see `Histories::of`).
        let active = JobStatus::sql_list(&[JobStatus::Queued, JobStatus::Deferred, JobStatus::Sent]);
        let jobs: Vec<JobFacts> = sqlx::query_as(dynamic(format!(
            "SELECT id, case_ref, kind, test, status, accepted_at,
                   (SELECT COUNT(*) FROM messages m WHERE m.outreach_id = o.id) AS messages,
                   (SELECT COUNT(*) FROM messages m WHERE m.outreach_id = o.id AND m.status = 'sending') AS sending
                 FROM outreach o WHERE {}
                   AND (status IN ({active})
                        OR EXISTS (SELECT 1 FROM messages m WHERE m.outreach_id = o.id AND m.status = 'sending'))",
            in_cases("o.case_ref")
        )))
        .bind(&cases)
        .fetch_all(&mut *conn)
        .await?;
        for job in jobs {
            history.jobs.entry(job.case_ref.clone()).or_default().push(job);
        }
        history.suppressed = self
            .matching_keys(
                conn,
                "SELECT address_key FROM suppressions WHERE lifted_at IS NULL AND",
                "address_key",
                &addresses,
            )
            .await?;
        // Rule 7: recorded as someone else's on any case, this one included.
        history.numbers_of_others = self
            .matching_keys(conn, "SELECT number_key FROM case_phones WHERE is_victims = 0 AND", "number_key", &numbers)
            .await?;
        history.approved_templates = self.approved_template_set(conn).await?;
        Ok(history)
    }

    /// Those of `plain` whose keyed hash the query (ending in `AND`) finds in `column`.
    async fn matching_keys(
        &self,
        conn: &mut AnyConnection,
        select_and: &str,
        column: &str,
        plain: &[String],
    ) -> Result<BTreeSet<String>> {
        if plain.is_empty() {
            return Ok(BTreeSet::new());
        }
        let sql = format!("{select_and} {}", self.dialect.in_json(column, 1, "text"));
        let keys: Vec<String> = plain.iter().map(|p| self.address_key(p)).collect();
        let found: BTreeSet<String> = sqlx::query_scalar::<_, String>(dynamic(sql))
            .bind(json(&keys))
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
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
}
