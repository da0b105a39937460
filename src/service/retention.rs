//! Retention: personal data is kept only as long as the service needs it. A periodic pass (in
//! every worker process) redacts message text and recipients, reply text and senders, and the
//! personal fields of finished outreach requests once they are older than the retention that
//! applies, and records a `redacted` event for each. Counts, codes and times stay, so the
//! reports add up afterwards.
//!
//! Which retention applies (each configurable, in days):
//! - `default`: a message, counted from its last status (its final status, or the last one a
//!   provider reported); a reply, from when it came; a staff note and a call's reason, from when
//!   they were written; a sent job's request, with its message.
//! - `not_taken_up`: everything on a case the victim declined (a `declined` call) or that was
//!   cancelled, instead of the other two.
//! - `never_reached`: the request of a job that ended without a message going out (blocked,
//!   cancelled, failed before sending), counted from that end.
//! - `declined_reason`: the reason a victim gave for declining on a call, from when the call was
//!   recorded, instead of the others: the report groups these reasons (default 100 days, a
//!   quarter and the time to report on it).
//!
//! Held, deferred and dead-lettered jobs wait for a person or a time; one that waits untouched
//! for the `never_reached` retention is closed (`cancelled`, an `expired` event) and its request
//! reduced at once. Queued jobs are the queue's. A call window a reply asked for goes with the
//! last such reply; what the sandbox wrote to its outbox goes with its message; failed-login
//! counts go after a day. The list of every personal column and its rule: docs/retention.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::domain::call::CallOutcome;
use crate::domain::contact::{normalise_email, normalise_uk_mobile, postal_key};
use crate::domain::event::EventType;
use crate::domain::reply::ReplyClass;
use crate::domain::{JobStatus, OutreachRequest};
use crate::store::{Cursor, Event, Store, StoreError};
use crate::telemetry::Metrics;

pub const ACTOR: &str = "retention";
const DAY_MS: i64 = 24 * 3600 * 1000;
const BATCH: i64 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    pub default_days: u32,
    pub not_taken_up_days: u32,
    pub never_reached_days: u32,
    pub declined_reason_days: u32,
    /// How often the pass runs.
    pub every: Duration,
    /// Where sandbox providers write what they "sent" (copies of messages outside the database).
    pub outbox: Option<PathBuf>,
}

impl RetentionConfig {
    pub fn from_config(config: &crate::config::Config) -> RetentionConfig {
        RetentionConfig {
            default_days: config.retention_days,
            not_taken_up_days: config.retention_not_taken_up_days,
            never_reached_days: config.retention_never_reached_days,
            declined_reason_days: config.retention_call_reason_days,
            every: Duration::from_secs(config.retention_interval_secs.max(1)),
            outbox: Some(PathBuf::from(&config.outbox_dir)),
        }
    }

    fn ms(days: u32) -> i64 {
        i64::from(days) * DAY_MS
    }

    /// Anything ending after this can't be due under any of the retentions.
    fn earliest_cutoff(&self, now: i64) -> i64 {
        let days = [self.default_days, self.not_taken_up_days, self.never_reached_days, self.declined_reason_days];
        now - Self::ms(days.into_iter().min().unwrap_or(0))
    }
}

/// Which retention a record falls under (named in its `redacted` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Default,
    NotTakenUp,
    NeverReached,
    DeclinedReason,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Default => "default",
            Class::NotTakenUp => "not_taken_up",
            Class::NeverReached => "never_reached",
            Class::DeclinedReason => "declined_reason",
        }
    }

    fn days(self, config: &RetentionConfig) -> u32 {
        match self {
            Class::Default => config.default_days,
            Class::NotTakenUp => config.not_taken_up_days,
            Class::NeverReached => config.never_reached_days,
            Class::DeclinedReason => config.declined_reason_days,
        }
    }
}

/// What one pass redacted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub messages: u64,
    pub replies: u64,
    pub requests: u64,
    /// Staff notes (the reasons given for review actions: free text that may name people).
    pub notes: u64,
    /// Waiting jobs closed because nobody acted on them.
    pub expired: u64,
    /// Reasons given with calls (why a victim declined: free text).
    pub call_reasons: u64,
}

/// Run a pass now and then every `config.every`, until `shutdown`.
pub async fn run(
    store: Store,
    clock: crate::clock::Clock,
    config: RetentionConfig,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    loop {
        match sweep(&store, &config, clock.now_ms(), &metrics).await {
            Ok(s) if s != Swept::default() => {
                tracing::info!(
                    messages = s.messages,
                    replies = s.replies,
                    requests = s.requests,
                    notes = s.notes,
                    expired = s.expired,
                    call_reasons = s.call_reasons,
                    "retention redacted personal data"
                )
            }
            Ok(_) => tracing::debug!("retention: nothing due"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; will try again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.every) => {}
        }
    }
}

/// One pass: messages first, so that sent jobs whose message went can go with it.
pub async fn sweep(store: &Store, config: &RetentionConfig, now: i64, metrics: &Metrics) -> Result<Swept, StoreError> {
    let before = config.earliest_cutoff(now);
    let due = |class: Class, end: i64| end < now - RetentionConfig::ms(class.days(config));
    let mut swept = Swept::default();

    let mut cursor: Cursor = (i64::MIN, String::new());
    loop {
        let messages = store.messages_due_for_redaction(before, &cursor, BATCH).await?;
        let refs: Vec<&str> = messages.iter().map(|m| m.case_ref.as_str()).collect();
        let declined = store.not_taken_up_since(&refs).await?;
        let mut tx = store.begin().await?;
        let mut done = 0;
        for m in &messages {
            let class = if declined.contains_key(&m.case_ref) { Class::NotTakenUp } else { Class::Default };
            if due(class, m.status_at) && store.redact_message(&mut tx, &m.id, now).await? {
                redacted_event(&m.case_ref, now, "message", class)
                    .message(&m.id)
                    .outreach(&m.outreach_id)
                    .append(&mut tx)
                    .await?;
                done += 1;
            }
        }
        tx.commit().await?;
        forget_outbox_copies(config.outbox.as_deref(), messages.iter().map(|m| m.id.clone()).collect()).await;
        swept.messages += done;
        match messages.last() {
            Some(last) if messages.len() as i64 == BATCH => cursor = (last.status_at, last.id.clone()),
            _ => break,
        }
    }

    let mut cursor: Cursor = (i64::MIN, String::new());
    loop {
        let replies = store.replies_due_for_redaction(before, &cursor, BATCH).await?;
        let refs: Vec<&str> = replies.iter().filter_map(|r| r.case_ref.as_deref()).collect();
        let declined = store.not_taken_up_since(&refs).await?;
        let mut tx = store.begin().await?;
        let mut done = 0;
        for r in &replies {
            let class = match &r.case_ref {
                Some(c) if declined.contains_key(c) => Class::NotTakenUp,
                _ => Class::Default,
            };
            if due(class, r.received_at) && store.redact_reply(&mut tx, &r.id, now).await? {
                if let Some(case_ref) = &r.case_ref {
                    redacted_event(case_ref, now, "reply", class)
                        .detail(json!({ "what": "reply", "retention": class.as_str(), "reply_id": r.id }))
                        .append(&mut tx)
                        .await?;
                    // The call window a reply asked for is its words too.
                    if r.classification == ReplyClass::TimePreference.as_str() {
                        store.clear_call_window_without_reply(&mut tx, case_ref).await?;
                    }
                }
                done += 1;
            }
        }
        tx.commit().await?;
        swept.replies += done;
        match replies.last() {
            Some(last) if replies.len() as i64 == BATCH => cursor = (last.received_at, last.id.clone()),
            _ => break,
        }
    }

    // Jobs nobody acted on: closed, and their request reduced at once.
    let stale_before = now - RetentionConfig::ms(config.never_reached_days);
    let mut cursor: Cursor = (i64::MIN, String::new());
    loop {
        let jobs = store.stale_waiting_jobs(stale_before, &cursor, BATCH).await?;
        let mut tx = store.begin().await?;
        for job in &jobs {
            if !store.expire_waiting_job(&mut tx, job, now).await? {
                continue;
            }
            // Not a cancellation: its last decision stays what the reports count it by.
            Event::new(&job.case_ref, now, ACTOR, EventType::Expired).outreach(&job.id).append(&mut tx).await?;
            let reduced = reduce(store, job.request_json.as_deref());
            if store.redact_outreach(&mut tx, &job.id, &reduced.to_string(), now).await? {
                redacted_event(&job.case_ref, now, "request", Class::NeverReached)
                    .outreach(&job.id)
                    .append(&mut tx)
                    .await?;
                swept.requests += 1;
            }
            swept.expired += 1;
        }
        tx.commit().await?;
        match jobs.last() {
            Some(last) if jobs.len() as i64 == BATCH => cursor = (last.updated_at, last.id.clone()),
            _ => break,
        }
    }

    let mut cursor: Cursor = (i64::MIN, String::new());
    loop {
        let jobs = store.jobs_due_for_redaction(before, &cursor, BATCH).await?;
        let refs: Vec<&str> = jobs.iter().map(|j| j.case_ref.as_str()).collect();
        let declined = store.not_taken_up_since(&refs).await?;
        let mut tx = store.begin().await?;
        let mut done = 0;
        for job in &jobs {
            let sent = matches!(job.status, JobStatus::Sent | JobStatus::Failed) && job.message_id.is_some();
            let class = if declined.contains_key(&job.case_ref) {
                Class::NotTakenUp
            } else if sent {
                Class::Default
            } else {
                Class::NeverReached
            };
            // A sent job goes with its message; one that never went out, from its end.
            let ready = if sent { job.message_redacted_at.is_some() } else { due(class, job.updated_at) };
            if !ready {
                continue;
            }
            let reduced = reduce(store, job.request_json.as_deref());
            if store.redact_outreach(&mut tx, &job.id, &reduced.to_string(), now).await? {
                redacted_event(&job.case_ref, now, "request", class).outreach(&job.id).append(&mut tx).await?;
                // A message that never went out (a dead-lettered job cancelled later) goes too.
                if let Some(message_id) = &job.message_id
                    && job.message_redacted_at.is_none()
                    && store.redact_message(&mut tx, message_id, now).await?
                {
                    redacted_event(&job.case_ref, now, "message", class)
                        .message(message_id)
                        .outreach(&job.id)
                        .append(&mut tx)
                        .await?;
                    forget_outbox_copies(config.outbox.as_deref(), vec![message_id.clone()]).await;
                    swept.messages += 1;
                }
                done += 1;
            }
        }
        tx.commit().await?;
        swept.requests += done;
        match jobs.last() {
            Some(last) if jobs.len() as i64 == BATCH => cursor = (last.updated_at, last.id.clone()),
            _ => break,
        }
    }
    // Staff notes, from when they were written, as replies are.
    let mut cursor: Cursor = (i64::MIN, String::new());
    loop {
        let notes = store.notes_due_for_redaction(before, &cursor, BATCH).await?;
        let refs: Vec<&str> = notes.iter().map(|n| n.case_ref.as_str()).collect();
        let declined = store.not_taken_up_since(&refs).await?;
        let mut tx = store.begin().await?;
        for n in &notes {
            let class = if declined.contains_key(&n.case_ref) { Class::NotTakenUp } else { Class::Default };
            if due(class, n.at) && store.redact_note(&mut tx, &n.id, now).await? {
                redacted_event(&n.case_ref, now, "note", class)
                    .detail(json!({ "what": "note", "retention": class.as_str(), "note_id": n.id }))
                    .append(&mut tx)
                    .await?;
                swept.notes += 1;
            }
        }
        tx.commit().await?;
        match notes.last() {
            Some(last) if notes.len() as i64 == BATCH => cursor = (last.at, last.id.clone()),
            _ => break,
        }
    }

    store.forget_login_failures(now - crate::store::LOGIN_FAILURES_FORGOTTEN_MS).await?;

    // Why a victim declined a call: free text, like a staff note, from when it was recorded.
    let mut cursor: Cursor = (i64::MIN, String::new());
    loop {
        let calls = store.call_reasons_due_for_redaction(before, &cursor, BATCH).await?;
        let refs: Vec<&str> = calls.iter().map(|c| c.case_ref.as_str()).collect();
        let declined = store.not_taken_up_since(&refs).await?;
        let mut tx = store.begin().await?;
        for c in &calls {
            let class = if c.outcome == CallOutcome::Declined.as_str() {
                Class::DeclinedReason
            } else if declined.contains_key(&c.case_ref) {
                Class::NotTakenUp
            } else {
                Class::Default
            };
            if due(class, c.at) && store.redact_call_reason(&mut tx, &c.id, now).await? {
                redacted_event(&c.case_ref, now, "call_reason", class)
                    .detail(json!({ "what": "call_reason", "retention": class.as_str(), "call_id": c.id }))
                    .append(&mut tx)
                    .await?;
                swept.call_reasons += 1;
            }
        }
        tx.commit().await?;
        match calls.last() {
            Some(last) if calls.len() as i64 == BATCH => cursor = (last.at, last.id.clone()),
            _ => break,
        }
    }

    metrics.redacted("call_reason", swept.call_reasons);
    metrics.redacted("message", swept.messages);
    metrics.redacted("note", swept.notes);
    metrics.redacted("reply", swept.replies);
    metrics.redacted("request", swept.requests);
    Ok(swept)
}

/// A request's reduced form (see [`reduced_request`]); an unreadable one keeps nothing.
fn reduce(store: &Store, request_json: Option<&str>) -> Value {
    match request_json.map(serde_json::from_str::<OutreachRequest>) {
        Some(Ok(request)) => reduced_request(&request, |a| store.address_key(a)),
        _ => json!({ "redacted": true }),
    }
}

/// Remove what the sandbox wrote for these messages (its outbox is a copy outside the database).
pub(crate) async fn forget_outbox_copies(outbox: Option<&Path>, message_ids: Vec<String>) {
    let Some(outbox) = outbox.map(Path::to_path_buf) else { return };
    if message_ids.is_empty() || !outbox.exists() {
        return;
    }
    let forgot = tokio::task::spawn_blocking(move || crate::channels::sandbox::forget(&outbox, &message_ids)).await;
    if !matches!(forgot, Ok(Ok(()))) {
        tracing::warn!("the sandbox outbox could not be cleared of redacted messages; will try again");
    }
}

fn redacted_event(case_ref: &str, now: i64, what: &str, class: Class) -> Event {
    Event::new(case_ref, now, ACTOR, EventType::Redacted)
        .reason("retention")
        .detail(json!({ "what": what, "retention": class.as_str() }))
}

/// What is kept of a request once its personal data goes: what the policy decided on and the
/// reports group by (kind, categories, flags, referral, channels and their safety marks), with
/// each address replaced by its keyed hash. Names, numbers, emails, postal addresses, the crime
/// summary, the date of birth and personalisation values go.
pub fn reduced_request(req: &OutreachRequest, key: impl Fn(&str) -> String) -> Value {
    let c = &req.contact;
    json!({
        "redacted": true,
        "kind": req.kind.as_str(),
        "priority": req.priority,
        "referral": req.referral,
        "crime": { "categories": req.crime.categories },
        "victim": {
            "is_under_18": req.victim.is_under_18,
            "vulnerabilities": req.victim.vulnerabilities,
            "language": req.victim.language,
        },
        "contact": {
            // Whose phone, as the policy reads it: `belongs_to` is free text ("her brother Tom").
            "phones": c.phones.iter().map(|p| json!({
                "key": normalise_uk_mobile(&p.number).map(|n| key(&n)),
                "belongs_to": if p.is_victims() { "victim" } else { "other" },
                "safe_to_text": p.safe_to_text,
                "safe_to_voicemail": p.safe_to_voicemail,
            })).collect::<Vec<_>>(),
            "email": c.email.as_ref().map(|e| json!({
                "key": normalise_email(&e.address).map(|a| key(&a)),
                "safe": e.safe,
            })),
            "postal": c.postal.as_ref().map(|p| json!({ "key": postal_key(p).map(|a| key(&a)), "safe": p.safe })),
            "preferred_method": c.preferred_method,
            "safe_times": c.safe_times,
            "do_not_contact": c.do_not_contact,
        },
        "consent": req.consent,
        "personalisation_keys": req.personalisation.keys().collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reduced_request_keeps_codes_and_keys_but_no_personal_value() {
        let req: OutreachRequest = serde_json::from_value(json!({
            "request_id": "r1", "case_ref": "C1", "kind": "information_pack", "priority": false,
            "referral": {"source": "police", "referred_at": "2026-11-20T10:00:00Z", "local_authority": "Coventry"},
            "crime": {"categories": ["burglary"], "summary": "Quennell's shed broken into"},
            "victim": {"first_name": "Jonathan", "date_of_birth": "1980-01-01", "vulnerabilities": ["disability"]},
            "contact": {
                "phones": [{"number": "07700 900888", "belongs_to": "victim", "safe_to_text": true},
                           {"number": "07700 900999", "belongs_to": "her brother Tobias", "safe_to_text": false}],
                "email": {"address": "jq@example.org", "safe": true},
                "postal": {"name": "Jonathan Quennell", "lines": ["9 Larkspur Mews"], "postcode": "CV3 9ZZ", "safe": true},
                "preferred_method": "email"
            },
            "consent": {"information_pack": true},
            "personalisation": {"advocate_name": "Marguerite"}
        }))
        .unwrap();
        let reduced = reduced_request(&req, |a| format!("k({})", a.len()));
        let text = reduced.to_string();
        for personal in
            ["Jonathan", "Quennell", "900888", "jq@example", "Larkspur", "CV3", "1980", "Marguerite", "shed", "Tobias"]
        {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
        assert_eq!(reduced["kind"], "information_pack");
        assert_eq!(reduced["crime"]["categories"], json!(["burglary"]));
        assert_eq!(reduced["referral"]["local_authority"], "Coventry");
        assert_eq!(reduced["contact"]["phones"][0]["key"], "k(13)");
        assert_eq!(reduced["contact"]["phones"][1]["belongs_to"], "other");
        assert_eq!(reduced["contact"]["email"]["safe"], true);
        assert_eq!(reduced["personalisation_keys"], json!(["advocate_name"]));
        assert!(serde_json::from_value::<OutreachRequest>(reduced).is_err(), "a reduced request can't be decided");
    }
}
