//! Staff accounts: roles and argon2 password hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::store::Store;

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
    store.create_staff(username, role, &hash, now, by).await.map_err(|e| e.to_string())
}

/// Whether `password` is `username`'s, for an account that is enabled (the command line's
/// approvals; the staff pages log in through `http::staff::session`).
pub async fn authenticate(store: &Store, username: &str, password: &str) -> Result<bool, crate::store::StoreError> {
    let Some(account) = store.staff(username).await? else { return Ok(false) };
    let (hash, password) = (account.password_hash, password.to_string());
    let right = tokio::task::spawn_blocking(move || verify_password(&hash, &password)).await.unwrap_or(false);
    Ok(right && !account.disabled.0)
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
