//! A second factor for staff: TOTP (RFC 6238: 6 digits, 30-second steps, HMAC-SHA1, as every
//! authenticator app does) through `totp-rs`, and single-use recovery codes.
//!
//! With `SAFEREACH_STAFF_2FA=required`, approvers and admins (who approve wording, read replies
//! and create API keys) cannot sign in with a password alone; an account of theirs without a
//! second factor is taken to enrolment right after its password and can do nothing else until it
//! has one. Unset, enrolling is optional for everyone.
//!
//! The use cases: the code asked after a right password (`challenge`, `sign_in_with_code`),
//! enrolment (`enrolment_state`, `confirm_enrolment`) and an admin's reset for a lost device
//! (`reset`). The staff pages around them are `http::staff::two_factor`.

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, TOTP};

use super::AppState;
use super::sessions::{login_delay_ms, start_session};
use crate::config::TwoFactor as Policy;
use crate::store::{AuditAction, Result as StoreResult, Store, StoreError, audit};

/// The issuer an authenticator app shows beside the account.
pub const ISSUER: &str = "safereach";
const STEP_SECS: u64 = 30;
/// Codes a step either side of now are accepted (a phone's clock a little off).
const SKEW: u64 = 1;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Letters and digits that can't be mistaken for each other (no 0/o, 1/l/i).
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const RECOVERY_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    #[error("second factor: {0}")]
    Totp(String),
}

/// Whether `role` must sign in with a second factor under `policy`.
pub fn required_for(role: &str, policy: Policy) -> bool {
    policy == Policy::Required && matches!(role, "approver" | "admin")
}

/// A new secret: 160 random bits (RFC 4226's recommendation).
pub fn new_secret() -> Vec<u8> {
    rand::random::<[u8; 20]>().to_vec()
}

fn totp(secret: &[u8], username: &str) -> Result<TOTP, TwoFactorError> {
    TOTP::new(Algorithm::SHA1, 6, SKEW as u8, STEP_SECS, secret.to_vec(), Some(ISSUER.into()), username.into())
        .map_err(|e| TwoFactorError::Totp(e.to_string()))
}

/// What enrolment shows: the secret (base32, in groups of four) and the `otpauth://` URL as an
/// SVG QR code to scan.
pub struct Enrolment {
    pub secret: String,
    pub qr_svg: String,
}

pub fn enrolment(secret: &[u8], username: &str) -> Result<Enrolment, TwoFactorError> {
    let totp = totp(secret, username)?;
    let base32 = totp.get_secret_base32();
    let grouped = base32.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>();
    let code = QrCode::new(totp.get_url().as_bytes()).map_err(|e| TwoFactorError::Totp(e.to_string()))?;
    let qr_svg = code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(Enrolment { secret: grouped.join(" "), qr_svg })
}

/// The time step `code` is right for, within one step either side of `now_secs`; None when it is
/// not a code of this secret now. The caller accepts each step once (no replay).
pub fn matching_step(secret: &[u8], username: &str, code: &str, now_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, username).ok()?;
    let now_step = now_secs / STEP_SECS;
    // Every candidate is computed, so that the time taken says nothing about which one matched.
    let mut found = None;
    for step in now_step.saturating_sub(SKEW)..=now_step + SKEW {
        let expected = totp.generate(step * STEP_SECS);
        if bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// Fresh recovery codes, `xxxx-xxxx-xxxx` (about 59 random bits each).
pub fn recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: Vec<char> = (0..RECOVERY_LEN)
                .map(|_| RECOVERY_ALPHABET[rand::random_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// A recovery code as typed (any case, with or without dashes and spaces), in the form it is
/// stored under; None when it cannot be one.
pub fn normalise_recovery_code(typed: &str) -> Option<String> {
    let compact: String = typed.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_lowercase();
    let valid = compact.len() == RECOVERY_LEN && compact.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
    valid.then(|| {
        compact.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
    })
}

/// How long the code may take after the password.
pub const CHALLENGE_MS: i64 = 5 * 60_000;
/// Wrong codes one sign-in may have before the password must be given again.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// A started enrolment keeps its secret this long (reloading the page shows the same QR code).
const PENDING_MS: i64 = 3_600_000;

/// The password was right and `username` has a second factor: a sign-in waits for its code, and
/// goes on to `next`. Its cookie value.
pub async fn challenge(state: &AppState, username: &str, next: &str) -> StoreResult<String> {
    let id = state.store.create_login_challenge(username, next, state.clock.now_ms(), CHALLENGE_MS).await?;
    tracing::info!(username = %username, "staff password right: second factor asked");
    Ok(id)
}

/// Which factor let someone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    Code,
    RecoveryCode,
}

/// What a code typed after the password came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSignIn {
    /// No sign-in waits under this cookie (expired, or its account disabled): log in again.
    Expired,
    /// Too many wrong tries for this username from this address: not tried before `until`.
    Slowed { until: i64, now: i64 },
    /// Not a code of this account now, or a step or recovery code used already; the next try
    /// waits until `until`.
    Wrong { until: i64, now: i64 },
    /// The last of `MAX_CODE_ATTEMPTS` wrong codes: the sign-in is over.
    TooManyWrong,
    /// A session started; `recovery_codes_left` when a recovery code let them in.
    SignedIn { session_id: String, next: String, recovery_codes_left: Option<i64> },
}

/// Check a code (each time step once) or else a recovery code (each once).
async fn check(store: &Store, username: &str, typed: &str, now: i64) -> StoreResult<Option<Factor>> {
    let Some(second) = store.two_factor(username).await?.filter(|t| t.enrolled_at.is_some()) else { return Ok(None) };
    if let Some(step) = matching_step(&second.secret, username, typed, (now / 1000).max(0) as u64) {
        return Ok(store.use_code_step(username, step as i64).await?.then_some(Factor::Code));
    }
    match normalise_recovery_code(typed) {
        Some(code) if store.use_recovery_code(username, &code, now).await? => Ok(Some(Factor::RecoveryCode)),
        _ => Ok(None),
    }
}

/// The second step of a sign-in: the code (or a recovery code) for the sign-in `challenge_id`,
/// throttled as passwords are (the same slow-down for the username from that address), and at
/// most `MAX_CODE_ATTEMPTS` wrong ones before the password must be given again.
pub async fn sign_in_with_code(
    state: &AppState,
    challenge_id: &str,
    typed: &str,
    address: &str,
) -> StoreResult<CodeSignIn> {
    let store = &state.store;
    let now = state.clock.now_ms();
    let Some(challenge) = store.login_challenge(challenge_id, now).await? else { return Ok(CodeSignIn::Expired) };
    let username = challenge.username;
    if let Some(until) = store.login_wait(&username, address, now).await? {
        return Ok(CodeSignIn::Slowed { until, now });
    }
    let Some(factor) = check(store, &username, typed, now).await? else {
        tracing::info!("staff second factor failed");
        let until = store.record_failed_login(&username, address, now, login_delay_ms).await?;
        if store.count_challenge_attempt(challenge_id).await? >= MAX_CODE_ATTEMPTS {
            store.delete_login_challenge(challenge_id).await?;
            return Ok(CodeSignIn::TooManyWrong);
        }
        return Ok(CodeSignIn::Wrong { until, now });
    };
    store.delete_login_challenge(challenge_id).await?;
    let role = store.staff(&username).await?.map(|a| a.role).unwrap_or_default();
    let session_id = start_session(state, &username, &role, address).await?;
    let mut recovery_codes_left = None;
    if factor == Factor::RecoveryCode {
        let left = store.recovery_codes_left(&username).await?;
        tracing::info!(username = %username, left, "staff signed in with a recovery code");
        recovery_codes_left = Some(left);
    }
    Ok(CodeSignIn::SignedIn { session_id, next: challenge.next, recovery_codes_left })
}

/// Where a member of staff's enrolment stands, for the second-factor page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolmentState {
    On {
        since: Option<i64>,
        recovery_codes_left: i64,
    },
    /// Not on yet: the secret to show (`enrolment`), the same one for an hour (it may have been
    /// scanned already).
    Pending {
        secret: Vec<u8>,
    },
}

/// The second factor of `username`: on, or an enrolment started (or started again).
pub async fn enrolment_state(state: &AppState, username: &str) -> StoreResult<EnrolmentState> {
    let store = &state.store;
    let now = state.clock.now_ms();
    let current = store.two_factor(username).await?;
    if let Some(on) = current.as_ref().filter(|t| t.enrolled_at.is_some()) {
        let left = store.recovery_codes_left(username).await?;
        return Ok(EnrolmentState::On { since: on.enrolled_at, recovery_codes_left: left });
    }
    let secret = match current {
        Some(pending) if now - pending.created_at < PENDING_MS => pending.secret,
        _ => {
            let secret = new_secret();
            store.start_two_factor(username, &secret, now).await?;
            secret
        }
    };
    Ok(EnrolmentState::Pending { secret })
}

/// What confirming an enrolment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    AlreadyOn,
    WrongCode,
    /// The second factor is on; these recovery codes are shown this once.
    On {
        recovery_codes: Vec<String>,
    },
}

/// Confirm `username`'s enrolment with a code from the app: the second factor is on, with fresh
/// recovery codes (any earlier ones go). Audited.
pub async fn confirm_enrolment(state: &AppState, username: &str, code: &str) -> StoreResult<Confirmed> {
    let store = &state.store;
    let now = state.clock.now_ms();
    let Some(pending) = store.two_factor(username).await?.filter(|t| t.enrolled_at.is_none()) else {
        return Ok(Confirmed::AlreadyOn);
    };
    let Some(step) = matching_step(&pending.secret, username, code, (now / 1000).max(0) as u64) else {
        return Ok(Confirmed::WrongCode);
    };
    let codes = recovery_codes();
    let mut tx = store.begin().await?;
    if !store.set_two_factor_enrolled(&mut tx, username, step as i64, now).await? {
        return Err(StoreError::Conflict("no enrolment is waiting to be confirmed".into()));
    }
    store.replace_recovery_codes(&mut tx, username, &codes).await?;
    let detail = serde_json::json!({ "recovery_codes": codes.len() });
    audit(&mut tx, now, &format!("staff:{username}"), AuditAction::TwoFactorEnrolled, username, detail).await?;
    tx.commit().await?;
    tracing::info!(username = %username, "staff second factor set up");
    Ok(Confirmed::On { recovery_codes: codes })
}

/// Lost device: an admin (or the command line) takes the second factor off `username`; recovery
/// codes, sign-ins waiting for a code and sessions go too (the account enrols again at its next
/// sign-in). False when there was none. Audited.
pub async fn reset(store: &Store, username: &str, by: &str, now: i64) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    let removed = store.delete_two_factor(&mut tx, username).await?;
    store.delete_sessions_of(&mut tx, username).await?;
    if removed {
        audit(&mut tx, now, by, AuditAction::TwoFactorReset, username, serde_json::json!({})).await?;
    }
    tx.commit().await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test secret and its published 8-digit codes (their last 6 digits).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238_and_each_names_its_step() {
        for (time, code) in
            [(59_u64, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
        {
            assert_eq!(matching_step(RFC_SECRET, "ana", code, time), Some(time / 30), "{time}");
        }
        // A step either side is accepted (a phone's clock a little off), two are not.
        assert_eq!(matching_step(RFC_SECRET, "ana", "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(RFC_SECRET, "ana", "287082", 59 + 60), None);
        for junk in ["28708", "2870821", "28708a", "", "287 082x"] {
            assert_eq!(matching_step(RFC_SECRET, "ana", junk, 59), None, "{junk}");
        }
        assert_eq!(matching_step(RFC_SECRET, "ana", " 287 082 ", 59), Some(1), "spaces are forgiven");
    }

    #[test]
    fn enrolment_shows_the_secret_in_groups_and_a_qr_code_of_the_otpauth_url() {
        let e = enrolment(RFC_SECRET, "ana.approver").unwrap();
        assert_eq!(e.secret.replace(' ', ""), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert!(e.qr_svg.contains("<svg") && e.qr_svg.contains("</svg>"));
        assert!(!e.qr_svg.contains("<script"));
    }

    #[test]
    fn recovery_codes_are_random_distinct_and_read_back_however_typed() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!(normalise_recovery_code(code).as_deref(), Some(code.as_str()));
            let typed = code.replace('-', " ").to_uppercase();
            assert_eq!(normalise_recovery_code(&typed).as_deref(), Some(code.as_str()));
        }
        assert_eq!(normalise_recovery_code("0000-1111-llll"), None, "not in the alphabet");
        assert_eq!(normalise_recovery_code("123456"), None);
    }

    #[test]
    fn only_approvers_and_admins_must_and_only_when_required() {
        assert!(required_for("approver", Policy::Required) && required_for("admin", Policy::Required));
        assert!(!required_for("author", Policy::Required));
        assert!(!required_for("admin", Policy::Optional));
    }
}
