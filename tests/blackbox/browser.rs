//! The staff pages in a real headless Chromium, driven through WebDriver (chromedriver, started
//! by scripts/test.sh): the approval flow, the review queue, login failures, lock-out, CSRF,
//! the admin page and the second factor, as a person uses them. Screenshots of the main pages go to
//! `<target dir>/screenshots/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use safereach::service::templates as workflow;
use serde_json::{Value, json};

use crate::common::{
    APPROVER, AUTHOR, Options, PASSWORD, TestApp, pretext, service, spawn_at, spawn_with, templates_dir,
};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";
const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// One Chromium with a fresh profile, pointed at one app.
struct Browser {
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// None (the test is skipped) when no chromedriver was started for us.
    async fn start(app: &TestApp) -> Option<Browser> {
        let driver = service("SAFEREACH_TEST_WEBDRIVER_URL")?;
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push("--window-size=1280,1000".into());
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), json!({ "args": args }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver)
            .await
            .unwrap_or_else(|e| panic!("no browser session from {driver}: {e}"));
        Some(Browser { client, base: app.base.clone(), _profile: profile })
    }

    async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Wait until the browser is at `expected` (path and query): a click that submits a form may
    /// return before the next page has loaded (logging in hashes a password first).
    async fn wait_for_path(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let path = self.path().await;
            if path == expected {
                return;
            }
            assert!(Instant::now() < deadline, "at {path}, never at {expected}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element, waiting a while for it: the page may still be loading after a click.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) if Instant::now() >= deadline => panic!("no {css} on {}: {e}", self.path().await),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn exists(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.unwrap().is_empty()
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Wait until the text of `css` contains `needle` (the live preview updates on its own).
    async fn wait_for(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} on {} never showed {needle:?}; it shows:\n{text}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Log in and wait for the answer: the next page, or the login page with its error.
    async fn login(&self, username: &str, password: &str) {
        self.goto("/staff/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("form[action='/staff/login'] button[type=submit]").await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.path().await.starts_with("/staff/login") && !self.exists("#login-error").await {
            assert!(Instant::now() < deadline, "no answer to the login");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn logout(&self) {
        self.click("form.logout button").await;
        self.wait_for("main", "You have logged out.").await;
    }

    /// POST from inside the page (same origin, the session's cookie), as a forged form would;
    /// `csrf` None sends no token, Some("page") sends the page's own. Returns the status.
    async fn post_from_page(&self, path: &str, fields: Value, csrf: Option<&str>) -> u16 {
        let script = r#"
            const [path, fields, csrf, done] = arguments;
            const body = new URLSearchParams(fields);
            if (csrf === "page") { body.set("csrf", document.querySelector("input[name=csrf]").value); }
            else if (csrf !== null) { body.set("csrf", csrf); }
            fetch(path, { method: "POST", body, credentials: "same-origin", redirect: "manual" })
              .then(r => done(r.type === "opaqueredirect" ? 303 : r.status));
        "#;
        let result = self.client.execute_async(script, vec![json!(path), fields, json!(csrf)]).await.unwrap();
        result.as_u64().unwrap() as u16
    }

    async fn scroll_to(&self, css: &str) {
        self.find(css).await;
        let script = "document.querySelector(arguments[0]).scrollIntoView()";
        self.client.execute(script, vec![json!(css)]).await.unwrap();
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// `<target dir>/screenshots`, kept as test artefacts.
fn screenshots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("screenshots")
}

#[tokio::test]
async fn a_wording_change_goes_from_draft_to_live_with_four_eyes() {
    let app = spawn_at(MONDAY_10AM).await;
    let Some(b) = Browser::start(&app).await else { return };

    // The author writes a draft.
    b.login(AUTHOR, PASSWORD).await;
    b.wait_for_path("/staff/").await;
    b.screenshot("home").await;
    b.click("nav a[href='/staff/templates']").await;
    b.wait_for("h1", "Templates").await;
    b.screenshot("templates").await;
    b.click("a[href='/staff/templates/priority_pretext/sms?language=en']").await;
    b.click("a[href='/staff/templates/priority_pretext/sms/draft?language=en']").await;
    b.wait_for("#preview", "1 of at most 1").await;

    // Too long for a pre-text: the live preview says so before anything is saved.
    b.fill("#body", &"Hello, we are Northgate Victim Care and we would like to call you. ".repeat(3)).await;
    b.wait_for("#preview", "a pre-text may use at most 1").await;
    b.wait_for("[data-test=segments]", "2 of at most 1").await;

    let wording = "{{#if first_name}}Hi {{first_name}}{{else}}Hello{{/if}}, this is Northgate Victim Care. \
                   An adviser would like to call you for a free chat. When suits you? Just reply.";
    b.fill("#body", wording).await;
    let preview = b.wait_for("#preview", "Hi Sam, this is Northgate Victim Care. An adviser would like").await;
    assert!(!preview.contains("Must be fixed"), "{preview}");
    assert_eq!(b.text("[data-test=encoding]").await, "GSM-7");
    assert_eq!(b.text("[data-test=segments]").await, "1 of at most 1");
    assert_eq!(b.text("[data-test=characters]").await, "117");
    b.screenshot("draft-editor").await;
    b.click("button[value=submit]").await;
    b.wait_for("main", "Version 2 submitted for approval.").await;
    assert_eq!(b.text("[data-test=state]").await, "Waiting for approval");
    let version_path = b.path().await;
    let version_id = version_path.trim_start_matches("/staff/versions/").to_string();

    // The author has no approve button, and a forced approval is refused.
    assert!(!b.exists("#approve").await);
    let status = b.post_from_page(&format!("{version_path}/approve"), json!({"comment": "mine"}), Some("page")).await;
    assert_eq!(status, 403);
    b.logout().await;

    // The approver finds it, reads the preview and the changes, and approves.
    b.login(APPROVER, PASSWORD).await;
    b.wait_for("main", "1 version(s) waiting for approval").await;
    b.goto("/staff/templates").await;
    b.click("a.state-submitted").await;
    b.wait_for_path(&version_path).await;
    b.wait_for("#preview", "Hi Sam, this is Northgate Victim Care").await;
    assert_eq!(b.text("[data-test=author]").await.split(',').next().unwrap(), AUTHOR);
    let changed = b.text("table.diff tr.changed").await;
    assert!(changed.contains("We'd like to call you") && changed.contains("An adviser would like"), "{changed}");
    b.screenshot("version-approval").await;
    b.scroll_to("#changes").await;
    b.screenshot("version-changes").await;
    b.fill("#approve-comment", "Clearer, and still one segment").await;
    b.click("#approve").await;
    b.wait_for("main", "approved: it is used from now on").await;
    assert_eq!(b.text("[data-test=state]").await, "Approved (in use)");
    assert!(b.text("[data-test=decided-by]").await.starts_with(APPROVER));

    // A message sent afterwards uses the new version.
    app.post_outreach(&pretext("four-eyes-1", "FOUR-EYES-1")).await;
    let message = app.wait_for_message("FOUR-EYES-1", "sent").await;
    assert_eq!(message["template_version"], 2);
    assert_eq!(
        message["body"],
        "Hi Robin, this is Northgate Victim Care. An adviser would like to call you for a free chat. When suits you? Just reply."
    );
    let stored = app.state.store.template_version(&version_id).await.unwrap().unwrap();
    assert_eq!((stored.author.as_str(), stored.decided_by.as_deref()), (AUTHOR, Some(APPROVER)));

    // An approver's own wording needs another approver too.
    b.goto("/staff/templates/priority_pretext_discreet/sms/draft").await;
    b.fill("#body", "{{#if first_name}}Hi {{first_name}}{{else}}Hello{{/if}}, could we give you a quick call? What time suits you? Just reply to this text.").await;
    b.wait_for("#preview", "could we give you a quick call").await;
    b.click("button[value=submit]").await;
    b.wait_for("main", "submitted for approval").await;
    b.wait_for("[data-test=own-version]", "another approver must approve it").await;
    assert!(!b.exists("#approve").await);
    let own = b.path().await;
    assert_eq!(b.post_from_page(&format!("{own}/approve"), json!({}), Some("page")).await, 403);
    let discreet = app.state.store.template_versions().await.unwrap();
    let own_version = discreet.iter().find(|v| v.name == "priority_pretext_discreet" && v.version == 2).unwrap();
    assert_eq!((own_version.state.as_str(), own_version.author.as_str()), ("submitted", APPROVER));
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_caseworker_clears_the_review_queue() {
    let app =
        spawn_with(Options { clock: Some(MONDAY_10AM.into()), approve_templates: false, ..Options::default() }).await;
    let store = &app.state.store;
    let now = app.state.clock.now_ms();
    workflow::load_dir(store, &templates_dir(), AUTHOR, now).await.unwrap();
    // Everything but the plain pre-text is approved, so a robbery pre-text is held for wording.
    for name in ["priority_pretext_discreet", "information_pack", "information_pack_discreet"] {
        workflow::approve_submitted(store, Some(name), APPROVER, now).await.unwrap();
    }
    let Some(b) = Browser::start(&app).await else { return };

    // A safety-sensitive case is texted and replies in distress.
    let mut da = pretext("review-da", "REVIEW-DA");
    da["crime"]["categories"] = json!(["domestic_abuse"]);
    da["contact"]["phones"][0]["number"] = json!("+447700900111");
    app.post_outreach(&da).await;
    app.wait_for_message("REVIEW-DA", "sent").await;
    let (status, reply) = app
        .webhook("/webhooks/sandbox/inbound", &json!({"from": "07700900111", "to": "60000", "body": "help he's here"}))
        .await;
    assert_eq!((status, reply["classification"].as_str()), (StatusCode::OK, Some("distress")));
    // A pre-text with no approved wording, and one for a child.
    let (_, held) = app.post_outreach(&pretext("review-held", "REVIEW-HELD")).await;
    assert_eq!(held["decision"]["reason"], "no_approved_template");
    let mut minor = pretext("review-minor", "REVIEW-MINOR");
    minor["victim"]["is_under_18"] = json!(true);
    minor["contact"]["phones"][0]["number"] = json!("+447700900222");
    app.post_outreach(&minor).await;

    b.login(AUTHOR, PASSWORD).await;
    b.wait_for("main", "3 waiting for a person, 1 urgent").await;
    b.click("nav a[href='/staff/review']").await;
    let codes = b
        .client
        .execute("return [...document.querySelectorAll('[data-test=item]')].map(e => e.dataset.code)", vec![])
        .await
        .unwrap();
    assert_eq!(codes, json!(["distress", "minor", "no_approved_template"]), "distress first, then by urgency");
    assert!(b.text("[data-code=distress]").await.contains("help he's here"));
    b.screenshot("review-queue").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.screenshot("review-queue-narrow").await;
    let overflow = b.client.execute("return document.documentElement.scrollWidth", vec![]).await.unwrap();
    assert!(overflow.as_u64().unwrap() <= 390, "no sideways scrolling on a phone: {overflow}");
    b.client.set_window_size(1280, 1000).await.unwrap();

    // The wording gets approved; the held pre-text is released and the worker sends it.
    workflow::approve_submitted(store, Some("priority_pretext"), APPROVER, now).await.unwrap();
    b.fill("[data-code=no_approved_template] textarea", "Pre-text wording approved today").await;
    b.click("[data-code=no_approved_template] [data-test=release]").await;
    b.wait_for("main", "Released the job on case REVIEW-HELD").await;
    let message = app.wait_for_message("REVIEW-HELD", "sent").await;
    assert_eq!(
        (message["template"].as_str(), message["template_version"].as_i64()),
        (Some("priority_pretext"), Some(1))
    );

    // A reason is required: an empty one is not sent by the browser.
    b.click("[data-code=distress] [data-test=acknowledge]").await;
    assert!(b.exists("[data-code=distress]").await);
    b.fill("[data-code=distress] textarea", "Called 999 with the victim's consent; advocate informed").await;
    b.click("[data-code=distress] [data-test=acknowledge]").await;
    b.wait_for("main", "Alert on case REVIEW-DA acknowledged.").await;
    b.fill("[data-code=minor] textarea", "Under 16: safeguarding lead will make contact").await;
    b.click("[data-code=minor] [data-test=cancel]").await;
    b.wait_for("main", "Cancelled the job on case REVIEW-MINOR").await;
    b.wait_for("[data-test=empty]", "Nothing is waiting for review.").await;

    // The case pages show what happened, with the reasons.
    b.goto("/staff/cases/REVIEW-HELD").await;
    let timeline = b.wait_for("ol.timeline", "Sent").await;
    assert!(
        timeline.contains("Released by staff") && timeline.contains("Pre-text wording approved today"),
        "{timeline}"
    );
    assert!(b.text("[data-test=message-body]").await.starts_with("Hi Robin"));
    b.screenshot("case-timeline").await;
    b.goto("/staff/cases/REVIEW-DA").await;
    let page = b.text("main").await;
    assert!(page.contains("help he's here") && page.contains("classified distress"), "{page}");
    assert!(page.contains("Called 999 with the victim's consent"));
    let (_, minor_case) = app.get_case("REVIEW-MINOR").await;
    assert_eq!(minor_case["outreach"][0]["status"], "cancelled");
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_passwords_slow_a_login_down_and_forged_forms_are_refused() {
    let app = spawn_at(MONDAY_10AM).await;
    let Some(b) = Browser::start(&app).await else { return };

    // A page asks for a login first, and comes back to it afterwards.
    b.goto("/staff/review").await;
    b.wait_for_path("/staff/login?next=%2Fstaff%2Freview").await;
    b.screenshot("login").await;
    b.fill("#username", APPROVER).await;
    b.fill("#password", "not the password").await;
    b.click("form[action='/staff/login'] button").await;
    b.wait_for("#login-error", "The username or password is not right.").await;
    b.login("nobody.here", PASSWORD).await;
    b.wait_for("#login-error", "The username or password is not right.").await;

    // Wrong passwords slow that username down from here, and never lock it: after the third in
    // a row even the right one waits a second, then gets in.
    for _ in 0..2 {
        b.login(AUTHOR, "wrong password!").await;
    }
    b.wait_for("#login-error", "The username or password is not right. Check them and try again.").await;
    b.login(AUTHOR, "wrong password!").await;
    b.wait_for("#login-error", "Wait 1 second(s) first.").await;
    b.login(AUTHOR, PASSWORD).await;
    b.wait_for("#login-error", "Too many wrong passwords for this username from here.").await;
    b.screenshot("login-slowed").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    b.login(AUTHOR, PASSWORD).await;
    b.wait_for("main", &format!("Hello, {AUTHOR}")).await;
    b.logout().await;

    // Forged forms: no token, or a wrong one, are refused and change nothing.
    b.goto("/staff/login?next=%2Fstaff%2Freview").await;
    b.fill("#username", APPROVER).await;
    b.fill("#password", PASSWORD).await;
    b.click("form[action='/staff/login'] button").await;
    b.wait_for_path("/staff/review").await;
    assert_eq!(b.post_from_page("/staff/admin/keys", json!({"name": "x", "scope": "cases:read"}), None).await, 403);
    assert_eq!(b.post_from_page("/staff/logout", json!({}), Some(&"0".repeat(64))).await, 403);
    b.client.execute("document.querySelector('form.logout input[name=csrf]').value = 'forged'", vec![]).await.unwrap();
    b.click("form.logout button").await;
    b.wait_for("main", "This form has expired or did not come from these pages").await;
    b.goto("/staff/").await;
    b.wait_for("main", &format!("Hello, {APPROVER}")).await;
    // The page's own token works.
    b.logout().await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_unlocks_accounts_and_creates_accounts_and_api_keys() {
    let app = spawn_at(MONDAY_10AM).await;
    let store = &app.state.store;
    safereach::service::accounts::create_account(store, "test.admin", "admin", PASSWORD, 0, "cli").await.unwrap();
    // Someone guessed the author's password from this browser's address: slowed for 15 minutes.
    store.record_failed_login(AUTHOR, "127.0.0.1", app.state.clock.now_ms(), |_| 15 * 60_000).await.unwrap();
    let Some(b) = Browser::start(&app).await else { return };
    b.login("test.admin", PASSWORD).await;
    b.click("nav a[href='/staff/admin']").await;
    b.wait_for("main", "logins slowed until").await;
    b.screenshot("admin").await;
    b.click(&format!("form[action='/staff/admin/staff/{AUTHOR}/unlock'] button")).await;
    b.wait_for("main", &format!("Account {AUTHOR} unlocked.")).await;
    b.wait_for("[data-test=audit]", "staff_unlocked").await;

    b.fill("#new-username", "new.caseworker").await;
    b.client.execute("document.getElementById('new-role').value = 'author'", vec![]).await.unwrap();
    b.fill("#new-password", "a new long password").await;
    b.click("form[action='/staff/admin/staff'] button").await;
    b.wait_for("main", "Account new.caseworker created with the role author.").await;

    b.fill("#key-name", "reporting").await;
    b.click("input[name=scope][value='cases:read']").await;
    b.click("form[action='/staff/admin/keys'] button").await;
    b.wait_for("main", "it is shown only this once").await;
    let key = b.find("#api-key").await.prop("value").await.unwrap().unwrap();
    assert!(key.starts_with("sr_"));
    let response =
        reqwest::Client::new().get(app.url("/v1/cases/NO-SUCH-CASE")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "the new key is accepted");

    // A test key with its own rate limit, from the same form.
    b.goto("/staff/admin").await;
    b.fill("#key-name", "triage-test").await;
    b.click("input[name=scope][value='cases:read']").await;
    b.fill("#key-rate", "2").await;
    b.click("#key-test").await;
    b.click("form[action='/staff/admin/keys'] button").await;
    b.wait_for("main", "The test key triage-test").await;
    b.wait_for("main", "2 requests a minute").await;
    let test_key = b.find("#api-key").await.prop("value").await.unwrap().unwrap();
    let get = |path: &'static str| reqwest::Client::new().get(app.url(path)).bearer_auth(&test_key).send();
    assert_eq!(get("/v1/outreach/out_x").await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get("/v1/cases/NO-SUCH-CASE").await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "a test key reads no case"
    );
    let limited = get("/v1/outreach/out_x").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "two a minute");
    assert!(limited.headers().contains_key("retry-after"));
    b.goto("/staff/admin").await;
    let keys = b.wait_for("main", "triage-test").await;
    assert!(keys.contains("triage-test test"), "marked test in the list: {keys}");
    b.logout().await;

    // The unlocked author and the new account can log in.
    for (user, password) in [(AUTHOR, PASSWORD), ("new.caseworker", "a new long password")] {
        b.login(user, password).await;
        b.wait_for("main", &format!("Hello, {user}")).await;
        b.logout().await;
    }
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_email_and_the_letter_previews_show_as_they_will_look() {
    let app = spawn_at(MONDAY_10AM).await;
    let versions = app.state.store.template_versions().await.unwrap();
    let id = |channel: &str| {
        versions.iter().find(|v| v.name == "information_pack" && v.channel == channel).unwrap().id.clone()
    };
    let Some(b) = Browser::start(&app).await else { return };
    b.login(AUTHOR, PASSWORD).await;

    b.goto(&format!("/staff/versions/{}", id("email"))).await;
    b.scroll_to("#preview").await;
    b.screenshot("email-preview").await;
    b.client.enter_frame(0).await.unwrap();
    let email = b.text("body").await;
    assert!(email.contains("Dear Sam,") && email.contains("Your contact here is Jo."), "{email}");
    b.client.enter_parent_frame().await.unwrap();

    b.goto(&format!("/staff/versions/{}", id("letter"))).await;
    assert!(b.exists("iframe.letter").await);
    b.scroll_to("#preview").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.screenshot("letter-preview").await;
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_report_page_shows_the_month_in_tables_and_charts() {
    let app = spawn_at(MONDAY_10AM).await;
    let Some(b) = Browser::start(&app).await else { return };
    app.post_outreach(&pretext("report-send", "REPORT-1")).await;
    let mut no_number = pretext("report-hold", "REPORT-2");
    no_number["crime"]["categories"] = json!(["hate_crime"]);
    no_number["contact"]["phones"][0]["safe_to_text"] = json!(false);
    app.post_outreach(&no_number).await;
    let mut junk = pretext("report-block", "REPORT-3");
    junk["contact"]["phones"][0]["number"] = json!("12345");
    app.post_outreach(&junk).await;
    app.wait_for_message("REPORT-1", "sent").await;

    b.login(AUTHOR, PASSWORD).await;
    b.click("nav a[href='/staff/reports']").await;
    b.wait_for("h1", "Performance report 2026-11").await;
    assert_eq!(b.text("[data-test=jobs]").await, "3");
    assert_eq!(b.text("[data-test=messages]").await, "1");
    let bars = b
        .client
        .execute(
            "return [...document.querySelectorAll('svg.chart')].map(s => s.querySelectorAll('rect').length)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bars, json!([4, 10]), "one bar per outcome and per heading");
    let page = b.text("main").await;
    assert!(page.contains("No contacts – safe phone contact for DV and hate referrals not provided"), "{page}");
    b.screenshot("report").await;
    // Another month is chosen with the form; it is empty.
    // (A month field's typing format depends on the browser's locale; set its value as a picker would.)
    b.client.execute("document.querySelector('#report-month').value = '2026-10'", vec![]).await.unwrap();
    b.click("form[action='/staff/reports'] button").await;
    b.wait_for("h1", "Performance report 2026-10").await;
    assert_eq!(b.text("[data-test=jobs]").await, "0");
    b.close().await;
    app.stop().await;
}

/// The satisfaction survey on the report page: two surveys sent, one answered 5 by a text through
/// the sandbox callback, read by a person in Chromium as the commissioner's figures.
#[tokio::test]
async fn the_report_page_shows_the_satisfaction_survey() {
    let app = spawn_at(MONDAY_10AM).await;
    let Some(b) = Browser::start(&app).await else { return };
    for (case, number) in [("SURVEY-1", "+447700900301"), ("SURVEY-2", "+447700900302")] {
        let mut survey = pretext(&format!("{case}-survey"), case);
        survey["kind"] = json!("satisfaction_survey");
        survey["consent"] = json!({"survey": true});
        survey["contact"]["phones"][0]["number"] = json!(number);
        let (status, answer) = app.post_outreach(&survey).await;
        assert_eq!(
            (status, answer["decision"]["template"].as_str()),
            (StatusCode::ACCEPTED, Some("satisfaction_survey"))
        );
        app.wait_for_message(case, "sent").await;
    }
    let (_, answer) =
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900301", "to": "60000", "body": "5"})).await;
    assert_eq!(answer["classification"], "survey_answer");

    b.login(AUTHOR, PASSWORD).await;
    b.click("nav a[href='/staff/reports']").await;
    b.wait_for("h1", "Performance report 2026-11").await;
    b.scroll_to("[data-test=survey]").await;
    assert_eq!(b.text("[data-test=survey-sent]").await, "2");
    assert_eq!(b.text("[data-test=survey-answered]").await, "1");
    assert_eq!(b.text("[data-test=survey-answered-percent]").await, "50.0%");
    assert_eq!(b.text("[data-test=survey-satisfied]").await, "1");
    assert_eq!(b.text("[data-test=survey-satisfied-percent]").await, "50.0%");
    let survey = b.text("[data-test=survey]").await;
    assert!(survey.contains("answered 4 or 5"), "{survey}");
    // The 2015 report's first line heads the headings: nobody was reached within 24 hours yet
    // (the surveys are not contact).
    assert_eq!(b.text("[data-test=within-24h-percent]").await, "0.0%");
    b.screenshot("report-survey").await;
    b.close().await;
    app.stop().await;
}

/// A Welsh version of a template, written and approved through the pages: the author picks the
/// language in the draft form, the list shows the versions per language, another person approves
/// it (the English one stays in use for everyone else), and a Welsh speaker's pre-text uses it.
#[tokio::test]
async fn a_welsh_version_is_written_and_approved_four_eyes_and_sent_in_welsh() {
    let app = spawn_at(MONDAY_10AM).await;
    let Some(b) = Browser::start(&app).await else { return };

    b.login(AUTHOR, PASSWORD).await;
    b.wait_for_path("/staff/").await;
    b.goto("/staff/templates/priority_pretext/sms?language=en").await;
    b.click("a[href='/staff/templates/priority_pretext/sms/draft?language=en']").await;
    b.wait_for("#preview", "1 of at most 1").await;
    b.click("#language option[value=cy]").await;
    let welsh = "{{#if first_name}}Helo {{first_name}}{{else}}Helo{{/if}}, dyma Northgate Victim Care. \
                 Hoffem eich ffonio i gynnig help am ddim. Pryd sy'n gyfleus i chi? Atebwch.";
    b.fill("#body", welsh).await;
    b.wait_for("#preview", "Helo Sam, dyma Northgate Victim Care").await;
    b.click("button[value=submit]").await;
    b.wait_for("main", "submitted for approval").await;
    b.wait_for("h1", "Cymraeg (Welsh)").await;
    let version_path = b.path().await;
    let version_id = version_path.trim_start_matches("/staff/versions/").to_string();
    let stored = app.state.store.template_version(&version_id).await.unwrap().unwrap();
    assert_eq!((stored.language.as_str(), stored.state.as_str()), ("cy", "submitted"));
    // The author cannot approve their own translation.
    assert!(!b.exists("#approve").await);
    b.logout().await;

    // The list shows the template once per language: English in use, Welsh waiting.
    b.login(APPROVER, PASSWORD).await;
    b.wait_for("main", "1 version(s) waiting for approval").await;
    b.goto("/staff/templates").await;
    let list = b.text("main table").await;
    assert!(list.contains("Cymraeg (Welsh)") && list.contains("None: English is sent instead"), "{list}");
    b.click("a[href='/staff/templates/priority_pretext/sms?language=cy']").await;
    b.wait_for("h1", "Cymraeg (Welsh)").await;
    b.click("table a[href^='/staff/versions/']").await;
    b.wait_for_path(&version_path).await;
    b.fill("#approve-comment", "Wedi ei wirio").await;
    b.click("#approve").await;
    b.wait_for("main", "approved: it is used from now on").await;
    let versions = app.state.store.template_versions().await.unwrap();
    let approved: Vec<(&str, &str)> = versions
        .iter()
        .filter(|v| v.name == "priority_pretext" && v.state == "approved")
        .map(|v| (v.language.as_str(), v.author.as_str()))
        .collect();
    assert_eq!(approved.len(), 2, "English stays approved beside Welsh: {approved:?}");
    b.close().await;

    // A Welsh speaker gets the Welsh wording, recorded as such; anyone else the English.
    let mut cy = pretext("welsh-1", "WELSH-1");
    cy["victim"]["language"] = json!("cy-GB");
    app.post_outreach(&cy).await;
    app.post_outreach(&pretext("english-1", "ENGLISH-1")).await;
    let message = app.wait_for_message("WELSH-1", "sent").await;
    assert_eq!(message["language"], "cy");
    assert!(message["body"].as_str().unwrap().starts_with("Helo Robin, dyma Northgate"), "{message}");
    let message = app.wait_for_message("ENGLISH-1", "sent").await;
    assert_eq!((message["language"].as_str(), message["template_version"].as_i64()), (Some("en"), Some(1)));
    app.stop().await;
}

/// Type the password and wait for the second-factor page.
async fn password_step(b: &Browser, username: &str) {
    b.goto("/staff/login").await;
    b.fill("#username", username).await;
    b.fill("#password", PASSWORD).await;
    b.click("form[action='/staff/login'] button[type=submit]").await;
    b.wait_for_path("/staff/login/code").await;
}

async fn type_code(b: &Browser, code: &str) {
    b.fill("#code", code).await;
    b.click("form[action='/staff/login/code'] button[type=submit]").await;
}

#[tokio::test]
async fn a_second_factor_is_set_up_asked_at_sign_in_and_a_recovery_code_works_once() {
    use crate::two_factor::{app_time, totp_code};
    let app = spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        configure: Box::new(|c| c.staff_2fa = safereach::config::TwoFactor::Required),
        ..Options::default()
    })
    .await;
    let Some(b) = Browser::start(&app).await else { return };
    // An approver who has none is taken to set it up, and nothing else opens meanwhile.
    b.login(APPROVER, PASSWORD).await;
    b.wait_for_path("/staff/two-factor").await;
    b.wait_for("[data-test=must-enrol]", "must sign in with a second factor").await;
    b.goto("/staff/review").await;
    b.wait_for_path("/staff/two-factor").await;
    assert!(b.exists("figure.qr svg").await, "a QR code to scan");
    b.screenshot("two-factor-enrol").await;
    let secret = b.text("[data-test=secret]").await;
    b.fill("#enrol-code", "12345").await;
    b.click("form[action='/staff/two-factor/enrol'] button").await;
    b.wait_for("main", "That code was not right").await;
    b.fill("#enrol-code", &totp_code(&secret, app_time(&app, 0))).await;
    b.click("form[action='/staff/two-factor/enrol'] button").await;
    b.wait_for("h1", "Your second factor is on").await;
    let mut codes = Vec::new();
    for element in b.client.find_all(Locator::Css("[data-test=recovery-codes] code")).await.unwrap() {
        codes.push(element.text().await.unwrap());
    }
    assert_eq!(codes.len(), 10);
    b.screenshot("two-factor-recovery-codes").await;
    b.goto("/staff/review").await;
    b.wait_for("h1", "Review queue").await;
    b.logout().await;

    // The password, then the code the app shows.
    password_step(&b, APPROVER).await;
    b.screenshot("two-factor-code").await;
    type_code(&b, "000000").await;
    b.wait_for("#code-error", "not right").await;
    type_code(&b, &totp_code(&secret, app_time(&app, 30))).await;
    b.wait_for_path("/staff/").await;
    b.wait_for("main", &format!("Hello, {APPROVER}")).await;
    b.logout().await;

    // No phone: a recovery code, once.
    password_step(&b, APPROVER).await;
    type_code(&b, &codes[0]).await;
    b.wait_for_path("/staff/").await;
    b.wait_for(".flash", "9 recovery code(s) left").await;
    b.logout().await;
    password_step(&b, APPROVER).await;
    type_code(&b, &codes[0]).await;
    b.wait_for("#code-error", "not right").await;
    assert!(b.path().await.starts_with("/staff/login/code"));
    b.close().await;
    app.stop().await;
}
