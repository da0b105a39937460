//! Print service callbacks: `POST /webhooks/print/status?token=…` with JSON
//! `{"reference": "<our message id>", "status": "printed|posted|returned", "at": "<RFC 3339>"}`.
//!
//! `at` is when the service sent the report; one more than five minutes old (or ahead) is a
//! replay and refused with 403, like a bad token. It is compared with the real clock, not the
//! test clock, since it is the service's real time.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::{MethodRouter, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::json::JsonBody;
use super::{Print, Problem, TokenChecked, count_status, forbidden, status_answer};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::request::FieldError;
use crate::service::AppState;
use crate::service::statuses::report_status;
use crate::store::MessageKey;

const PROVIDER: &str = "print";

/// How far a report's time may be from ours.
pub const REPLAY_WINDOW: chrono::Duration = chrono::Duration::minutes(5);

pub fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![("/webhooks/print/status", post(status))]
}

#[derive(Deserialize)]
struct PrintStatus {
    reference: String,
    status: String,
    at: DateTime<Utc>,
}

async fn status(
    State(state): State<Arc<AppState>>,
    _: TokenChecked<Print>,
    body: JsonBody<PrintStatus>,
) -> Result<Json<Value>, Problem> {
    let report = body.value;
    if (Utc::now() - report.at).abs() > REPLAY_WINDOW {
        state.metrics.callback_rejected("stale");
        return Err(forbidden("report time outside the replay window"));
    }
    let status = match report.status.as_str() {
        "printed" => MessageStatus::Printed,
        "posted" => MessageStatus::Posted,
        "returned" => MessageStatus::Returned,
        _ => return Err(Problem::validation(vec![FieldError::new("status", "printed, posted or returned")])),
    };
    let detail = json!({ "reported_at": crate::time::rfc3339(report.at) });
    let change = report_status(
        &state,
        PROVIDER,
        Some(Channel::Letter),
        MessageKey::Ours(&report.reference),
        status,
        Some(detail),
        state.clock.now_ms(),
    )
    .await?;
    count_status(&state, PROVIDER, &change);
    Ok(Json(status_answer(&change)))
}
