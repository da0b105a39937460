//! The review queue: jobs the gateway held back or gave up on, and alerts raised by replies.
//! Distress alerts come first, then by urgency, newest first. Each action needs a reason, which
//! goes on the case's timeline with the member of staff's name.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::view::{self, when};
use super::{PageResult, Staff, StaffError, done};
use crate::domain::contact::normalise_uk_mobile;
use crate::domain::reply::ReplyClass;
use crate::domain::reply::alert_for;
use crate::service::{AppState, review};
use crate::store::{OpenAlert, OutreachRecord, UnmatchedReply, Waiting, WaitingItem, review_code};

/// How many items one page of the queue shows.
const PAGE_SIZE: usize = 50;

/// Urgency: 0 urgent (distress), 1 high (someone may be at risk), 2 normal.
const LEVELS: [&str; 3] = ["Urgent", "High", "Normal"];

/// What a reason means, in words for staff, and how urgent it is.
fn held_reason(code: &str) -> (&'static str, &'static str, usize) {
    match code {
        "number_conflict" => (
            "Number also belongs to someone else",
            "The number we would text is recorded on another case as someone else's (for example a suspect's). Check it before anything is sent.",
            1,
        ),
        "no_safe_number" => (
            "No number that is safe to text",
            "A safety-sensitive case needs a victim's mobile number explicitly marked safe to text. Call the victim or ask the referrer for a safe number.",
            1,
        ),
        "minor" => (
            "Victim is under 18",
            "Messages to children need a person's judgement. Decide with the safeguarding lead how to make contact.",
            1,
        ),
        "possible_priority" => (
            "May be a priority case",
            "The referral was not marked priority, but its crime, vulnerabilities or summary suggest it is. Check with triage before an information pack goes out.",
            1,
        ),
        "no_approved_template" => (
            "No approved wording",
            "There is no approved version of the template this message needs. Approve one on the Templates page, then release.",
            2,
        ),
        "render_failed" => (
            "Wording could not be filled in",
            "The approved wording could not be filled in with this case's details. Fix the template, then release.",
            2,
        ),
        "dead_lettered" => (
            "Sending failed or was cut off",
            "The provider failed every attempt, or a send was cut off or never answered (the timeline says send_interrupted or send_in_doubt) and the message may have arrived. In that case check with the provider first (our message id is its reference): release sends it again. Release to try again once the provider works, or cancel.",
            2,
        ),
        _ => ("Held for review", "A person must look at this job before it is sent.", 2),
    }
}

fn alert_reason(code: &str) -> (&'static str, &'static str, usize) {
    match code {
        "distress" => (
            "Distress reply",
            "The victim's reply suggests they may be in danger now. Act at once: follow the urgent-contact procedure.",
            0,
        ),
        "number_conflict" => (
            "Reply says the number is not safe",
            "Whoever replied says the number is wrong or not safe. The number is already blocked as unsafe; check the case.",
            1,
        ),
        "opt_out" => ("Opted out", "The victim replied STOP: nothing more will be texted to this number.", 2),
        "time_preference" => (
            "Asked for a call time",
            "The victim said when suits them for a call; it is recorded on the case. Pass it to the advocate.",
            2,
        ),
        crate::service::survey::COMMENT_ALERT => (
            "Survey answer with a comment",
            "The victim answered the satisfaction survey and wrote more than the score. Read it in case it asks for anything.",
            2,
        ),
        _ => ("Reply to read", "A reply the gateway could not classify. Read it and decide what to do.", 2),
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "priority_pretext" => "Pre-text",
        "information_pack" => "Information pack",
        "satisfaction_survey" => "Satisfaction survey",
        _ => "Job",
    }
}

/// The job's phone numbers that could be marked unsafe (UK mobiles), by their place in the request.
fn job_phones(job: &OutreachRecord) -> Vec<Value> {
    let Ok(request) = job.request() else { return Vec::new() };
    request
        .contact
        .phones
        .iter()
        .enumerate()
        .filter(|(_, p)| normalise_uk_mobile(&p.number).is_some())
        .map(|(i, p)| {
            let whose = p.belongs_to.clone().unwrap_or_else(|| "victim".into());
            json!({ "index": i, "label": format!("{} ({whose})", p.number.trim()) })
        })
        .collect()
}

fn job_item(job: &OutreachRecord) -> Value {
    let code = review_code(job.status, job.reason.as_deref());
    let (title, explanation, level) = held_reason(&code);
    let base = format!("/staff/review/outreach/{}", job.id);
    json!({
        "is_job": true,
        "id": job.id,
        "code": code,
        "title": title,
        "explanation": explanation,
        "level": LEVELS[level],
        "level_class": LEVELS[level].to_lowercase(),
        "at": when(job.updated_at),
        "case_ref": job.case_ref,
        "case_url": view::case_url(&job.case_ref),
        "kind": kind_label(&job.kind),
        "channel": job.channel,
        "template": job.template,
        "phones": job_phones(job),
        "release_url": format!("{base}/release"),
        "cancel_url": format!("{base}/cancel"),
        "unsafe_url": format!("{base}/unsafe"),
    })
}

fn alert_item(alert: &OpenAlert) -> Value {
    let code = alert.event.reason.clone().unwrap_or_default();
    let (title, explanation, level) = alert_reason(&code);
    let base = format!("/staff/review/alerts/{}", alert.event.id);
    json!({
        "is_job": false,
        "id": alert.event.id,
        "code": code,
        "title": title,
        "explanation": explanation,
        "level": LEVELS[level],
        "level_class": LEVELS[level].to_lowercase(),
        "at": when(alert.event.at),
        "case_ref": alert.case_ref,
        "case_url": view::case_url(&alert.case_ref),
        "classification": alert.event.classification,
        "reply_body": alert.reply_body,
        "has_reply": alert.reply_id.is_some(),
        "ack_url": format!("{base}/acknowledge"),
        "unsafe_url": format!("{base}/unsafe"),
    })
}

/// The alert a reply that matched no case stands for (the reply table's), if any: an opt-in
/// needs no one.
fn unmatched_alert(classification: &str) -> Option<&'static str> {
    ReplyClass::parse(classification).and_then(alert_for).map(|(_, reason)| reason)
}

/// A reply from a number we had not texted: on no case, so it is shown here until acknowledged.
fn unmatched_reply_item(reply: &UnmatchedReply) -> Value {
    let code = unmatched_alert(&reply.classification).unwrap_or("reply_needs_review");
    let (title, explanation, level) = alert_reason(code);
    json!({
        "is_job": false,
        "is_unmatched": true,
        "id": reply.id,
        "code": code,
        "title": title,
        "explanation": format!("It came from a number we have not texted, so it is on no case; find who sent it before acting. {explanation}"),
        "level": LEVELS[level],
        "level_class": LEVELS[level].to_lowercase(),
        "at": when(reply.received_at),
        "classification": reply.classification,
        "reply_body": reply.body,
        "has_reply": false,
        "ack_url": format!("/staff/review/replies/{}/acknowledge", reply.id),
    })
}

/// The level of urgency of what waits (an index into `LEVELS`), or None when no one need look.
fn level(waiting: &Waiting) -> Option<usize> {
    match waiting.item {
        WaitingItem::Job(_) => Some(held_reason(&waiting.code).2),
        WaitingItem::Alert(_) => Some(alert_reason(&waiting.code).2),
        WaitingItem::UnmatchedReply(_) => unmatched_alert(&waiting.code).map(|alert| alert_reason(alert).2),
    }
}

/// Everything waiting with its level, most urgent first and newest first within a level. All of
/// it is ranked (it is small: ids and codes) so that paging never hides an urgent item.
async fn ranked(state: &AppState) -> Result<Vec<(usize, Waiting)>, StaffError> {
    let mut ranked: Vec<(usize, Waiting)> =
        state.store.waiting_for_review().await?.into_iter().filter_map(|w| Some((level(&w)?, w))).collect();
    // Ids break ties, so that pages do not shuffle between views.
    ranked.sort_by(|(la, a), (lb, b)| la.cmp(lb).then(b.at.cmp(&a.at)).then(b.item.cmp(&a.item)));
    Ok(ranked)
}

/// Counts for the start page.
pub async fn summary(state: &AppState) -> Result<Value, StaffError> {
    let ranked = ranked(state).await?;
    let count = |level: usize| ranked.iter().filter(|(l, _)| *l == level).count();
    Ok(json!({ "total": ranked.len(), "urgent": count(0), "high": count(1) }))
}

#[derive(Debug, Deserialize)]
pub struct QueuePage {
    /// From 1.
    page: Option<usize>,
}

pub async fn queue(State(state): State<Arc<AppState>>, staff: Staff, Query(q): Query<QueuePage>) -> PageResult {
    let ranked = ranked(&state).await?;
    let pages = ranked.len().div_ceil(PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let first = (page - 1) * PAGE_SIZE;
    let mut items = Vec::with_capacity(PAGE_SIZE);
    // An item erased since it was ranked is left out.
    for (_, waiting) in ranked.iter().skip(first).take(PAGE_SIZE) {
        match &waiting.item {
            WaitingItem::Job(id) => {
                if let Some(job) = state.store.outreach(id).await? {
                    items.push(job_item(&job));
                }
            }
            WaitingItem::Alert(id) => {
                if let Some(alert) = state.store.alert(*id).await? {
                    items.push(alert_item(&alert));
                }
            }
            WaitingItem::UnmatchedReply(id) => {
                if let Some(reply) = state.store.unmatched_reply(id).await? {
                    items.push(unmatched_reply_item(&reply));
                }
            }
        }
    }
    let data = json!({
        "title": "Review queue",
        "nav": { "review": true },
        "items": items,
        "total": ranked.len(),
        "paged": pages > 1,
        "from": first + 1,
        "to": (first + PAGE_SIZE).min(ranked.len()),
        "page": page,
        "pages": pages,
        "previous": (page > 1).then(|| page - 1),
        "next": (page < pages).then(|| page + 1),
    });
    view::page("review", &staff, data)
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    reason: String,
    /// For "mark number unsafe" on a job: which of its phones.
    phone: Option<String>,
    /// Where to go afterwards (a staff page).
    back: Option<String>,
}

impl ActionForm {
    fn reason(&self) -> Result<&str, StaffError> {
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err(StaffError::BadRequest("give a reason: it goes on the case's timeline".into()));
        }
        if reason.chars().count() > 2000 {
            return Err(StaffError::BadRequest("keep the reason under 2,000 characters".into()));
        }
        Ok(reason)
    }

    fn back(&self) -> &str {
        match self.back.as_deref() {
            Some(b) if b.starts_with("/staff/") && !b.contains("//") => b,
            _ => "/staff/review",
        }
    }
}

pub async fn release(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let job = review::release(&state, &id, &staff.actor(), form.reason()?).await?;
    tracing::info!(outreach_id = %id, "held job released by staff");
    Ok(done(
        form.back(),
        format!(
            "Released the job on case {}: the safe-contact rules decide again now, and it is sent only if they allow it. The case timeline shows the outcome.",
            job.case_ref
        ),
    ))
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let job =
        review::cancel_for_review(&state.store, &id, &staff.actor(), form.reason()?, state.clock.now_ms()).await?;
    tracing::info!(outreach_id = %id, "held job cancelled by staff");
    Ok(done(form.back(), format!("Cancelled the job on case {}: nothing will be sent.", job.case_ref)))
}

pub async fn job_unsafe(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let reason = form.reason()?;
    let job = state.store.outreach(&id).await?.ok_or(StaffError::NotFound("job"))?;
    let index: usize = form
        .phone
        .as_deref()
        .and_then(|p| p.parse().ok())
        .ok_or(StaffError::BadRequest("choose the number to mark unsafe".into()))?;
    let request = job.request().map_err(|_| StaffError::BadRequest("this job's contact details are gone".into()))?;
    let number = request
        .contact
        .phones
        .get(index)
        .and_then(|p| normalise_uk_mobile(&p.number))
        .ok_or(StaffError::BadRequest("choose one of the job's mobile numbers".into()))?;
    let key = state.store.address_key(&number);
    let about = json!({ "outreach_id": id });
    review::mark_unsafe(&state.store, &job.case_ref, &key, about, &staff.actor(), reason, state.clock.now_ms()).await?;
    tracing::info!(outreach_id = %id, "number marked unsafe by staff");
    Ok(done(
        form.back(),
        format!(
            "The number is marked unsafe on case {}: nothing will be texted to it. Release the job to decide again, or cancel it.",
            job.case_ref
        ),
    ))
}

pub async fn acknowledge(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let case_ref =
        review::acknowledge_alert(&state.store, id, &staff.actor(), form.reason()?, state.clock.now_ms()).await?;
    tracing::info!(event_id = id, "alert acknowledged by staff");
    Ok(done(form.back(), format!("Alert on case {case_ref} acknowledged.")))
}

pub async fn acknowledge_unmatched_reply(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    review::acknowledge_unmatched_reply(&state.store, &id, &staff.actor(), form.reason()?, state.clock.now_ms())
        .await?;
    tracing::info!(reply_id = %id, "reply from an unknown number acknowledged by staff");
    Ok(done(form.back(), "Reply acknowledged."))
}

pub async fn alert_unsafe(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let reason = form.reason()?;
    let alert = state.store.alert(id).await?.ok_or(StaffError::NotFound("alert"))?;
    let reply = alert.reply_id.as_deref().ok_or(StaffError::BadRequest("this alert has no reply".into()))?;
    let key = state.store.reply_from_key(reply).await?.ok_or(StaffError::NotFound("reply"))?;
    let about = json!({ "alert_event_id": id });
    review::mark_unsafe(&state.store, &alert.case_ref, &key, about, &staff.actor(), reason, state.clock.now_ms())
        .await?;
    tracing::info!(event_id = id, "number marked unsafe by staff");
    Ok(done(
        form.back(),
        format!("The number that replied is marked unsafe on case {}: nothing will be texted to it.", alert.case_ref),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hold_reason_and_alert_has_words_for_staff() {
        for code in ["possible_priority", "minor", "no_safe_number", "number_conflict", "no_approved_template"] {
            assert_ne!(held_reason(code).0, "Held for review", "{code}");
        }
        assert_eq!(alert_reason("distress").2, 0, "distress is the only urgent level");
        assert!(held_reason("number_conflict").2 > 0);
    }
}
