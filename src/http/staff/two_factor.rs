//! The second factor on the staff pages (`crate::service::two_factor`): enrolment (a QR code and the
//! secret, confirmed with a code; recovery codes shown once), the code asked after a right
//! password, and an admin's reset for a lost device.
//!
//! The step after the password is throttled as passwords are (the same slow-down for the username
//! from that address), and a sign-in allows only `MAX_CODE_ATTEMPTS` wrong codes before the
//! password must be given again (`crate::service::two_factor`, where the use cases are).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::session::{
    ClientAddress, LOGIN_COOKIE, cookie, secure, session_started, set_cookie, tokens_match, with_flash,
};
use super::view::{self, when};
use super::{PageResult, Staff, StaffError, done};
use crate::service::AppState;
use crate::service::two_factor::{
    self as use_cases, CHALLENGE_MS, CodeSignIn, Confirmed, EnrolmentState, enrolment, required_for,
};
use crate::store::random_token;

/// What an account that must enrol may still reach: the enrolment page first.
pub const ENROLMENT_PATHS: [&str; 3] = ["/staff/two-factor", "/staff/two-factor/enrol", "/staff/logout"];
/// The cookie of a sign-in waiting for its code.
const CHALLENGE_COOKIE: &str = "safereach_2fa";

/// The password was right and the account has a second factor: on to the page asking for the code,
/// with the cookie of the sign-in that waits for it.
pub fn ask_for_code(state: &AppState, challenge_id: &str) -> Response {
    let mut response = Redirect::to("/staff/login/code").into_response();
    let cookie = set_cookie(CHALLENGE_COOKIE, challenge_id, Some(CHALLENGE_MS / 1000), secure(state));
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
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
    let Some(id) = cookie(&headers, CHALLENGE_COOKIE) else { return Ok(log_in_again("Log in first.")) };
    let wait = |until: i64, now: i64| (until - now + 999) / 1000;
    match use_cases::sign_in_with_code(&state, &id, &form.code, &address).await? {
        CodeSignIn::Expired => Ok(log_in_again("That sign-in has expired. Log in again.")),
        CodeSignIn::Slowed { until, now } => {
            let message = format!(
                "Too many wrong tries for this username from here. Try again in {} second(s).",
                wait(until, now)
            );
            code_form(&state, &headers, StatusCode::TOO_MANY_REQUESTS, Some(message))
        }
        CodeSignIn::TooManyWrong => Ok(log_in_again("Too many wrong codes. Log in again.")),
        CodeSignIn::Wrong { until, now } => {
            let mut message =
                "That code is not right (or was used already). Try the code your app shows now.".to_string();
            if until > now {
                message.push_str(&format!(" Wait {} second(s) first.", wait(until, now)));
            }
            code_form(&state, &headers, StatusCode::UNAUTHORIZED, Some(message))
        }
        CodeSignIn::SignedIn { session_id, next, recovery_codes_left } => {
            let mut response = session_started(&state, &session_id, &next);
            let secure = secure(&state);
            response.headers_mut().append(header::SET_COOKIE, set_cookie(CHALLENGE_COOKIE, "", Some(0), secure));
            if let Some(left) = recovery_codes_left {
                response = with_flash(
                    response,
                    &format!(
                        "You signed in with a recovery code; it cannot be used again. {left} recovery code(s) left."
                    ),
                );
            }
            Ok(response)
        }
    }
}

/// The second-factor page: set one up, or see that it is on.
pub async fn page(State(state): State<Arc<AppState>>, staff: Staff) -> PageResult {
    let required = required_for(&staff.role, state.config.staff_2fa);
    let secret = match use_cases::enrolment_state(&state, &staff.username).await? {
        EnrolmentState::On { since, recovery_codes_left } => {
            let data = json!({
                "title": "Second factor",
                "enrolled": true,
                "since": since.map(when),
                "left": recovery_codes_left,
                "required": required,
            });
            return view::page("two_factor", &staff, data);
        }
        EnrolmentState::Pending { secret } => secret,
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
    match use_cases::confirm_enrolment(&state, &staff.username, &form.code).await? {
        Confirmed::AlreadyOn => Ok(done("/staff/two-factor", "Your second factor is already set up.")),
        Confirmed::WrongCode => Ok(done(
            "/staff/two-factor",
            "That code was not right. Check that your app shows the account safereach, and type the code it shows now.",
        )),
        Confirmed::On { recovery_codes } => {
            let data = json!({ "title": "Recovery codes", "codes": recovery_codes });
            view::page("recovery_codes", &staff, data)
        }
    }
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
    if !use_cases::reset(&state.store, &username, &staff.actor(), state.clock.now_ms()).await? {
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
