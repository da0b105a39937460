//! Path and query extractors refused as problem+json, as [`super::json::JsonBody`] is for bodies.
//! axum's own answer in plain text (e.g. a path parameter that is not UTF-8, a repeated query
//! parameter); these take the same input and give the same values.

use axum::extract::FromRequestParts;
use axum::extract::rejection::QueryRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// The path parameters, as `axum::extract::Path`.
pub struct Path<T>(pub T);

/// The query string, as `axum::extract::Query`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(e) if e.status().is_client_error() => Err(Problem::bad_request(e.body_text())),
            // The route and the handler disagree: our mistake.
            Err(e) => {
                tracing::error!(error = %e.body_text(), "path parameters");
                Err(Problem::internal())
            }
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e: QueryRejection| Problem::bad_request(e.body_text()))
    }
}
