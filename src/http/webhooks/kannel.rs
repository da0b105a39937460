//! Kannel callbacks, both GET with the webhook token in the query:
//! - `/webhooks/kannel/dlr?token=…&id=<message id>&status=%d&answer=%A`, the dlr-url we give
//!   with each message (`channels::kannel`);
//! - `/webhooks/kannel/inbound?token=…&from=%p&to=%P&text=%a&ts=%t`, the get-url of the
//!   sms-service that takes replies. It answers with an empty body so that Kannel sends nothing
//!   back (configure the service with `max-messages = 0` and `omit-empty = true` as well).
//!
//! Kannel's `ts` is not authenticated (only the token is), and Kannel re-delivers replies it
//! could not hand over while we were down: a late reply is recorded, never refused, because a
//! refused distress reply would be lost.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Kannel, Problem, TokenChecked, count_status, status_answer};
use crate::domain::Channel;
use crate::domain::MessageStatus;
use crate::domain::request::FieldError;
use crate::http::extract::Query;
use crate::service::AppState;
use crate::service::statuses::report_status;
use crate::store::MessageKey;

const PROVIDER: &str = "kannel";

pub fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![("/webhooks/kannel/dlr", get(dlr)), ("/webhooks/kannel/inbound", get(inbound))]
}

/// Every field optional, so that a missing one is answered by us (without echoing values). The
/// token is checked first ([`TokenChecked`], from the raw query), so that a callback without it
/// is refused (403) however malformed its query.
#[derive(Deserialize)]
struct Dlr {
    id: Option<String>,
    status: Option<String>,
    answer: Option<String>,
}

/// Kannel's report types. Buffered (4) and submitted to the SMSC (8) say no more than `sent`.
fn dlr_status(kind: u32) -> Option<MessageStatus> {
    match kind {
        1 => Some(MessageStatus::Delivered),
        2 => Some(MessageStatus::Undelivered),
        4 | 8 => Some(MessageStatus::Sent),
        16 => Some(MessageStatus::Failed),
        _ => None,
    }
}

/// The SMSC's error code from an SMPP-style answer (`… stat:UNDELIV err:001 text:…`). Only the
/// code is kept: the answer quotes the start of the message text.
fn smsc_error(answer: &str) -> Option<String> {
    let code = answer.split_whitespace().find_map(|w| w.strip_prefix("err:"))?;
    (code.len() <= 8 && code.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| code.to_string())
}

async fn dlr(
    State(state): State<Arc<AppState>>,
    _: TokenChecked<Kannel>,
    Query(q): Query<Dlr>,
) -> Result<Json<Value>, Problem> {
    let kind = q.status.as_deref().and_then(|s| s.trim().parse::<u32>().ok());
    let Some((kind, status)) = kind.and_then(|k| Some((k, dlr_status(k)?))) else {
        return Err(Problem::validation(vec![FieldError::new("status", "not a Kannel report type (1, 2, 4, 8, 16)")]));
    };
    let Some(id) = q.id.filter(|id| !id.is_empty()) else {
        return Err(Problem::validation(vec![FieldError::new("id", "missing")]));
    };
    let mut detail = json!({ "kannel_dlr": kind });
    if let Some(code) = q.answer.as_deref().and_then(smsc_error) {
        detail["smsc_error"] = code.into();
    }
    let change = report_status(
        &state,
        PROVIDER,
        Some(Channel::Sms),
        MessageKey::Ours(&id),
        status,
        Some(detail),
        state.clock.now_ms(),
    )
    .await?;
    count_status(&state, PROVIDER, &change);
    Ok(Json(status_answer(&change)))
}

#[derive(Deserialize)]
struct Inbound {
    from: Option<String>,
    text: Option<String>,
    ts: Option<String>,
}

/// Kannel's `%t` (`YYYY-MM-DD HH:MM`, seconds optional, the SMSC's time) or `%T` (Unix seconds),
/// as epoch milliseconds. Only compared with other replies' `ts`, so its time zone does not matter.
fn sent_at(ts: &str) -> Option<i64> {
    let ts = ts.trim();
    if !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()) {
        return ts.parse::<i64>().ok().and_then(|s| s.checked_mul(1000));
    }
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(ts, f).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

async fn inbound(
    State(state): State<Arc<AppState>>,
    _: TokenChecked<Kannel>,
    Query(q): Query<Inbound>,
) -> Result<StatusCode, Problem> {
    let Some(from) = q.from.filter(|f| !f.trim().is_empty()) else {
        return Err(Problem::validation(vec![FieldError::new("from", "missing")]));
    };
    let text = q.text.unwrap_or_default();
    // Kannel re-delivers a reply it could not hand over: the same sender, text and `ts` within
    // a minute is acknowledged and not recorded again.
    let sent_at = q.ts.as_deref().and_then(sent_at);
    crate::service::replies::receive_reply(&state, PROVIDER, &from, &text, None, sent_at).await?;
    // No body: Kannel would send a body back to the victim as a reply.
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_types_map_onto_our_statuses() {
        assert_eq!(dlr_status(1), Some(MessageStatus::Delivered));
        assert_eq!(dlr_status(2), Some(MessageStatus::Undelivered));
        assert_eq!(dlr_status(4), Some(MessageStatus::Sent));
        assert_eq!(dlr_status(8), Some(MessageStatus::Sent));
        assert_eq!(dlr_status(16), Some(MessageStatus::Failed));
        assert_eq!(dlr_status(3), None);
    }

    #[test]
    fn kannel_times_are_read_in_both_forms() {
        assert_eq!(sent_at("2026-11-23 10:05"), Some(1_795_428_300_000));
        assert_eq!(sent_at("2026-11-23 10:05:30"), Some(1_795_428_330_000));
        assert_eq!(sent_at("1795428300"), Some(1_795_428_300_000));
        assert_eq!(sent_at("%t"), None);
        assert_eq!(sent_at("99999999999999999999"), None);
    }

    #[test]
    fn only_the_error_code_is_taken_from_the_answer() {
        let answer = "id:1234 sub:001 dlvrd:000 submit date:2611231000 done date:2611231001 stat:UNDELIV err:001 text:Hello Robin, it's";
        assert_eq!(smsc_error(answer).as_deref(), Some("001"));
        assert_eq!(smsc_error("ACK/"), None);
        assert_eq!(smsc_error("err:<script>"), None);
    }
}
