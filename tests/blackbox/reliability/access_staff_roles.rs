//! The access matrix's staff-role half: every form behind the login (the POST routes of
//! `http::staff::protected_paths()`, the table the staff router is built from) × each role
//! (author, approver, admin), logged in and posting with the session's CSRF token and a form that
//! would do its job: exactly the roles of docs/staff-pages.md get through (403 otherwise). Each
//! combination has a target of its own (a held job, an alert, a draft, a spare account, …), so
//! that what one role did does not decide what the next one meets.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use safereach::domain::Channel;
use safereach::service::templates as workflow;
use serde_json::{Value, json};

use crate::common::{APPROVER, AUTHOR, Options, PASSWORD, TestApp, spawn_with, templates_dir};
use crate::staff::StaffClient;

const ADMIN: &str = "roles.admin";
const ALL: &[&str] = &["author", "approver", "admin"];

/// Who may post each form, as docs/staff-pages.md's roles table says (the preview stores nothing,
/// so anyone may; the second factor is each one's own). A form missing here fails the test.
fn may_post(pattern: &str) -> &'static [&'static str] {
    match pattern {
        "/staff/logout" | "/staff/preview" | "/staff/preview/letter.pdf" | "/staff/two-factor/enrol" => ALL,
        p if p.starts_with("/staff/review/") => ALL,
        "/staff/templates/{name}/{channel}/draft" | "/staff/versions/{id}/submit" => &["author", "approver"],
        "/staff/versions/{id}/approve" | "/staff/versions/{id}/reject" => &["approver"],
        p if p.starts_with("/staff/admin") => &["admin"],
        other => panic!("a new staff form {other}: say in access_staff_roles.rs which roles may post it"),
    }
}

struct Fixtures<'a> {
    app: &'a TestApp,
    n: usize,
}

impl Fixtures<'_> {
    fn next(&mut self) -> usize {
        self.n += 1;
        self.n
    }

    /// A job held for a person (the victim is a child), on its own case and number.
    async fn held_job(&mut self) -> String {
        let n = self.next();
        let (_, answer) = self.app.post_outreach(&self.job(n, true)).await;
        assert_eq!(answer["decision"]["reason"], "minor", "{answer}");
        answer["outreach_id"].as_str().unwrap().to_string()
    }

    fn job(&self, n: usize, child: bool) -> Value {
        json!({
            "request_id": format!("roles-{n}"), "case_ref": format!("ROLES-{n}"), "kind": "priority_pretext",
            "crime": {"categories": ["robbery"]}, "victim": {"first_name": "Sam", "is_under_18": child},
            "contact": {"phones": [{"number": format!("+4477009008{n:02}"), "belongs_to": "victim", "safe_to_text": true}]}
        })
    }

    /// A distress alert: a text sent, and a frightened reply to it.
    async fn alert(&mut self) -> i64 {
        let n = self.next();
        self.app.post_outreach(&self.job(n, false)).await;
        let case_ref = format!("ROLES-{n}");
        self.app
            .wait_for_case(&case_ref, "a message sent", |c| {
                matches!(c["messages"][0]["status"].as_str(), Some("sent" | "delivered"))
            })
            .await;
        let from = format!("+4477009008{n:02}");
        safereach::service::replies::receive_reply(&self.app.state, "sandbox", &from, "I'm scared", None, None)
            .await
            .unwrap();
        let sql =
            format!("SELECT id FROM events WHERE type = 'alert' AND case_ref = '{case_ref}' ORDER BY id DESC LIMIT 1");
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_one(self.app.state.store.pool()).await.unwrap()
    }

    /// A reply from a number we never texted (on no case).
    async fn unmatched_reply(&mut self) -> String {
        let n = self.next();
        let from = format!("+4477009009{n:02}");
        safereach::service::replies::receive_reply(&self.app.state, "sandbox", &from, "who is this", None, None)
            .await
            .unwrap();
        let sql = "SELECT id FROM replies WHERE case_ref IS NULL ORDER BY received_at DESC, id DESC LIMIT 1";
        sqlx::query_scalar(sql).fetch_one(self.app.state.store.pool()).await.unwrap()
    }

    /// A new version of the English priority pre-text by `author`: a draft, or submitted.
    async fn version(&mut self, author: &str, submitted: bool) -> String {
        let n = self.next();
        let mut source = safereach::templates::load_dir(&templates_dir())
            .unwrap()
            .into_iter()
            .find(|s| s.name == "priority_pretext" && s.channel == Channel::Sms && s.language == "en")
            .unwrap();
        source.content.body = format!("{} ({n})", source.content.body.trim_end());
        let (store, now) = (&self.app.state.store, self.app.state.clock.now_ms());
        let version = workflow::save_draft(store, &source, author, now).await.unwrap();
        if submitted {
            workflow::submit(store, &version.id, author, now).await.unwrap();
        }
        version.id
    }

    async fn spare_account(&mut self) -> String {
        let username = format!("roles.spare{}", self.next());
        let now = self.app.state.clock.now_ms();
        safereach::service::accounts::create_account(&self.app.state.store, &username, "author", PASSWORD, now, "cli")
            .await
            .unwrap();
        username
    }

    async fn api_key(&mut self) -> String {
        let name = format!("roles-key-{}", self.next());
        let now = self.app.state.clock.now_ms();
        let store = &self.app.state.store;
        safereach::service::accounts::create_api_key(store, &name, &["cases:read".to_string()], now, "cli")
            .await
            .unwrap();
        let sql = format!("SELECT id FROM api_keys WHERE name = '{name}'");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap()
    }

    /// The path (pattern filled in) and form for `role` (logged in as `username`) to post `pattern`.
    async fn target(&mut self, pattern: &str, username: &str) -> (String, Vec<(&'static str, String)>) {
        let reason = || vec![("reason", "checked by the matrix".to_string()), ("phone", "0".to_string())];
        let writer = if username == ADMIN { AUTHOR } else { username };
        let other_writer = if username == AUTHOR { APPROVER } else { AUTHOR };
        let n = self.next();
        match pattern {
            "/staff/logout" | "/staff/two-factor/enrol" => (pattern.into(), vec![("code", "000000".into())]),
            "/staff/preview" | "/staff/preview/letter.pdf" => {
                let (name, channel) = if pattern.ends_with(".pdf") {
                    ("information_pack", "letter")
                } else {
                    ("priority_pretext", "sms")
                };
                let fields =
                    [("name", name), ("channel", channel), ("kind", name), ("discreet", "no"), ("body", "Hello")];
                (pattern.into(), fields.iter().map(|(k, v)| (*k, v.to_string())).collect())
            }
            "/staff/templates/{name}/{channel}/draft" => (
                "/staff/templates/priority_pretext/sms/draft".into(),
                vec![
                    ("body", format!("A draft from the matrix ({n})")),
                    ("language", "en".into()),
                    ("action", "save".into()),
                ],
            ),
            "/staff/versions/{id}/submit" => {
                (format!("/staff/versions/{}/submit", self.version(writer, false).await), vec![])
            }
            "/staff/versions/{id}/approve" | "/staff/versions/{id}/reject" => {
                let id = self.version(other_writer, true).await;
                (pattern.replace("{id}", &id), vec![("comment", "checked by the matrix".into())])
            }
            p if p.starts_with("/staff/review/outreach/") => (p.replace("{id}", &self.held_job().await), reason()),
            p if p.starts_with("/staff/review/alerts/") => {
                (p.replace("{id}", &self.alert().await.to_string()), reason())
            }
            p if p.starts_with("/staff/review/replies/") => {
                (p.replace("{id}", &self.unmatched_reply().await), reason())
            }
            "/staff/admin/staff" => (
                pattern.into(),
                vec![("username", format!("roles.new{n}")), ("role", "author".into()), ("password", PASSWORD.into())],
            ),
            "/staff/admin/keys" => {
                (pattern.into(), vec![("name", format!("roles-new-{n}")), ("scope", "cases:read".into())])
            }
            "/staff/admin/keys/{id}/revoke" => (pattern.replace("{id}", &self.api_key().await), vec![]),
            "/staff/admin/staff/{username}/unlock" => (pattern.replace("{username}", AUTHOR), vec![]),
            p if p.starts_with("/staff/admin/staff/{username}/") => {
                (p.replace("{username}", &self.spare_account().await), vec![])
            }
            other => panic!("no target for {other}"),
        }
    }
}

/// Returns (combinations, answers by status, wrong combinations).
pub async fn role_matrix() -> (u64, BTreeMap<u16, u64>, Vec<String>) {
    let app = spawn_with(Options { clock: Some("2026-11-23T10:00:00Z".into()), ..Options::default() }).await;
    let now = app.state.clock.now_ms();
    safereach::service::accounts::create_account(&app.state.store, ADMIN, "admin", PASSWORD, now, "cli").await.unwrap();
    // The forms: the protected pages that take a POST (a page without one answers 405).
    let mut probe = StaffClient::new(&app);
    probe.login(ADMIN, PASSWORD).await;
    let mut forms = Vec::new();
    for pattern in safereach::http::staff::protected_paths() {
        let path = pattern.replace('{', "x").replace('}', "");
        if probe.post_raw(&path, &[]).await.status != StatusCode::METHOD_NOT_ALLOWED {
            forms.push(pattern);
        }
    }
    assert!(forms.len() >= 20, "the staff forms: {forms:?}");
    let mut fixtures = Fixtures { app: &app, n: 0 };
    let (mut checked, mut by_status, mut wrong) = (0u64, BTreeMap::new(), Vec::new());
    for (role, username) in [("author", AUTHOR), ("approver", APPROVER), ("admin", ADMIN)] {
        let mut client = StaffClient::new(&app);
        client.login(username, PASSWORD).await;
        for pattern in &forms {
            let allowed = may_post(pattern).contains(&role);
            let (path, fields) = fixtures.target(pattern, username).await;
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = if *pattern == "/staff/logout" {
                // A session of its own: logging out ends it.
                let mut other = StaffClient::new(&app);
                other.login(username, PASSWORD).await;
                other.post(&path, &fields).await
            } else {
                client.post(&path, &fields).await
            };
            *by_status.entry(page.status.as_u16()).or_default() += 1;
            checked += 1;
            let right = if allowed {
                !matches!(page.status.as_u16(), 401 | 403 | 405) && !page.status.is_server_error()
            } else {
                page.status == StatusCode::FORBIDDEN
            };
            if !right {
                let expected = if allowed { "let through" } else { "403" };
                wrong.push(format!("POST {path} as {role}: {}, expected {expected}", page.status));
            }
        }
        assert_eq!(client.get("/staff/").await.status, StatusCode::OK, "{username}'s session survived");
    }
    app.stop().await;
    (checked, by_status, wrong)
}
