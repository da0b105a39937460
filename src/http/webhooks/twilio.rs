//! Twilio callbacks, form-encoded POSTs signed with `X-Twilio-Signature` (see
//! `channels::twilio::signature`) over `SAFEREACH_PUBLIC_URL` + path (+ query) and every POST
//! parameter:
//! - `/webhooks/twilio/status?id=<our message id>`: `MessageSid`, `MessageStatus`, `ErrorCode`, …;
//! - `/webhooks/twilio/inbound`: `From`, `To`, `Body`, `MessageSid`; answered with empty TwiML,
//!   which sends nothing back.
//!
//! Without `SAFEREACH_TWILIO_AUTH_TOKEN` nothing can be verified, so every call is refused.
//! Twilio's scheme carries no timestamp; a replayed callback is harmless all the same: a status
//! never moves backwards, and a reply is recorded once per `MessageSid`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, post};
use serde_json::{Value, json};

use super::{Problem, count_status, forbidden, status_answer};
use crate::channels::twilio;
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::request::FieldError;
use crate::service::AppState;
use crate::service::statuses::report_status;
use crate::store::MessageKey;

const PROVIDER: &str = "twilio";

pub fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![("/webhooks/twilio/status", post(status)), ("/webhooks/twilio/inbound", post(inbound))]
}

/// A verified callback's parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

/// Parse the form and check its signature against the URL Twilio called: our public URL with
/// this request's path and query.
fn verified(state: &AppState, uri: &axum::http::Uri, headers: &HeaderMap, body: &[u8]) -> Result<Params, Problem> {
    let Some(token) = state.config.twilio_auth_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(forbidden("twilio auth token not configured"));
    };
    let Some(given) = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()) else {
        state.metrics.callback_rejected("bad_signature");
        return Err(forbidden("missing signature"));
    };
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
    let url = format!("{}{path_and_query}", state.config.public_url.trim_end_matches('/'));
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    if !twilio::verify(token, &url, &params, given) {
        state.metrics.callback_rejected("bad_signature");
        return Err(forbidden("bad signature"));
    }
    Ok(Params(params))
}

/// Twilio's message statuses on ours. Until delivery is known, everything says no more than sent.
fn message_status(s: &str) -> Option<MessageStatus> {
    match s {
        "accepted" | "scheduled" | "queued" | "sending" | "sent" => Some(MessageStatus::Sent),
        "delivered" | "read" => Some(MessageStatus::Delivered),
        "undelivered" => Some(MessageStatus::Undelivered),
        "failed" | "canceled" => Some(MessageStatus::Failed),
        _ => None,
    }
}

async fn status(
    State(state): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let params = verified(&state, &uri, &headers, &body)?;
    let (Some(sid), Some(reported)) = (params.get("MessageSid"), params.get("MessageStatus")) else {
        return Err(Problem::validation(vec![FieldError::new(
            "MessageSid",
            "MessageSid and MessageStatus are needed",
        )]));
    };
    let Some(status) = message_status(reported) else {
        // An inbound message's own statuses (receiving, received) say nothing about ours.
        return Ok(Json(json!({ "result": "ignored" })));
    };
    let mut detail = json!({ "twilio_status": reported });
    if let Some(code) = params.get("ErrorCode").filter(|c| c.len() <= 8 && c.bytes().all(|b| b.is_ascii_digit())) {
        detail["error_code"] = code.into();
    }
    // Our id, from the callback URL we gave (signed with the rest), finds the message even before
    // we recorded Twilio's MessageSid; without it (a callback set elsewhere), the MessageSid does.
    let ours = uri
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "id").map(|(_, v)| v.into_owned()));
    let key = match &ours {
        Some(id) => MessageKey::Ours(id),
        None => MessageKey::Provider(sid),
    };
    let change =
        report_status(&state, PROVIDER, Some(Channel::Sms), key, status, Some(detail), state.clock.now_ms()).await?;
    count_status(&state, PROVIDER, &change);
    Ok(Json(status_answer(&change)))
}

async fn inbound(
    State(state): State<Arc<AppState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let params = verified(&state, &uri, &headers, &body)?;
    let Some(from) = params.get("From") else {
        return Err(Problem::validation(vec![FieldError::new("From", "missing")]));
    };
    let text = params.get("Body").unwrap_or("");
    crate::service::replies::receive_reply(&state, PROVIDER, from, text, params.get("MessageSid"), None).await?;
    // Empty TwiML: no reply is sent.
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_statuses_map_onto_ours() {
        assert_eq!(message_status("queued"), Some(MessageStatus::Sent));
        assert_eq!(message_status("sent"), Some(MessageStatus::Sent));
        assert_eq!(message_status("delivered"), Some(MessageStatus::Delivered));
        assert_eq!(message_status("undelivered"), Some(MessageStatus::Undelivered));
        assert_eq!(message_status("failed"), Some(MessageStatus::Failed));
        assert_eq!(message_status("received"), None);
    }
}
