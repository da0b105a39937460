//! The second factor on the staff pages (`crate::two_factor`): enrolment (a QR code and the
//! secret, confirmed with a code; recovery codes shown once), the code asked after a right
//! password, and an admin's reset for a lost device.
//!
//! The step after the password is throttled as passwords are (the same slow-down for the username
//! from that address), and a sign-in allows only `MAX_CODE_ATTEMPTS` wrong codes before the
//! password must be given again.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::session::{
    ClientAddress, LOGIN_COOKIE, cookie, login_delay_ms, secure, set_cookie, start_session, tokens_match, with_flash,
};
use super::view::{self, when};
use super::{PageResult, Staff, StaffError, done};
use crate::app::AppState;
use crate::store::random_token;
use crate::two_factor::{enrolment, matching_step, new_secret, normalise_recovery_code, recovery_codes, required_for};

/// What an account that must enrol may still reach: the enrolment page first.
pub const ENROLMENT_PATHS: [&str; 3] = ["/staff/two-factor", "/staff/two-factor/enrol", "/staff/logout"];
/// The cookie of a sign-in waiting for its code.
const CHALLENGE_COOKIE: &str = "safereach_2fa";
/// How long the code may take after the password.
const CHALLENGE_MS: i64 = 5 * 60_000;
/// Wrong codes one sign-in may have before the password must be given again.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// A started enrolment keeps its secret this long (reloading the page shows the same QR code).
const PENDING_MS: i64 = 3_600_000;

/// The password was right and `username` has a second factor: ask for the code.
pub async fn challenge(state: &AppState, username: &str, next: &str) -> PageResult {
    let id = state.store.create_login_challenge(username, next, state.clock.now_ms(), CHALLENGE_MS).await?;
    tracing::info!(username = %username, "staff password right: second factor asked");
    let mut response = Redirect::to("/staff/login/code").into_response();
    let cookie = set_cookie(CHALLENGE_COOKIE, &id, Some(CHALLENGE_MS / 1000), secure(state));
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

fn log_in_again(message: &str) -> Response {
    with_flash(Redirect::to("/staff/login").into_response(), message)
}

/// The form asking for the code (or a recovery code), with the login's double-submit token.
fn code_form(state: &AppState, headers: &HeaderMap, status: StatusCode, error: Option<String>) -> PageResult {
    let token = cookie(headers, LOGIN_COOKIE).filter(|t| t.len() == 64).unwrap_or_else(random_token);
    let data = json!({ "title": "Second factor", "login_csrf": token, "error": error });
    let mut response = (status, view::render("login_code", None, data)?).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, Some(3600), secure(state)));
    Ok(response)
}

pub async fn code_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> PageResult {
    let Some(id) = cookie(&headers, CHALLENGE_COOKIE) else { return Ok(Redirect::to("/staff/login").into_response()) };
    if state.store.login_challenge(&id, state.clock.now_ms()).await?.is_none() {
        return Ok(log_in_again("That sign-in has expired. Log in again."));
    }
    code_form(&state, &headers, StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
}

/// Which factor let someone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    Code,
    RecoveryCode,
}

/// Check a code (each time step once) or else a recovery code (each once).
async fn check(state: &AppState, username: &str, typed: &str, now: i64) -> Result<Option<Factor>, StaffError> {
    let store = &state.store;
    let Some(second) = store.two_factor(username).await?.filter(|t| t.enrolled_at.is_some()) else { return Ok(None) };
    if let Some(step) = matching_step(&second.secret, username, typed, (now / 1000).max(0) as u64) {
        return Ok(store.use_code_step(username, step as i64).await?.then_some(Factor::Code));
    }
    match normalise_recovery_code(typed) {
        Some(code) if store.use_recovery_code(username, &code, now).await? => Ok(Some(Factor::RecoveryCode)),
        _ => Ok(None),
    }
}

pub async fn code_submit(
    State(state): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> PageResult {
    if !tokens_match(&form.csrf, &cookie(&headers, LOGIN_COOKIE).unwrap_or_default()) {
        tracing::warn!("second factor refused: CSRF token missing or wrong");
        return Err(StaffError::Csrf);
    }
    let store = &state.store;
    let now = state.clock.now_ms();
    let Some(id) = cookie(&headers, CHALLENGE_COOKIE) else { return Ok(log_in_again("Log in first.")) };
    let Some(challenge) = store.login_challenge(&id, now).await? else {
        return Ok(log_in_again("That sign-in has expired. Log in again."));
    };
    let username = challenge.username;
    if let Some(until) = store.login_wait(&username, &address, now).await? {
        let seconds = (until - now + 999) / 1000;
        let message = format!("Too many wrong tries for this username from here. Try again in {seconds} second(s).");
        return code_form(&state, &headers, StatusCode::TOO_MANY_REQUESTS, Some(message));
    }
    let Some(factor) = check(&state, &username, &form.code, now).await? else {
        tracing::info!("staff second factor failed");
        let until = store.record_failed_login(&username, &address, now, login_delay_ms).await?;
        if store.count_challenge_attempt(&id).await? >= MAX_CODE_ATTEMPTS {
            store.delete_login_challenge(&id).await?;
            return Ok(log_in_again("Too many wrong codes. Log in again."));
        }
        let mut message = "That code is not right (or was used already). Try the code your app shows now.".to_string();
        if until > now {
            message.push_str(&format!(" Wait {} second(s) first.", (until - now + 999) / 1000));
        }
        return code_form(&state, &headers, StatusCode::UNAUTHORIZED, Some(message));
    };
    store.delete_login_challenge(&id).await?;
    let role = store.staff(&username).await?.map(|a| a.role).unwrap_or_default();
    let mut response = start_session(&state, &username, &role, &address, &challenge.next).await?;
    let secure = secure(&state);
    response.headers_mut().append(header::SET_COOKIE, set_cookie(CHALLENGE_COOKIE, "", Some(0), secure));
    if factor == Factor::RecoveryCode {
        let left = store.recovery_codes_left(&username).await?;
        tracing::info!(username = %username, left, "staff signed in with a recovery code");
        response = with_flash(
            response,
            &format!("You signed in with a recovery code; it cannot be used again. {left} recovery code(s) left."),
        );
    }
    Ok(response)
}

/// The second-factor page: set one up, or see that it is on.
pub async fn page(State(state): State<Arc<AppState>>, staff: Staff) -> PageResult {
    let store = &state.store;
    let now = state.clock.now_ms();
    let required = required_for(&staff.role, state.config.staff_2fa);
    let current = store.two_factor(&staff.username).await?;
    if let Some(on) = current.as_ref().filter(|t| t.enrolled_at.is_some()) {
        let data = json!({
            "title": "Second factor",
            "enrolled": true,
            "since": on.enrolled_at.map(when),
            "left": store.recovery_codes_left(&staff.username).await?,
            "required": required,
        });
        return view::page("two_factor", &staff, data);
    }
    // Reloading the page within the hour shows the same secret (it may have been scanned).
    let secret = match current {
        Some(pending) if now - pending.created_at < PENDING_MS => pending.secret,
        _ => {
            let secret = new_secret();
            store.start_two_factor(&staff.username, &secret, now).await?;
            secret
        }
    };
    let shown = enrolment(&secret, &staff.username).map_err(|e| StaffError::BadRequest(e.to_string()))?;
    let data = json!({
        "title": "Second factor",
        "enrolled": false,
        "required": required,
        "secret": shown.secret,
        "qr_svg": shown.qr_svg,
    });
    view::page("two_factor", &staff, data)
}

/// Confirm the enrolment with a code from the app: the second factor is on, and the recovery
/// codes are shown, this once.
pub async fn enrol(State(state): State<Arc<AppState>>, staff: Staff, Form(form): Form<CodeForm>) -> PageResult {
    let store = &state.store;
    let now = state.clock.now_ms();
    let pending = store.two_factor(&staff.username).await?.filter(|t| t.enrolled_at.is_none());
    let Some(pending) = pending else {
        return Ok(done("/staff/two-factor", "Your second factor is already set up."));
    };
    let Some(step) = matching_step(&pending.secret, &staff.username, &form.code, (now / 1000).max(0) as u64) else {
        return Ok(done(
            "/staff/two-factor",
            "That code was not right. Check that your app shows the account safereach, and type the code it shows now.",
        ));
    };
    let codes = recovery_codes();
    store.confirm_two_factor(&staff.username, step as i64, &codes, now).await?;
    tracing::info!(username = %staff.username, "staff second factor set up");
    let data = json!({ "title": "Recovery codes", "codes": codes });
    view::page("recovery_codes", &staff, data)
}

/// Lost device: an admin takes a member of staff's second factor off (not their own). Their
/// sessions end; they set one up again at their next sign-in.
pub async fn reset(State(state): State<Arc<AppState>>, staff: Staff, Path(username): Path<String>) -> PageResult {
    if !staff.is_admin() {
        return Err(StaffError::Forbidden("only admins reset a second factor".into()));
    }
    if username == staff.username {
        return Err(StaffError::BadRequest("another admin must reset your own second factor".into()));
    }
    if !state.store.reset_two_factor(&username, &staff.actor(), state.clock.now_ms()).await? {
        return Err(StaffError::NotFound("second factor for that account"));
    }
    tracing::info!(username = %username, by = %staff.username, "staff second factor reset");
    Ok(done(
        "/staff/admin",
        format!(
            "The second factor of {username} was reset: their sessions ended, and they set up a new one at their next sign-in."
        ),
    ))
}
