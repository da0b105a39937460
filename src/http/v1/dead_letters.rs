//! Dead letters under `/v1`: jobs the worker gave up on, for staff to look at and requeue.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::{CASES_READ, Caller, OUTREACH_WRITE};
use crate::http::extract::{Path, Query};
use crate::http::problem::{AuthProblems, Problem};
use crate::service::AppState;
use crate::service::dead_letters::{self, Requeue};
use crate::time::rfc3339_ms;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(requeue))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many to list, oldest first (1 to 1000; default 100). `count` is always the total.
    #[param(example = 100)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    /// How many jobs are dead-lettered in all.
    #[schema(example = 1)]
    pub count: i64,
    pub dead_letters: Vec<DeadLetterView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    #[schema(example = "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5")]
    pub outreach_id: String,
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    #[schema(example = "priority_pretext")]
    pub kind: String,
    #[schema(example = "sms")]
    pub channel: Option<String>,
    /// Transient send failures so far.
    #[schema(example = 5)]
    pub attempts: i64,
    /// `retries_exhausted` (the provider kept failing), `send_interrupted` (a worker died while
    /// handing the message over) or `send_in_doubt` (the provider did not answer: it may have the
    /// message). For the last two, check with the provider, by our message id, before requeueing.
    #[schema(example = "retries_exhausted")]
    pub reason: Option<String>,
    #[schema(example = "2026-11-23T10:04:31.250Z")]
    pub dead_lettered_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    #[schema(example = "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5")]
    pub outreach_id: String,
    #[schema(example = "VS-2026-000123")]
    pub case_ref: String,
    #[schema(example = "queued")]
    pub status: String,
}

/// Jobs the worker gave up on, oldest first, with how many there are in all.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "outreach",
    security(("api_key" = ["cases:read"])),
    params(ListQuery),
    responses(
        (status = 200, description = "The dead letters", body = DeadLetters, example = json!({
            "count": 1,
            "dead_letters": [{"outreach_id": "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5", "case_ref": "VS-2026-000123",
                "kind": "priority_pretext", "channel": "sms", "attempts": 5, "reason": "retries_exhausted",
                "dead_lettered_at": "2026-11-23T10:04:31.250Z"}]
        })),
        AuthProblems,
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<DeadLetters>, Problem> {
    caller.require(CASES_READ)?;
    caller.require_live()?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let count = state.store.dead_letter_count().await?;
    let dead_letters = state
        .store
        .dead_letters(limit)
        .await?
        .into_iter()
        .map(|d| DeadLetterView {
            outreach_id: d.outreach_id,
            case_ref: d.case_ref,
            kind: d.kind,
            channel: d.channel,
            attempts: d.attempts,
            reason: d.reason,
            dead_lettered_at: rfc3339_ms(d.at),
        })
        .collect();
    Ok(Json(DeadLetters { count, dead_letters }))
}

/// Put a dead-lettered job back to work: queued again (through the outbox), its attempts reset,
/// and a `requeued` event naming the key on its case.
#[utoipa::path(
    post,
    path = "/v1/outreach/{outreach_id}/requeue",
    tag = "outreach",
    security(("api_key" = ["outreach:write"])),
    params(("outreach_id" = String, Path, description = "The id the 202 answer gave")),
    responses(
        (status = 200, description = "Requeued", body = Requeued, example = json!({
            "outreach_id": "out_0196b3c2d4e5f6a7b8c9d0e1f2a3b4c5", "case_ref": "VS-2026-000123", "status": "queued"
        })),
        AuthProblems,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not dead-lettered", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn requeue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(outreach_id): Path<String>,
) -> Result<Json<Requeued>, Problem> {
    caller.require(OUTREACH_WRITE)?;
    caller.require_live()?;
    match dead_letters::requeue(&state, &outreach_id, &caller.actor()).await? {
        Requeue::Requeued(job) => {
            Ok(Json(Requeued { outreach_id: job.id, case_ref: job.case_ref, status: job.status.to_string() }))
        }
        Requeue::NotFound => Err(Problem::not_found("outreach job")),
        Requeue::NotDeadLettered(status) => Err(Problem::new(StatusCode::CONFLICT, "conflict", "Not dead-lettered")
            .detail(format!("only a dead-lettered job can be requeued; this one is {status}"))),
    }
}
