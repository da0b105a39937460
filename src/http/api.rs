//! The triage system's API under `/v1` (contract: API.md).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{CASES_READ, Caller, OUTREACH_WRITE};
use super::json::JsonBody;
use super::problem::Problem;
use crate::app::AppState;
use crate::domain::OutreachRequest;
use crate::domain::request::FieldError;
use crate::store::{AcceptResult, EventRow, MessageRecord, OutreachRecord, Requeue};
use crate::time::rfc3339_ms;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/outreach", post(create_outreach))
        .route("/v1/outreach/{outreach_id}/cancel", post(cancel_outreach))
        .route("/v1/outreach/{outreach_id}/requeue", post(requeue_outreach))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/cases/{case_ref}", get(get_case))
        .route("/v1/cases/{case_ref}/cancel", post(cancel_case))
        .route("/v1/cases/{case_ref}/calls", post(record_call))
}

async fn create_outreach(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<OutreachRequest>,
) -> Result<Response, Problem> {
    caller.require(OUTREACH_WRITE)?;
    let request = body.value.validate().map_err(Problem::validation)?;
    Ok(match crate::outreach::accept(&state, &request, &body.raw, caller.actor()).await? {
        AcceptResult::Created { answer, .. } => (StatusCode::ACCEPTED, Json(answer)).into_response(),
        AcceptResult::Replayed { answer } => (StatusCode::OK, Json(answer)).into_response(),
        AcceptResult::Conflict => Problem::new(StatusCode::CONFLICT, "conflict", "request_id already used")
            .detail("this request_id was accepted before with a different body")
            .into_response(),
    })
}

async fn cancel_outreach(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(outreach_id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require(OUTREACH_WRITE)?;
    let job = state
        .store
        .cancel_outreach(&outreach_id, state.clock.now_ms(), &caller.actor())
        .await?
        .ok_or_else(|| Problem::not_found("outreach job"))?;
    Ok(Json(json!({ "outreach_id": job.id, "case_ref": job.case_ref, "status": job.status })))
}

/// Put a dead-lettered job back on the queue (after staff looked at why it failed).
async fn requeue_outreach(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(outreach_id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require(OUTREACH_WRITE)?;
    match state.store.requeue_dead_letter(&outreach_id, state.clock.now_ms(), &caller.actor()).await? {
        Requeue::Requeued(job) => {
            state.relay_wake.notify_one();
            Ok(Json(json!({ "outreach_id": job.id, "case_ref": job.case_ref, "status": job.status })))
        }
        Requeue::NotFound => Err(Problem::not_found("outreach job")),
        Requeue::NotDeadLettered(status) => Err(Problem::new(StatusCode::CONFLICT, "conflict", "Not dead-lettered")
            .detail(format!("only a dead-lettered job can be requeued; this one is {status}"))),
    }
}

#[derive(Debug, Deserialize)]
struct DeadLetterQuery {
    limit: Option<i64>,
}

/// Jobs the worker gave up on, oldest first, with how many there are in all.
async fn dead_letters(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require(CASES_READ)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let count = state.store.dead_letter_count().await?;
    let list = state.store.dead_letters(limit).await?;
    Ok(Json(json!({
        "count": count,
        "dead_letters": list.iter().map(|d| json!({
            "outreach_id": d.outreach_id,
            "case_ref": d.case_ref,
            "kind": d.kind,
            "channel": d.channel,
            "attempts": d.attempts,
            "reason": d.reason,
            "dead_lettered_at": rfc3339_ms(d.at),
        })).collect::<Vec<_>>(),
    })))
}

async fn cancel_case(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(case_ref): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require(OUTREACH_WRITE)?;
    state
        .store
        .cancel_case(&case_ref, state.clock.now_ms(), &caller.actor())
        .await?
        .ok_or_else(|| Problem::not_found("case"))?;
    Ok(Json(json!({ "case_ref": case_ref, "status": "cancelled" })))
}

#[derive(Debug, Deserialize)]
struct CallRequest {
    at: DateTime<Utc>,
    outcome: CallOutcome,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CallOutcome {
    Answered,
    NoAnswer,
    Voicemail,
    WrongNumber,
    Declined,
}

impl CallOutcome {
    fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Voicemail => "voicemail",
            CallOutcome::WrongNumber => "wrong_number",
            CallOutcome::Declined => "declined",
        }
    }
}

async fn record_call(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(case_ref): Path<String>,
    body: JsonBody<CallRequest>,
) -> Result<Response, Problem> {
    caller.require(OUTREACH_WRITE)?;
    let call = body.value;
    let now = state.clock.now();
    if call.at > now + chrono::TimeDelta::minutes(5) {
        return Err(Problem::validation(vec![FieldError::new("at", "a call cannot be in the future")]));
    }
    let id = state
        .store
        .record_call(
            &case_ref,
            call.at.timestamp_millis(),
            call.outcome.as_str(),
            now.timestamp_millis(),
            &caller.actor(),
        )
        .await?
        .ok_or_else(|| Problem::not_found("case"))?;
    state.relay_wake.notify_one();
    Ok((StatusCode::CREATED, Json(json!({ "call_id": id, "case_ref": case_ref, "outcome": call.outcome.as_str() })))
        .into_response())
}

async fn get_case(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(case_ref): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require(CASES_READ)?;
    let store = &state.store;
    let case = store.case(&case_ref).await?.ok_or_else(|| Problem::not_found("case"))?;
    let outreach = store.case_outreach(&case_ref).await?;
    let messages = store.case_messages(&case_ref).await?;
    let replies = store.case_replies(&case_ref).await?;
    let calls = store.calls(&case_ref).await?;
    let events = store.case_events(&case_ref).await?;
    Ok(Json(json!({
        "case_ref": case.case_ref,
        "cancelled": case.cancelled_at.is_some(),
        "call_window": case.call_window,
        "outreach": outreach.iter().map(outreach_json).collect::<Vec<_>>(),
        "messages": messages.iter().map(|m| message_json(m, &events)).collect::<Vec<_>>(),
        "replies": replies.iter().map(|r| json!({
            "received_at": rfc3339_ms(r.received_at),
            "from_known": r.message_id.is_some(),
            "body": r.body,
            "classification": r.classification,
        })).collect::<Vec<_>>(),
        "calls": calls.iter().map(|(at, outcome)| json!({ "at": rfc3339_ms(*at), "outcome": outcome })).collect::<Vec<_>>(),
        "timeline": events.iter().map(event_json).collect::<Vec<_>>(),
    })))
}

fn outreach_json(o: &OutreachRecord) -> Value {
    json!({
        "outreach_id": o.id,
        "request_id": o.request_id,
        "kind": o.kind,
        "status": o.status,
        "accepted_at": rfc3339_ms(o.accepted_at),
        "decision": {
            "outcome": o.outcome,
            "reason": o.reason,
            "channel": o.channel,
            "template": o.template,
            "not_before": o.not_before.map(rfc3339_ms),
        },
    })
}

fn message_json(m: &MessageRecord, events: &[EventRow]) -> Value {
    json!({
        "id": m.id,
        "outreach_id": m.outreach_id,
        "channel": m.channel,
        "template": m.template,
        "template_version": m.template_version,
        "status": m.status,
        "provider": m.provider,
        "provider_ref": m.provider_ref,
        "segments": m.segments,
        "encoding": m.encoding,
        "subject": m.subject,
        "body": m.body,
        "sent_at": m.sent_at.map(rfc3339_ms),
        "events": events.iter().filter(|e| e.message_id.as_deref() == Some(m.id.as_str())).map(event_json).collect::<Vec<_>>(),
    })
}

pub fn event_json(e: &EventRow) -> Value {
    json!({
        "at": rfc3339_ms(e.at),
        "type": e.kind,
        "actor": e.actor,
        "outreach_id": e.outreach_id,
        "message_id": e.message_id,
        "outcome": e.outcome,
        "reason": e.reason,
        "channel": e.channel,
        "status": e.status,
        "classification": e.classification,
        "detail": e.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
    })
}
