//! Staff pages under `/staff/`: login, template wording and four-eyes approval, the review
//! queue and case timelines. Server-rendered HTML (handlebars, HTML-escaped), one small
//! stylesheet, and a little vanilla JavaScript for the live preview.
//!
//! Every page but the login page needs a session; every POST but the login carries the session's
//! CSRF token (checked in one place, [`session::require_staff`], before any handler runs).

mod admin;
mod cases;
mod diff;
mod preview;
mod reports;
mod review;
pub mod session;
mod templates;
mod two_factor;
mod versions;
mod view;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Router, middleware};
use serde_json::json;

use crate::service::AppState;
pub use crate::service::PASSWORD_CHECKS_AT_ONCE;
use crate::service::templates::WorkflowError;
use crate::store::StoreError;
pub use session::Staff;

/// What can go wrong on a staff page. Messages are shown to staff; none carries personal data.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error("page template: {0}")]
    Render(#[from] handlebars::RenderError),
    #[error("there is no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    /// A POST without the right CSRF token.
    #[error("this form has expired or did not come from these pages")]
    Csrf,
    /// Too many password checks at once: this one did not start in time.
    #[error("too many logins at once just now; please try again in a moment")]
    Busy,
}

impl StaffError {
    fn status(&self) -> StatusCode {
        match self {
            StaffError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            StaffError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            StaffError::Store(StoreError::NotFound) | StaffError::NotFound(_) => StatusCode::NOT_FOUND,
            StaffError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            StaffError::Store(_) | StaffError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StaffError::Workflow(e) => match e {
                WorkflowError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                WorkflowError::NotFound => StatusCode::NOT_FOUND,
                WorkflowError::WrongRole { .. }
                | WorkflowError::OwnVersion(_)
                | WorkflowError::UnknownStaff(_)
                | WorkflowError::NotIndependent { .. } => StatusCode::FORBIDDEN,
                WorkflowError::Changed => StatusCode::CONFLICT,
                WorkflowError::Refused { .. } | WorkflowError::Template(_) => StatusCode::UNPROCESSABLE_ENTITY,
            },
            StaffError::Forbidden(_) | StaffError::Csrf => StatusCode::FORBIDDEN,
            StaffError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// What to tell the member of staff: our own wording for internal failures.
    fn message(&self) -> String {
        match self.status() {
            StatusCode::INTERNAL_SERVER_ERROR => "Something went wrong on our side. Please try again.".into(),
            StatusCode::SERVICE_UNAVAILABLE if !matches!(self, StaffError::Busy) => {
                "The database cannot be reached just now; nothing was changed.".into()
            }
            _ => {
                let text = self.to_string();
                let mut chars = text.chars();
                chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
            }
        }
    }
}

impl IntoResponse for StaffError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "staff page failed");
        }
        let hint = match &self {
            StaffError::Csrf => "Go back, reload the page, and try again.",
            _ if status == StatusCode::NOT_FOUND => "Check the address, or start again from the menu.",
            _ => "Go back and try again, or start again from the menu.",
        };
        let data = json!({ "title": "That did not work", "message": self.message(), "hint": hint });
        match view::render("error", None, data) {
            Ok(page) => (status, page).into_response(),
            Err(_) => (status, self.message()).into_response(),
        }
    }
}

pub type PageResult = Result<Response, StaffError>;

/// Every page behind the login: the router mounts exactly these, behind the session check, and
/// the access-matrix test (tests/blackbox/reliability/access_matrix.rs) walks the same list, so
/// that a page added here cannot be left out of it.
fn protected_routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        ("/staff/", get(home)),
        ("/staff/logout", post(session::logout)),
        ("/staff/templates", get(templates::list)),
        ("/staff/templates/{name}/{channel}", get(templates::history)),
        ("/staff/templates/{name}/{channel}/draft", get(templates::edit_draft).post(templates::save_draft)),
        ("/staff/versions/{id}", get(versions::version)),
        ("/staff/versions/{id}/letter.pdf", get(preview::version_letter)),
        ("/staff/versions/{id}/submit", post(versions::submit)),
        ("/staff/versions/{id}/approve", post(versions::approve)),
        ("/staff/versions/{id}/reject", post(versions::reject)),
        ("/staff/preview", post(preview::preview)),
        ("/staff/preview/letter.pdf", post(preview::preview_letter)),
        ("/staff/review", get(review::queue)),
        ("/staff/review/outreach/{id}/release", post(review::release)),
        ("/staff/review/outreach/{id}/cancel", post(review::cancel)),
        ("/staff/review/outreach/{id}/unsafe", post(review::job_unsafe)),
        ("/staff/review/alerts/{id}/acknowledge", post(review::acknowledge)),
        ("/staff/review/alerts/{id}/unsafe", post(review::alert_unsafe)),
        ("/staff/review/replies/{id}/acknowledge", post(review::acknowledge_unmatched_reply)),
        ("/staff/cases", get(cases::find)),
        ("/staff/cases/{case_ref}", get(cases::case)),
        ("/staff/admin", get(admin::page)),
        ("/staff/admin/staff", post(admin::create_staff)),
        ("/staff/admin/staff/{username}/unlock", post(admin::unlock)),
        ("/staff/admin/keys", post(admin::create_key)),
        ("/staff/admin/keys/{id}/revoke", post(admin::revoke_key)),
        ("/staff/admin/staff/{username}/disable", post(admin::disable)),
        ("/staff/admin/staff/{username}/enable", post(admin::enable)),
        ("/staff/reports", get(reports::page)),
        ("/staff/reports.csv", get(reports::csv)),
        ("/staff/two-factor", get(two_factor::page)),
        ("/staff/two-factor/enrol", post(two_factor::enrol)),
        ("/staff/admin/staff/{username}/two-factor/reset", post(two_factor::reset)),
    ]
}

/// The paths of [`protected_routes`].
pub fn protected_paths() -> Vec<&'static str> {
    protected_routes().into_iter().map(|(path, _)| path).collect()
}

pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let protected = protected_routes()
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| router.route(path, methods))
        .route_layer(middleware::from_fn_with_state(state, session::require_staff));
    Router::new()
        .route("/staff", get(|| async { Redirect::to("/staff/") }))
        .route("/staff/login", get(session::login_page).post(session::login))
        .route("/staff/login/code", get(two_factor::code_page).post(two_factor::code_submit))
        .route("/staff/static/style.css", get(|| async { asset("text/css", include_str!("pages/style.css")) }))
        .route("/staff/static/preview.js", get(|| async { asset("text/javascript", include_str!("pages/preview.js")) }))
        .merge(protected)
        .layer(middleware::map_response(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
    ];
    (headers, body).into_response()
}

/// Pages show case data: never cached, never framed by another site, and scripts only from us.
/// Styles may be inline because the email preview shows the email's own inline styles (in a
/// sandboxed frame that cannot run scripts).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// The start page: what is waiting for this member of staff.
async fn home(State(state): State<Arc<AppState>>, staff: Staff) -> PageResult {
    let queue = review::summary(&state).await?;
    let versions = state.store.template_versions().await?;
    let waiting = versions.iter().filter(|v| v.state == "submitted").count();
    let own_drafts = versions.iter().filter(|v| v.state == "draft" && v.author == staff.username).count();
    let data = json!({
        "title": "Home",
        "queue": queue,
        "waiting_approval": waiting,
        "own_drafts": own_drafts,
    });
    view::page("home", &staff, data)
}

/// A redirect after a POST, with a message for the next page.
fn done(to: &str, message: impl Into<String>) -> Response {
    session::with_flash(Redirect::to(to).into_response(), &message.into())
}
