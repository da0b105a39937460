//! HTTP: the API, provider callbacks, staff pages and operations routes, with problem+json errors.

pub mod api;
pub mod auth;
pub mod json;
pub mod problem;
pub mod staff;
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
        .merge(staff::router(state.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { problem::Problem::not_found("route") })
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Ready when the database and the queue answer; 503 naming what is down otherwise.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let database = state.store.ping().await.map_err(|e| e.to_string());
    let queue = state.queue.ping().await.map_err(|e| e.to_string());
    let ok = database.is_ok() && queue.is_ok();
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ok, "database": show(&database), "queue": show(&queue) })))
}
