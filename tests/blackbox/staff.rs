//! Staff pages over plain HTTP: what a browser test can't see well (every POST route refuses a
//! missing or wrong CSRF token, cookie attributes, headers) and the review actions' effects.
//! The flows as a person uses them are in `browser.rs`.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use safereach::app::Role;
use serde_json::json;

use crate::common::{APPROVER, AUTHOR, Options, PASSWORD, TestApp, pretext, spawn_with};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

/// A browser stand-in: keeps cookies, doesn't follow redirects, adds the CSRF token to forms.
pub struct StaffClient {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    pub csrf: String,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The review queue's items, by their code, in the order shown.
    pub fn item_codes(&self) -> Vec<&str> {
        self.body.split("data-code=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect()
    }
}

/// The value of the first `name="csrf" value="…"` in a page.
fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

impl StaffClient {
    pub fn new(app: &TestApp) -> StaffClient {
        StaffClient::at(&app.base)
    }

    /// For a server at `base` (e.g. the real binary).
    pub fn at(base: &str) -> StaffClient {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        StaffClient { http, base: base.to_string(), cookies: BTreeMap::new(), csrf: String::new() }
    }

    /// As a browser behind a proxy that says it forwards for `address`.
    pub fn forwarded_for(mut self, address: &str) -> StaffClient {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        self.http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        self
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let (status, headers) = (response.status(), response.headers().clone());
        Page { status, headers, body: response.text().await.unwrap() }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response =
            self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).send().await.unwrap();
        let page = self.keep(response).await;
        if let Some(token) = csrf_in(&page.body) {
            self.csrf = token;
        }
        page
    }

    /// POST a form as given (no token added).
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// POST a form with the session's CSRF token, as the pages do.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    pub async fn login(&mut self, username: &str, password: &str) -> Page {
        self.get("/staff/login").await;
        let page = self.post("/staff/login", &[("username", username), ("password", password)]).await;
        // The pages' own token replaces the login one.
        self.get("/staff/").await;
        page
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    /// Send cookie `name` with `value` from now on (as a forger would).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_string(), value.to_string());
    }

    /// The same browser (cookies, token), talking to the app now at `base` (restarted).
    pub fn moved_to(mut self, base: &str) -> StaffClient {
        self.base = base.to_string();
        self
    }
}

async fn app() -> TestApp {
    spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await
}

/// No template approved: every job is held for `no_approved_template` unless an earlier rule
/// decides it.
async fn app_without_approved_wording() -> TestApp {
    spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        role: Role::Api,
        approve_templates: false,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn pages_need_a_login_and_say_where_to_come_back_to() {
    let app = app().await;
    let mut client = StaffClient::new(&app);
    let page = client.get("/staff/templates?x=1").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/staff/login?next=%2Fstaff%2Ftemplates%3Fx%3D1");
    // The stylesheet and the login page are public; everything else is not.
    assert_eq!(client.get("/staff/static/style.css").await.status, StatusCode::OK);
    let login = client.get("/staff/login?next=/staff/templates").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("<label for=\"password\">Password</label>"));

    let page = client
        .post("/staff/login", &[("username", AUTHOR), ("password", PASSWORD), ("next", "/staff/templates")])
        .await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/staff/templates"));
    let list = client.get("/staff/templates").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("priority_pretext_discreet"));
    app.stop().await;
}

#[tokio::test]
async fn session_cookie_is_http_only_strict_and_secure_behind_https() {
    for (public_url, secure) in [("http://127.0.0.1:8080", false), ("https://staff.example.org", true)] {
        let app = spawn_with(Options {
            role: Role::Api,
            configure: Box::new(move |c| c.public_url = public_url.into()),
            ..Options::default()
        })
        .await;
        let mut client = StaffClient::new(&app);
        client.get("/staff/login").await;
        let page = client.post("/staff/login", &[("username", AUTHOR), ("password", PASSWORD)]).await;
        let session = page
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("safereach_session="))
            .expect("a session cookie");
        let value = session.split(';').next().unwrap().trim_start_matches("safereach_session=");
        assert_eq!(value.len(), 64, "32 random bytes: {session}");
        assert!(session.contains("; HttpOnly") && session.contains("; SameSite=Strict"), "{session}");
        assert_eq!(session.contains("; Secure"), secure, "{public_url}: {session}");
        // The database keeps only a hash of the id.
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT id_hash FROM staff_sessions").fetch_all(app.state.store.pool()).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0], value);
        app.stop().await;
    }
}

#[tokio::test]
async fn pages_are_not_cached_framed_or_allowed_other_scripts() {
    let app = app().await;
    let mut client = StaffClient::new(&app);
    client.login(APPROVER, PASSWORD).await;
    let page = client.get("/staff/review").await;
    let header = |name: &str| page.headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(header("cache-control"), "no-store");
    assert!(header("content-security-policy").contains("script-src 'self'"));
    assert!(header("content-security-policy").contains("frame-ancestors 'self'"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    app.stop().await;
}

#[tokio::test]
async fn every_post_needs_the_sessions_csrf_token() {
    let app = app().await;
    let (_, answer) = app
        .post_outreach(&json!({
            "request_id": "csrf-1", "case_ref": "CSRF-1", "kind": "priority_pretext",
            "crime": {"categories": ["robbery"]},
            "victim": {"first_name": "Robin", "is_under_18": true},
            "contact": {"phones": [{"number": "+447700900555", "belongs_to": "victim", "safe_to_text": true}]}
        }))
        .await;
    assert_eq!(answer["decision"]["reason"], "minor");
    let id = answer["outreach_id"].as_str().unwrap().to_string();
    let version = app.state.store.template_versions().await.unwrap()[0].id.clone();

    let mut client = StaffClient::new(&app);
    client.login(APPROVER, PASSWORD).await;
    assert!(!client.csrf.is_empty());
    let routes = [
        "/staff/logout".to_string(),
        format!("/staff/review/outreach/{id}/release"),
        format!("/staff/review/outreach/{id}/cancel"),
        format!("/staff/review/outreach/{id}/unsafe"),
        "/staff/review/alerts/1/acknowledge".into(),
        "/staff/review/alerts/1/unsafe".into(),
        "/staff/review/replies/rep_1/acknowledge".into(),
        "/staff/admin/keys/key_1/revoke".into(),
        "/staff/admin/staff/someone/disable".into(),
        "/staff/admin/staff/someone/enable".into(),
        "/staff/templates/priority_pretext/sms/draft".into(),
        format!("/staff/versions/{version}/submit"),
        format!("/staff/versions/{version}/approve"),
        format!("/staff/versions/{version}/reject"),
        "/staff/preview".into(),
        "/staff/preview/letter.pdf".into(),
        "/staff/admin/staff".into(),
        format!("/staff/admin/staff/{AUTHOR}/unlock"),
        "/staff/admin/keys".into(),
        "/staff/two-factor/enrol".into(),
        "/staff/admin/staff/someone/two-factor/reset".into(),
    ];
    let wrong = "0".repeat(64);
    for route in &routes {
        for csrf in [None, Some(wrong.as_str()), Some("")] {
            let mut fields = vec![("reason", "checked"), ("phone", "0"), ("body", "x"), ("comment", "ok")];
            if let Some(token) = csrf {
                fields.push(("csrf", token));
            }
            let page = client.post_raw(route, &fields).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{route} with csrf {csrf:?}");
            assert!(page.body.contains("This form has expired or did not come from these pages"), "{route}");
        }
    }
    // Nothing happened: the job is still held, the session still works.
    assert_eq!(app.state.store.outreach(&id).await.unwrap().unwrap().status.as_str(), "held");
    assert_eq!(client.get("/staff/review").await.status, StatusCode::OK);

    // The login form has its own token: a cross-site login attempt carries no cookie.
    let mut stranger = StaffClient::new(&app);
    let page =
        stranger.post_raw("/staff/login", &[("username", AUTHOR), ("password", PASSWORD), ("csrf", &wrong)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!stranger.has_cookie("safereach_session"));
    // So has the second-factor step after it.
    let page = stranger.post_raw("/staff/login/code", &[("code", "123456"), ("csrf", &wrong)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = app().await;
    let mut client = StaffClient::new(&app);
    client.login(AUTHOR, PASSWORD).await;
    let old = client.cookie_header();
    assert_eq!(client.post("/staff/logout", &[]).await.location(), "/staff/login");
    assert!(!client.has_cookie("safereach_session"));
    // The old cookie no longer opens anything.
    let replay = client.http.get(format!("{}/staff/", app.base)).header("cookie", old).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

/// The message of a refused login page (what `#login-error` shows).
fn login_error(page: &Page) -> String {
    let at = page.body.find("id=\"login-error\"").expect("an error on the login page");
    let text = &page.body[at..];
    let text = &text[text.find('>').unwrap() + 1..];
    text[..text.find('<').unwrap()].trim().to_string()
}

#[tokio::test]
async fn wrong_passwords_slow_the_username_from_that_address_and_never_lock_it() {
    let app = app().await;
    let store = &app.state.store;
    safereach::service::accounts::create_account(store, "test.admin", "admin", PASSWORD, 0, "cli").await.unwrap();
    // The author is at work: guessing at their account does not end their session.
    let mut working = StaffClient::new(&app);
    working.login(AUTHOR, PASSWORD).await;

    // A known and an unknown username get the same answers, step by step.
    let mut answers = Vec::new();
    for username in [AUTHOR, "no.such.person"] {
        let mut guesser = StaffClient::new(&app);
        guesser.get("/staff/login").await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let page = guesser.post("/staff/login", &[("username", username), ("password", "wrong password!")]).await;
            seen.push((page.status, login_error(&page)));
        }
        // Within the delay, even the right password is not checked.
        let page = guesser.post("/staff/login", &[("username", username), ("password", PASSWORD)]).await;
        seen.push((page.status, login_error(&page)));
        answers.push(seen);
    }
    let wrong = "The username or password is not right. Check them and try again.";
    assert_eq!(answers[0][0], (StatusCode::UNAUTHORIZED, wrong.to_string()));
    assert_eq!(answers[0][1], (StatusCode::UNAUTHORIZED, wrong.to_string()));
    assert_eq!(answers[0][2], (StatusCode::UNAUTHORIZED, format!("{wrong} Wait 1 second(s) first.")));
    assert_eq!(answers[0][3].0, StatusCode::TOO_MANY_REQUESTS);
    assert!(answers[0][3].1.starts_with("Too many wrong passwords for this username from here."));
    assert_eq!(answers[0], answers[1], "an unknown username is answered as a known one");
    assert_eq!(working.get("/staff/").await.status, StatusCode::OK, "the author's session goes on");

    // Once the delay has passed the right password gets in; the next failures wait longer.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut author = StaffClient::new(&app);
    assert_eq!(author.login(AUTHOR, PASSWORD).await.status, StatusCode::SEE_OTHER);
    let mut guesser = StaffClient::new(&app);
    guesser.get("/staff/login").await;
    for (failures, wait) in [(1, None), (2, None), (3, Some(1)), (4, Some(2))] {
        if failures == 4 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let page = guesser.post("/staff/login", &[("username", "another.guess"), ("password", "wrong!")]).await;
        let message = login_error(&page);
        match wait {
            Some(seconds) => assert!(message.ends_with(&format!("Wait {seconds} second(s) first.")), "{message}"),
            None => assert!(!message.contains("Wait"), "{failures}: {message}"),
        }
    }

    // An admin sees the slow-down and lifts it; that is audited.
    let mut guesser = StaffClient::new(&app);
    guesser.get("/staff/login").await;
    for _ in 0..3 {
        guesser.post("/staff/login", &[("username", APPROVER), ("password", "wrong password!")]).await;
    }
    let mut admin = StaffClient::new(&app);
    admin.login("test.admin", PASSWORD).await;
    assert!(admin.get("/staff/admin").await.body.contains("logins slowed until"));
    let page = admin.post(&format!("/staff/admin/staff/{APPROVER}/unlock"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = guesser.post("/staff/login", &[("username", APPROVER), ("password", PASSWORD)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let audit = store.audit_events(10).await.unwrap();
    assert_eq!((audit[0].action.as_str(), audit[0].actor.as_str()), ("staff_unlocked", "staff:test.admin"));
    assert_eq!(audit[0].target, APPROVER);

    // Only admins reach the admin page.
    let mut author = StaffClient::new(&app);
    author.login(AUTHOR, PASSWORD).await;
    assert_eq!(author.get("/staff/admin").await.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

/// Password checks are memory-hard: however many logins arrive at once, only a few run at a
/// time, and the rest wait their turn (or, after a while, get 503): none is dropped or crashes.
#[tokio::test]
async fn password_checks_run_a_few_at_a_time() {
    let app = app().await;
    let mut clients = Vec::new();
    for _ in 0..32 {
        let mut client = StaffClient::new(&app);
        client.get("/staff/login").await;
        clients.push(client);
    }
    let attempts = clients.iter_mut().enumerate().map(|(i, client)| async move {
        let username = format!("guess.{i}");
        client.post("/staff/login", &[("username", username.as_str()), ("password", "wrong password!")]).await.status
    });
    let statuses = futures::future::join_all(attempts).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let waited = metrics
        .lines()
        .find(|l| l.starts_with(r#"safereach_password_checks_total{result="waited"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    // 32 at once, PASSWORD_CHECKS_AT_ONCE places: some had to wait.
    assert!(waited > 0, "none waited: {metrics}");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_revokes_api_keys_and_disables_accounts() {
    let app = app().await;
    let store = &app.state.store;
    safereach::service::accounts::create_account(store, "test.admin", "admin", PASSWORD, 0, "cli").await.unwrap();
    let mut admin = StaffClient::new(&app);
    admin.login("test.admin", PASSWORD).await;

    // A leaked key: revoked from the admin page, it is refused at once.
    let leaked = app.key_with(&["cases:read"]).await;
    let case = |key: String| {
        let url = app.url("/v1/cases/NOPE");
        let http = app.http.clone();
        async move { http.get(url).bearer_auth(key).send().await.unwrap().status() }
    };
    assert_eq!(case(leaked.clone()).await, StatusCode::NOT_FOUND, "the key works");
    let id: String =
        sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'scoped'").fetch_one(store.pool()).await.unwrap();
    let revoke = format!("/staff/admin/keys/{id}/revoke");
    assert!(admin.get("/staff/admin").await.body.contains(&format!("action=\"{revoke}\"")), "a button for it");
    assert_eq!(admin.post(&revoke, &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(case(leaked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(admin.post(&revoke, &[]).await.status, StatusCode::NOT_FOUND, "already revoked");
    assert!(!admin.get("/staff/admin").await.body.contains(&format!("action=\"{revoke}\"")), "none once revoked");

    // An account disabled: its session ends and it cannot log in until enabled again.
    let mut author = StaffClient::new(&app);
    author.login(AUTHOR, PASSWORD).await;
    assert_eq!(author.get("/staff/review").await.status, StatusCode::OK);
    let page = admin.post(&format!("/staff/admin/staff/{AUTHOR}/disable"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(author.get("/staff/review").await.status, StatusCode::SEE_OTHER, "sent to log in");
    author.get("/staff/login").await;
    let refused = author.post("/staff/login", &[("username", AUTHOR), ("password", PASSWORD)]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(admin.post(&format!("/staff/admin/staff/{AUTHOR}/enable"), &[]).await.status, StatusCode::SEE_OTHER);
    author.login(AUTHOR, PASSWORD).await;
    assert_eq!(author.get("/staff/review").await.status, StatusCode::OK);
    // Not one's own account, nor someone unknown; and only admins.
    let own = admin.post("/staff/admin/staff/test.admin/disable", &[]).await;
    assert_eq!(own.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin.post("/staff/admin/staff/nobody/disable", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(author.post("/staff/admin/staff/test.admin/disable", &[]).await.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn marking_a_number_unsafe_then_releasing_blocks_the_job() {
    let app = app().await;
    let mut body = pretext("unsafe-1", "UNSAFE-1");
    body["victim"]["is_under_18"] = json!(true);
    let (_, answer) = app.post_outreach(&body).await;
    let id = answer["outreach_id"].as_str().unwrap().to_string();
    let mut client = StaffClient::new(&app);
    client.login(AUTHOR, PASSWORD).await;

    let queue = client.get("/staff/review").await;
    assert!(queue.body.contains("Victim is under 18"));
    assert!(queue.body.contains("+447700900555 (victim)"), "the number to choose is shown");
    // A reason is required.
    let page = client.post(&format!("/staff/review/outreach/{id}/unsafe"), &[("reason", " "), ("phone", "0")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = client
        .post(
            &format!("/staff/review/outreach/{id}/unsafe"),
            &[("reason", "Mother says this is the partner's phone"), ("phone", "0")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(app.state.store.is_suppressed("+447700900555").await.unwrap().as_deref(), Some("unsafe"));

    let page =
        client.post(&format!("/staff/review/outreach/{id}/release"), &[("reason", "re-check after marking")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    // The worker decides as for any job: rule 3 (suppressed) now blocks it.
    assert_eq!(format!("{:?}", app.state.worker().process(&id).await.unwrap()), "Decided(Block(Suppressed))");
    let (_, case) = app.get_case("UNSAFE-1").await;
    let timeline = case["timeline"].as_array().unwrap();
    let staff_events: Vec<(&str, &str)> = timeline
        .iter()
        .filter(|e| e["actor"] == format!("staff:{AUTHOR}"))
        .map(|e| (e["type"].as_str().unwrap(), e["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        staff_events,
        [("suppressed", "unsafe"), ("staff_action", "mark_unsafe"), ("released", "staff_release")]
    );
    // The reasons are on the case page, not in the API's event details.
    let page = client.get("/staff/cases/UNSAFE-1").await;
    assert!(page.body.contains("Mother says this is the partner&#x27;s phone"), "{}", page.body);
    assert!(page.body.contains("re-check after marking"));
    assert!(!case.to_string().contains("partner"));
    // A released job is no longer under review: a second release is refused.
    let page = client.post(&format!("/staff/review/outreach/{id}/release"), &[("reason", "again")]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    app.stop().await;
}

on_backends! {
    sqlite, postgres;
    async fn the_review_queue_pages_with_the_most_urgent_first_and_counts_everything() {
        // No approved wording: every job is held (`no_approved_template`, normal urgency), except the
        // child's, which rule 5 holds first (`minor`, high) although it is the oldest.
        let app = app_without_approved_wording().await;
        let mut child = pretext("paging-child", "PAGING-CHILD");
        child["victim"]["is_under_18"] = json!(true);
        assert_eq!(app.post_outreach(&child).await.0, StatusCode::ACCEPTED);
        for i in 0..60 {
            let (status, _) = app.post_outreach(&pretext(&format!("paging-{i}"), &format!("PAGING-{i}"))).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
        let mut client = StaffClient::new(&app);
        client.login(AUTHOR, PASSWORD).await;
        let home = client.get("/staff/").await;
        assert!(home.body.contains("<strong>61</strong> waiting for a person, 1 high."), "{}", home.body);

        let first = client.get("/staff/review").await;
        let first_codes = first.item_codes();
        assert_eq!(first_codes.len(), 50);
        assert_eq!(first_codes[0], "minor", "the high item leads although it is the oldest");
        assert!(first_codes[1..].iter().all(|c| *c == "no_approved_template"));
        assert!(first.body.contains("Showing 1–50 of 61."));
        assert!(first.body.contains("href=\"/staff/review?page=2\" rel=\"next\""));
        assert!(!first.body.contains("rel=\"prev\""));

        let second = client.get("/staff/review?page=2").await;
        assert_eq!(second.item_codes().len(), 11);
        assert!(second.body.contains("Showing 51–61 of 61.") && second.body.contains("Page 2 of 2"));
        assert!(second.body.contains("href=\"/staff/review?page=1\" rel=\"prev\""));
        assert!(!second.body.contains("rel=\"next\""));
        // A page past the end shows the last one.
        assert_eq!(client.get("/staff/review?page=9").await.item_codes(), second.item_codes());
        app.stop().await;
    }
}

#[tokio::test]
async fn previews_warn_and_show_the_email_and_the_letter_as_they_will_look() {
    let app = app().await;
    let versions = app.state.store.template_versions().await.unwrap();
    let id = |channel: &str| {
        versions.iter().find(|v| v.name == "information_pack" && v.channel == channel).unwrap().id.clone()
    };
    let mut client = StaffClient::new(&app);
    client.login(AUTHOR, PASSWORD).await;

    // The email's HTML part, filled in, in a sandboxed frame that cannot run scripts.
    let page = client.get(&format!("/staff/versions/{}", id("email"))).await;
    assert!(page.body.contains("<iframe class=\"email\" title=\"The email as it will look\" sandbox srcdoc=\""));
    let srcdoc = page.body.split("srcdoc=\"").nth(1).unwrap().split('"').next().unwrap();
    assert!(srcdoc.contains("Dear Sam,"), "{srcdoc}");
    assert!(!srcdoc.contains('<'), "escaped inside the attribute: {srcdoc}");

    // The letter as the printer gets it, with a sample address.
    let page = client.get(&format!("/staff/versions/{}", id("letter"))).await;
    let pdf_url = format!("/staff/versions/{}/letter.pdf", id("letter"));
    assert!(page.body.contains(&pdf_url));
    let response = client
        .http
        .get(format!("{}{pdf_url}", app.base))
        .header("cookie", client.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    let text = pdf_text(&pdf);
    if let Some(text) = text {
        assert!(
            text.contains("Dear Sam") && text.contains("Sam Sample") && text.contains("Our ref: PREVIEW"),
            "{text}"
        );
    }

    // The live preview of unsaved wording, with the checks' findings.
    let preview = |body: &'static str, discreet: &'static str| {
        [
            ("name", "priority_pretext_discreet"),
            ("channel", "sms"),
            ("kind", "priority_pretext"),
            ("discreet", discreet),
            ("body", body),
        ]
    };
    let page = client.post("/staff/preview", &preview("Hi {{first_name}}, the police asked us to call.", "yes")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("a discreet message must not say “police”"), "{}", page.body);
    assert!(page.body.contains("without personal details"), "unguarded variable: {}", page.body);
    let page = client.post("/staff/preview", &preview("Hi {{nmae}}", "no")).await;
    assert!(page.body.contains("nmae&#x60;, which is not a known value"), "{}", page.body);
    let page =
        client.post("/staff/preview", &preview("Hello, could we call you? Reply with a time – thanks", "no")).await;
    assert!(page.body.contains("UCS-2 (unicode)") && page.body.contains("makes this SMS use UCS-2"), "{}", page.body);
    let page = client
        .post(
            "/staff/preview/letter.pdf",
            &[
                ("channel", "letter"),
                ("kind", "information_pack"),
                ("discreet", "no"),
                ("body", "Dear {{#if first_name}}{{first_name}}{{/if}}"),
            ],
        )
        .await;
    assert!(page.body.starts_with("%PDF"));
    app.stop().await;
}

/// The text of a PDF by pdftotext (poppler-utils, installed by scripts/test.sh), if present.
fn pdf_text(pdf: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("letter.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext").arg(&path).arg("-").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn the_report_page_and_its_csv_give_the_apis_figures() {
    let app = app().await;
    app.post_outreach(&pretext("rep-page-1", "REP-PAGE-1")).await;
    let mut blocked = pretext("rep-page-2", "REP-PAGE-2");
    blocked["contact"]["do_not_contact"] = json!(true);
    app.post_outreach(&blocked).await;
    let mut client = StaffClient::new(&app);
    client.login(AUTHOR, PASSWORD).await;
    let page = client.get("/staff/reports").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Performance report 2026-11"), "this month by default");
    assert!(page.body.contains("<svg class=\"chart\""));
    let quarter = client.get("/staff/reports?quarter=2026-Q4").await;
    assert!(quarter.body.contains("Performance report 2026-Q4"));
    assert_eq!(client.get("/staff/reports?month=2026-13").await.status, StatusCode::BAD_REQUEST);

    let csv = client.get("/staff/reports.csv?month=2026-11").await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers["content-disposition"].to_str().unwrap().contains("safereach-report-2026-11.csv"));
    let api = app
        .http
        .get(app.url("/v1/reports/monthly?month=2026-11&format=csv"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.body, api);
    assert!(csv.body.lines().any(|l| l == "outreach,total,2"), "{}", csv.body);
    // Not for the public.
    let mut stranger = StaffClient::new(&app);
    assert_eq!(stranger.get("/staff/reports.csv?month=2026-11").await.status, StatusCode::SEE_OTHER);
    app.stop().await;
}

on_backends! {
    sqlite, postgres;
    async fn a_held_job_released_after_a_later_one_was_sent_is_a_duplicate() {
        // Rule 11, one pre-text per referral: job A is held; B, for the same case, is accepted
        // while A waits (held jobs don't count) and sent; releasing A must not send a second one.
        let app = app_without_approved_wording().await;
        let (_, held) = app.post_outreach(&pretext("dup-a", "DUP-1")).await;
        assert_eq!(held["decision"]["reason"], "no_approved_template");
        let a = held["outreach_id"].as_str().unwrap().to_string();
        let store = &app.state.store;
        let now = app.state.clock.now_ms();
        safereach::service::templates::load_dir(store, &crate::common::templates_dir(), AUTHOR, now).await.unwrap();
        safereach::service::templates::approve_submitted(store, None, APPROVER, now).await.unwrap();
        let (_, later) = app.post_outreach(&pretext("dup-b", "DUP-1")).await;
        assert_eq!(later["decision"]["outcome"], "send");
        let b = later["outreach_id"].as_str().unwrap().to_string();

        assert!(matches!(app.state.worker().process(&b).await.unwrap(), safereach::worker::Processed::Sent { .. }));
        safereach::service::review::release_outreach(store, &a, &format!("staff:{AUTHOR}"), "wording approved", now).await.unwrap();
        let processed = format!("{:?}", app.state.worker().process(&a).await.unwrap());
        assert_eq!(processed, "Decided(Block(Duplicate))");
        assert_eq!(app.sent_sms().len(), 1, "one pre-text for the referral");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres;
    async fn replies_from_numbers_we_never_texted_wait_in_the_review_queue() {
        // No case to put an alert on: a frightened reply from an unknown number must still reach a
        // person. An opt-in needs no one.
        let app = app().await;
        for body in ["help he's here", "hello?", "START"] {
            let (_, answer) =
                app.webhook("/webhooks/sandbox/inbound", &json!({"from": "+447700900999", "body": body})).await;
            assert_eq!(answer["matched"], false, "{body}");
        }
        let mut client = StaffClient::new(&app);
        client.login(AUTHOR, PASSWORD).await;
        let home = client.get("/staff/").await;
        assert!(home.body.contains("<strong>2</strong> waiting for a person, <strong class=\"urgent-text\">1 urgent</strong>"), "{}", home.body);
        let queue = client.get("/staff/review").await;
        assert_eq!(queue.item_codes(), ["distress", "reply_needs_review"]);
        assert!(queue.body.contains("From a number we have not texted"));
        assert!(queue.body.contains("help he&#x27;s here"), "the words are shown");

        let distress: String = sqlx::query_scalar("SELECT id FROM replies WHERE classification = 'distress'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
        let ack = format!("/staff/review/replies/{distress}/acknowledge");
        assert_eq!(client.post(&ack, &[("reason", " ")]).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(client.post(&ack, &[("reason", "Called back: a neighbour, now safe")]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(client.post(&ack, &[("reason", "again")]).await.status, StatusCode::CONFLICT);
        assert_eq!(
            client.post("/staff/review/replies/rep_nope/acknowledge", &[("reason", "x")]).await.status,
            StatusCode::NOT_FOUND
        );
        let reviewed: (Option<String>, Option<String>) =
            sqlx::query_as("SELECT reviewed_by, review_note FROM replies WHERE id = $1")
                .bind(&distress)
                .fetch_one(app.state.store.pool())
                .await
                .unwrap();
        assert_eq!(reviewed, (Some(format!("staff:{AUTHOR}")), Some("Called back: a neighbour, now safe".into())));
        let queue = client.get("/staff/review").await;
        assert_eq!(queue.item_codes(), ["reply_needs_review"], "only the unclassified reply is left");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres;
    async fn a_send_in_doubt_is_released_or_cancelled_by_staff_and_then_goes_with_retention() {
        // Two sends cut off mid-way (their workers died): both dead-lettered for a person.
        let app = app().await;
        let store = &app.state.store;
        let mut ids = Vec::new();
        for case in ["DOUBT-A", "DOUBT-B"] {
            let (_, answer) = app.post_outreach(&pretext(&case.to_lowercase(), case)).await;
            let id = answer["outreach_id"].as_str().unwrap().to_string();
            let message = app.start_sending(&id, case).await;
            app.cut_off(&message).await;
            assert_eq!(app.state.worker().process(&id).await.unwrap(), safereach::worker::Processed::DeadLettered);
            ids.push(id);
        }
        let mut client = StaffClient::new(&app);
        client.login(AUTHOR, PASSWORD).await;
        assert!(client.get("/staff/review").await.body.contains("Sending failed or was cut off"));

        // A: the provider says it never arrived; released, it goes (once).
        let page = client.post(&format!("/staff/review/outreach/{}/release", ids[0]), &[("reason", "Provider: not received")]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(matches!(app.state.worker().process(&ids[0]).await.unwrap(), safereach::worker::Processed::Sent { .. }));
        assert_eq!(app.sent_sms().len(), 1);

        // B: the provider had it; cancelled, it never goes again, and its text is redacted on schedule.
        // (As a send left in doubt by a provider that never answered is: no lease at all.)
        sqlx::query("UPDATE messages SET claimed_until = NULL WHERE outreach_id = $1")
            .bind(&ids[1])
            .execute(store.pool())
            .await
            .unwrap();
        let page = client.post(&format!("/staff/review/outreach/{}/cancel", ids[1]), &[("reason", "Provider: delivered")]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(app.state.worker().process(&ids[1]).await.unwrap(), safereach::worker::Processed::Skipped);
        assert_eq!(app.sent_sms().len(), 1);
        let body_of_b = || async {
            sqlx::query_scalar::<_, Option<String>>("SELECT body FROM messages WHERE outreach_id = $1")
                .bind(&ids[1])
                .fetch_one(store.pool())
                .await
                .unwrap()
        };
        assert!(body_of_b().await.is_some());
        let config = safereach::service::retention::RetentionConfig::from_config(&app.state.config);
        let later = app.state.clock.now_ms() + 40 * 86_400_000;
        safereach::service::retention::sweep(store, &config, later, &app.state.metrics).await.unwrap();
        assert_eq!(body_of_b().await, None, "the cancelled job's message is redacted");
        // And the case can be erased (nothing is being sent).
        assert!(safereach::service::erasure::erase_in_database(store, "DOUBT-B", app.state.clock.now_ms(), "admin").await.unwrap().is_some());
        app.stop().await;
    }
}

#[tokio::test]
async fn a_released_job_that_is_sent_reads_as_sent_in_the_api() {
    let app = app_without_approved_wording().await;
    let (_, answer) = app.post_outreach(&pretext("release-1", "RELEASE-1")).await;
    assert_eq!(answer["decision"]["reason"], "no_approved_template");
    let id = answer["outreach_id"].as_str().unwrap().to_string();
    let store = &app.state.store;
    let now = app.state.clock.now_ms();
    safereach::service::templates::load_dir(store, &crate::common::templates_dir(), AUTHOR, now).await.unwrap();
    safereach::service::templates::approve_submitted(store, None, APPROVER, now).await.unwrap();
    let mut client = StaffClient::new(&app);
    client.login(AUTHOR, PASSWORD).await;
    client.get("/staff/review").await;
    let page = client.post(&format!("/staff/review/outreach/{id}/release"), &[("reason", "wording approved")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(matches!(app.state.worker().process(&id).await.unwrap(), safereach::worker::Processed::Sent { .. }));
    let (_, case) = app.get_case("RELEASE-1").await;
    let job = &case["outreach"][0];
    assert_eq!((job["status"].as_str(), job["decision"]["outcome"].as_str()), (Some("sent"), Some("send")), "{job}");
    assert_eq!(job["decision"]["reason"], json!(null));
    assert_eq!(job["decision"]["template"], "priority_pretext");
    app.stop().await;
}
