//! Provider callbacks. No API key: each provider's own authentication (its own webhook token in
//! the URL for Kannel, the print service, email bounces and the sandbox; Twilio's request
//! signature), and only the routes of the providers configured. A bad token or signature is 403
//! and changes nothing; a status applies only to a message sent through that provider and
//! channel (another is acknowledged as unknown); an unknown message is acknowledged (200) and logged by
//! id only; statuses only move forward (`service::statuses::apply_status`). Query strings and bodies carry
//! numbers and message text: handlers never log them, and spans name the route, not the URI.

mod email;
mod kannel;
mod print;
mod twilio;

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::json::JsonBody;
use super::problem::Problem;
use crate::domain::MessageStatus;
use crate::domain::request::FieldError;
use crate::secrets::{Configured, WebhookTokens};
use crate::service::AppState;
use crate::service::statuses::{StatusChange, report_status};
use crate::store::MessageKey;

/// Whose secret opens a callback route: its provider's own token in the URL, or for Twilio its
/// request signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Sandbox,
    Kannel,
    Twilio,
    Print,
    Bounce,
}

impl Owner {
    fn configured(self, on: &Configured) -> bool {
        match self {
            Owner::Sandbox => on.sandbox,
            Owner::Kannel => on.kannel,
            Owner::Twilio => on.twilio,
            Owner::Print => on.print,
            Owner::Bounce => on.bounce,
        }
    }
}

/// Every callback route with its owner. The router mounts those of the configured providers, and
/// the access matrix (tests/blackbox/reliability/access_matrix.rs) walks the same list with each
/// provider's secret, so that a callback added here cannot be left out of it.
fn routes() -> Vec<(Owner, &'static str, MethodRouter<Arc<AppState>>)> {
    let mut routes = vec![
        (Owner::Sandbox, "/webhooks/sandbox/status", post(sandbox_status)),
        (Owner::Sandbox, "/webhooks/sandbox/inbound", post(sandbox_inbound)),
    ];
    for (owner, theirs) in [
        (Owner::Kannel, kannel::routes()),
        (Owner::Twilio, twilio::routes()),
        (Owner::Print, print::routes()),
        (Owner::Bounce, email::routes()),
    ] {
        routes.extend(theirs.into_iter().map(|(path, methods)| (owner, path, methods)));
    }
    routes
}

/// The paths of [`routes`] and their owners.
pub fn callback_paths() -> Vec<(Owner, &'static str)> {
    routes().into_iter().map(|(owner, path, _)| (owner, path)).collect()
}

/// The callback routes of the providers the configuration uses; the others are not mounted
/// (404), so a token or signature of a provider we don't use opens nothing.
pub fn router(state: &AppState) -> Router<Arc<AppState>> {
    let on = Configured::from_config(&state.config);
    routes()
        .into_iter()
        .filter(|(owner, _, _)| owner.configured(&on))
        .fold(Router::new(), |router, (_, path, methods)| router.route(path, methods))
}

/// 403 for a callback that did not prove where it came from; `why` names the check, never a value.
pub fn forbidden(why: &str) -> Problem {
    tracing::warn!(reason = why, "callback rejected");
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Callback not authenticated").detail(why.to_string())
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// A provider whose callbacks carry its own token in the URL.
pub trait TokenCallback {
    fn token(tokens: &WebhookTokens) -> Option<&str>;
}

pub struct Sandbox;
pub struct Kannel;
pub struct Print;
pub struct Bounce;

impl TokenCallback for Sandbox {
    fn token(tokens: &WebhookTokens) -> Option<&str> {
        tokens.sandbox.as_deref()
    }
}
impl TokenCallback for Kannel {
    fn token(tokens: &WebhookTokens) -> Option<&str> {
        tokens.kannel.as_deref()
    }
}
impl TokenCallback for Print {
    fn token(tokens: &WebhookTokens) -> Option<&str> {
        tokens.print.as_deref()
    }
}
impl TokenCallback for Bounce {
    fn token(tokens: &WebhookTokens) -> Option<&str> {
        tokens.bounce.as_deref()
    }
}

/// A callback that carried provider `P`'s `?token=`. As an extractor it runs before the body is
/// read, so a forged callback is refused (403) whatever its body.
pub struct TokenChecked<P>(PhantomData<P>);

impl<P: TokenCallback> FromRequestParts<Arc<AppState>> for TokenChecked<P> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let token = Query::<TokenQuery>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.token);
        check_token(state, P::token(&state.webhooks), token.as_deref()).map(|()| TokenChecked(PhantomData))
    }
}

/// The callback token, compared in constant time so that timing tells nothing about it.
fn check_token(state: &AppState, expected: Option<&str>, given: Option<&str>) -> Result<(), Problem> {
    use subtle::ConstantTimeEq;
    match (expected, given) {
        (Some(expected), Some(t)) if bool::from(t.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ => {
            state.metrics.callback_rejected("bad_token");
            Err(forbidden("bad or missing token"))
        }
    }
}

#[derive(Deserialize)]
struct SandboxStatus {
    provider_ref: String,
    status: String,
}

async fn sandbox_status(
    State(state): State<Arc<AppState>>,
    _: TokenChecked<Sandbox>,
    body: JsonBody<SandboxStatus>,
) -> Result<Json<Value>, Problem> {
    let status = MessageStatus::parse(&body.value.status)
        .filter(|s| !matches!(s, MessageStatus::Queued | MessageStatus::Sending));
    let Some(status) = status else {
        state.metrics.callback_rejected("bad_status");
        return Err(Problem::validation(vec![FieldError::new("status", "not a provider status")]));
    };
    let change = report_status(
        &state,
        "sandbox",
        None,
        MessageKey::Provider(&body.value.provider_ref),
        status,
        None,
        state.clock.now_ms(),
    )
    .await?;
    count_status(&state, "sandbox", &change);
    Ok(Json(status_answer(&change)))
}

/// Count and log a provider's status report by what it did (ids and codes only).
pub fn count_status(state: &AppState, provider: &str, change: &StatusChange) {
    let (result, ids) = match change {
        StatusChange::UnknownMessage => ("unknown_message", None),
        StatusChange::Moved { case_ref, message_id } => ("moved", Some((case_ref, message_id))),
        StatusChange::Ignored { case_ref, message_id } => ("ignored", Some((case_ref, message_id))),
    };
    state.metrics.status_callback(provider, result);
    if let Some((case_ref, message_id)) = ids {
        tracing::info!(provider, case_ref = %case_ref, message_id = %message_id, result, "status callback applied");
    }
}

pub fn status_answer(change: &StatusChange) -> Value {
    match change {
        StatusChange::UnknownMessage => {
            tracing::info!("status callback for an unknown message acknowledged");
            json!({ "result": "unknown_message" })
        }
        StatusChange::Moved { message_id, .. } => json!({ "result": "moved", "message_id": message_id }),
        StatusChange::Ignored { message_id, .. } => json!({ "result": "ignored", "message_id": message_id }),
    }
}

#[derive(Deserialize)]
struct SandboxInbound {
    from: String,
    #[allow(dead_code)]
    to: Option<String>,
    body: String,
}

async fn sandbox_inbound(
    State(state): State<Arc<AppState>>,
    _: TokenChecked<Sandbox>,
    body: JsonBody<SandboxInbound>,
) -> Result<Json<Value>, Problem> {
    let inbound = body.value;
    let outcome =
        crate::service::replies::receive_reply(&state, "sandbox", &inbound.from, &inbound.body, None, None).await?;
    Ok(Json(outcome))
}
