//! Staff login sessions, and the failed-login counts that slow down password guessing.

use sha2::{Digest, Sha256};

use super::{Result, Store, random_token};

/// A live session, as the staff pages see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffSession {
    pub username: String,
    pub role: String,
    pub csrf_token: String,
    pub last_seen_at: i64,
    /// The account has a second factor set up.
    #[sqlx(try_from = "i64")]
    pub two_factor: super::Flag,
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
            "SELECT s.username, st.role, s.csrf_token, s.last_seen_at,
               (SELECT COUNT(*) FROM staff_two_factor t WHERE t.username = s.username AND t.enrolled_at IS NOT NULL) AS two_factor
             FROM staff_sessions s
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

    /// The keyed hash a username typed at login is throttled under.
    pub fn login_username_key(&self, username: &str) -> String {
        self.address_key(&format!("login-username:{username}"))
    }

    fn login_address_key(&self, address: &str) -> String {
        self.address_key(&format!("login-address:{address}"))
    }

    /// When `username` may next be tried from `address`: Some(time) while failed logins slow
    /// it down, None when a password may be checked now.
    pub async fn login_wait(&self, username: &str, address: &str, now: i64) -> Result<Option<i64>> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT next_at FROM login_throttle WHERE username_key = $1 AND address_key = $2")
                .bind(self.login_username_key(username))
                .bind(self.login_address_key(address))
                .fetch_optional(&self.pool)
                .await?;
        Ok(next.filter(|&t| t > now))
    }

    /// Until when logins of `username` are slowed down from some address (admin page).
    pub async fn login_slowed_until(&self, username: &str, now: i64) -> Result<Option<i64>> {
        let until: Option<i64> = sqlx::query_scalar("SELECT MAX(next_at) FROM login_throttle WHERE username_key = $1")
            .bind(self.login_username_key(username))
            .fetch_one(&self.pool)
            .await?;
        Ok(until.filter(|&t| t > now))
    }

    /// Count a failed login of `username` from `address` (whether or not the account exists);
    /// returns when it may be tried again, `delay(failures so far)` from now.
    pub async fn record_failed_login(
        &self,
        username: &str,
        address: &str,
        now: i64,
        delay: impl Fn(i64) -> i64,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (user_key, address_key) = (self.login_username_key(username), self.login_address_key(address));
        // After a quiet day the count starts again.
        let failures: i64 = sqlx::query_scalar(
            "SELECT failures FROM login_throttle WHERE username_key = $1 AND address_key = $2 AND last_failed_at > $3",
        )
        .bind(&user_key)
        .bind(&address_key)
        .bind(now - LOGIN_FAILURES_FORGOTTEN_MS)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0)
            + 1;
        let next_at = now + delay(failures);
        sqlx::query(
            "INSERT INTO login_throttle (username_key, address_key, failures, last_failed_at, next_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (username_key, address_key) DO UPDATE SET
               failures = excluded.failures, last_failed_at = excluded.last_failed_at, next_at = excluded.next_at",
        )
        .bind(&user_key)
        .bind(&address_key)
        .bind(failures)
        .bind(now)
        .bind(next_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next_at)
    }

    /// A right password: the count for this username from this address starts again, and
    /// counts nobody has added to for a day are forgotten.
    pub async fn record_login(&self, username: &str, address: &str, now: i64) -> Result<()> {
        sqlx::query(
            "DELETE FROM login_throttle WHERE (username_key = $1 AND address_key = $2) OR last_failed_at <= $3",
        )
        .bind(self.login_username_key(username))
        .bind(self.login_address_key(address))
        .bind(now - LOGIN_FAILURES_FORGOTTEN_MS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Failed logins older than this no longer count (and are deleted).
pub const LOGIN_FAILURES_FORGOTTEN_MS: i64 = 24 * 3_600_000;
