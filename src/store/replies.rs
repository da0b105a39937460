//! Inbound replies and address suppressions (opt-outs, numbers reported unsafe, numbers a call
//! found to be someone else's).

use sqlx::AnyConnection;

use super::{Dialect, Result, Store, new_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionKind {
    OptOut,
    Unsafe,
    /// An advocate's call to the number reached someone else. Like `Unsafe`, a START from the
    /// number does not lift it.
    WrongNumber,
}

impl SuppressionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionKind::OptOut => "opt_out",
            SuppressionKind::Unsafe => "unsafe",
            SuppressionKind::WrongNumber => "wrong_number",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplyRecord {
    pub id: String,
    pub case_ref: Option<String>,
    pub message_id: Option<String>,
    pub received_at: i64,
    pub provider: String,
    pub body: Option<String>,
    pub classification: String,
}

impl Store {
    /// Take the turn of these addresses (keyed hashes) until the transaction ends. Every writer of
    /// a suppression takes it (`suppress_key`), and so does a worker for the addresses of the job
    /// it decides and claims: a suppression either commits before the worker reads suppressions,
    /// or waits for its claim. Postgres only (transaction-scoped advisory locks); SQLite's single
    /// writer already serialises them. Taken in sorted order, after the case lock, as everywhere.
    pub async fn lock_addresses(&self, conn: &mut AnyConnection, keys: &[String]) -> Result<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        let mut ids: Vec<i64> = keys.iter().map(|k| advisory_lock_id(k)).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        // One statement for them all: Postgres evaluates a volatile function of the select list
        // after the ORDER BY, so the locks are taken in sorted order, one after the other.
        let sql = format!(
            "SELECT pg_advisory_xact_lock(k) FROM {} AS keys ORDER BY k",
            self.dialect.json_rows(1, &[("k", "bigint")])
        );
        let ids: Vec<[i64; 1]> = ids.into_iter().map(|id| [id]).collect();
        sqlx::query(super::dynamic(sql)).bind(super::json(&ids)).execute(&mut *conn).await?;
        Ok(())
    }

    /// Suppress an address. An unsafe report outranks (and is never replaced by) anything else;
    /// a wrong number is not replaced by an opt-out (which START could lift).
    pub async fn suppress(
        &self,
        conn: &mut AnyConnection,
        normalised: &str,
        kind: SuppressionKind,
        case_ref: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.suppress_key(conn, &self.address_key(normalised), kind, case_ref, now).await
    }

    /// `suppress` by keyed hash: for an address we no longer hold in plain (a redacted reply).
    pub async fn suppress_key(
        &self,
        conn: &mut AnyConnection,
        key: &str,
        kind: SuppressionKind,
        case_ref: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.lock_addresses(conn, &[key.to_string()]).await?;
        sqlx::query(
            "INSERT INTO suppressions (address_key, kind, case_ref, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (address_key) DO UPDATE SET
               kind = CASE WHEN suppressions.lifted_at IS NULL
                             AND (suppressions.kind = 'unsafe' OR (suppressions.kind = 'wrong_number' AND excluded.kind = 'opt_out'))
                           THEN suppressions.kind ELSE excluded.kind END,
               case_ref = excluded.case_ref, at = excluded.at, lifted_at = NULL",
        )
        .bind(key)
        .bind(kind.as_str())
        .bind(case_ref)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Lift an opt-out (START). An unsafe suppression stays: only staff can clear that.
    /// Returns whether anything was lifted.
    pub async fn lift_opt_out(&self, conn: &mut AnyConnection, normalised: &str, now: i64) -> Result<bool> {
        let lifted = sqlx::query(
            "UPDATE suppressions SET lifted_at = $2 WHERE address_key = $1 AND kind = 'opt_out' AND lifted_at IS NULL",
        )
        .bind(self.address_key(normalised))
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected();
        Ok(lifted > 0)
    }

    pub async fn is_suppressed(&self, normalised: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT kind FROM suppressions WHERE address_key = $1 AND lifted_at IS NULL")
            .bind(self.address_key(normalised))
            .fetch_optional(&self.pool)
            .await?)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_reply(
        &self,
        conn: &mut AnyConnection,
        case_ref: Option<&str>,
        message_id: Option<&str>,
        provider: &str,
        (provider_ref, provider_at): (Option<&str>, Option<i64>),
        from_normalised: &str,
        body: &str,
        classification: &str,
        now: i64,
    ) -> Result<String> {
        let id = new_id("rep");
        sqlx::query(
            "INSERT INTO replies (id, case_ref, message_id, received_at, provider, provider_ref, from_key, from_number, body, classification, provider_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(case_ref)
        .bind(message_id)
        .bind(now)
        .bind(provider)
        .bind(provider_ref)
        .bind(self.address_key(from_normalised))
        .bind(from_normalised)
        .bind(body)
        .bind(classification)
        .bind(provider_at)
        .execute(conn)
        .await?;
        Ok(id)
    }

    /// The same reply (sender, text) from this provider, sent within a minute of `sent_at`:
    /// (id, case_ref, classification).
    pub async fn same_reply_within_a_minute(
        &self,
        conn: &mut AnyConnection,
        provider: &str,
        from_normalised: &str,
        body: &str,
        sent_at: i64,
    ) -> Result<Option<(String, Option<String>, String)>> {
        Ok(sqlx::query_as(
            "SELECT id, case_ref, classification FROM replies
             WHERE provider = $1 AND from_key = $2 AND body = $3 AND provider_at BETWEEN $4 AND $5
             ORDER BY received_at LIMIT 1",
        )
        .bind(provider)
        .bind(self.address_key(from_normalised))
        .bind(body)
        .bind(sent_at - 60_000)
        .bind(sent_at + 60_000)
        .fetch_optional(conn)
        .await?)
    }

    /// A reply already recorded under this provider's id for it: (id, case_ref, classification).
    pub async fn reply_by_provider_ref(
        &self,
        provider: &str,
        provider_ref: &str,
    ) -> Result<Option<(String, Option<String>, String)>> {
        Ok(sqlx::query_as("SELECT id, case_ref, classification FROM replies WHERE provider = $1 AND provider_ref = $2")
            .bind(provider)
            .bind(provider_ref)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn case_replies(&self, case_ref: &str) -> Result<Vec<ReplyRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, case_ref, message_id, received_at, provider, body, classification FROM replies
             WHERE case_ref = $1 ORDER BY received_at, id",
        )
        .bind(case_ref)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Record the call window a victim asked for.
    pub async fn set_call_window(&self, conn: &mut AnyConnection, case_ref: &str, window: &str) -> Result<()> {
        sqlx::query("UPDATE cases SET call_window = $2 WHERE case_ref = $1")
            .bind(case_ref)
            .bind(window)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// The advisory lock id of an address key (hex of a keyed hash): its first 60 bits.
pub(super) fn advisory_lock_id(key: &str) -> i64 {
    let hex: String = key.chars().take(15).collect();
    i64::from_str_radix(&hex, 16).unwrap_or_else(|_| {
        // Not hex (a key from elsewhere): any stable number will do.
        key.bytes().fold(0i64, |acc, b| acc.wrapping_mul(31).wrapping_add(i64::from(b))) & 0x0fff_ffff_ffff_ffff
    })
}
