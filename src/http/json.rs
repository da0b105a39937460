//! Reading JSON bodies so that every mistake names its field: malformed JSON is 400, a body that
//! does not fit the schema (wrong type, missing field, unknown enum value) is 422, an oversized
//! one 413, a wrong content type 415.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::Problem;
use crate::domain::request::FieldError;

/// The largest body we read.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body, kept also as a `serde_json::Value` (e.g. for idempotency hashing).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: serde_json::Value,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Send JSON")
                .detail("the Content-Type must be application/json"));
        }
        parse(&read_body(req, state).await?)
    }
}

/// The body, within `BODY_LIMIT` (413 beyond it).
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "The request body is too large")
                .detail(format!("the limit is {BODY_LIMIT} bytes"))
        } else {
            Problem::bad_request("the body could not be read")
        }
    })
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<JsonBody<T>, Problem> {
    let raw: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request(format!("malformed JSON at line {} column {}", e.line(), e.column())))?;
    let value = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let path = e.path().to_string();
        Problem::validation(vec![field_error(&path, &e.into_inner().to_string())])
    })?;
    Ok(JsonBody { value, raw })
}

/// Name the field: for a missing field serde reports the parent's path and the name in the text.
/// The message is serde's own, which names types and expected values but never echoes input
/// strings longer than a token, so it is safe to return.
fn field_error(path: &str, message: &str) -> FieldError {
    let parent = if path == "." { "" } else { path };
    if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        let field = if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") };
        return FieldError::new(field, "is required");
    }
    FieldError::new(if parent.is_empty() { "body" } else { parent }, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OutreachRequest;

    fn problem(body: &str) -> Problem {
        match parse::<OutreachRequest>(body.as_bytes()) {
            Err(p) => p,
            Ok(_) => panic!("expected a problem for {body}"),
        }
    }

    #[test]
    fn malformed_json_is_400() {
        assert_eq!(problem("{\"request_id\": ").status, 400);
    }

    #[test]
    fn a_missing_field_is_named() {
        let p = problem(r#"{"request_id":"r","case_ref":"c","crime":{"categories":[]},"contact":{}}"#);
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "kind");
        let p = problem(r#"{"request_id":"r","case_ref":"c","kind":"priority_pretext","crime":{},"contact":{}}"#);
        assert_eq!(p.errors[0].field, "crime.categories");
    }

    #[test]
    fn a_wrong_type_or_unknown_enum_value_is_named_by_path() {
        let p =
            problem(r#"{"request_id":"r","case_ref":"c","kind":"postcard","crime":{"categories":[]},"contact":{}}"#);
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "kind"));
        let p = problem(
            r#"{"request_id":"r","case_ref":"c","kind":"priority_pretext","crime":{"categories":[]},
                "contact":{"phones":[{"number":"07700900123","safe_to_text":"yes"}]}}"#,
        );
        assert_eq!(p.errors[0].field, "contact.phones[0].safe_to_text");
    }
}
