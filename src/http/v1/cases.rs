//! `/v1/cases/{case_ref}`: a case with its jobs, messages, replies, calls and timeline; cancel
//! it; erase it on request.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::outreach::{OutreachView, outreach_view};
use crate::domain::JobStatus;
use crate::http::auth::{CASES_ERASE, CASES_READ, Caller, OUTREACH_WRITE};
use crate::http::extract::Path;
use crate::http::problem::{AuthProblems, Problem};
use crate::service::AppState;
use crate::service::cancel::{self};
use crate::store::{EventRow, MessageRecord};
use crate::time::rfc3339_ms;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_case, erase_case)).routes(routes!(cancel_case))
}

fn case_example() -> Value {
    let event = |at: &str, kind: &str, rest: Value| {
        let mut e = json!({"at": at, "type": kind, "actor": "worker", "outreach_id": "out_1", "message_id": null,
            "outcome": null, "reason": null, "channel": null, "status": null, "classification": null, "detail": null});
        if let (Some(e), Value::Object(rest)) = (e.as_object_mut(), rest) {
            e.extend(rest);
        }
        e
    };
    let sent =
        event("2026-11-20T10:00:02Z", "sent", json!({"message_id": "msg_1", "channel": "sms", "status": "sent"}));
    let delivered = event(
        "2026-11-20T10:00:09Z",
        "status",
        json!({"actor": "provider:sandbox", "outreach_id": null, "message_id": "msg_1", "status": "delivered"}),
    );
    json!({
        "case_ref": "VS-2026-000123", "cancelled": false, "call_window": null,
        "outreach": [{"outreach_id": "out_1", "request_id": "triage-000123-pretext", "kind": "priority_pretext",
            "status": "sent", "accepted_at": "2026-11-20T10:00:00Z", "redacted_at": null, "test": false,
            "decision": {"outcome": "send", "reason": null, "channel": "sms", "template": "priority_pretext_discreet", "not_before": null}}],
        "messages": [{"id": "msg_1", "outreach_id": "out_1", "channel": "sms", "template": "priority_pretext_discreet",
            "template_version": 1, "language": "en", "status": "delivered", "provider": "sandbox", "provider_ref": "msg_1", "segments": 1,
            "encoding": "gsm7", "test": false, "subject": null, "body": "Hi Sam, it's Jo. I'll call you soon. What time suits you?",
            "sent_at": "2026-11-20T10:00:02Z", "redacted_at": null, "events": [sent, delivered]}],
        "replies": [{"received_at": "2026-11-20T10:05:00Z", "from_known": true, "body": "after 5 please", "classification": "time_preference"}],
        "calls": [{"at": "2026-11-20T11:00:00Z", "outcome": "no_answer", "reason": null, "number_given": false}],
        "timeline": [event("2026-11-20T10:00:00Z", "accepted", json!({"actor": "api:triage", "outcome": "send", "channel": "sms",
            "detail": {"template": "priority_pretext_discreet"}})), sent, delivered],
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseStatus {
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    /// `cancelled` or `erased`.
    #[schema(example = "cancelled")]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseCancelled {
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    /// `cancelled`: nothing more of the case will be sent, except what is listed in `too_late`.
    #[schema(example = "cancelled")]
    pub status: String,
    /// Jobs whose message is being handed to a provider right now: too late to stop, it goes.
    #[schema(example = json!([]))]
    pub too_late: Vec<String>,
}

/// Stop everything of a case not yet sent.
#[utoipa::path(
    post,
    path = "/v1/cases/{case_ref}/cancel",
    tag = "cases",
    security(("api_key" = ["outreach:write"])),
    params(("case_ref" = String, Path, description = "The triage system's case reference")),
    responses(
        (status = 200, description = "Cancelled (and what was too late to stop)", body = CaseCancelled,
            example = json!({"case_ref": "VS-2026-000123", "status": "cancelled", "too_late": []})),
        AuthProblems,
        (status = 404, description = "No such case", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel_case(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(case_ref): Path<String>,
) -> Result<Json<CaseCancelled>, Problem> {
    caller.require(OUTREACH_WRITE)?;
    caller.require_live()?;
    let too_late = cancel::cancel_case(&state.store, &case_ref, state.clock.now_ms(), &caller.actor())
        .await?
        .ok_or_else(|| Problem::not_found("case"))?;
    Ok(Json(CaseCancelled { case_ref, status: JobStatus::Cancelled.to_string(), too_late }))
}

/// Erase a case on request (right to erasure): everything not sent is cancelled, every piece of
/// personal data goes, and what is left (codes, times) stays only as anonymous counts under a
/// new reference that is not disclosed. The case reference then answers 404.
#[utoipa::path(
    delete,
    path = "/v1/cases/{case_ref}",
    tag = "cases",
    security(("api_key" = ["cases:erase"])),
    params(("case_ref" = String, Path, description = "The triage system's case reference")),
    responses(
        (status = 200, description = "Erased", body = CaseStatus, example = json!({"case_ref": "VS-2026-000123", "status": "erased"})),
        AuthProblems,
        (status = 404, description = "No such case", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A message of the case is being sent right now; try again shortly", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn erase_case(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(case_ref): Path<String>,
) -> Result<Json<CaseStatus>, Problem> {
    caller.require(CASES_ERASE)?;
    caller.require_live()?;
    let outbox = std::path::Path::new(&state.config.outbox_dir);
    crate::service::erasure::erase_case(&state.store, outbox, &case_ref, state.clock.now_ms(), &caller.actor())
        .await?
        .ok_or_else(|| Problem::not_found("case"))?;
    // The reference is the caller's own; the anonymous one is never logged or returned.
    tracing::info!(case_ref = %case_ref, "case erased on request");
    state.metrics.redacted("case", 1);
    Ok(Json(CaseStatus { case_ref, status: "erased".into() }))
}

/// A case as the gateway knows it. Personal fields (`body`, `subject`, reply `body`) are null
/// once retention has redacted them.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    pub cancelled: bool,
    /// The call window a victim asked for in a reply (JSON text), if any.
    pub call_window: Option<String>,
    pub outreach: Vec<OutreachView>,
    pub messages: Vec<MessageView>,
    pub replies: Vec<ReplyView>,
    pub calls: Vec<CallView>,
    /// Every event of the case, oldest first.
    pub timeline: Vec<EventView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub outreach_id: String,
    pub channel: String,
    pub template: String,
    pub template_version: i64,
    /// The language of the template version sent (`en`, `cy`, …).
    #[schema(example = "en")]
    pub language: String,
    /// `queued`, `sending`, `sent`, `delivered`, `failed`, `undelivered`, `bounced`, `printed`, `posted`, `returned`.
    #[schema(example = "delivered")]
    pub status: String,
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
    pub segments: Option<i64>,
    pub encoding: Option<String>,
    /// A test key's message: sent to the sandbox only.
    pub test: bool,
    /// Null once redacted.
    pub subject: Option<String>,
    /// Null once redacted.
    pub body: Option<String>,
    pub sent_at: Option<String>,
    pub redacted_at: Option<String>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyView {
    pub received_at: String,
    /// The reply came from a number we had texted.
    pub from_known: bool,
    /// Null once redacted.
    pub body: Option<String>,
    /// `distress`, `unsafe`, `opt_out`, `opt_in`, `time_preference`, `other`.
    #[schema(example = "time_preference")]
    pub classification: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    pub at: String,
    /// `answered`, `no_answer`, `voicemail`, `wrong_number`, `declined`.
    pub outcome: String,
    /// Why the victim declined, when given; null once redacted.
    pub reason: Option<String>,
    /// A number was given with the call (it is kept only as a keyed hash).
    pub number_given: bool,
}

/// One event on a case timeline. Never carries personal data.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub at: String,
    /// `accepted`, `decided`, `sent`, `status`, `reply`, `redacted`, …
    #[serde(rename = "type")]
    #[schema(example = "accepted")]
    pub kind: String,
    #[schema(example = "api:triage")]
    pub actor: String,
    pub outreach_id: Option<String>,
    pub message_id: Option<String>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub classification: Option<String>,
    /// Codes, ids and counts.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    /// Present (true) on the events of a test key's job and its message.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// A case: its jobs, messages (with statuses and events), replies, calls and timeline.
#[utoipa::path(
    get,
    path = "/v1/cases/{case_ref}",
    tag = "cases",
    security(("api_key" = ["cases:read"])),
    params(("case_ref" = String, Path, description = "The triage system's case reference")),
    responses(
        (status = 200, description = "The case", body = CaseView, example = case_example),
        AuthProblems,
        (status = 404, description = "No such case", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_case(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(case_ref): Path<String>,
) -> Result<Json<CaseView>, Problem> {
    caller.require(CASES_READ)?;
    caller.require_live()?;
    let store = &state.store;
    let case = store.case(&case_ref).await?.ok_or_else(|| Problem::not_found("case"))?;
    let outreach = store.case_outreach(&case_ref).await?;
    let messages = store.case_messages(&case_ref).await?;
    let replies = store.case_replies(&case_ref).await?;
    let calls = store.calls(&case_ref).await?;
    let events = store.case_events(&case_ref).await?;
    // Test-ness is per job: its events, and its message's, are marked.
    let test_ids: std::collections::HashSet<&str> = outreach
        .iter()
        .filter(|o| o.test.0)
        .map(|o| o.id.as_str())
        .chain(messages.iter().filter(|m| m.test.0).map(|m| m.id.as_str()))
        .collect();
    let view = |e: &EventRow| {
        let mut v = event_view(e);
        v.test = [&e.outreach_id, &e.message_id].into_iter().flatten().any(|id| test_ids.contains(id.as_str()));
        v
    };
    Ok(Json(CaseView {
        case_ref: case.case_ref,
        cancelled: case.cancelled_at.is_some(),
        call_window: case.call_window,
        outreach: outreach.iter().map(outreach_view).collect(),
        messages: messages.iter().map(|m| message_view(m, &events, &view)).collect(),
        replies: replies
            .iter()
            .map(|r| ReplyView {
                received_at: rfc3339_ms(r.received_at),
                from_known: r.message_id.is_some(),
                body: r.body.clone(),
                classification: r.classification.clone(),
            })
            .collect(),
        calls: calls
            .iter()
            .map(|c| CallView {
                at: rfc3339_ms(c.at),
                outcome: c.outcome.clone(),
                reason: c.reason.clone(),
                number_given: c.number_key.is_some(),
            })
            .collect(),
        timeline: events.iter().map(view).collect(),
    }))
}

fn message_view(m: &MessageRecord, events: &[EventRow], event_view: &impl Fn(&EventRow) -> EventView) -> MessageView {
    MessageView {
        id: m.id.clone(),
        outreach_id: m.outreach_id.clone(),
        channel: m.channel.clone(),
        template: m.template.clone(),
        template_version: m.template_version,
        language: m.language.clone(),
        status: m.status.clone(),
        provider: m.provider.clone(),
        provider_ref: m.provider_ref.clone(),
        segments: m.segments,
        encoding: m.encoding.clone(),
        test: m.test.0,
        subject: m.subject.clone(),
        body: m.body.clone(),
        sent_at: m.sent_at.map(rfc3339_ms),
        redacted_at: m.redacted_at.map(rfc3339_ms),
        events: events.iter().filter(|e| e.message_id.as_deref() == Some(m.id.as_str())).map(event_view).collect(),
    }
}

pub fn event_view(e: &EventRow) -> EventView {
    EventView {
        at: rfc3339_ms(e.at),
        kind: e.kind.clone(),
        actor: e.actor.clone(),
        outreach_id: e.outreach_id.clone(),
        message_id: e.message_id.clone(),
        outcome: e.outcome.clone(),
        reason: e.reason.clone(),
        channel: e.channel.clone(),
        status: e.status.clone(),
        classification: e.classification.clone(),
        detail: e.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
        test: false,
    }
}
