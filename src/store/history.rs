//! The history the policy reads about a case: its memory, its other jobs, suppressions and the
//! numbers recorded as someone else's. Read for a whole batch at once (`Store::histories`: a few
//! `IN (…)` queries whatever the batch's size), then asked job by job (`Histories::of`) in the
//! batch's order; what the batch does meanwhile is noted in (`add_request`, `add_job`), so that a
//! later job of a case sees an earlier one exactly as if they had been decided one after the other.

use std::collections::{BTreeSet, HashMap};

use sqlx::AnyConnection;

use super::statements::from_json;
use super::{Flag, Result, Store, StoreError, dynamic, json};
use crate::domain::{CaseHistory, Channel, JobStatus, Kind, MessageStatus, OutreachRequest, contact};

/// What `histories` reads from each case row.
#[derive(Debug, Default, Clone)]
struct CaseFacts {
    case_ref: String,
    cancelled_at: Option<i64>,
    priority: Flag,
    safety_sensitive: Flag,
    call_attempts: i64,
    declined: i64,
}

/// A job of the case that rule 11 may count: still to be sent, sent, or with a message in flight.
#[derive(Debug, Clone)]
struct JobFacts {
    id: String,
    case_ref: String,
    kind: String,
    test: Flag,
    status: JobStatus,
    accepted_at: i64,
    /// It has a message (prepared, in flight or handed over).
    message: bool,
    /// Its message is being handed over, or was cut off mid-way (in doubt).
    sending: bool,
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
                        || (j.message && j.status == JobStatus::Queued)
                        || j.sending)
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
            test: Flag(job.test),
            status: job.status,
            accepted_at: job.accepted_at,
            message: job.message,
            sending: job.sending,
        };
        match jobs.iter_mut().find(|j| j.id == job.id) {
            Some(known) => {
                // A message, once made, stays; so does a send in flight.
                let (message, sending) = (known.message || note.message, known.sending || note.sending);
                *known = JobFacts { message, sending, ..note };
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

    /// What the policy needs about the cases and addresses of `requests`, in one statement however
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
        let address_keys: Vec<String> = addresses.iter().map(|a| self.address_key(a)).collect();
        let number_keys: Vec<String> = numbers.iter().map(|n| self.address_key(n)).collect();
        // Six reads, one statement (see `Dialect::json_of`): $1 the cases, $2 the address keys,
        // $3 the number keys, each one JSON list (see `Dialect::in_json`).
        let d = self.dialect;
        let active = JobStatus::sql_list(&[JobStatus::Queued, JobStatus::Deferred, JobStatus::Sent]);
        let facts = d.json_of(
            &format!(
                "SELECT case_ref, cancelled_at, priority, safety_sensitive,
                   (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref
                      AND k.outcome IN ('answered', 'no_answer', 'voicemail')) AS call_attempts,
                   (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref AND k.outcome = 'declined') AS declined
                 FROM cases c WHERE {}",
                d.in_json("c.case_ref", 1, "text")
            ),
            &["case_ref", "cancelled_at", "priority", "safety_sensitive", "call_attempts", "declined"],
        );
        let categories = d.json_of(
            &format!("SELECT case_ref, category FROM case_categories WHERE {}", d.in_json("case_ref", 1, "text")),
            &["case_ref", "category"],
        );
        // Only the jobs rule 11 might count (see `Histories::of`), each with the status of its
        // message if it has one (`outreach_id` is unique). A scalar subquery, so each job's message
        // is looked up by its key: an `EXISTS` here lets Postgres plan, on a young table, a
        // hashed scan of every sending message, and a join a hashed scan of all of `messages`.
        let jobs = d.json_of(
            &format!(
                "SELECT id, case_ref, kind, test, status, accepted_at, message_status
                 FROM (SELECT o.id, o.case_ref, o.kind, o.test, o.status, o.accepted_at,
                         (SELECT m.status FROM messages m WHERE m.outreach_id = o.id) AS message_status
                       FROM outreach o WHERE {}) AS j
                 WHERE status IN ({active}) OR message_status = 'sending'",
                d.in_json("o.case_ref", 1, "text")
            ),
            &["id", "case_ref", "kind", "test", "status", "accepted_at", "message_status"],
        );
        let suppressed = d.json_of(
            &format!(
                "SELECT address_key FROM suppressions WHERE lifted_at IS NULL AND {}",
                d.in_json("address_key", 2, "text")
            ),
            &["address_key"],
        );
        // Rule 7: recorded as someone else's on any case, this one included.
        let numbers_of_others = d.json_of(
            &format!(
                "SELECT number_key FROM case_phones WHERE is_victims = 0 AND {}",
                d.in_json("number_key", 3, "text")
            ),
            &["number_key"],
        );
        // Rule 14 is about English: a job in another language without its own approved version
        // is sent the English one.
        let templates = d.json_of(
            "SELECT name, channel FROM template_versions WHERE state = 'approved' AND language = 'en'",
            &["name", "channel"],
        );
        let sql = format!("SELECT {facts}, {categories}, {jobs}, {suppressed}, {numbers_of_others}, {templates}");
        let read: (String, String, String, String, String, String) = sqlx::query_as(dynamic(sql))
            .bind(json(&cases))
            .bind(json(&address_keys))
            .bind(json(&number_keys))
            .fetch_one(&mut *conn)
            .await?;
        let mut history = Histories::default();
        for (case_ref, cancelled_at, priority, safety_sensitive, call_attempts, declined) in
            from_json::<(String, Option<i64>, i64, i64, i64, i64)>(&read.0)?
        {
            let (priority, safety_sensitive) = (Flag::from(priority), Flag::from(safety_sensitive));
            let facts = CaseFacts { case_ref, cancelled_at, priority, safety_sensitive, call_attempts, declined };
            history.cases.insert(facts.case_ref.clone(), facts);
        }
        for (case_ref, category) in from_json::<(String, String)>(&read.1)? {
            history.categories.entry(case_ref).or_default().insert(category);
        }
        for (id, case_ref, kind, test, status, accepted_at, message_status) in
            from_json::<(String, String, String, i64, String, i64, Option<String>)>(&read.2)?
        {
            let status = JobStatus::try_from(status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let message = message_status.is_some();
            let sending = message_status.as_deref() == Some(MessageStatus::Sending.as_str());
            let job = JobFacts { id, case_ref, kind, test: Flag::from(test), status, accepted_at, message, sending };
            history.jobs.entry(job.case_ref.clone()).or_default().push(job);
        }
        let found = |text: &str, plain: &[String], keys: &[String]| -> Result<BTreeSet<String>> {
            let found: BTreeSet<String> = from_json::<(String,)>(text)?.into_iter().map(|(k,)| k).collect();
            Ok(plain.iter().zip(keys).filter(|(_, k)| found.contains(*k)).map(|(p, _)| p.clone()).collect())
        };
        history.suppressed = found(&read.3, &addresses, &address_keys)?;
        history.numbers_of_others = found(&read.4, &numbers, &number_keys)?;
        history.approved_templates = from_json::<(String, String)>(&read.5)?
            .into_iter()
            .filter_map(|(n, c)| Some((n, Channel::parse(&c)?)))
            .collect();
        Ok(history)
    }
}
