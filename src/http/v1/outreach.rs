//! `/v1/outreach`: accept a job (decided at once), read it, cancel it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::OutreachRequest;
use crate::http::auth::{CASES_READ, Caller, OUTREACH_WRITE};
use crate::http::extract::Path;
use crate::http::json::JsonBody;
use crate::http::problem::{AuthProblems, Problem};
use crate::service::AppState;
use crate::service::accept::AcceptResult;
use crate::service::cancel::{self, Cancel};
use crate::store::OutreachRecord;
use crate::time::rfc3339_ms;

/// The outreach routes with their OpenAPI description (`routes!` registers a handler and its
/// `#[utoipa::path]` together).
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(create_outreach)).routes(routes!(get_outreach)).routes(routes!(cancel_outreach))
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
    // Read after the scope check: a key without the scope learns nothing of the body's checks.
    body: Result<JsonBody<OutreachRequest>, Problem>,
) -> Result<Response, Problem> {
    caller.require(OUTREACH_WRITE)?;
    let body = body?;
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

pub(super) fn outreach_view(o: &OutreachRecord) -> OutreachView {
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
