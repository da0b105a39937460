//! Admin pages: staff accounts (create, unlock, disable, enable) and API keys (create, the key
//! shown once; revoke), and the audit table of what admins did.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::view::{self, when, when_opt};
use super::{PageResult, Staff, StaffError, done};
use crate::http::auth::ALL_SCOPES;
use crate::service::AppState;

/// How many admin actions the page shows.
const AUDIT_SHOWN: i64 = 200;

fn require_admin(staff: &Staff) -> Result<(), StaffError> {
    if staff.is_admin() { Ok(()) } else { Err(StaffError::Forbidden("only admins manage accounts and keys".into())) }
}

pub async fn page(State(state): State<Arc<AppState>>, staff: Staff) -> PageResult {
    require_admin(&staff)?;
    let now = state.clock.now_ms();
    let mut accounts = Vec::new();
    let with_two_factor = state.store.staff_with_two_factor().await?;
    for a in state.store.staff_accounts().await? {
        let slowed = state.store.login_slowed_until(&a.username, now).await?;
        accounts.push(json!({
            "username": a.username,
            "role": a.role,
            "created": when(a.created_at),
            "created_by": a.created_by,
            "disabled": a.disabled.0,
            "slowed_until": when_opt(slowed),
            "unlock_url": format!("/staff/admin/staff/{}/unlock", view::path_segment(&a.username)),
            "is_self": a.username == staff.username,
            "two_factor": with_two_factor.contains(&a.username),
            "reset_two_factor_url": format!("/staff/admin/staff/{}/two-factor/reset", view::path_segment(&a.username)),
            "toggle_url": format!(
                "/staff/admin/staff/{}/{}",
                view::path_segment(&a.username),
                if a.disabled.0 { "enable" } else { "disable" }
            ),
        }));
    }
    let audit: Vec<_> = state
        .store
        .audit_events(AUDIT_SHOWN)
        .await?
        .into_iter()
        .map(|e| {
            json!({ "at": when(e.at), "actor": e.actor, "action": e.action, "target": e.target, "detail": e.detail })
        })
        .collect();
    let keys: Vec<_> = state
        .store
        .api_keys()
        .await?
        .into_iter()
        .map(|k| {
            json!({
                "name": k.name,
                "scopes": k.scopes,
                "test": k.test.0,
                "rate_limit": k.rate_limit,
                "created": when(k.created_at),
                "revoked": when_opt(k.revoked_at),
                "revoke_url": format!("/staff/admin/keys/{}/revoke", view::path_segment(&k.id)),
            })
        })
        .collect();
    let data = json!({
        "title": "Accounts and API keys",
        "nav": { "admin": true },
        "accounts": accounts,
        "roles": crate::service::accounts::ROLES,
        "keys": keys,
        "scopes": ALL_SCOPES,
        "default_rate_limit": crate::store::DEFAULT_RATE_LIMIT,
        "min_password": crate::service::accounts::MIN_PASSWORD,
        "audit": audit,
        "audit_limit": AUDIT_SHOWN,
    });
    view::page("admin", &staff, data)
}

#[derive(Debug, Deserialize)]
pub struct NewStaff {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn create_staff(State(state): State<Arc<AppState>>, staff: Staff, Form(form): Form<NewStaff>) -> PageResult {
    require_admin(&staff)?;
    let username = form.username.trim();
    crate::service::accounts::create_account(
        &state.store,
        username,
        &form.role,
        &form.password,
        state.clock.now_ms(),
        &staff.actor(),
    )
    .await
    .map_err(StaffError::BadRequest)?;
    tracing::info!(username = %username, role = %form.role, by = %staff.username, "staff account created");
    Ok(done("/staff/admin", format!("Account {username} created with the role {}.", form.role)))
}

pub async fn unlock(State(state): State<Arc<AppState>>, staff: Staff, Path(username): Path<String>) -> PageResult {
    require_admin(&staff)?;
    if !crate::service::accounts::unlock_staff(&state.store, &username, state.clock.now_ms(), &staff.actor()).await? {
        return Err(StaffError::NotFound("staff account"));
    }
    tracing::info!(username = %username, by = %staff.username, "staff account unlocked");
    Ok(done("/staff/admin", format!("Account {username} unlocked.")))
}

/// Disable an account: its sessions end and it cannot log in until enabled again. Not one's own,
/// so that the last admin cannot shut everyone out.
pub async fn disable(State(state): State<Arc<AppState>>, staff: Staff, Path(username): Path<String>) -> PageResult {
    set_disabled(&state, &staff, &username, true).await
}

pub async fn enable(State(state): State<Arc<AppState>>, staff: Staff, Path(username): Path<String>) -> PageResult {
    set_disabled(&state, &staff, &username, false).await
}

async fn set_disabled(state: &AppState, staff: &Staff, username: &str, disabled: bool) -> PageResult {
    require_admin(staff)?;
    if disabled && username == staff.username {
        return Err(StaffError::BadRequest("you cannot disable your own account".into()));
    }
    if !crate::service::accounts::set_staff_disabled(
        &state.store,
        username,
        disabled,
        state.clock.now_ms(),
        &staff.actor(),
    )
    .await?
    {
        return Err(StaffError::NotFound("staff account"));
    }
    let done_word = if disabled { "disabled" } else { "enabled" };
    tracing::info!(username = %username, by = %staff.username, "staff account {done_word}");
    Ok(done("/staff/admin", format!("Account {username} {done_word}.")))
}

pub async fn revoke_key(State(state): State<Arc<AppState>>, staff: Staff, Path(id): Path<String>) -> PageResult {
    require_admin(&staff)?;
    if !crate::service::accounts::revoke_api_key(&state.store, &id, state.clock.now_ms(), &staff.actor()).await? {
        return Err(StaffError::NotFound("API key in use"));
    }
    tracing::info!(key_id = %id, by = %staff.username, "API key revoked");
    Ok(done("/staff/admin", "API key revoked: it is refused from now on."))
}

/// The form sends one `scope` field per ticked box.
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    require_admin(&staff)?;
    let name = fields.iter().find(|(k, _)| k == "name").map(|(_, v)| v.trim()).unwrap_or_default().to_string();
    let scopes: Vec<String> = fields.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(StaffError::BadRequest("give the key a name of up to 60 characters".into()));
    }
    if scopes.is_empty() || scopes.iter().any(|s| !ALL_SCOPES.contains(&s.as_str())) {
        return Err(StaffError::BadRequest(format!("choose one or more of {}", ALL_SCOPES.join(", "))));
    }
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let test = field("test").is_some_and(|v| v == "yes");
    let test_scopes = crate::http::auth::TEST_KEY_SCOPES;
    if test && scopes.iter().any(|s| !test_scopes.contains(&s.as_str())) {
        return Err(StaffError::BadRequest(format!("a test key may have only {}", test_scopes.join(", "))));
    }
    let rate_limit = match field("rate_limit").filter(|v| !v.is_empty()) {
        None => crate::store::DEFAULT_RATE_LIMIT,
        Some(v) => v.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| {
            StaffError::BadRequest("the rate limit is a whole number of requests a minute, at least 1".into())
        })?,
    };
    let options = crate::store::KeyOptions { test, rate_limit };
    let key = crate::service::accounts::create_api_key_with(
        &state.store,
        &name,
        &scopes,
        options,
        state.clock.now_ms(),
        &staff.actor(),
    )
    .await?;
    tracing::info!(name = %name, by = %staff.username, test, rate_limit, "API key created");
    let data = json!({
        "title": "API key created",
        "nav": { "admin": true },
        "name": name,
        "scopes": scopes.join(", "),
        "test": test,
        "rate_limit": rate_limit,
        "key": key,
    });
    view::page("key_created", &staff, data)
}
