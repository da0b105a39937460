//! API keys: `Authorization: Bearer <key>`, looked up by hash, with scopes.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::problem::Problem;
use crate::app::AppState;
use crate::store::ApiKey;

pub const OUTREACH_WRITE: &str = "outreach:write";
pub const CASES_READ: &str = "cases:read";
pub const REPORTS_READ: &str = "reports:read";
/// Erase a whole case on request (right to erasure): an administrator's scope, given to no
/// ordinary integration.
pub const CASES_ERASE: &str = "cases:erase";
pub const ALL_SCOPES: [&str; 4] = [OUTREACH_WRITE, CASES_READ, REPORTS_READ, CASES_ERASE];

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
        match state.store.find_api_key(key).await? {
            Some(found) => Ok(Caller(found)),
            None => Err(unauthorised("the API key is not valid")),
        }
    }
}
