//! The access matrix: every route × every kind of caller, and exactly the allowed combinations
//! get through. The routes come from the code that mounts them, so that a new one cannot be left
//! out: the `/v1` operations from the OpenAPI document the router itself produces (with the scope
//! each declares), the staff pages from `http::staff::protected_paths()`, the table the staff
//! router is built from.
//!
//! Callers of `/v1`: no key, a wrong key, a revoked key, a key of each scope alone, a key of
//! every scope. Callers of the staff pages: no session, a made-up session, an expired session
//! (idle past its limit), and a logged-in author, approver and admin posting without or with a
//! wrong CSRF token, and reading every page (`/staff/admin…` is for admins only).
//!
//! And two halves of their own: every provider callback route × every provider's secret
//! (`access_webhooks.rs`), and every staff form × each role with a valid session and CSRF token
//! (`access_staff_roles.rs`).

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use safereach::http::auth::ALL_SCOPES;
use safereach::store::KeyOptions;
use serde_json::{Value, json};

use super::Figures;
use super::access_staff_roles::role_matrix;
use super::access_webhooks::webhook_matrix;
use crate::common::{APPROVER, AUTHOR, Options, PASSWORD, TestApp, spawn_with};
use crate::staff::StaffClient;

const CLOCK: &str = "2026-11-23T10:00:00Z";
/// Past a session's idle limit (30 minutes).
const LATER: &str = "2026-11-23T10:45:00Z";
const ADMIN: &str = "matrix.admin";

/// `path` with each `{parameter}` filled in.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str("MATRIX-1");
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every `/v1` operation of the app's OpenAPI document: (method, path, scopes it declares).
async fn v1_operations(app: &TestApp) -> Vec<(Method, String, Vec<String>)> {
    let document: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let scopes: Vec<String> = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|requirement| requirement["api_key"].as_array().cloned().unwrap_or_default())
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            operations.push((method, path.clone(), scopes));
        }
    }
    assert!(operations.len() >= 10, "the document lists the API: {operations:?}");
    operations
}

async fn key(app: &TestApp, name: &str, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let unlimited = KeyOptions { test: false, rate_limit: u32::MAX };
    let now = app.state.clock.now_ms();
    safereach::service::accounts::create_api_key_with(&app.state.store, name, &scopes, unlimited, now, "cli")
        .await
        .unwrap()
}

/// Who calls, with which key, holding which scopes (None: a key that is no key at all).
type Caller = (String, Option<String>, Option<Vec<&'static str>>);

/// The `/v1` half: returns (combinations, answers by status, wrong combinations).
async fn v1_matrix(app: &TestApp) -> (u64, BTreeMap<u16, u64>, Vec<String>) {
    let revoked = key(app, "matrix-revoked", &ALL_SCOPES).await;
    let id: String = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'matrix-revoked'")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    let now = app.state.clock.now_ms();
    assert!(safereach::service::accounts::revoke_api_key(&app.state.store, &id, now, "cli").await.unwrap());
    let mut callers: Vec<Caller> = vec![
        ("no key".into(), None, None),
        ("wrong key".into(), Some(format!("sr_{}", safereach::secrets::generate())), None),
        ("revoked key".into(), Some(revoked), None),
        ("every scope".into(), Some(key(app, "matrix-all", &ALL_SCOPES).await), Some(ALL_SCOPES.to_vec())),
    ];
    for scope in ALL_SCOPES {
        callers.push((format!("{scope} only"), Some(key(app, scope, &[scope]).await), Some(vec![scope])));
    }
    let (mut checked, mut by_status, mut wrong) = (0, BTreeMap::new(), Vec::new());
    for (method, path, required) in v1_operations(app).await {
        for (who, key, holds) in &callers {
            let mut request = app.http.request(method.clone(), app.url(&filled(&path)));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if method == Method::POST || method == Method::PUT || method == Method::PATCH {
                request = request.json(&json!({}));
            }
            let status = request.send().await.unwrap().status();
            *by_status.entry(status.as_u16()).or_default() += 1;
            checked += 1;
            let expected = match holds {
                _ if required.is_empty() => None,
                None => Some(StatusCode::UNAUTHORIZED),
                Some(scopes) if required.iter().any(|r| scopes.contains(&r.as_str())) => None,
                Some(_) => Some(StatusCode::FORBIDDEN),
            };
            let right = match expected {
                Some(refusal) => status == refusal,
                None => !matches!(status.as_u16(), 401 | 403) && !status.is_server_error(),
            };
            if !right {
                wrong.push(format!("{method} {path} with {who}: {status}, expected {expected:?} (None: let through)"));
            }
        }
    }
    (checked, by_status, wrong)
}

/// The staff half: returns (combinations, answers by status, wrong combinations).
async fn staff_matrix(app: TestApp) -> (u64, BTreeMap<u16, u64>, Vec<String>) {
    let now = app.state.clock.now_ms();
    safereach::service::accounts::create_account(&app.state.store, ADMIN, "admin", PASSWORD, now, "cli").await.unwrap();
    let paths: Vec<String> = safereach::http::staff::protected_paths().into_iter().map(filled).collect();
    assert!(paths.len() >= 20, "the staff pages: {paths:?}");
    let (mut checked, mut by_status, mut wrong) = (0u64, BTreeMap::new(), Vec::new());
    let mut note = |who: &str, method: &str, path: &str, status: StatusCode, right: bool| {
        *by_status.entry(status.as_u16()).or_default() += 1;
        checked += 1;
        if !right {
            wrong.push(format!("{method} {path} as {who}: {status}"));
        }
    };
    let refused_without_session = |page: &crate::staff::Page, method: &str| match method {
        "GET" => {
            (page.status == StatusCode::SEE_OTHER && page.location().starts_with("/staff/login"))
                || page.status == StatusCode::METHOD_NOT_ALLOWED
        }
        // 405: a page that takes no form (nothing runs).
        _ => matches!(page.status, StatusCode::FORBIDDEN | StatusCode::METHOD_NOT_ALLOWED),
    };

    // Logged in, each role: every page read, every form posted without and with a wrong token.
    let mut expiring = StaffClient::new(&app);
    expiring.login(ADMIN, PASSWORD).await;
    for (role, username) in [("author", AUTHOR), ("approver", APPROVER), ("admin", ADMIN)] {
        let mut client = StaffClient::new(&app);
        client.login(username, PASSWORD).await;
        assert!(!client.csrf.is_empty(), "{username} logged in");
        for path in &paths {
            let page = client.get(path).await;
            let admin_page = path.starts_with("/staff/admin");
            let admin_only_let_through = admin_page && role != "admin" && page.status.is_success();
            let right =
                !(page.status.is_server_error() || admin_only_let_through) && page.status != StatusCode::UNAUTHORIZED;
            note(role, "GET", path, page.status, right);
            for (what, csrf) in [("no CSRF token", None), ("a wrong CSRF token", Some("0".repeat(64)))] {
                let mut fields = vec![("reason", "checked"), ("comment", "ok")];
                if let Some(token) = &csrf {
                    fields.push(("csrf", token.as_str()));
                }
                let page = client.post_raw(path, &fields).await;
                let right = matches!(page.status, StatusCode::FORBIDDEN | StatusCode::METHOD_NOT_ALLOWED);
                note(&format!("{role} with {what}"), "POST", path, page.status, right);
            }
        }
        assert_eq!(client.get("/staff/").await.status, StatusCode::OK, "{username}'s session survived the matrix");
    }

    // No session, and a made-up one.
    for (who, cookie) in [("no session", None), ("a made-up session", Some(safereach::secrets::generate()))] {
        let mut client = StaffClient::new(&app);
        if let Some(value) = cookie {
            client.set_cookie(safereach::http::staff::session::SESSION_COOKIE, &value);
        }
        for path in &paths {
            for method in ["GET", "POST"] {
                let page = if method == "GET" { client.get(path).await } else { client.post(path, &[]).await };
                note(who, method, path, page.status, refused_without_session(&page, method));
            }
        }
    }

    // The admin's session, idle past its limit.
    let app = app.restart_at(LATER, |_| {}).await;
    let mut expired = expiring.moved_to(&app.base);
    for path in &paths {
        for method in ["GET", "POST"] {
            let page = if method == "GET" { expired.get(path).await } else { expired.post(path, &[]).await };
            note("an expired session", method, path, page.status, refused_without_session(&page, method));
        }
    }
    (checked, by_status, wrong)
}

#[tokio::test]
async fn every_route_lets_exactly_the_allowed_callers_through() {
    let app = spawn_with(Options { clock: Some(CLOCK.into()), ..Options::default() }).await;
    let (v1_checked, v1_statuses, mut wrong) = v1_matrix(&app).await;
    let (staff_checked, staff_statuses, staff_wrong) = staff_matrix(app).await;
    wrong.extend(staff_wrong);
    let (webhook_checked, webhook_statuses, webhook_wrong) = webhook_matrix().await;
    wrong.extend(webhook_wrong);
    let (role_checked, role_statuses, role_wrong) = role_matrix().await;
    wrong.extend(role_wrong);
    let server_errors = [&v1_statuses, &staff_statuses, &webhook_statuses, &role_statuses]
        .into_iter()
        .flatten()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    let checked = v1_checked + staff_checked + webhook_checked + role_checked;
    Figures {
        fault: "access matrix (route × caller)",
        backend: "SQLite",
        size: checked,
        unit: "requests",
        lost: 0,
        doubled: 0,
        server_errors,
        combinations: Some(checked),
        detail: json!({"v1": v1_checked, "staff": staff_checked, "webhooks": webhook_checked,
                       "staff_roles": role_checked, "v1_statuses": v1_statuses, "staff_statuses": staff_statuses,
                       "webhook_statuses": webhook_statuses, "staff_role_statuses": role_statuses,
                       "wrong": wrong.len()}),
    }
    .record();
    assert!(wrong.is_empty(), "{} wrong combinations:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(server_errors, 0);
}
