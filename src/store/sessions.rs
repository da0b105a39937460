//! Staff login sessions and the failed-login count behind the lock-out.

use sha2::{Digest, Sha256};

use super::{Result, Store, random_token};

/// A live session, as the staff pages see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffSession {
    pub username: String,
    pub role: String,
    pub csrf_token: String,
    pub last_seen_at: i64,
}

/// How long sessions live (ms).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session not used for this long ends.
    pub idle: i64,
    /// A session ends this long after login, however busy.
    pub absolute: i64,
}

/// The session id in the cookie is long and random, so a plain SHA-256 is the right hash.
fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl Store {
    /// Start a session for `username`; returns the cookie value (never stored) and the CSRF token.
    pub async fn create_session(&self, username: &str, now: i64, limits: SessionLimits) -> Result<(String, String)> {
        let (id, csrf) = (random_token(), random_token());
        sqlx::query(
            "INSERT INTO staff_sessions (id_hash, username, csrf_token, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(id_hash(&id))
        .bind(username)
        .bind(&csrf)
        .bind(now)
        .bind(now + limits.absolute)
        .execute(&self.pool)
        .await?;
        Ok((id, csrf))
    }

    /// The live session with this cookie value, for an account that is still enabled.
    pub async fn session(&self, id: &str, now: i64, limits: SessionLimits) -> Result<Option<StaffSession>> {
        Ok(sqlx::query_as(
            "SELECT s.username, st.role, s.csrf_token, s.last_seen_at FROM staff_sessions s
             JOIN staff st ON st.username = s.username
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND st.disabled = 0",
        )
        .bind(id_hash(id))
        .bind(now)
        .bind(now - limits.idle)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Mark a session as used now (keeps it from idling out).
    pub async fn touch_session(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE staff_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(id_hash(id))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM staff_sessions WHERE id_hash = $1").bind(id_hash(id)).execute(&self.pool).await?;
        Ok(())
    }

    /// Forget sessions that have ended (called now and then at login).
    pub async fn delete_ended_sessions(&self, now: i64, limits: SessionLimits) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM staff_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(now - limits.idle)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Count a failed login; once `max` failures in a row are reached the account is locked until
    /// `now + lock_ms` (and the count starts again). Returns the lock's end when this locked it.
    pub async fn record_failed_login(&self, username: &str, now: i64, max: i64, lock_ms: i64) -> Result<Option<i64>> {
        let mut tx = self.begin().await?;
        let failed: Option<i64> = sqlx::query_scalar(
            "UPDATE staff SET failed_logins = failed_logins + 1 WHERE username = $1 RETURNING failed_logins",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        let locked = match failed {
            Some(n) if n >= max => {
                sqlx::query("UPDATE staff SET failed_logins = 0, locked_until = $2 WHERE username = $1")
                    .bind(username)
                    .bind(now + lock_ms)
                    .execute(&mut *tx)
                    .await?;
                // Whoever was logged in as this account is logged out too.
                sqlx::query("DELETE FROM staff_sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
                Some(now + lock_ms)
            }
            _ => None,
        };
        tx.commit().await?;
        Ok(locked)
    }

    /// A successful login clears the failure count and any lock that has run out. False when the
    /// account is locked now: guesses checked in parallel must not get round a lock that one of
    /// them set while this password was being checked.
    pub async fn record_login(&self, username: &str, now: i64) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE staff SET failed_logins = 0, locked_until = NULL
             WHERE username = $1 AND (locked_until IS NULL OR locked_until <= $2)",
        )
        .bind(username)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }
}
