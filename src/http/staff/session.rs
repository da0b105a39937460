//! Logging in and out, server-side sessions, the lock-out after repeated failures, and CSRF
//! protection.
//!
//! - The session cookie holds a random id (the database keeps only its SHA-256). It is `HttpOnly`
//!   (scripts can't read it), `SameSite=Strict` (other sites can't make the browser send it), and
//!   `Secure` when `SAFEREACH_PUBLIC_URL` is https. Over plain http (a loopback test or demo) a
//!   `Secure` cookie would never come back, so it is left off there.
//! - Every POST behind the login carries the session's CSRF token in a hidden `csrf` field,
//!   checked by [`require_staff`] before any handler runs. The login form, which has no session
//!   yet, uses a double-submit token: a random cookie that the form must repeat.
//! - Wrong passwords slow down that username from that address (`service::sessions`, which logs
//!   in); no account is ever locked, and an unknown username is answered exactly as a wrong
//!   password. At most `PASSWORD_CHECKS_AT_ONCE` password checks run at once; the rest wait,
//!   then get 503.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Form;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{PageResult, StaffError, view};
use crate::service::AppState;
use crate::service::sessions::{self, LogIn};
use crate::store::random_token;

pub const SESSION_COOKIE: &str = "safereach_session";
pub(super) const LOGIN_COOKIE: &str = "safereach_login";
const FLASH_COOKIE: &str = "safereach_flash";
/// The logged-in member of staff, for handlers.
#[derive(Debug, Clone)]
pub struct Staff {
    pub username: String,
    pub role: String,
    pub csrf: String,
    /// A message left by the previous POST.
    pub flash: Option<String>,
}

impl Staff {
    /// The actor named on timeline events.
    pub fn actor(&self) -> String {
        format!("staff:{}", self.username)
    }
    pub fn can_write(&self) -> bool {
        matches!(self.role.as_str(), "author" | "approver")
    }
    pub fn can_approve(&self) -> bool {
        self.role == "approver"
    }
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = StaffError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, StaffError> {
        // Put there by `require_staff`; a route outside it asking for staff is a wiring mistake.
        parts.extensions.get::<Staff>().cloned().ok_or(StaffError::Forbidden("please log in".into()))
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` for the staff pages. `max_age` None: until the browser closes; Some(0): delete.
pub(super) fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/staff; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("cookie values are hex or base64")
}

pub(super) fn secure(state: &AppState) -> bool {
    state.config.public_url.starts_with("https://")
}

pub(super) fn tokens_match(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Guards every page behind the login: finds the session, checks the CSRF token of a POST, and
/// hands the handler a [`Staff`]. Without a session a page redirects to the login.
pub async fn require_staff(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let now = state.clock.now_ms();
    let id = cookie(request.headers(), SESSION_COOKIE);
    let session = match &id {
        Some(id) => match state.store.session(id, now, sessions::LIMITS).await {
            Ok(s) => s,
            Err(e) => return StaffError::from(e).into_response(),
        },
        None => None,
    };
    let (Some(id), Some(session)) = (id, session) else {
        if request.method() == Method::GET {
            let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/staff/");
            let query = serde_urlencoded::to_string([("next", path)]).unwrap_or_default();
            return Redirect::to(&format!("/staff/login?{query}")).into_response();
        }
        return StaffError::Csrf.into_response();
    };
    // SAFEREACH_STAFF_2FA=required: an approver or admin without a second factor may only set one
    // up (or log out).
    if crate::service::two_factor::required_for(&session.role, state.config.staff_2fa)
        && !session.two_factor.0
        && !super::two_factor::ENROLMENT_PATHS.contains(&request.uri().path())
    {
        if request.method() == Method::GET {
            return Redirect::to(super::two_factor::ENROLMENT_PATHS[0]).into_response();
        }
        return StaffError::Forbidden("set up your second factor first (Second factor page)".into()).into_response();
    }
    let (mut parts, body) = request.into_parts();
    let body = if parts.method == Method::GET || parts.method == Method::HEAD {
        body
    } else {
        let Ok(bytes) = to_bytes(body, crate::http::json::BODY_LIMIT).await else {
            return StaffError::BadRequest("the form is too large".into()).into_response();
        };
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        if !tokens_match(sent, &session.csrf_token) {
            tracing::warn!(route = %parts.uri.path(), "staff POST refused: CSRF token missing or wrong");
            return StaffError::Csrf.into_response();
        }
        Body::from(bytes)
    };
    if let Err(e) = sessions::keep_alive(&state, &id, &session, now).await {
        return StaffError::from(e).into_response();
    }
    let flash = flash(&parts.headers);
    let had_flash = flash.is_some();
    parts.extensions.insert(Staff { username: session.username, role: session.role, csrf: session.csrf_token, flash });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if had_flash && !response.headers().contains_key(header::LOCATION) {
        response.headers_mut().append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, "", Some(0), false));
    }
    response
}

/// The message a previous POST left, if any.
pub(super) fn flash(headers: &HeaderMap) -> Option<String> {
    cookie(headers, FLASH_COOKIE).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok()).and_then(|b| String::from_utf8(b).ok())
}

/// Adds a message for the next page to a redirect.
pub fn with_flash(mut response: Response, message: &str) -> Response {
    let value = URL_SAFE_NO_PAD.encode(message.as_bytes());
    // Secure is not needed: the message is no secret, and it must work over loopback http too.
    response.headers_mut().append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, &value, Some(60), false));
    response
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only our own pages are places to go after login.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/staff/") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/staff/",
    }
}

pub async fn login_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> PageResult {
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && state.store.session(&id, state.clock.now_ms(), sessions::LIMITS).await?.is_some()
    {
        return Ok(Redirect::to(safe_next(q.next.as_deref())).into_response());
    }
    login_form(&state, &headers, q.next.as_deref(), StatusCode::OK, None, "")
}

/// The login form with its double-submit token (reusing the browser's one when it has one).
fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    next: Option<&str>,
    status: StatusCode,
    error: Option<String>,
    username: &str,
) -> PageResult {
    let token = cookie(headers, LOGIN_COOKIE).filter(|t| t.len() == 64).unwrap_or_else(random_token);
    let notice = flash(headers);
    let data = json!({
        "title": "Log in",
        "login_csrf": token,
        "next": safe_next(next),
        "error": error,
        "notice": notice,
        "username": username,
    });
    let mut response = (status, view::render("login", None, data)?).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, Some(3600), secure(state)));
    if notice.is_some() {
        headers.append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, "", Some(0), false));
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// The client's address, which failed logins are counted by: the connection's peer, or, when the
/// peer is one of `SAFEREACH_TRUSTED_PROXIES`, the nearest address in `X-Forwarded-For` that is
/// not one of them (what a client writes there itself, further left, is not believed).
pub struct ClientAddress(pub String);

impl FromRequestParts<Arc<AppState>> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let address = peer.map(|peer| client_address(peer, &state.config.trusted_proxies, &parts.headers));
        Ok(ClientAddress(address.map_or_else(|| "unknown".into(), |a| a.to_string())))
    }
}

fn client_address(peer: IpAddr, trusted: &[IpAddr], headers: &HeaderMap) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    // From the nearest hop outwards, while each is an address our proxies wrote.
    forwarded
        .into_iter()
        .rev()
        .map_while(|a| a.trim().parse::<IpAddr>().ok())
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !tokens_match(&form.csrf, &expected) {
        tracing::warn!("staff login refused: CSRF token missing or wrong");
        return Err(StaffError::Csrf);
    }
    let next = form.next.as_deref();
    let refuse = |status: StatusCode, message: String| {
        login_form(&state, &headers, next, status, Some(message), form.username.trim())
    };
    let username = form.username.trim().to_lowercase();
    let wait = |until: i64, now: i64| (until - now + 999) / 1000;
    match sessions::log_in(&state, &username, &form.password, &address, safe_next(next)).await? {
        // Known or not, a username is slowed down alike: the answers never tell them apart.
        LogIn::Slowed { until, now } => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many wrong passwords for this username from here. Try again in {} second(s).",
                wait(until, now)
            ),
        ),
        LogIn::Busy => Err(StaffError::Busy),
        LogIn::Refused { until, now } => {
            let mut message = "The username or password is not right. Check them and try again.".to_string();
            if until > now {
                message.push_str(&format!(" Wait {} second(s) first.", wait(until, now)));
            }
            refuse(StatusCode::UNAUTHORIZED, message)
        }
        LogIn::LoggedIn { session_id } => Ok(session_started(&state, &session_id, safe_next(next))),
        LogIn::SecondFactor { challenge_id } => Ok(super::two_factor::ask_for_code(&state, &challenge_id)),
    }
}

/// Every factor was right: the session's cookie, the login's double-submit cookie gone, and on
/// to `next` (one of our own pages).
pub(super) fn session_started(state: &AppState, session_id: &str, next: &str) -> Response {
    let mut response = Redirect::to(safe_next(Some(next))).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, session_id, None, secure(state)));
    headers.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", Some(0), secure(state)));
    response
}

pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap, staff: Staff) -> PageResult {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        sessions::log_out(&state, &id).await?;
    }
    tracing::info!(username = %staff.username, "staff logged out");
    let mut response = Redirect::to("/staff/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0), secure(&state)));
    Ok(with_flash(response, "You have logged out."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; safereach_session=abc; safereach_sessionx=no"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_only_when_asked() {
        let plain = set_cookie("n", "v", None, false);
        assert_eq!(plain, "n=v; Path=/staff; HttpOnly; SameSite=Strict");
        let secure = set_cookie("n", "v", Some(0), true);
        assert_eq!(secure, "n=v; Path=/staff; HttpOnly; SameSite=Strict; Secure; Max-Age=0");
    }

    #[test]
    fn only_staff_pages_are_places_to_go_after_login() {
        assert_eq!(safe_next(Some("/staff/review")), "/staff/review");
        for bad in ["https://evil.example", "//evil.example", "/staff//evil", "/v1/cases", "/staff/\\x"] {
            assert_eq!(safe_next(Some(bad)), "/staff/", "{bad}");
        }
        assert_eq!(safe_next(None), "/staff/");
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards_for_it() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.2"));
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // Not from a proxy: the header is the client's own word, and not believed.
        assert_eq!(client_address(ip("198.51.100.7"), &proxies, &headers), ip("198.51.100.7"));
        // From a proxy: the nearest address that is not a proxy (not the spoofable leftmost).
        assert_eq!(client_address(ip("10.0.0.1"), &proxies, &headers), ip("203.0.113.9"));
        assert_eq!(client_address(ip("10.0.0.1"), &proxies, &HeaderMap::new()), ip("10.0.0.1"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("not an address, 203.0.113.9"));
        assert_eq!(client_address(ip("10.0.0.1"), &proxies, &headers), ip("203.0.113.9"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("not an address"));
        assert_eq!(client_address(ip("10.0.0.1"), &proxies, &headers), ip("10.0.0.1"));
    }

    #[test]
    fn tokens_must_match_and_be_present() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("", ""));
        assert!(!tokens_match("ab", "abc"));
    }
}
