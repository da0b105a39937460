//! Advocates' call attempts on a case.

use sqlx::AnyConnection;

use super::{Result, Store, new_id};
use crate::domain::call::CallOutcome;

/// A call attempt to record.
#[derive(Debug, Clone, Copy)]
pub struct NewCall<'a> {
    pub case_ref: &'a str,
    /// When the call was made (ms).
    pub at: i64,
    pub outcome: CallOutcome,
    /// The number called, normalised (a UK mobile in E.164, else as given, trimmed).
    pub number: Option<&'a str>,
    /// Why the victim declined: free text, personal.
    pub reason: Option<&'a str>,
}

/// A recorded call attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallRecord {
    pub id: String,
    pub at: i64,
    pub outcome: String,
    /// Why the victim declined; None when not given or once redacted.
    pub reason: Option<String>,
    /// Keyed hash of the number called, if one was given (never shown).
    pub number_key: Option<String>,
    pub redacted_at: Option<i64>,
}

impl Store {
    /// Record a call attempt (its number as a keyed hash, `number` normalised; the reason is
    /// personal). The caller holds the case lock.
    pub async fn insert_call(&self, conn: &mut AnyConnection, call: &NewCall<'_>, now: i64) -> Result<String> {
        let id = new_id("call");
        sqlx::query(
            "INSERT INTO calls (id, case_ref, at, outcome, recorded_at, number_key, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(call.case_ref)
        .bind(call.at)
        .bind(call.outcome.as_str())
        .bind(now)
        .bind(call.number.map(|n| self.address_key(n)))
        .bind(call.reason)
        .execute(&mut *conn)
        .await?;
        Ok(id)
    }

    /// The calls of a case, in the order they were made.
    pub async fn calls(&self, case_ref: &str) -> Result<Vec<CallRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, at, outcome, reason, number_key, redacted_at FROM calls WHERE case_ref = $1 ORDER BY at, id",
        )
        .bind(case_ref)
        .fetch_all(&self.pool)
        .await?)
    }
}
