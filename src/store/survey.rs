//! The satisfaction survey: which messages were surveys, the scores their answers gave, and the
//! survey figures of the report. A test key's surveys are left out of the figures, as everywhere.

use sqlx::AnyConnection;

use super::{Result, Store};
use crate::domain::Kind;

impl Store {
    /// Whether a message was sent for a satisfaction survey (a reply to it may be its answer).
    pub async fn is_survey_message(&self, message_id: &str) -> Result<bool> {
        let kind: Option<String> =
            sqlx::query_scalar("SELECT o.kind FROM messages m JOIN outreach o ON o.id = m.outreach_id WHERE m.id = $1")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(kind.as_deref() == Some(Kind::SatisfactionSurvey.as_str()))
    }

    /// Keep the score a reply gave as a survey answer.
    pub async fn set_survey_score(&self, conn: &mut AnyConnection, reply_id: &str, score: u8) -> Result<()> {
        sqlx::query("UPDATE replies SET survey_score = $2 WHERE id = $1")
            .bind(reply_id)
            .bind(i64::from(score))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Each survey message handed to a provider in [from, to), with the score of the latest
    /// answer to it (whenever that came), if any.
    pub async fn report_surveys(&self, from: i64, to: i64) -> Result<Vec<(String, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT e.message_id,
               (SELECT r.survey_score FROM replies r
                 WHERE r.message_id = e.message_id AND r.classification = 'survey_answer' AND r.survey_score IS NOT NULL
                 ORDER BY r.received_at DESC, r.id DESC LIMIT 1) AS score
             FROM events e JOIN outreach o ON o.id = e.outreach_id
             WHERE e.type = 'sent' AND e.message_id IS NOT NULL AND e.at >= $1 AND e.at < $2
               AND o.kind = $3 AND o.test = 0",
        )
        .bind(from)
        .bind(to)
        .bind(Kind::SatisfactionSurvey.as_str())
        .fetch_all(&self.pool)
        .await?)
    }
}
