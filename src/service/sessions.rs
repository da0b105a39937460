//! Staff sessions: logging in (slowed down after wrong passwords, with a bounded number of
//! password checks at once), keeping a session alive, logging out. The cookies and CSRF tokens
//! around them are the staff pages' (`http::staff::session`).

use std::sync::LazyLock;

use super::AppState;
use super::accounts::{hash_password, verify_password};
use crate::store::{SessionLimits, StaffSession, StoreError};

/// The longest a username is slowed down for after wrong passwords from one address.
pub const MAX_LOGIN_DELAY_MS: i64 = 15 * 60_000;
/// How long a login waits for a password check to start before it is answered 503.
pub const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
pub const LIMITS: SessionLimits = SessionLimits { idle: 30 * 60_000, absolute: 12 * 3_600_000 };
/// A session's last use is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Checked against accounts that don't exist, so that a wrong username takes as long as a wrong
/// password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("no account has this password").unwrap_or_default());

async fn verify(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&hash, &password)).await.unwrap_or(false)
}

/// The delay before `username` may be tried again from one address after `failures` wrong
/// passwords in a row: none for the first two (typing mistakes), then 1 s, doubling with each
/// failure up to [`MAX_LOGIN_DELAY_MS`]. Nothing is ever locked: the right password gets in
/// once the delay has passed, so nobody can keep an account (or the review queue) out of reach.
pub fn login_delay_ms(failures: i64) -> i64 {
    if failures < 3 { 0 } else { (1000_i64 << (failures - 3).min(20)).min(MAX_LOGIN_DELAY_MS) }
}

/// One of the [`super::PASSWORD_CHECKS_AT_ONCE`] places for a password check (argon2: slow and
/// memory-hard on purpose). None when none came free within [`PASSWORD_CHECK_WAIT`]: the caller
/// answers 503, and the process stays within its memory.
async fn password_check_place(state: &AppState) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(permit) = state.password_checks.clone().try_acquire_owned() {
        return Some(permit);
    }
    state.metrics.password_check("waited");
    match tokio::time::timeout(PASSWORD_CHECK_WAIT, state.password_checks.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Some(permit),
        _ => {
            state.metrics.password_check("refused_busy");
            None
        }
    }
}

/// What logging in came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogIn {
    /// Too many wrong passwords for this username from this address: not tried before `until`.
    Slowed {
        until: i64,
        now: i64,
    },
    /// No place for a password check came free in time (503).
    Busy,
    /// A wrong password or username (told apart by nothing); the next try waits until `until`.
    Refused {
        until: i64,
        now: i64,
    },
    LoggedIn {
        session_id: String,
    },
    /// The password was right and the account has a second factor: the password alone opens
    /// nothing; the sign-in waits for its code (`super::two_factor`) under this cookie value.
    SecondFactor {
        challenge_id: String,
    },
}

/// Log `username` (trimmed, lower case) in from `address` with `password`; `next` is the page to
/// go on to (kept with a sign-in that waits for its second factor).
pub async fn log_in(
    state: &AppState,
    username: &str,
    password: &str,
    address: &str,
    next: &str,
) -> Result<LogIn, StoreError> {
    let store = &state.store;
    let slowed = |until: i64, now: i64| {
        tracing::info!("staff login refused: slowed down after failed logins");
        LogIn::Slowed { until, now }
    };
    let now = state.clock.now_ms();
    if let Some(until) = store.login_wait(username, address, now).await? {
        return Ok(slowed(until, now));
    }
    let account = store.staff(username).await?;
    let hash = account.as_ref().map_or_else(|| DUMMY_HASH.clone(), |a| a.password_hash.clone());
    let Some(place) = password_check_place(state).await else { return Ok(LogIn::Busy) };
    // Looked at again with the place held: guesses sent in parallel queue for places, and each
    // finds the failures counted before it.
    let now = state.clock.now_ms();
    if let Some(until) = store.login_wait(username, address, now).await? {
        return Ok(slowed(until, now));
    }
    let right = verify(hash, password.to_string()).await && account.as_ref().is_some_and(|a| !a.disabled.0);
    let now = state.clock.now_ms();
    let Some(account) = account.filter(|_| right) else {
        tracing::info!("staff login failed");
        let until = store.record_failed_login(username, address, now, login_delay_ms).await?;
        drop(place);
        return Ok(LogIn::Refused { until, now });
    };
    drop(place);
    // A second factor set up: the password alone opens nothing; the code is asked next.
    if store.has_two_factor(username).await? {
        let challenge_id = super::two_factor::challenge(state, username, next).await?;
        return Ok(LogIn::SecondFactor { challenge_id });
    }
    let session_id = start_session(state, username, &account.role, address).await?;
    Ok(LogIn::LoggedIn { session_id })
}

/// Every factor was right: a session starts (its cookie value), and the login's own throttle
/// count is cleared.
pub async fn start_session(state: &AppState, username: &str, role: &str, address: &str) -> Result<String, StoreError> {
    let store = &state.store;
    let now = state.clock.now_ms();
    store.record_login(username, address, now).await?;
    store.delete_ended_sessions(now, LIMITS).await?;
    let (session_id, _) = store.create_session(username, now, LIMITS).await?;
    tracing::info!(username = %username, role = %role, "staff logged in");
    Ok(session_id)
}

/// A session in use: its last use is written at most every `TOUCH_EVERY_MS`.
pub async fn keep_alive(state: &AppState, id: &str, session: &StaffSession, now: i64) -> Result<(), StoreError> {
    if now - session.last_seen_at > TOUCH_EVERY_MS {
        state.store.touch_session(id, now).await?;
    }
    Ok(())
}

pub async fn log_out(state: &AppState, id: &str) -> Result<(), StoreError> {
    state.store.delete_session(id).await
}
