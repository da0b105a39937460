//! HTTP: the API, provider callbacks, staff pages and operations routes, with problem+json errors.

pub mod auth;
pub mod extract;
pub mod json;
pub mod problem;
pub mod serve;
pub mod staff;
pub mod v1;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::service::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    // Spans name the route pattern, never the raw URI: query strings of provider callbacks carry
    // phone numbers and message text.
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        let route =
            req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
        let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        tracing::info_span!("http", method = %req.method(), route = %route, request_id = %request_id)
    });
    let (v1, document) = v1().split_for_parts();
    let document = Arc::new(document.to_json().unwrap_or_default());
    Router::new()
        .merge(v1)
        .merge(webhooks::router(&state))
        .merge(staff::router(state.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(move || openapi_json(document.clone())))
        .fallback(|| async { problem::Problem::not_found("route") })
        // After every route: it applies to those already added. axum still adds `Allow`.
        .method_not_allowed_fallback(|| async { problem::Problem::method_not_allowed() })
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The `/v1` API: its routes and their OpenAPI description, built together.
fn v1() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(v1::router())
}

/// The OpenAPI document of the `/v1` API (as served at `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    v1().into_openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "safereach",
        description = "Safe-contact outreach gateway: the triage system's API. Errors are application/problem+json.",
    ),
    modifiers(&BearerKey),
    tags(
        (name = "outreach", description = "Outreach jobs: accept, decide, cancel; dead letters and requeue"),
        (name = "cases", description = "Cases: read, cancel, record calls, erase"),
        (name = "reports", description = "The monthly performance report and its quarterly roll-up"),
    )
)]
struct ApiDoc;

/// `Authorization: Bearer <api key>`; each route names the scope it needs.
struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

async fn openapi_json(document: Arc<String>) -> Response {
    let mut response = document.as_str().to_owned().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Prometheus text. No API key: like `/healthz`, it is meant for the operator's network only, and
/// it carries no personal data (labels are codes and provider names).
async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, problem::Problem> {
    let text = state.metrics.render(&state.store, state.clock.now_ms()).await?;
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

/// Ready when the database and the queue answer; 503 otherwise (and ready again by itself once
/// they answer: connections are made afresh). Anyone may ask, so the answer says only `ok` or
/// `unavailable` for each; why is in the log.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    const WITHIN: std::time::Duration = std::time::Duration::from_secs(3);
    let database = match tokio::time::timeout(WITHIN, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {WITHIN:?}")),
    };
    let queue = match tokio::time::timeout(WITHIN, state.queue.ping()).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {WITHIN:?}")),
    };
    let ok = database.is_ok() && queue.is_ok();
    let public = |r: &Result<(), String>| if r.is_ok() { "ok" } else { "unavailable" };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if let Err(e) = &database {
        tracing::warn!(error = %e, "not ready: the database is unavailable");
    }
    if let Err(e) = &queue {
        tracing::warn!(error = %e, "not ready: the queue is unavailable");
    }
    let mut response =
        (status, Json(json!({ "ready": ok, "database": public(&database), "queue": public(&queue) }))).into_response();
    if !ok {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(5));
    }
    response
}
