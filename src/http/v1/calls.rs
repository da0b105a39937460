//! `/v1/cases/{case_ref}/calls`: an advocate's call attempt, which decides too (rules 1a, 3, 12).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::JobStatus;
use crate::domain::call::CallOutcome;
use crate::domain::request::FieldError;
use crate::http::auth::{Caller, OUTREACH_WRITE};
use crate::http::extract::Path;
use crate::http::json::JsonBody;
use crate::http::problem::{AuthProblems, Problem};
use crate::service::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(record_call))
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
    // Read after the key's checks: a key that may not call learns nothing of the body's checks.
    body: Result<JsonBody<CallRequest>, Problem>,
) -> Result<Response, Problem> {
    caller.require(OUTREACH_WRITE)?;
    caller.require_live()?;
    let body = body?;
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
