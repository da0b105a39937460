//! HTTP: the API, provider callbacks and operations routes, with problem+json errors.

pub mod api;
pub mod auth;
pub mod json;
pub mod problem;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    // Spans name the route pattern, never the raw URI: query strings of provider callbacks carry
    // phone numbers and message text.
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let route =
            req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
        let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        tracing::info_span!("http", method = %req.method(), route = %route, request_id = %request_id)
    });
    Router::new()
        .merge(api::router())
        .merge(webhooks::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { problem::Problem::not_found("route") })
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Ready when the database and the queue answer; 503 naming what is down otherwise (and ready
/// again by itself once it answers: connections are made afresh).
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    const WITHIN: std::time::Duration = std::time::Duration::from_secs(3);
    let database = match tokio::time::timeout(WITHIN, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("unreachable: {e}")),
        Err(_) => Err(format!("unreachable: no answer within {WITHIN:?}")),
    };
    let queue = state.queue.ping().await.map_err(|e| format!("unreachable: {e}"));
    let ok = database.is_ok() && queue.is_ok();
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !ok {
        tracing::warn!(database = %show(&database), queue = %show(&queue), "not ready");
    }
    let mut response =
        (status, Json(json!({ "ready": ok, "database": show(&database), "queue": show(&queue), "queue_kind": state.queue.kind() })))
            .into_response();
    if !ok {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(5));
    }
    response
}
