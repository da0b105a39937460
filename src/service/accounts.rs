//! Staff accounts and API keys: roles, argon2 password hashes, and the admin actions on them
//! (create, disable, unlock; create and revoke a key), each recorded in the audit table in its
//! own transaction.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::store::{AuditAction, KeyOptions, Result as StoreResult, Store, StoreError, audit};

pub const ROLES: [&str; 3] = ["author", "approver", "admin"];
pub const MIN_PASSWORD: usize = 12;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Create an account; refuses bad usernames, unknown roles, short passwords and duplicates.
/// `by` is who creates it (`staff:<admin>` or `cli`): recorded with the account, for the
/// four-eyes rule, and in the audit table.
pub async fn create_account(
    store: &Store,
    username: &str,
    role: &str,
    password: &str,
    now: i64,
    by: &str,
) -> Result<(), String> {
    let valid = (3..=40).contains(&username.len())
        && username.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !valid {
        return Err("a username is 3 to 40 characters of a-z, 0-9, . _ -".into());
    }
    if !ROLES.contains(&role) {
        return Err(format!("the role must be one of {}", ROLES.join(", ")));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!("the password must be at least {MIN_PASSWORD} characters"));
    }
    if store.staff(username).await.map_err(|e| e.to_string())?.is_some() {
        return Err(format!("staff account {username} already exists"));
    }
    let hash = hash_password(password)?;
    create_staff(store, username, role, &hash, now, by).await.map_err(|e| e.to_string())
}

/// Whether `password` is `username`'s, for an account that is enabled (the command line's
/// approvals; the staff pages log in through `http::staff::session`).
pub async fn authenticate(store: &Store, username: &str, password: &str) -> Result<bool, StoreError> {
    let Some(account) = store.staff(username).await? else { return Ok(false) };
    let (hash, password) = (account.password_hash, password.to_string());
    let right = tokio::task::spawn_blocking(move || verify_password(&hash, &password)).await.unwrap_or(false);
    Ok(right && !account.disabled.0)
}

/// Create an account with its password hash (recorded in the audit table as done `by`).
async fn create_staff(
    store: &Store,
    username: &str,
    role: &str,
    password_hash: &str,
    now: i64,
    by: &str,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    store.insert_staff(&mut tx, username, role, password_hash, now, by).await?;
    audit(&mut tx, now, by, AuditAction::StaffCreated, username, serde_json::json!({ "role": role })).await?;
    tx.commit().await
}

/// Create a key with the default options (recorded in the audit table as done `by`); the plain
/// key is returned once and never stored.
pub async fn create_api_key(store: &Store, name: &str, scopes: &[String], now: i64, by: &str) -> StoreResult<String> {
    create_api_key_with(store, name, scopes, KeyOptions::default(), now, by).await
}

/// Create a key that may be a test key, with its own rate limit.
pub async fn create_api_key_with(
    store: &Store,
    name: &str,
    scopes: &[String],
    options: KeyOptions,
    now: i64,
    by: &str,
) -> StoreResult<String> {
    let mut tx = store.begin().await?;
    let (id, key) = store.insert_api_key(&mut tx, name, scopes, options, now).await?;
    let detail =
        serde_json::json!({ "name": name, "scopes": scopes, "test": options.test, "rate_limit": options.rate_limit });
    audit(&mut tx, now, by, AuditAction::KeyCreated, &id, detail).await?;
    tx.commit().await?;
    Ok(key)
}

/// Revoke a key: from now on it is refused (401). False when there is no such key in use.
pub async fn revoke_api_key(store: &Store, id: &str, now: i64, by: &str) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    let revoked = store.set_api_key_revoked(&mut tx, id, now).await?;
    if revoked {
        audit(&mut tx, now, by, AuditAction::KeyRevoked, id, serde_json::json!({})).await?;
    }
    tx.commit().await?;
    Ok(revoked)
}

/// Lift the slow-down of failed logins for `username`, from every address (admin). False
/// when there is no such account.
pub async fn unlock_staff(store: &Store, username: &str, now: i64, by: &str) -> StoreResult<bool> {
    if store.staff(username).await?.is_none() {
        return Ok(false);
    }
    let mut tx = store.begin().await?;
    store.delete_login_failures_of(&mut tx, username).await?;
    audit(&mut tx, now, by, AuditAction::StaffUnlocked, username, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(true)
}

/// Disable an account (its sessions end, it cannot log in) or enable it again. False when
/// there is no such account.
pub async fn set_staff_disabled(
    store: &Store,
    username: &str,
    disabled: bool,
    now: i64,
    by: &str,
) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    let changed = store.set_staff_disabled_flag(&mut tx, username, disabled).await?;
    if disabled {
        store.delete_sessions_of(&mut tx, username).await?;
    }
    if changed {
        let action = if disabled { AuditAction::StaffDisabled } else { AuditAction::StaffEnabled };
        audit(&mut tx, now, by, action, username, serde_json::json!({})).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }
}
