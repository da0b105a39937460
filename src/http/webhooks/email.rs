//! Email bounces: `POST /webhooks/email/bounce?token=…` with the bounce as the raw RFC 5322
//! message (`Content-Type: message/rfc822` or `text/plain`), as a mail server's pipe or alias, or
//! a mail provider's inbound parse, forwards what came back to our envelope sender.
//!
//! A delivery status notification (RFC 3464, read by `channels::bounce`) that says delivery
//! failed for good moves the message it names to `bounced` through `service::statuses::apply_status` (forward
//! only: a message already `bounced` or `failed` stays, and the report is recorded as
//! `status_ignored`). A delay, or anything else, is acknowledged and changes nothing. A bounce
//! that names none of our emails is acknowledged (200). The bounce quotes the recipient's address
//! and often the message: nothing of it is logged or kept but the status code.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::routing::{MethodRouter, post};
use serde_json::{Value, json};

use super::super::json::read_body;
use super::{Bounce, Problem, TokenChecked, count_status, status_answer};
use crate::channels::bounce::{self, Report};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::service::AppState;
use crate::service::statuses::{StatusChange, report_status};
use crate::store::MessageKey;

/// Bounces come back for what the SMTP provider sent.
const PROVIDER: &str = "smtp";

pub fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![("/webhooks/email/bounce", post(bounce))]
}

/// The raw message: `message/rfc822` or `text/plain` (415 otherwise), within the body limit.
struct RawMessage(Bytes);

impl<S: Send + Sync> FromRequest<S> for RawMessage {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next().map(|m| m.trim().to_ascii_lowercase()));
        if !matches!(media.as_deref(), Some("message/rfc822" | "text/plain")) {
            return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Send the message")
                .detail("the Content-Type must be message/rfc822 or text/plain"));
        }
        Ok(RawMessage(read_body(req, state).await?))
    }
}

async fn bounce(
    State(state): State<Arc<AppState>>,
    _: TokenChecked<Bounce>,
    RawMessage(body): RawMessage,
) -> Result<Json<Value>, Problem> {
    let bounce = bounce::read(&body);
    if bounce.report != Report::Failed {
        let report = if bounce.report == Report::Delayed { "delayed" } else { "other" };
        state.metrics.status_callback(PROVIDER, "acknowledged");
        tracing::info!(report, message_id = ours(bounce.message_id.as_deref()), "bounce acknowledged, nothing changed");
        return Ok(Json(json!({ "result": "acknowledged", "report": report })));
    }
    let Some(message_id) = bounce.message_id else {
        state.metrics.status_callback(PROVIDER, "unknown_message");
        tracing::info!("bounce naming none of our messages acknowledged");
        return Ok(Json(json!({ "result": "unknown_message" })));
    };
    let mut detail = json!({});
    if let Some(action) = bounce.action {
        detail["dsn_action"] = action.into();
    }
    if let Some(status) = bounce.status {
        detail["dsn_status"] = status.into();
    }
    let change = report_status(
        &state,
        PROVIDER,
        Some(Channel::Email),
        MessageKey::Email(&message_id),
        MessageStatus::Bounced,
        Some(detail),
        state.clock.now_ms(),
    )
    .await?;
    count_status(&state, PROVIDER, &change);
    if change == StatusChange::UnknownMessage {
        tracing::info!(message_id = ours(Some(&message_id)), "bounce for an unknown message");
    }
    Ok(Json(status_answer(&change)))
}

/// A message id for the log only if it has the form of ours (`msg_` and 32 hex digits): the
/// Message-ID of someone else's message might carry a name.
fn ours(id: Option<&str>) -> Option<&str> {
    id.filter(|id| {
        id.strip_prefix("msg_").is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}
