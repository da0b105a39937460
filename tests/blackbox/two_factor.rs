//! Staff second factor (issue 18) over plain HTTP: enrolment, the code after the password, replay
//! and throttling, recovery codes once each, `SAFEREACH_STAFF_2FA=required`, and an admin's (or
//! the command line's) reset for a lost device, in the audit table. The same as a person does it
//! in a real browser: `browser.rs`.

use reqwest::StatusCode;
use safereach::app::Role;
use safereach::config::TwoFactor;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::common::{APPROVER, AUTHOR, Options, PASSWORD, TestApp, spawn_with};
use crate::staff::StaffClient;

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";
const ADMIN: &str = "test.admin";

/// The code an authenticator app shows for `secret` (base32, as the page shows it, spaces and
/// all) at `unix_secs`, computed here with the same crate an app would use.
pub fn totp_code(secret: &str, unix_secs: u64) -> String {
    let bytes = Secret::Encoded(secret.replace(' ', "")).to_bytes().expect("a base32 secret");
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, Some("safereach".into()), "any".into()).unwrap().generate(unix_secs)
}

/// The app's own time, in seconds, `ahead` seconds from now.
pub fn app_time(app: &TestApp, ahead: u64) -> u64 {
    app.state.clock.now().timestamp() as u64 + ahead
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html.find(start).unwrap_or_else(|| panic!("{start} not in {html}")) + start.len();
    html[at..].split(end).next().unwrap()
}

/// Set up a second factor for the logged-in `client`: the secret, and the recovery codes shown.
async fn enrol(app: &TestApp, client: &mut StaffClient) -> (String, Vec<String>) {
    let page = client.get("/staff/two-factor").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg"), "a QR code to scan");
    let secret = between(&page.body, "<code data-test=\"secret\">", "<").to_string();
    let wrong = client.post("/staff/two-factor/enrol", &[("code", "12345")]).await;
    assert_eq!(wrong.location(), "/staff/two-factor", "not turned on by a wrong code");
    assert!(client.get("/staff/two-factor").await.body.contains(&secret), "the same secret until confirmed");
    let shown = client.post("/staff/two-factor/enrol", &[("code", &totp_code(&secret, app_time(app, 0)))]).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let codes: Vec<String> =
        shown.body.split("<li><code>").skip(1).map(|s| s.split('<').next().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 10, "{}", shown.body);
    let after = client.get("/staff/two-factor").await.body;
    assert!(after.contains("data-test=\"enrolled\"") && !after.contains(&codes[0]) && !after.contains(&secret));
    (secret, codes)
}

/// Password, then the code page: its status and where it sent us.
async fn password_then_code(client: &mut StaffClient, username: &str, code: &str) -> (StatusCode, String, String) {
    client.get("/staff/login").await;
    let after_password = client.post("/staff/login", &[("username", username), ("password", PASSWORD)]).await;
    assert_eq!(after_password.location(), "/staff/login/code", "the password alone opens nothing");
    assert!(!client.has_cookie("safereach_session"));
    let form = client.get("/staff/login/code").await;
    assert_eq!(form.status, StatusCode::OK);
    let page = client.post("/staff/login/code", &[("code", code)]).await;
    (page.status, page.location().to_string(), page.body)
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT actor, action, target FROM audit_events ORDER BY id")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap()
}

on_backends! {
    sqlite, postgres_redis;
    async fn a_second_factor_is_asked_after_the_password_each_code_and_recovery_code_once() {
        let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
        let mut client = StaffClient::new(&app);
        client.login(APPROVER, PASSWORD).await;
        let (secret, codes) = enrol(&app, &mut client).await;
        assert!(audit_actions(&app).await.contains(&(format!("staff:{APPROVER}"), "two_factor_enrolled".into(), APPROVER.into())));
        // Stored sealed: the secret is not in the database as the app shows it.
        let stored: String = sqlx::query_scalar("SELECT secret FROM staff_two_factor").fetch_one(app.state.store.pool()).await.unwrap();
        assert!(!stored.contains(&secret.replace(' ', "")));

        // A wrong code, then the right one (the next step: the enrolment used this one).
        let mut client = StaffClient::new(&app);
        let (status, _, body) = password_then_code(&mut client, APPROVER, "000000").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let code = totp_code(&secret, app_time(&app, 30));
        let page = client.post("/staff/login/code", &[("code", code.as_str())]).await;
        assert_eq!(page.location(), "/staff/");
        assert!(client.has_cookie("safereach_session"));
        assert_eq!(client.get("/staff/review").await.status, StatusCode::OK);
        // The same code again (seen over a shoulder): refused.
        let mut other = StaffClient::new(&app);
        let (status, _, _) = password_then_code(&mut other, APPROVER, &code).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a code is good once");

        // A recovery code, typed any old way: once.
        let mut client = StaffClient::new(&app);
        let typed = codes[3].to_uppercase().replace('-', " ");
        let (_, location, _) = password_then_code(&mut client, APPROVER, &typed).await;
        assert_eq!(location, "/staff/");
        assert!(client.get("/staff/").await.body.contains("9 recovery code(s) left"));
        let mut client = StaffClient::new(&app);
        let (status, _, _) = password_then_code(&mut client, APPROVER, &codes[3]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a recovery code is good once");
        // Wrong codes slow the username down from this address as wrong passwords do.
        let mut slowed = None;
        for _ in 0..3 {
            let page = client.post("/staff/login/code", &[("code", "111111")]).await;
            if page.status == StatusCode::TOO_MANY_REQUESTS {
                slowed = Some(page.body);
                break;
            }
        }
        assert!(slowed.expect("slowed down").contains("Too many wrong tries"));
        // Without the password step there is nothing to enter a code for.
        let mut stranger = StaffClient::new(&app);
        stranger.get("/staff/login").await;
        let page = stranger.post("/staff/login/code", &[("code", &totp_code(&secret, app_time(&app, 0)))]).await;
        assert_eq!(page.location(), "/staff/login");
        assert!(!stranger.has_cookie("safereach_session"));
        // Authors without a second factor still sign in with a password (it is optional).
        let mut author = StaffClient::new(&app);
        assert_eq!(author.login(AUTHOR, PASSWORD).await.location(), "/staff/");
        app.stop().await;
    }
}

on_backends! {
    sqlite, postgres_redis;
    async fn when_required_approvers_and_admins_enrol_first_and_a_lost_device_is_reset_by_an_admin() {
        let app = spawn_with(Options {
            clock: Some(MONDAY_10AM.into()),
            role: Role::Api,
            configure: Box::new(|c| c.staff_2fa = TwoFactor::Required),
            ..Options::default()
        })
        .await;
        let now = app.state.clock.now_ms();
        safereach::service::accounts::create_account(&app.state.store, ADMIN, "admin", PASSWORD, now, "cli").await.unwrap();
        let version = app.state.store.template_versions().await.unwrap()[0].id.clone();

        // An approver with a password only: the enrolment page and nothing else.
        let mut approver = StaffClient::new(&app);
        approver.login(APPROVER, PASSWORD).await;
        assert_eq!(approver.get("/staff/review").await.location(), "/staff/two-factor");
        assert_eq!(approver.get("/staff/admin").await.location(), "/staff/two-factor");
        let page = approver.get("/staff/two-factor").await;
        assert!(page.body.contains("data-test=\"must-enrol\""));
        let refused = approver.post(&format!("/staff/versions/{version}/approve"), &[("comment", "ok")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        // An author may go on with a password alone.
        let mut author = StaffClient::new(&app);
        author.login(AUTHOR, PASSWORD).await;
        assert_eq!(author.get("/staff/review").await.status, StatusCode::OK);
        // Enrolled, the approver's pages open.
        let (approver_secret, _) = enrol(&app, &mut approver).await;
        let mut approver = StaffClient::new(&app);
        let (_, location, _) = password_then_code(&mut approver, APPROVER, &totp_code(&approver_secret, app_time(&app, 30))).await;
        assert_eq!(location, "/staff/");
        assert_eq!(approver.get("/staff/review").await.status, StatusCode::OK);

        // The approver lost their phone: an admin (with a second factor too) resets it.
        let mut admin = StaffClient::new(&app);
        admin.login(ADMIN, PASSWORD).await;
        assert_eq!(admin.get("/staff/admin").await.location(), "/staff/two-factor");
        let (admin_secret, _) = enrol(&app, &mut admin).await;
        let mut admin = StaffClient::new(&app);
        password_then_code(&mut admin, ADMIN, &totp_code(&admin_secret, app_time(&app, 30))).await;
        let page = admin.get("/staff/admin").await;
        assert!(page.body.contains(&format!("data-test=\"two-factor-{APPROVER}\">on<")), "{}", page.body);
        let own = admin.post(&format!("/staff/admin/staff/{ADMIN}/two-factor/reset"), &[]).await;
        assert_eq!(own.status, StatusCode::BAD_REQUEST, "not one's own");
        let done = admin.post(&format!("/staff/admin/staff/{APPROVER}/two-factor/reset"), &[]).await;
        assert_eq!(done.location(), "/staff/admin");
        assert!(audit_actions(&app).await.contains(&(format!("staff:{ADMIN}"), "two_factor_reset".into(), APPROVER.into())));
        // Their session ended; at the next sign-in they set up a new second factor.
        assert_eq!(approver.get("/staff/review").await.location(), "/staff/login?next=%2Fstaff%2Freview");
        let mut approver = StaffClient::new(&app);
        assert_eq!(approver.login(APPROVER, PASSWORD).await.location(), "/staff/");
        assert_eq!(approver.get("/staff/review").await.location(), "/staff/two-factor");
        // An author may not reset anyone's.
        let forbidden = author.post(&format!("/staff/admin/staff/{ADMIN}/two-factor/reset"), &[]).await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

        // The command line resets too (an admin who lost theirs), audited as the command line.
        let cli = safereach::cli::Cli {
            config: app.config.clone(),
            command: Some(safereach::cli::Command::Staff {
                command: safereach::cli::StaffCommand::Reset2fa { username: ADMIN.into() },
            }),
        };
        safereach::cli::run(cli).await.unwrap();
        assert!(audit_actions(&app).await.contains(&("cli".into(), "two_factor_reset".into(), ADMIN.into())));
        assert_eq!(admin.get("/staff/admin").await.location(), "/staff/login?next=%2Fstaff%2Fadmin");
        app.stop().await;
    }
}
