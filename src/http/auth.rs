//! API keys: `Authorization: Bearer <key>`, looked up by hash, with scopes.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::problem::Problem;
use crate::service::AppState;
use crate::store::ApiKey;

pub const OUTREACH_WRITE: &str = "outreach:write";
pub const CASES_READ: &str = "cases:read";
pub const REPORTS_READ: &str = "reports:read";
/// Erase a whole case on request (right to erasure): an administrator's scope, given to no
/// ordinary integration.
pub const CASES_ERASE: &str = "cases:erase";
pub const ALL_SCOPES: [&str; 4] = [OUTREACH_WRITE, CASES_READ, REPORTS_READ, CASES_ERASE];
/// What a test key may be given: it sends test jobs and reads them back, nothing else.
pub const TEST_KEY_SCOPES: [&str; 2] = [OUTREACH_WRITE, CASES_READ];

/// The API key a request came with.
pub struct Caller(pub ApiKey);

impl Caller {
    pub fn require(&self, scope: &str) -> Result<(), Problem> {
        if self.0.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", "This key may not do that")
                .detail(format!("the key lacks the scope {scope}")))
        }
    }

    /// Refuse a test key: it acts on its own test jobs only, never on a case as a whole (whose
    /// other jobs are live), on reports or on dead letters.
    pub fn require_live(&self) -> Result<(), Problem> {
        if self.0.test {
            Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", "A test key may not do that")
                .detail("a test key acts on its own test jobs only (POST /v1/outreach, GET /v1/outreach/{id}, cancel)"))
        } else {
            Ok(())
        }
    }

    /// Who to name as the actor on timeline events.
    pub fn actor(&self) -> String {
        format!("api:{}", self.0.name)
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let unauthorised = |detail: &str| {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "An API key is needed").detail(detail.to_string())
        };
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            // The scheme is case-insensitive (RFC 9110, 11.1).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauthorised("send Authorization: Bearer <api key>"))?;
        let Some(found) = state.api_keys.find(&state.store, key).await? else {
            return Err(unauthorised("the API key is not valid"));
        };
        if let Err(wait) = state.rate_limits.check(&found.id, found.rate_limit) {
            let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
                .detail(format!("this key may make {} requests a minute; try again in {wait} s", found.rate_limit));
            problem.retry_after = Some(wait);
            return Err(problem);
        }
        Ok(Caller(found))
    }
}
