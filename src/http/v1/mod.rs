//! The triage system's API under `/v1` (contract: API.md), one module per resource, each with its
//! `router()` (routes and their OpenAPI description together), merged here.

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::service::AppState;

mod calls;
mod cases;
mod dead_letters;
mod outreach;
mod reports;

/// Every `/v1` route with its OpenAPI description.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(outreach::router())
        .merge(cases::router())
        .merge(calls::router())
        .merge(dead_letters::router())
        .merge(reports::router())
}
