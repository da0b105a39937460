//! Errors as `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`, and
//! `errors: [{field, message}]` for validation.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::request::FieldError;
use crate::store::StoreError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "https://safereach.example.org/problems/not-found")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds after which to try again (sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

/// The answers every `/v1` route can give before it reads the request, documented once for the
/// OpenAPI `responses(...)` lists. Never built: the routes answer with a plain [`Problem`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AuthProblems {
    /// No valid API key
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The key lacks the scope the route's `security` names
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Over the key's rate limit (3,000 requests a minute unless set when the key was made);
    /// `Retry-After` says in how many seconds to try again
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Problem),
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Problem {
        Problem {
            kind: format!("https://safereach.example.org/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Problem {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "The request is not valid")
            .detail(format!("check the field(s): {}", fields.join(", ")));
        p.errors = errors;
        p
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", "The request could not be read").detail(detail)
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(format!("no such {what}"))
    }

    pub fn method_not_allowed() -> Problem {
        Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            .detail("the Allow header lists the methods this route takes")
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        let mut p =
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Temporarily unavailable").detail(detail);
        p.retry_after = Some(5);
        p
    }

    pub fn internal() -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong on our side")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, axum::Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A store failure: 503 while the database can't be reached (nothing was stored), else 500.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        if let StoreError::Redacted = e {
            return Problem::new(StatusCode::CONFLICT, "redacted", "The personal data this needs has been removed")
                .detail("retention or erasure removed it; the job is finished");
        }
        if let StoreError::Conflict(why) = &e {
            return Problem::new(StatusCode::CONFLICT, "conflict", "Not now").detail(why.clone());
        }
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Problem::unavailable("the database is not reachable; nothing was stored")
        } else {
            tracing::error!(error = %e, "store error");
            Problem::internal()
        }
    }
}
