//! A case's page: its jobs and their decisions, messages with their rendered text (until
//! redacted), replies with their classification, calls, and the whole timeline with the notes
//! staff wrote.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{Value, json};

use super::view::{self, when, when_opt};
use super::{PageResult, Staff, StaffError};
use crate::service::AppState;
use crate::store::EventRow;

#[derive(Debug, Deserialize)]
pub struct FindQuery {
    #[serde(rename = "ref", default)]
    case_ref: String,
}

/// The case search box in the menu.
pub async fn find(State(state): State<Arc<AppState>>, _staff: Staff, Query(q): Query<FindQuery>) -> PageResult {
    let case_ref = q.case_ref.trim();
    if case_ref.is_empty() {
        return Err(StaffError::BadRequest("type a case reference, such as VS-2026-000123".into()));
    }
    if state.store.case(case_ref).await?.is_none() {
        return Err(StaffError::NotFound("case with that reference"));
    }
    Ok(Redirect::to(&view::case_url(case_ref)).into_response())
}

fn event_label(kind: &str) -> &'static str {
    match kind {
        "accepted" => "Job accepted and decided",
        "decided" => "Decided again",
        "sent" => "Sent",
        "send_failed" => "Sending failed",
        "status" => "Provider status",
        "status_ignored" => "Provider status (late or out of order: not applied)",
        "reply" => "Reply received",
        "suppressed" => "Number or address blocked",
        "suppression_lifted" => "Block lifted",
        "alert" => "Alert for staff",
        "call" => "Call attempt",
        "cancelled" => "Cancelled",
        "dead_lettered" => "Gave up sending",
        "released" => "Released by staff",
        "requeued" => "Put back on the queue",
        "staff_action" => "Staff action",
        "redacted" => "Personal details removed",
        "expired" => "Closed: nobody acted on it in time",
        "oncall_notified" => "On-call staff notified",
        "oncall_failed" => "On-call notification not sent",
        "oncall_acknowledged" => "Urgent reply acknowledged",
        _ => "Event",
    }
}

/// An event's facts as label/value pairs, and the note a member of staff gave with it.
/// `notes` holds staff notes by id and calls' reasons by call id (None once redacted).
fn event_json(e: &EventRow, notes: &HashMap<String, Option<String>>) -> Value {
    let mut facts = Vec::new();
    let mut fact = |k: &str, v: &str| facts.push(json!({ "k": k, "v": v }));
    if let Some(v) = &e.outcome {
        fact("Decision", v);
    }
    if let Some(v) = &e.reason {
        fact("Reason", v);
    }
    if let Some(v) = &e.channel {
        fact("Channel", v);
    }
    if let Some(v) = &e.status {
        fact("Status", v);
    }
    if let Some(v) = &e.classification {
        fact("Classified", v);
    }
    let detail: Value = e.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    let mut note = None;
    if let Value::Object(map) = &detail {
        for (k, v) in map {
            match k.as_str() {
                "note_id" => note = v.as_str().and_then(|id| notes.get(id).cloned()),
                // A call's reason shows as its note, when one was given.
                "call_id" if e.kind == "call" => note = v.as_str().and_then(|id| notes.get(id).cloned()),
                "reply_id" | "alert_event_id" | "outreach_id" | "call_id" | "reason_given" => {}
                _ => fact(k, &v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())),
            }
        }
    }
    json!({
        "at": when(e.at),
        "actor": e.actor,
        "label": event_label(&e.kind),
        "kind": e.kind,
        "facts": facts,
        "has_note": note.is_some(),
        "note": note.flatten(),
        "message_id": e.message_id,
    })
}

/// "by police, Mon 23 Nov 2026, 10:00, Birmingham": what is known of the referral.
fn referral(case: &crate::store::CaseRecord) -> Option<String> {
    let parts: Vec<String> = [
        case.referral_source.as_ref().map(|s| format!("by {s}")),
        case.referred_at.map(view::local_time),
        case.local_authority.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

pub async fn case(State(state): State<Arc<AppState>>, staff: Staff, Path(case_ref): Path<String>) -> PageResult {
    let store = &state.store;
    let case = store.case(&case_ref).await?.ok_or(StaffError::NotFound("case"))?;
    let outreach = store.case_outreach(&case_ref).await?;
    let messages = store.case_messages(&case_ref).await?;
    let replies = store.case_replies(&case_ref).await?;
    let calls = store.calls(&case_ref).await?;
    let events = store.case_events(&case_ref).await?;
    let mut notes: HashMap<String, Option<String>> =
        store.case_notes(&case_ref).await?.into_iter().map(|n| (n.id, n.note)).collect();
    // A reason given with a call reads like a note on the timeline.
    notes.extend(
        calls
            .iter()
            .filter(|c| c.reason.is_some() || c.redacted_at.is_some())
            .map(|c| (c.id.clone(), c.reason.clone())),
    );
    let memory = store.case_categories(&case_ref).await?;

    // The worker records a decision to send as an event only, so the latest decision of a job is
    // read from the timeline rather than from the job's own row.
    let mut latest: HashMap<&str, &EventRow> = HashMap::new();
    for e in events.iter().filter(|e| e.kind == "accepted" || e.kind == "decided") {
        if let Some(id) = e.outreach_id.as_deref() {
            latest.insert(id, e);
        }
    }
    let jobs: Vec<Value> = outreach
        .iter()
        .map(|o| {
            let decision = latest.get(o.id.as_str());
            let template = decision
                .and_then(|e| e.detail.as_deref())
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .and_then(|d| d["template"].as_str().map(str::to_string));
            json!({
                "id": o.id,
                "request_id": o.request_id,
                "kind": o.kind,
                "status": o.status,
                "test": o.test.0,
                "under_review": o.status.waits_for_review(),
                "outcome": decision.and_then(|e| e.outcome.clone()).unwrap_or_else(|| o.outcome.clone()),
                "reason": decision.map_or(o.reason.clone(), |e| e.reason.clone()),
                "channel": decision.map_or(o.channel.clone(), |e| e.channel.clone()),
                "template": template.or_else(|| o.template.clone()),
                "accepted": when(o.accepted_at),
                "not_before": when_opt(o.not_before),
            })
        })
        .collect();
    let messages_test_ids: Vec<String> = messages.iter().filter(|m| m.test.0).map(|m| m.id.clone()).collect();
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "channel": m.channel,
                "template": m.template,
                "template_version": m.template_version,
                "template_url": format!("/staff/templates/{}/{}?language={}", m.template, m.channel, m.language),
                "language": m.language,
                "language_name": crate::domain::language::name(&m.language),
                "test": m.test.0,
                "status": m.status,
                "provider": m.provider,
                "segments": m.segments,
                "encoding": m.encoding,
                "subject": m.subject,
                "body": m.body,
                "redacted": m.redacted_at.is_some() || m.body.is_none(),
                "created": when(m.created_at),
                "sent": when_opt(m.sent_at),
            })
        })
        .collect();
    let replies: Vec<Value> = replies
        .iter()
        .map(|r| {
            json!({
                "received": when(r.received_at),
                "classification": r.classification,
                "body": r.body,
                "redacted": r.body.is_none(),
                "provider": r.provider,
            })
        })
        .collect();
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!({
                "at": when(c.at),
                "outcome": c.outcome,
                "reason": c.reason,
                "reason_removed": c.reason.is_none() && c.redacted_at.is_some(),
                "number_given": c.number_key.is_some(),
            })
        })
        .collect();
    // A test key's job, and its message, are marked wherever they show.
    let test_ids: std::collections::HashSet<&str> = outreach
        .iter()
        .filter(|o| o.test.0)
        .map(|o| o.id.as_str())
        .chain(messages_test_ids.iter().map(String::as_str))
        .collect();
    let timeline: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut event = event_json(e, &notes);
            let test = [&e.outreach_id, &e.message_id].into_iter().flatten().any(|id| test_ids.contains(id.as_str()));
            event["test"] = test.into();
            event
        })
        .collect();
    // The case's memory: every accepted job's categories (the first job's for a case older than it).
    let categories: Vec<&str> = if memory.is_empty() {
        case.categories.split(',').filter(|c| !c.is_empty()).collect()
    } else {
        memory.iter().map(String::as_str).collect()
    };
    let data = json!({
        "title": format!("Case {}", case.case_ref),
        "case": {
            "case_ref": case.case_ref,
            "created": when(case.created_at),
            "referral": referral(&case),
            "categories": categories.join(", "),
            "priority": case.priority.0,
            "safety_sensitive": case.safety_sensitive.0,
            "cancelled": when_opt(case.cancelled_at),
            "call_window": case.call_window,
        },
        "jobs": jobs,
        "messages": messages,
        "replies": replies,
        "calls": calls,
        "timeline": timeline,
    });
    view::page("case", &staff, data)
}
