//! The performance report over HTTP (scope `reports:read`): a month or a quarter, as JSON or CSV.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::request::FieldError;
use crate::http::auth::{Caller, REPORTS_READ};
use crate::http::problem::{AuthProblems, Problem};
use crate::reports::{Period, Report};
use crate::service::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(monthly)).routes(routes!(quarterly))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// The month, `YYYY-MM` (months start at midnight Europe/London).
    #[param(example = "2026-11")]
    month: Option<String>,
    /// `json` (default) or `csv`; `Accept: text/csv` also asks for CSV.
    #[param(example = "json")]
    format: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarterQuery {
    /// The quarter, `YYYY-QN` (Q1 is January to March).
    #[param(example = "2026-Q4")]
    quarter: Option<String>,
    /// `json` (default) or `csv`.
    #[param(example = "json")]
    format: Option<String>,
}

/// A small report, as an example in the document (the figures of an empty month).
fn report_example() -> serde_json::Value {
    let period = Period::parse_month("2026-11").unwrap_or(Period::Month { year: 2026, month: 11 });
    serde_json::to_value(crate::reports::empty(period, chrono_tz::Europe::London)).unwrap_or_default()
}

const CSV_EXAMPLE: &str = "section,key,value\ncalls,attempts,3\ncalls,by_outcome.answered,1\n…";

/// The monthly performance report.
#[utoipa::path(
    get,
    path = "/v1/reports/monthly",
    tag = "reports",
    security(("api_key" = ["reports:read"])),
    params(MonthQuery),
    responses(
        (status = 200, description = "The report", content(
            (Report = "application/json", example = report_example),
            (String = "text/csv", example = json!(CSV_EXAMPLE)),
        )),
        AuthProblems,
        (status = 422, description = "`month` is missing or not YYYY-MM", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "https://safereach.example.org/problems/validation", "title": "The request is not valid",
                "status": 422, "detail": "check the field(s): month", "errors": [{"field": "month", "message": "expected a month as YYYY-MM, e.g. 2026-11"}]})),
    )
)]
async fn monthly(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<MonthQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(REPORTS_READ)?;
    caller.require_live()?;
    let Query(q) = query.map_err(|_| invalid("month", "the query string could not be read"))?;
    let period = q
        .month
        .as_deref()
        .and_then(Period::parse_month)
        .ok_or_else(|| invalid("month", "expected a month as YYYY-MM, e.g. 2026-11"))?;
    respond(&state, period, q.format.as_deref(), &headers).await
}

/// The quarterly roll-up: the same figures over three months (medians and shares are taken over
/// the quarter, not averaged from the months).
#[utoipa::path(
    get,
    path = "/v1/reports/quarterly",
    tag = "reports",
    security(("api_key" = ["reports:read"])),
    params(QuarterQuery),
    responses(
        (status = 200, description = "The report", content(
            (Report = "application/json", example = report_example),
            (String = "text/csv", example = json!(CSV_EXAMPLE)),
        )),
        AuthProblems,
        (status = 422, description = "`quarter` is missing or not YYYY-QN", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn quarterly(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<QuarterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(REPORTS_READ)?;
    caller.require_live()?;
    let Query(q) = query.map_err(|_| invalid("quarter", "the query string could not be read"))?;
    let period = q
        .quarter
        .as_deref()
        .and_then(Period::parse_quarter)
        .ok_or_else(|| invalid("quarter", "expected a quarter as YYYY-QN, e.g. 2026-Q4"))?;
    respond(&state, period, q.format.as_deref(), &headers).await
}

fn invalid(field: &str, message: &str) -> Problem {
    Problem::validation(vec![FieldError::new(field, message)])
}

async fn respond(
    state: &AppState,
    period: Period,
    format: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let wants_csv = match format {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(invalid("format", "json or csv")),
        None => headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv")),
    };
    let hours = &state.config.staffed_hours;
    let report: Report = crate::reports::report_with_staffed_hours(&state.store, &state.policy, hours, period).await?;
    tracing::info!(period = %period.label(), csv = wants_csv, "report produced");
    if wants_csv {
        let disposition = format!("attachment; filename=\"safereach-report-{}.csv\"", period.label());
        let mut response = crate::reports::to_csv(&report).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(response)
    } else {
        Ok(Json(report).into_response())
    }
}
