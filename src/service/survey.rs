//! Answers to the satisfaction survey. A reply whose case's latest message to that number was a
//! survey is read as its answer (the pure reading is `domain::reply::classify_survey_reply`: a
//! digit from 1 to 5 alone or first; distress, unsafe and opt-outs still win). The score is kept
//! with the reply for the report. No reply is ever sent back. An answer that says more than the
//! score is put before a person (`survey_comment`), since words after a score can still ask for
//! help. Both are steps of `replies::receive_reply`; the answer is recorded inside its transaction.

use serde_json::json;

use crate::domain::event::EventType;
use crate::domain::reply::{ReplyAnalysis, ReplyClass, SurveyAnswer, classify_reply, classify_survey_reply};
use crate::store::{Event, Result, Store};

/// The reason of the alert raised for an answer with a comment.
pub const COMMENT_ALERT: &str = "survey_comment";

/// Classify an inbound reply, matched to `message_id` (the latest message to its sender): as a
/// survey answer when that message was a survey and the reply holds a score.
pub async fn classify(
    store: &Store,
    message_id: Option<&str>,
    body: &str,
) -> Result<(ReplyAnalysis, Option<SurveyAnswer>)> {
    match message_id {
        Some(id) if store.is_survey_message(id).await? => Ok(classify_survey_reply(body)),
        _ => Ok((classify_reply(body), None)),
    }
}

/// Keep the answer's score with its reply, and alert a person when it comes with a comment. Part
/// of the transaction that records the reply.
pub async fn record_answer(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    reply_id: &str,
    case_ref: Option<&str>,
    answer: SurveyAnswer,
    now: i64,
    actor: &str,
) -> Result<()> {
    store.set_survey_score(conn, reply_id, answer.score).await?;
    if answer.with_comment
        && let Some(case_ref) = case_ref
    {
        Event::new(case_ref, now, actor, EventType::Alert)
            .reason(COMMENT_ALERT)
            .classification(ReplyClass::SurveyAnswer.as_str())
            .detail(json!({ "urgency": "normal", "reply_id": reply_id }))
            .append(conn)
            .await?;
    }
    Ok(())
}
