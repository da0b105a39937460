//! API keys (for the triage system and reporting) and staff accounts.

use sha2::{Digest, Sha256};

use sqlx::AnyConnection;

use super::{Result, Store, dynamic, new_id, random_token};

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// A test key: its jobs go to the sandbox only and stay out of reports.
    pub test: bool,
    /// Requests a minute this key may make.
    pub rate_limit: u32,
}

/// How a new key behaves beyond its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOptions {
    pub test: bool,
    /// Requests a minute (at least 1).
    pub rate_limit: u32,
}

/// The rate limit of a key created without one: 3,000 requests a minute.
pub const DEFAULT_RATE_LIMIT: u32 = 3000;

impl Default for KeyOptions {
    fn default() -> KeyOptions {
        KeyOptions { test: false, rate_limit: DEFAULT_RATE_LIMIT }
    }
}

/// An API key as listed for admins (never the key itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyListing {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    #[sqlx(try_from = "i64")]
    pub test: super::Flag,
    pub rate_limit: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffAccount {
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: i64,
    /// `staff:<admin>` for an account an admin created on the staff pages, `cli` for one made
    /// on the command line; None for accounts made before this was recorded.
    pub created_by: Option<String>,
    #[sqlx(try_from = "i64")]
    pub disabled: super::Flag,
}

const STAFF_COLUMNS: &str = "username, password_hash, role, created_at, created_by, disabled";

/// An admin action, as the audit table keeps it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
}

/// What admins do; each is recorded in the audit table in the transaction that does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    StaffCreated,
    StaffDisabled,
    StaffEnabled,
    StaffUnlocked,
    KeyCreated,
    KeyRevoked,
    /// A member of staff set up a second factor (their own).
    TwoFactorEnrolled,
    /// An admin (or the command line) took a member of staff's second factor off: a lost device.
    TwoFactorReset,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::StaffCreated => "staff_created",
            AuditAction::StaffDisabled => "staff_disabled",
            AuditAction::StaffEnabled => "staff_enabled",
            AuditAction::StaffUnlocked => "staff_unlocked",
            AuditAction::KeyCreated => "key_created",
            AuditAction::KeyRevoked => "key_revoked",
            AuditAction::TwoFactorEnrolled => "two_factor_enrolled",
            AuditAction::TwoFactorReset => "two_factor_reset",
        }
    }
}

/// Record an admin action in the audit table (in the transaction of the action).
pub async fn audit(
    conn: &mut AnyConnection,
    at: i64,
    actor: &str,
    action: AuditAction,
    target: &str,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO audit_events (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(at)
        .bind(actor)
        .bind(action.as_str())
        .bind(target)
        .bind(detail.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// API keys are long random strings, so a plain SHA-256 is the right hash: it is fast enough to
/// run on every request and cannot be brute-forced from the stored value.
fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Insert a new key; the plain key is returned once (with its id) and never stored.
    pub async fn insert_api_key(
        &self,
        conn: &mut AnyConnection,
        name: &str,
        scopes: &[String],
        options: KeyOptions,
        now: i64,
    ) -> Result<(String, String)> {
        let key = format!("sr_{}", random_token());
        let id = new_id("key");
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, scopes, created_at, test, rate_limit) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(name)
        .bind(key_hash(&key))
        .bind(scopes.join(","))
        .bind(now)
        .bind(i64::from(options.test))
        .bind(i64::from(options.rate_limit.max(1)))
        .execute(&mut *conn)
        .await?;
        Ok((id, key))
    }

    /// Revoke a key in use: from then on it is refused. False when there is no such key in use.
    pub async fn set_api_key_revoked(&self, conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
        let changed = sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    pub async fn insert_staff(
        &self,
        conn: &mut AnyConnection,
        username: &str,
        role: &str,
        password_hash: &str,
        now: i64,
        by: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO staff (username, password_hash, role, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .bind(now)
        .bind(by)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Forget every failed login of `username`, from every address.
    pub async fn delete_login_failures_of(&self, conn: &mut AnyConnection, username: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_throttle WHERE username_key = $1")
            .bind(self.login_username_key(username))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Disable an account or enable it again. False when there is no such account.
    pub async fn set_staff_disabled_flag(
        &self,
        conn: &mut AnyConnection,
        username: &str,
        disabled: bool,
    ) -> Result<bool> {
        let changed = sqlx::query("UPDATE staff SET disabled = $2 WHERE username = $1")
            .bind(username)
            .bind(i64::from(disabled))
            .execute(&mut *conn)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// End every session of `username`.
    pub async fn delete_sessions_of(&self, conn: &mut AnyConnection, username: &str) -> Result<()> {
        sqlx::query("DELETE FROM staff_sessions WHERE username = $1").bind(username).execute(&mut *conn).await?;
        Ok(())
    }

    pub async fn find_api_key(&self, key: &str) -> Result<Option<ApiKey>> {
        let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, name, scopes, test, rate_limit FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash(key))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, name, scopes, test, rate_limit)| ApiKey {
            id,
            name,
            scopes: scopes.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            test: test == 1,
            rate_limit: u32::try_from(rate_limit).unwrap_or(u32::MAX).max(1),
        }))
    }

    pub async fn staff(&self, username: &str) -> Result<Option<StaffAccount>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {STAFF_COLUMNS} FROM staff WHERE username = $1")))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every staff account, by name.
    pub async fn staff_accounts(&self) -> Result<Vec<StaffAccount>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {STAFF_COLUMNS} FROM staff ORDER BY username")))
            .fetch_all(&self.pool)
            .await?)
    }

    /// The latest admin actions, newest first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(sqlx::query_as("SELECT at, actor, action, target, detail FROM audit_events ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyListing>> {
        Ok(sqlx::query_as(
            "SELECT id, name, scopes, created_at, revoked_at, test, rate_limit FROM api_keys ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
