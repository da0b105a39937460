//! The triage system's API under `/v1` (contract: API.md).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{CASES_ERASE, CASES_READ, Caller, OUTREACH_WRITE};
use super::extract::Path;
use super::json::JsonBody;
use super::problem::{AuthProblems, Problem};
use crate::domain::call::CallOutcome;
use crate::domain::request::FieldError;
use crate::domain::{JobStatus, OutreachRequest};
use crate::service::AppState;
use crate::service::accept::AcceptResult;
use crate::service::cancel::{self, Cancel};
use crate::store::{EventRow, MessageRecord, OutreachRecord};
use crate::time::rfc3339_ms;

/// The `/v1` routes with their OpenAPI description (one source for both: `routes!` registers a
/// handler and its `#[utoipa::path]` together).
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_outreach))
        .routes(routes!(get_outreach))
        .routes(routes!(cancel_outreach))
        .routes(routes!(get_case, erase_case))
        .routes(routes!(cancel_case))
        .routes(routes!(record_call))
}

/// The answer to `POST /v1/outreach` (202 when accepted, 200 when replayed). The store keeps it
/// as JSON (`store::answer_json`); a test checks that the two agree.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutreachAnswer {
    #[schema(example = "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5")]
    pub outreach_id: String,
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    /// `queued`, `deferred`, `held` or `blocked`.
    #[schema(example = "queued")]
    pub status: String,
    pub decision: DecisionAnswer,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionAnswer {
    /// `send`, `defer`, `hold` or `block`.
    #[schema(example = "send")]
    pub outcome: String,
    /// The reason code (null for a send).
    #[schema(example = json!(null))]
    pub reason: Option<String>,
    /// `sms`, `email` or `letter` for send and defer.
    #[schema(example = "sms")]
    pub channel: Option<String>,
    #[schema(example = "priority_pretext_discreet")]
    pub template: Option<String>,
    /// RFC 3339 UTC, for defer.
    #[schema(example = json!(null))]
    pub not_before: Option<String>,
}

const OUTREACH_EXAMPLE: &str = r#"{
  "request_id": "triage-000123-pretext", "case_ref": "VS-2026-000123", "kind": "priority_pretext", "priority": true,
  "referral": {"source": "police", "referred_at": "2026-11-20T10:00:00Z", "local_authority": "Birmingham"},
  "crime": {"categories": ["domestic_abuse"], "summary": "free text from the crime record"},
  "victim": {"first_name": "Sam", "date_of_birth": "1990-04-01", "is_under_18": false, "vulnerabilities": [], "language": "en"},
  "contact": {
    "phones": [{"number": "+447700900123", "belongs_to": "victim", "safe_to_text": true, "safe_to_voicemail": false}],
    "preferred_method": "phone",
    "safe_times": [{"days": ["mon","tue","wed","thu","fri"], "from": "09:00", "to": "17:00"}],
    "do_not_contact": false
  },
  "consent": {"information_pack": true, "recorded_at": "2026-11-20T10:05:00Z"},
  "personalisation": {"advocate_name": "Jo"}
}"#;

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

fn outreach_example() -> Value {
    serde_json::from_str(OUTREACH_EXAMPLE).unwrap_or_default()
}

/// Accept an outreach job and decide it at once.
#[utoipa::path(
    post,
    path = "/v1/outreach",
    tag = "outreach",
    security(("api_key" = ["outreach:write"])),
    request_body(content = OutreachRequest, example = outreach_example),
    responses(
        (status = 202, description = "Accepted and decided", body = OutreachAnswer, example = json!({
            "outreach_id": "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5", "case_ref": "VS-2026-000123", "status": "queued",
            "decision": {"outcome": "send", "reason": null, "channel": "sms", "template": "priority_pretext_discreet", "not_before": null}
        })),
        (status = 200, description = "The same request_id and body again: the first answer", body = OutreachAnswer),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 409, description = "The request_id was used with a different body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Does not fit the schema; `errors` names each field", body = Problem,
            content_type = "application/problem+json", example = json!({
            "type": "https://safereach.example.org/problems/validation", "title": "The request is not valid", "status": 422,
            "detail": "check the field(s): kind", "errors": [{"field": "kind", "message": "is required"}]
        })),
        (status = 503, description = "The database is unreachable; nothing was stored", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_outreach(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<OutreachRequest>,
) -> Result<Response, Problem> {
    caller.require(OUTREACH_WRITE)?;
    let request = body.value.validate().map_err(Problem::validation)?;
    Ok(match crate::service::accept::accept(&state, &request, &body.raw, caller.actor(), caller.0.test).await? {
        AcceptResult::Created { answer, .. } => (StatusCode::ACCEPTED, Json(answer)).into_response(),
        AcceptResult::Replayed { answer } => (StatusCode::OK, Json(answer)).into_response(),
        AcceptResult::Conflict => Problem::new(StatusCode::CONFLICT, "conflict", "request_id already used")
            .detail("this request_id was accepted before with a different body")
            .into_response(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutreachCancelled {
    #[schema(example = "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5")]
    pub outreach_id: String,
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    /// `cancelled`; `too_late` when its message is being handed to a provider right now (it
    /// goes); otherwise the job's status, which is past cancelling (`sent`, `failed`, `blocked`).
    #[schema(example = "cancelled")]
    pub status: String,
}

/// Stop one job if it is not sent yet.
#[utoipa::path(
    post,
    path = "/v1/outreach/{outreach_id}/cancel",
    tag = "outreach",
    security(("api_key" = ["outreach:write"])),
    params(("outreach_id" = String, Path, description = "The id the 202 answer gave")),
    responses(
        (status = 200, description = "Cancelled, too late (being handed to a provider now), or already past it", body = OutreachCancelled, example = json!({
            "outreach_id": "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5", "case_ref": "VS-2026-000123", "status": "cancelled"
        })),
        AuthProblems,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel_outreach(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(outreach_id): Path<String>,
) -> Result<Json<OutreachCancelled>, Problem> {
    caller.require(OUTREACH_WRITE)?;
    // A test key's own jobs only: it may not stop a live one.
    if caller.0.test && !state.store.outreach(&outreach_id).await?.is_some_and(|o| o.test.0) {
        return Err(Problem::not_found("outreach job"));
    }
    let (job, done) = cancel::cancel_outreach(&state.store, &outreach_id, state.clock.now_ms(), &caller.actor())
        .await?
        .ok_or_else(|| Problem::not_found("outreach job"))?;
    let status = match done {
        Cancel::TooLate => TOO_LATE.to_string(),
        Cancel::Cancelled | Cancel::Finished => job.status.to_string(),
    };
    Ok(Json(OutreachCancelled { outreach_id: job.id, case_ref: job.case_ref, status }))
}

/// The answer for a job whose message is being handed to a provider right now: it goes.
const TOO_LATE: &str = "too_late";

/// One job as the triage system follows it: its status, latest decision and messages with their
/// statuses, without the rest of the case and without any message text.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutreachStatusView {
    #[schema(example = "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5")]
    pub outreach_id: String,
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    /// `priority_pretext` or `information_pack`.
    #[schema(example = "priority_pretext")]
    pub kind: String,
    /// `queued`, `deferred`, `held`, `blocked`, `sent`, `failed`, `cancelled`, `dead_lettered`.
    #[schema(example = "sent")]
    pub status: String,
    /// Accepted with a test key: sent only to the sandbox, left out of reports.
    pub test: bool,
    pub accepted_at: String,
    /// The latest decision, as in the 202 answer.
    pub decision: DecisionAnswer,
    pub messages: Vec<OutreachMessageView>,
}

/// A job's message: where it went and how far it got (no text, no recipient).
#[derive(Debug, Serialize, ToSchema)]
pub struct OutreachMessageView {
    pub id: String,
    /// `sms`, `email` or `letter`.
    #[schema(example = "sms")]
    pub channel: String,
    pub template: String,
    pub template_version: i64,
    /// The language of the template version sent (`en`, `cy`, …).
    #[schema(example = "cy")]
    pub language: String,
    /// `queued`, `sending`, `sent`, `delivered`, `failed`, `undelivered`, `bounced`, `printed`, `posted`, `returned`.
    #[schema(example = "delivered")]
    pub status: String,
    /// When the status last changed.
    pub status_at: String,
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
    pub segments: Option<i64>,
    pub sent_at: Option<String>,
    pub test: bool,
}

/// One job: its status, latest decision and messages with their statuses.
#[utoipa::path(
    get,
    path = "/v1/outreach/{outreach_id}",
    tag = "outreach",
    security(("api_key" = ["cases:read"])),
    params(("outreach_id" = String, Path, description = "The id the 202 answer gave")),
    responses(
        (status = 200, description = "The job", body = OutreachStatusView, example = json!({
            "outreach_id": "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5", "case_ref": "VS-2026-000123", "kind": "priority_pretext",
            "status": "sent", "test": false, "accepted_at": "2026-11-20T10:00:00.000Z",
            "decision": {"outcome": "send", "reason": null, "channel": "sms", "template": "priority_pretext_discreet", "not_before": null},
            "messages": [{"id": "msg_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c6", "channel": "sms", "template": "priority_pretext_discreet",
                "template_version": 2, "language": "cy", "status": "delivered", "status_at": "2026-11-20T10:00:09.000Z",
                "provider": "sandbox", "provider_ref": "msg_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c6", "segments": 1,
                "sent_at": "2026-11-20T10:00:02.000Z", "test": false}]
        })),
        AuthProblems,
        (status = 404, description = "No such job (a test key sees its test jobs only)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_outreach(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(outreach_id): Path<String>,
) -> Result<Json<OutreachStatusView>, Problem> {
    caller.require(CASES_READ)?;
    let job = state
        .store
        .outreach(&outreach_id)
        .await?
        .filter(|o| o.test.0 || !caller.0.test)
        .ok_or_else(|| Problem::not_found("outreach job"))?;
    let messages = state.store.outreach_messages(&job.id).await?;
    let view = outreach_view(&job);
    Ok(Json(OutreachStatusView {
        outreach_id: view.outreach_id,
        case_ref: job.case_ref,
        kind: view.kind,
        status: view.status,
        test: job.test.0,
        accepted_at: view.accepted_at,
        decision: view.decision,
        messages: messages
            .iter()
            .map(|m| OutreachMessageView {
                id: m.id.clone(),
                channel: m.channel.clone(),
                template: m.template.clone(),
                template_version: m.template_version,
                language: m.language.clone(),
                status: m.status.clone(),
                status_at: rfc3339_ms(m.status_at),
                provider: m.provider.clone(),
                provider_ref: m.provider_ref.clone(),
                segments: m.segments,
                sent_at: m.sent_at.map(rfc3339_ms),
                test: m.test.0,
            })
            .collect(),
    }))
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

#[derive(Debug, Deserialize, ToSchema)]
pub struct CallRequest {
    /// When the call was made (RFC 3339); not in the future.
    #[schema(example = "2026-11-20T11:00:00Z")]
    at: DateTime<Utc>,
    outcome: CallOutcome,
    /// The number called. With `wrong_number` it is suppressed; without it, every number recorded
    /// as the victim's on the case is.
    #[serde(default)]
    #[schema(example = "+447700900123")]
    number: Option<String>,
    /// Why the victim declined: free text, kept for the report and removed after the retention
    /// period. Never logged.
    #[serde(default)]
    reason: Option<String>,
}

const MAX_CALL_NUMBER: usize = 200;
const MAX_CALL_REASON: usize = 4000;

impl CallRequest {
    fn validate(&self, now: DateTime<Utc>) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.at > now + chrono::TimeDelta::minutes(5) {
            errors.push(FieldError::new("at", "a call cannot be in the future"));
        }
        if self.number.as_deref().is_some_and(|n| n.trim().is_empty() || n.chars().count() > MAX_CALL_NUMBER) {
            errors.push(FieldError::new("number", format!("1 to {MAX_CALL_NUMBER} characters")));
        }
        if self.reason.as_deref().is_some_and(|r| r.chars().count() > MAX_CALL_REASON) {
            errors.push(FieldError::new("reason", format!("at most {MAX_CALL_REASON} characters")));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallRecorded {
    #[schema(example = "call_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5")]
    pub call_id: String,
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    pub outcome: CallOutcome,
    /// Jobs of the case the call stopped (a `declined`, or a `wrong_number` that suppressed the
    /// number they would use): blocked now.
    pub stopped: Vec<StoppedJob>,
    /// Jobs whose message is being handed to a provider right now: too late to stop.
    #[schema(example = json!([]))]
    pub too_late: Vec<String>,
    /// How many numbers a `wrong_number` suppressed.
    #[schema(example = 0)]
    pub suppressed_numbers: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoppedJob {
    #[schema(example = "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5")]
    pub outreach_id: String,
    /// `blocked`.
    #[schema(example = "blocked")]
    pub status: String,
    /// The reason code of the block (`declined`, `suppressed`).
    #[schema(example = "declined")]
    pub reason: String,
}

/// Record an advocate's call attempt. A call decides (rules 1a, 3 and 12): `declined` blocks every
/// job of the case, `wrong_number` suppresses the number called (or, without `number`, every
/// number recorded as the victim's on the case), and jobs still waiting are decided again at once.
#[utoipa::path(
    post,
    path = "/v1/cases/{case_ref}/calls",
    tag = "cases",
    security(("api_key" = ["outreach:write"])),
    params(("case_ref" = String, Path, description = "The triage system's case reference")),
    request_body(content = CallRequest, example = json!({"at": "2026-11-20T11:00:00Z", "outcome": "declined", "reason": "has support from family"})),
    responses(
        (status = 201, description = "Recorded, and what it stopped", body = CallRecorded, example = json!({
            "call_id": "call_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5", "case_ref": "VS-2026-000123", "outcome": "declined",
            "stopped": [{"outreach_id": "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5", "status": "blocked", "reason": "declined"}],
            "too_late": [], "suppressed_numbers": 0
        })),
        AuthProblems,
        (status = 404, description = "No such case", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or wrong (a call in the future)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn record_call(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(case_ref): Path<String>,
    body: JsonBody<CallRequest>,
) -> Result<Response, Problem> {
    caller.require(OUTREACH_WRITE)?;
    caller.require_live()?;
    let call = body.value;
    call.validate(state.clock.now()).map_err(Problem::validation)?;
    let input = crate::service::calls::CallInput {
        at: call.at.timestamp_millis(),
        outcome: call.outcome,
        number: call.number.as_deref(),
        reason: call.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()),
    };
    let recorded = crate::service::calls::record_call(&state, &case_ref, &input, &caller.actor())
        .await?
        .ok_or_else(|| Problem::not_found("case"))?;
    let stopped = recorded
        .stopped
        .into_iter()
        .map(|(outreach_id, reason)| StoppedJob {
            outreach_id,
            status: JobStatus::Blocked.to_string(),
            reason: reason.to_string(),
        })
        .collect();
    let answer = CallRecorded {
        call_id: recorded.call_id,
        case_ref,
        outcome: call.outcome,
        stopped,
        too_late: recorded.too_late,
        suppressed_numbers: recorded.suppressed_numbers,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
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
pub struct OutreachView {
    pub outreach_id: String,
    pub request_id: String,
    /// `priority_pretext` or `information_pack`.
    pub kind: String,
    /// `queued`, `deferred`, `held`, `blocked`, `sent`, `failed`, `cancelled`, `dead_lettered`.
    pub status: String,
    pub accepted_at: String,
    /// The latest decision.
    pub decision: DecisionAnswer,
    /// Set once retention removed the request's personal data (the job is finished).
    pub redacted_at: Option<String>,
    /// Accepted with a test key: sent only to the sandbox, left out of reports.
    pub test: bool,
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

fn outreach_view(o: &OutreachRecord) -> OutreachView {
    OutreachView {
        outreach_id: o.id.clone(),
        request_id: o.request_id.clone(),
        kind: o.kind.clone(),
        status: o.status.to_string(),
        accepted_at: rfc3339_ms(o.accepted_at),
        decision: DecisionAnswer {
            outcome: o.outcome.clone(),
            reason: o.reason.clone(),
            channel: o.channel.clone(),
            template: o.template.clone(),
            not_before: o.not_before.map(rfc3339_ms),
        },
        redacted_at: o.redacted_at.map(rfc3339_ms),
        test: o.test.0,
    }
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

/// An event as JSON (the staff pages render timelines from this).
pub fn event_json(e: &EventRow) -> Value {
    serde_json::to_value(event_view(e)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Decision, ReasonCode, Route};

    #[test]
    fn the_stored_answer_fits_the_documented_answer() {
        let route = Route {
            channel: Channel::Sms,
            template: "priority_pretext",
            recipient: crate::domain::Recipient::Phone { number: "+447700900123".into() },
        };
        let until = "2026-11-21T08:00:00Z".parse().unwrap();
        for decision in [
            Decision::Send(route.clone()),
            Decision::Defer { until, reason: ReasonCode::OutsideSafeHours, route },
            Decision::Block(ReasonCode::NoConsent),
        ] {
            let stored = crate::service::accept::answer_json("out_1", "C1", "queued", &decision);
            let typed: OutreachAnswer =
                serde_json::from_value(stored.clone()).expect("the stored answer has the documented fields only");
            assert_eq!(serde_json::to_value(typed).unwrap(), stored);
        }
    }
}
