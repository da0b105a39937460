//! No single party can undo a victim's protection (issue 14): what one holder of one secret, one
//! staff login or one shell can and cannot do, through the real app over HTTP and the real binary.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use safereach::app::Role;
use safereach::config::Config;
use serde_json::{Value, json};

use crate::common::{
    APPROVER, AUTHOR, Options, PASSWORD, TestApp, on_backend, pretext, read, spawn_with, strong_secret,
};
use crate::kannel::unreachable_kannel;
use crate::staff::StaffClient;

const BIN: &str = env!("CARGO_BIN_EXE_safereach");
const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(app.state.store.pool()).await.unwrap()
}

async fn get(app: &TestApp, path_and_query: &str) -> StatusCode {
    app.http.get(app.url(path_and_query)).send().await.unwrap().status()
}

async fn post(app: &TestApp, path_and_query: &str, body: &Value) -> (StatusCode, Value) {
    read(app.http.post(app.url(path_and_query)).json(body).send().await.unwrap()).await
}

/// Every provider with callbacks configured, none of them reachable (nothing is sent to them):
/// SMS through the sandbox first, Kannel second; letters to a print service; email over SMTP.
fn every_provider(c: &mut Config) {
    unreachable_kannel(c);
    c.sms_provider = "sandbox,kannel".into();
    c.letter_provider = "http".into();
    c.print_url = Some("http://127.0.0.1:1/letters".into());
    c.email_provider = "smtp".into();
    c.smtp_url = Some("smtp://127.0.0.1:1".into());
}

#[tokio::test]
async fn the_callbacks_of_a_provider_not_configured_are_not_there() {
    // The embedded default: the sandbox for everything.
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), ..Options::default() }).await;
    assert!(app.state.webhooks.kannel.is_none() && app.state.webhooks.print.is_none());
    let token = &app.token;
    for path in [
        format!("/webhooks/kannel/dlr?token={token}&id=msg_x&status=1"),
        format!("/webhooks/kannel/inbound?token={token}&from=07700900555&text=START&ts=2026-11-23+10:00"),
    ] {
        assert_eq!(get(&app, &path).await, StatusCode::NOT_FOUND, "{path}");
    }
    for path in
        ["/webhooks/print/status", "/webhooks/email/bounce", "/webhooks/twilio/status", "/webhooks/twilio/inbound"]
    {
        let (status, _) = post(&app, &format!("{path}?token={token}"), &json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // The sandbox's own routes are there, behind its own token.
    let (status, _) = post(&app, "/webhooks/sandbox/status?token=wrong", &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn each_provider_has_its_own_token_and_moves_only_the_messages_it_carried() {
    let app = spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        configure: Box::new(every_provider),
        ..Options::default()
    })
    .await;
    let tokens = app.state.webhooks.clone();
    let (sandbox, kannel, print, bounce) = (
        tokens.sandbox.clone().unwrap(),
        tokens.kannel.clone().unwrap(),
        tokens.print.clone().unwrap(),
        tokens.bounce.clone().unwrap(),
    );
    assert_eq!([&sandbox, &kannel, &print, &bounce].iter().collect::<std::collections::BTreeSet<_>>().len(), 4);

    // An SMS the sandbox carried.
    let (_, answer) = app.post_outreach(&pretext("own-1", "OWN-1")).await;
    assert_eq!(answer["decision"]["outcome"], "send", "{answer}");
    let message = app.wait_for_message("OWN-1", "sent").await;
    let id = message["id"].as_str().unwrap().to_string();

    // Another provider's token opens no route but its own.
    for other in [&sandbox, &print, &bounce] {
        let dlr = format!("/webhooks/kannel/dlr?token={other}&id={id}&status=16");
        assert_eq!(get(&app, &dlr).await, StatusCode::FORBIDDEN);
        let start = format!("/webhooks/kannel/inbound?token={other}&from=07700900555&text=START&ts=2026-11-23+10:00");
        assert_eq!(get(&app, &start).await, StatusCode::FORBIDDEN, "no fake START with another's token");
    }
    let report = json!({"reference": id, "status": "returned", "at": safereach::time::rfc3339(chrono::Utc::now())});
    for other in [&sandbox, &kannel, &bounce] {
        assert_eq!(
            post(&app, &format!("/webhooks/print/status?token={other}"), &report).await.0,
            StatusCode::FORBIDDEN
        );
    }
    let (status, _) = post(
        &app,
        &format!("/webhooks/sandbox/status?token={kannel}"),
        &json!({"provider_ref": id, "status": "failed"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // With its own token, a provider still cannot move a message it did not carry: Kannel's
    // "failed" and the print service's "returned" for the sandbox's SMS are acknowledged as
    // unknown and change nothing.
    let dlr = app.http.get(app.url(&format!("/webhooks/kannel/dlr?token={kannel}&id={id}&status=16"))).send();
    let (status, body) = read(dlr.await.unwrap()).await;
    assert_eq!((status, body["result"].as_str()), (StatusCode::OK, Some("unknown_message")), "{body}");
    let (status, body) = post(&app, &format!("/webhooks/print/status?token={print}"), &report).await;
    assert_eq!((status, body["result"].as_str()), (StatusCode::OK, Some("unknown_message")), "{body}");
    let (_, case) = app.get_case("OWN-1").await;
    assert_eq!(case["messages"][0]["status"], "sent", "{case}");
    // The provider that carried it moves it.
    let (status, body) = post(
        &app,
        &format!("/webhooks/sandbox/status?token={sandbox}"),
        &json!({"provider_ref": id, "status": "delivered"}),
    )
    .await;
    assert_eq!((status, body["result"].as_str()), (StatusCode::OK, Some("moved")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_kannel_reply_delivered_again_is_recorded_once() {
    let app = spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        configure: Box::new(unreachable_kannel),
        ..Default::default()
    })
    .await;
    let token = app.state.webhooks.kannel.clone().unwrap();
    let reply = |from: &str, text: &str, ts: &str| {
        let query =
            serde_urlencoded::to_string([("token", token.as_str()), ("from", from), ("text", text), ("ts", ts)]);
        let url = app.url(&format!("/webhooks/kannel/inbound?{}", query.unwrap()));
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().status() }
    };
    assert_eq!(reply("07700900777", "who is this", "2026-11-23 10:05").await, StatusCode::OK);
    // Re-delivered (the sender in another form, the time within a minute): acknowledged only.
    assert_eq!(reply("+447700900777", "who is this", "2026-11-23 10:05").await, StatusCode::OK);
    assert_eq!(reply("07700 900777", "who is this", "2026-11-23 10:06").await, StatusCode::OK);
    let replies = "SELECT COUNT(*) FROM replies";
    assert_eq!(scalar(&app, replies).await, 1);
    // Another text, or the same one more than a minute apart, is another reply.
    assert_eq!(reply("07700900777", "who is this?", "2026-11-23 10:05").await, StatusCode::OK);
    assert_eq!(reply("07700900777", "who is this", "2026-11-23 10:08").await, StatusCode::OK);
    // Without a time nothing can be compared: recorded.
    assert_eq!(reply("07700900777", "who is this", "").await, StatusCode::OK);
    assert_eq!(scalar(&app, replies).await, 4);
    app.stop().await;
}

/// Run the binary with a clean environment (an SQLite database in `dir`) and these variables.
fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SAFEREACH_DATABASE_URL", format!("sqlite://{}", dir.join("db.sqlite").display()))
        .env("SAFEREACH_OUTBOX_DIR", dir.join("outbox"))
        .env("SAFEREACH_BIND", "127.0.0.1:0")
        .envs(env.iter().copied());
    cmd
}

/// Run `args` expecting a refusal: a non-zero exit within 20 s, whose last line of stderr (the
/// reason, one line) is returned.
fn refused(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = command(dir, args, env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("safereach {args:?} with {env:?} did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "{args:?} {env:?}: {stderr}");
    stderr.trim_end().lines().last().unwrap_or_default().to_string()
}

#[test]
fn weak_shared_or_missing_secrets_the_test_clock_and_settings_out_of_range_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let a = strong_secret();
    let kannel = [
        ("SAFEREACH_SMS_PROVIDER", "kannel"),
        ("SAFEREACH_KANNEL_SENDSMS_URL", "http://127.0.0.1:1/cgi-bin/sendsms"),
        ("SAFEREACH_KANNEL_USER", "safereach"),
        ("SAFEREACH_KANNEL_PASSWORD", "unused"),
        ("SAFEREACH_KANNEL_FROM", "+447700900002"),
        ("SAFEREACH_SANDBOX_WEBHOOK_TOKEN", &a),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        kannel.iter().copied().chain(extra.iter().copied()).collect()
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (with(&[]), "SAFEREACH_KANNEL_WEBHOOK_TOKEN must be set for the providers configured"),
        (with(&[("SAFEREACH_KANNEL_WEBHOOK_TOKEN", "change-me")]), "SAFEREACH_KANNEL_WEBHOOK_TOKEN is too weak"),
        (
            with(&[("SAFEREACH_KANNEL_WEBHOOK_TOKEN", "changeme-changeme-changeme-changeme-changeme")]),
            "SAFEREACH_KANNEL_WEBHOOK_TOKEN is too weak: it contains the word \"change\"",
        ),
        (vec![("SAFEREACH_WEBHOOK_TOKEN", "test-webhook-token")], "SAFEREACH_WEBHOOK_TOKEN is too weak"),
        (vec![("SAFEREACH_HASH_KEY", "0123456789")], "SAFEREACH_HASH_KEY is too weak"),
        (vec![("SAFEREACH_CLOCK", MONDAY_10AM)], "SAFEREACH_CLOCK is set but SAFEREACH_ALLOW_CLOCK=1 is not"),
        (
            vec![("SAFEREACH_SEND_LEASE_SECS", "18446744073709551615")],
            "SAFEREACH_SEND_LEASE_SECS must be from 1 to 86400, not 18446744073709551615",
        ),
        (vec![("SAFEREACH_BREAKER_COOLDOWN_SECS", "99999999999")], "SAFEREACH_BREAKER_COOLDOWN_SECS must be from 1"),
        (vec![("SAFEREACH_WORKER_CONCURRENCY", "0")], "SAFEREACH_WORKER_CONCURRENCY must be from 1"),
        // An on-call entry that is not a number is named by its place, never its value.
        (
            vec![("SAFEREACH_ONCALL_SMS", "07700 900961,0121 496 0999")],
            "SAFEREACH_ONCALL_SMS: entry 2 is not a mobile number",
        ),
        (vec![("SAFEREACH_ONCALL_EMAIL", "duty at example.org")], "SAFEREACH_ONCALL_EMAIL: entry 1 is not an email"),
        (vec![("SAFEREACH_ONCALL_ESCALATE_MINUTES", "0")], "SAFEREACH_ONCALL_ESCALATE_MINUTES must be from 1"),
        // A backend that is down is waited for; a URL that cannot parse never will be.
        (vec![("SAFEREACH_REDIS_URL", "nonsense")], "SAFEREACH_REDIS_URL is not a Redis URL"),
    ];
    for (env, expected) in &cases {
        let reason = refused(dir, &["serve"], env);
        assert!(reason.contains(expected), "{env:?}: {reason}");
        assert!(!reason.contains("496") && !reason.contains("duty"), "no staff contact in the error: {reason}");
    }
    // One token for two providers.
    let shared = [kannel.as_slice(), &[("SAFEREACH_KANNEL_WEBHOOK_TOKEN", a.as_str())]].concat();
    let reason = refused(dir, &["serve"], &shared);
    assert!(reason.contains("are the same secret: each provider needs its own"), "{reason}");
    // The test clock is refused by every command, not only serve.
    let reason = refused(dir, &["keys", "list"], &[("SAFEREACH_CLOCK", MONDAY_10AM)]);
    assert!(reason.contains("SAFEREACH_ALLOW_CLOCK=1"), "{reason}");
    let allowed = command(dir, &["keys", "list"], &[("SAFEREACH_CLOCK", MONDAY_10AM), ("SAFEREACH_ALLOW_CLOCK", "1")])
        .output()
        .unwrap();
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
}

/// A staff client logged in as `username`.
async fn logged_in(app: &TestApp, username: &str, password: &str) -> StaffClient {
    let mut client = StaffClient::new(app);
    let page = client.login(username, password).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{username} logs in: {}", page.body);
    client
}

/// `author` writes new pre-text wording and submits it; its version id.
async fn submit_wording(app: &TestApp, author: &str, password: &str, body: &str) -> String {
    let mut client = logged_in(app, author, password).await;
    let page =
        client.post("/staff/templates/priority_pretext/sms/draft", &[("body", body), ("action", "submit")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let id = page.location().trim_start_matches("/staff/versions/").to_string();
    let version = app.state.store.template_version(&id).await.unwrap().unwrap();
    assert_eq!(version.state, "submitted", "{body}");
    id
}

#[tokio::test]
async fn an_admin_cannot_pass_their_own_wording_through_accounts_they_created() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
    let store = &app.state.store;
    let now = app.state.clock.now_ms();
    safereach::service::accounts::create_account(store, "test.admin", "admin", PASSWORD, now, "cli").await.unwrap();
    let mut admin = logged_in(&app, "test.admin", PASSWORD).await;
    for (username, role) in [("mal.author", "author"), ("mal.approver", "approver")] {
        let page = admin
            .post("/staff/admin/staff", &[("username", username), ("role", role), ("password", "a long sock puppet")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }
    // The audit table names who created them, and the admin page shows it.
    let audit = store.audit_events(10).await.unwrap();
    let created: Vec<_> =
        audit.iter().filter(|e| e.action == "staff_created" && e.actor == "staff:test.admin").collect();
    assert_eq!(created.len(), 2, "{audit:?}");
    let page = admin.get("/staff/admin").await.body;
    assert!(page.contains("staff_created") && page.contains("mal.approver"), "the audit is on the admin page");

    // Wording written through one of the admin's accounts cannot be approved through the other.
    let id = submit_wording(
        &app,
        "mal.author",
        "a long sock puppet",
        "Hi{{#if first_name}} {{first_name}}{{/if}}, Jo will ring you today.",
    )
    .await;
    let mut approver = logged_in(&app, "mal.approver", "a long sock puppet").await;
    approver.get(&format!("/staff/versions/{id}")).await;
    let page = approver.post(&format!("/staff/versions/{id}/approve"), &[("comment", "fine")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("test.admin created the account"), "the rule is named: {}", page.body);
    assert_eq!(store.template_version(&id).await.unwrap().unwrap().state, "submitted");

    // An approver the admin did not create may approve it; and the admin's approver may approve
    // wording by an author the admin did not create.
    let mut independent = logged_in(&app, APPROVER, PASSWORD).await;
    independent.get(&format!("/staff/versions/{id}")).await;
    let page = independent.post(&format!("/staff/versions/{id}/approve"), &[("comment", "fine")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let other =
        submit_wording(&app, AUTHOR, PASSWORD, "Hello{{#if first_name}} {{first_name}}{{/if}}, Jo will ring you.")
            .await;
    approver.get(&format!("/staff/versions/{other}")).await;
    let page = approver.post(&format!("/staff/versions/{other}/approve"), &[("comment", "fine")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn approval_checks_the_exact_wording_again_and_submitted_wording_is_frozen() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
    let store = &app.state.store;
    let now = app.state.clock.now_ms();
    // Wording that reached `submitted` without passing today's checks (an older release, a
    // database edit): a discreet pre-text naming the service.
    let new = safereach::store::NewVersion {
        name: "priority_pretext_discreet",
        channel: "sms",
        kind: "priority_pretext",
        discreet: true,
        language: "en",
        subject: None,
        body: "Victim Support here: we will call you today.",
        html: None,
        author: AUTHOR,
        state: safereach::store::TemplateState::Submitted,
    };
    let bad = store.insert_template_version(&new, now).await.unwrap();
    let mut approver = logged_in(&app, APPROVER, PASSWORD).await;
    approver.get(&format!("/staff/versions/{}", bad.id)).await;
    let page = approver.post(&format!("/staff/versions/{}/approve", bad.id), &[("comment", "ok")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
    assert!(page.body.contains("must not say"), "{}", page.body);
    assert_eq!(store.template_version(&bad.id).await.unwrap().unwrap().state, "submitted");

    // Submitted wording is frozen: saving the form again makes a new draft, the submitted
    // version keeps the words that were checked.
    let submitted =
        submit_wording(&app, AUTHOR, PASSWORD, "Hi{{#if first_name}} {{first_name}}{{/if}}, Jo will ring.").await;
    let mut author = logged_in(&app, AUTHOR, PASSWORD).await;
    let page = author
        .post("/staff/templates/priority_pretext/sms/draft", &[("body", "Something else"), ("action", "save")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_ne!(page.location(), format!("/staff/versions/{submitted}"), "a new draft");
    let frozen = store.template_version(&submitted).await.unwrap().unwrap();
    assert_eq!(frozen.body, "Hi{{#if first_name}} {{first_name}}{{/if}}, Jo will ring.");

    // A draft that changes between its checks and its submission is not submitted.
    let draft = store.template_version(page.location().trim_start_matches("/staff/versions/")).await.unwrap().unwrap();
    let checked = draft.clone();
    let content =
        safereach::templates::TemplateContent { subject: None, body: "Changed after the check".into(), html: None };
    safereach::service::templates::update_draft(store, &draft.id, &content, AUTHOR).await.unwrap();
    assert!(
        !store.submit_template_version(&checked, now).await.unwrap(),
        "the wording checked is not the wording stored"
    );
    assert_eq!(store.template_version(&draft.id).await.unwrap().unwrap().state, "draft");
    app.stop().await;
}

/// What a command printed, and whether it succeeded.
struct Ran {
    ok: bool,
    out: String,
    err: String,
}

/// Run a command of the binary to completion, with `stdin` as its input.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Ran {
    let mut child =
        command(dir, args, env).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    Ran { ok: out.status.success(), out: text(&out.stdout), err: text(&out.stderr) }
}

/// The command line approves only with the approver's password, and `--all` only after listing
/// what it approves and a `y`.
#[test]
fn the_command_line_approves_only_with_the_approvers_password_and_asks_before_all() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ok = |ran: Ran| {
        assert!(ran.ok, "{}{}", ran.out, ran.err);
        ran.out
    };
    ok(run(dir, &["staff", "create", "--username", "ana.author", "--role", "author"], &[], "an author's password\n"));
    ok(run(
        dir,
        &["staff", "create", "--username", "bo.approver", "--role", "approver"],
        &[],
        "the approver's password\n",
    ));
    ok(run(dir, &["templates", "load", "message_templates", "--author", "ana.author"], &[], ""));
    let approved =
        || ok(run(dir, &["templates", "list"], &[], "")).lines().filter(|l| l.contains(" approved ")).count();

    // As any name, without its password: refused, nothing approved.
    let ran = run(dir, &["templates", "approve", "--all", "--as", "bo.approver", "--yes"], &[], "a guess\n");
    assert!(!ran.ok && ran.err.contains("the password is not bo.approver's: nothing was approved"), "{}", ran.err);
    assert!(
        ran.out.contains("priority_pretext_discreet (sms, en) v1 by ana.author"),
        "it lists them first: {}",
        ran.out
    );
    assert_eq!(approved(), 0);
    let author = [("SAFEREACH_PASSWORD", "an author's password")];
    let ran = run(dir, &["templates", "approve", "--all", "--as", "ana.author", "--yes"], &author, "");
    assert!(!ran.ok, "an author is not an approver: {}", ran.out);
    // --all asks; anything but yes approves nothing.
    let ran = run(dir, &["templates", "approve", "--all", "--as", "bo.approver"], &[], "the approver's password\nn\n");
    assert!(!ran.ok && ran.out.contains("approve these 18 version(s)? [y/N]"), "{}", ran.out);
    assert!(ran.err.contains("not confirmed: nothing was approved"), "{}", ran.err);
    assert_eq!(approved(), 0);
    // One template by name: no question.
    let approver = [("SAFEREACH_PASSWORD", "the approver's password")];
    let out = ok(run(dir, &["templates", "approve", "priority_pretext", "--as", "bo.approver"], &approver, ""));
    assert!(out.contains("priority_pretext (sms, en) v1 approved by bo.approver"), "{out}");
    assert!(out.contains("priority_pretext (sms, cy) v2 approved by bo.approver"), "{out}");
    assert_eq!(approved(), 2, "English and Welsh");
    let out =
        ok(run(dir, &["templates", "approve", "--all", "--as", "bo.approver"], &[], "the approver's password\ny\n"));
    assert!(out.contains("approved by bo.approver"), "{out}");
    assert_eq!(approved(), 18, "nine templates, each in English and Welsh");
}

#[tokio::test]
async fn wording_that_would_crash_the_renderer_is_refused_in_every_preview_and_by_the_worker() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), role: Role::Api, ..Options::default() }).await;
    let mut author = logged_in(&app, AUTHOR, PASSWORD).await;
    // Two inline partials that include each other, and blocks nested far too deep.
    let recursive = r#"Dear {{> a}}{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}"#;
    let deep = format!("{}x{}", "{{#if a}}".repeat(1500), "{{/if}}".repeat(1500));
    for (template, channel, body) in
        [("information_pack", "letter", recursive.to_string()), ("priority_pretext", "sms", deep.clone())]
    {
        let page = author
            .post(&format!("/staff/templates/{template}/{channel}/draft"), &[("body", &body), ("action", "submit")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let version = page.location().to_string();
        let id = version.trim_start_matches("/staff/versions/");
        assert_eq!(app.state.store.template_version(id).await.unwrap().unwrap().state, "draft", "not submitted");
        // Every preview of it answers, with the problem named, and the process lives on.
        let page = author.get(&version).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("may only use") || page.body.contains("nests blocks"), "{}", page.body);
        let form = [("name", template), ("channel", channel), ("kind", template), ("discreet", "no"), ("body", &body)];
        assert_eq!(author.post("/staff/preview", &form).await.status, StatusCode::OK);
        if channel == "letter" {
            assert_eq!(author.get(&format!("{version}/letter.pdf")).await.status, StatusCode::BAD_REQUEST);
            assert_eq!(author.post("/staff/preview/letter.pdf", &form).await.status, StatusCode::BAD_REQUEST);
        }
        let page = author.post(&format!("{version}/submit"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(app.state.store.template_version(id).await.unwrap().unwrap().state, "draft");
        assert_eq!(get(&app, "/healthz").await, StatusCode::OK);
    }

    // Wording approved behind the checks' back (a database edit) is checked again by the worker
    // before it renders: the job waits for a person.
    let store = &app.state.store;
    let new = safereach::store::NewVersion {
        name: "priority_pretext",
        channel: "sms",
        kind: "priority_pretext",
        discreet: false,
        language: "en",
        subject: None,
        body: recursive,
        html: None,
        author: AUTHOR,
        state: safereach::store::TemplateState::Submitted,
    };
    let version = store.insert_template_version(&new, app.state.clock.now_ms()).await.unwrap();
    assert!(store.approve_template_version(&version, APPROVER, None, app.state.clock.now_ms()).await.unwrap());
    let (_, answer) = app.post_outreach(&pretext("crash-1", "CRASH-1")).await;
    let id = answer["outreach_id"].as_str().unwrap();
    app.state.worker().process(id).await.unwrap();
    let (_, case) = app.get_case("CRASH-1").await;
    assert_eq!(case["outreach"][0]["decision"]["reason"], "render_failed", "{case}");
    assert_eq!(get(&app, "/healthz").await, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn the_hash_key_lives_beside_an_sqlite_database_and_an_old_one_moves_out_of_it() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), ..Options::default() }).await;
    let key_file = app.dir.path().join("test.db.keys");
    let text = std::fs::read_to_string(&key_file).expect("a key file beside the database");
    let key = text.lines().find_map(|l| l.strip_prefix("SAFEREACH_HASH_KEY=")).unwrap().to_string();
    safereach::secrets::check_strength("SAFEREACH_HASH_KEY", &key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o077, 0, "owner only");
    }
    let in_database = format!("SELECT COUNT(*) FROM settings WHERE value LIKE '%{key}%'");
    assert_eq!(scalar(&app, &in_database).await, 0, "the key is not in the database");
    // Another key for the same database is refused: nothing would match.
    let mut wrong = app.config.clone();
    wrong.hash_key = Some(strong_secret());
    let error = safereach::app::start(wrong, Role::Worker, false).await.err().expect("refused");
    assert!(
        error.to_string().contains("SAFEREACH_HASH_KEY is not the key this database's hashes were made with"),
        "{error}"
    );

    // An opt-out, then the database as an older version left it: the key inside, no file.
    let (status, _) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900555", "body": "STOP"})).await;
    assert_eq!(status, StatusCode::OK);
    for sql in [
        format!("INSERT INTO settings (key, value) VALUES ('address_key', '{key}')"),
        "DELETE FROM settings WHERE key = 'hash_key_check'".to_string(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(app.state.store.pool()).await.unwrap();
    }
    std::fs::remove_file(&key_file).unwrap();
    let app = app.restart_at(MONDAY_10AM, |_| {}).await;
    assert!(std::fs::read_to_string(&key_file).unwrap().contains(&key), "moved out into the key file");
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM settings WHERE key = 'address_key'").await, 0, "and deleted");
    // The old hashes still match: the opt-out holds.
    let (_, answer) = app.post_outreach(&pretext("key-1", "KEY-1")).await;
    assert_eq!(answer["decision"]["reason"], "suppressed", "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn on_postgres_the_hash_key_must_be_given_and_an_old_one_is_exported_then_deleted() {
    on_backend(crate::common::Backend::Postgres, async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults();
        crate::common::use_backend(&mut config, crate::common::Backend::Postgres, dir.path()).await;
        config.sandbox_webhook_token = Some(strong_secret());
        config.outbox_dir = dir.path().join("outbox").display().to_string();
        let key = config.hash_key.take().unwrap();
        let error = safereach::app::start(config.clone(), Role::Worker, true).await.err().expect("refused");
        assert!(error.to_string().starts_with("SAFEREACH_HASH_KEY must be set on Postgres"), "{error}");

        // A database an older version set up keeps its key inside.
        let store = safereach::store::Store::open(
            &config.database_url,
            true,
            &safereach::store::HashKeySource::Given(key.clone()),
        )
        .await
        .unwrap();
        for sql in [
            format!("INSERT INTO settings (key, value) VALUES ('address_key', '{key}')"),
            "DELETE FROM settings WHERE key = 'hash_key_check'".to_string(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
        }
        let error = safereach::app::start(config.clone(), Role::Worker, false).await.err().expect("refused");
        assert!(error.to_string().contains("safereach hash-key export"), "how to move it is said: {error}");
        let url = config.database_url.clone();
        let exported = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["hash-key", "export"])
                .env_clear()
                .env("SAFEREACH_DATABASE_URL", url)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&exported.stdout).trim(), key);
        config.hash_key = Some(key);
        let running = safereach::app::start(config, Role::Worker, false).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE key = 'address_key'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0, "given from outside, it is deleted from the database");
        running.stop().await;
    })
    .await;
}

/// Read one HTTP/1.1 response (headers and a Content-Length body) from `stream`; None at EOF.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    let mut byte = [0u8; 1];
    while !buffer.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buffer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buffer).to_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(head)
}

#[tokio::test]
async fn slow_or_endless_connections_are_closed_and_readiness_tells_nothing_more() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(Options { role: Role::Api, ..Options::default() }).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // Headers that never finish, and a connection that says nothing: both closed after the
    // header-read timeout.
    let started = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for stream in [&mut slow, &mut silent] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the server closed the connection");
    }
    let waited = started.elapsed();
    let limit = safereach::http::serve::HEADER_READ_TIMEOUT;
    assert!(waited >= limit - Duration::from_secs(1) && waited < limit + Duration::from_secs(5), "{waited:?}");

    // One keep-alive connection serves so many requests, then closes.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let max = safereach::http::serve::MAX_REQUESTS_PER_CONNECTION;
    for n in 1..=max {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let head = read_response(&mut stream).await.unwrap_or_else(|| panic!("answer {n}"));
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(head.contains("connection: close"), n == max, "request {n}: {head}");
    }
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(read_response(&mut stream).await.is_none(), "closed after the last one");

    // Anyone may ask whether we are ready: the answer is only ok or unavailable per backend.
    let (status, body) = read(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ready": true, "database": "ok", "queue": "ok"})));
    app.stop().await;
}

/// Guesses sent all at once cannot get round the slow-down: each password check starts only
/// with the failures before it counted, so only a few are checked.
#[tokio::test]
async fn guesses_sent_all_at_once_are_slowed_down_too() {
    let app = spawn_with(Options { role: Role::Api, ..Options::default() }).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut client = StaffClient::new(&app);
        client.get("/staff/login").await;
        clients.push(client);
    }
    let guesses = clients.iter_mut().enumerate().map(|(i, client)| async move {
        let guess = format!("guess number {i}");
        client.post("/staff/login", &[("username", AUTHOR), ("password", guess.as_str())]).await.status
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let slowed = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(checked + slowed, 20, "{statuses:?}");
    // Two free failures, then a delay: at most one more guess per place running at the time.
    assert!(checked <= 2 + safereach::http::staff::PASSWORD_CHECKS_AT_ONCE, "{checked} checked: {statuses:?}");
    app.stop().await;
}

/// Behind a reverse proxy, failed logins from one client do not slow the same username down for
/// the others (who all reach us from the proxy's address).
#[tokio::test]
async fn behind_a_trusted_proxy_the_slow_down_is_per_client() {
    let app = spawn_with(Options {
        role: Role::Api,
        configure: Box::new(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]),
        ..Options::default()
    })
    .await;
    let mut attacker = StaffClient::new(&app).forwarded_for("203.0.113.66");
    attacker.get("/staff/login").await;
    for _ in 0..4 {
        attacker.post("/staff/login", &[("username", AUTHOR), ("password", "wrong password!")]).await;
    }
    let page = attacker.post("/staff/login", &[("username", AUTHOR), ("password", PASSWORD)]).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    // The author, at another address behind the same proxy, gets in at once; a client's own claim
    // to be someone else (further left in the header) is not believed.
    let mut author = StaffClient::new(&app).forwarded_for("198.51.100.10");
    assert_eq!(author.login(AUTHOR, PASSWORD).await.status, StatusCode::SEE_OTHER);
    let mut spoofer = StaffClient::new(&app).forwarded_for("198.51.100.10, 203.0.113.66");
    spoofer.get("/staff/login").await;
    let page = spoofer.post("/staff/login", &[("username", AUTHOR), ("password", PASSWORD)]).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

/// Everything the sandbox outbox holds, as one text.
fn outbox_text(app: &TestApp) -> String {
    let mut text = std::fs::read_to_string(app.outbox().join("sms.jsonl")).unwrap_or_default();
    for dir in ["email", "letters"] {
        for entry in std::fs::read_dir(app.outbox().join(dir)).into_iter().flatten().flatten() {
            text += &String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap());
        }
    }
    text
}

#[tokio::test]
async fn erasure_takes_the_victims_unmatched_replies_and_the_outbox_copies_too() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), ..Options::default() }).await;
    // Before we ever texted them, the victim (and someone else) wrote to us: no case matched.
    for (from, body) in
        [("07700 900555", "Robin here, is this about Biscuit?"), ("07700 900999", "wrong number, Tobias")]
    {
        let (status, answer) = app.webhook("/webhooks/sandbox/inbound", &json!({"from": from, "body": body})).await;
        assert_eq!((status, answer["matched"].as_bool()), (StatusCode::OK, Some(false)), "{answer}");
    }
    let (_, answer) = app.post_outreach(&pretext("erase-1", "ERASE-1")).await;
    assert_eq!(answer["decision"]["outcome"], "send");
    app.wait_for_message("ERASE-1", "sent").await;
    assert!(outbox_text(&app).contains("Robin"), "the sandbox 'sent' it");

    let admin = app.key_with(&["cases:erase"]).await;
    let erased = app.http.delete(app.url("/v1/cases/ERASE-1")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    let kept: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT from_number, body FROM replies WHERE case_ref IS NULL ORDER BY received_at")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(kept[0], (None, None), "the victim's own unmatched reply went with the case");
    assert_eq!(kept[1].1.as_deref(), Some("wrong number, Tobias"), "someone else's stays (for its own retention)");
    let waiting = "SELECT COUNT(*) FROM replies WHERE case_ref IS NULL AND reviewed_at IS NULL";
    assert_eq!(scalar(&app, waiting).await, 1, "and it left the review queue");
    let outbox = outbox_text(&app);
    for personal in ["Robin", "900555"] {
        assert!(!outbox.contains(personal), "{personal} in the outbox after erasure: {outbox}");
    }
    app.stop().await;
}

#[tokio::test]
async fn retention_clears_the_call_window_the_request_fingerprint_and_the_outbox_copies() {
    let app = spawn_with(Options { clock: Some(MONDAY_10AM.into()), ..Options::default() }).await;
    let (_, answer) = app.post_outreach(&pretext("window-1", "WINDOW-1")).await;
    assert_eq!(answer["decision"]["outcome"], "send");
    app.wait_for_message("WINDOW-1", "sent").await;
    let (_, reply) =
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700900555", "body": "after 5 please"})).await;
    assert_eq!(reply["classification"], "time_preference");
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM cases WHERE call_window IS NOT NULL").await, 1);
    let fingerprint: String =
        sqlx::query_scalar("SELECT request_hash FROM outreach").fetch_one(app.state.store.pool()).await.unwrap();
    assert_eq!(fingerprint.len(), 32, "a keyed fingerprint");

    let app = app.restart_at("2026-12-10T10:00:00Z", |_| {}).await;
    app.wait_for_case("WINDOW-1", "redaction", |c| !c["outreach"][0]["redacted_at"].is_null()).await;
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM cases WHERE call_window IS NOT NULL").await,
        0,
        "the window went with the reply"
    );
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM outreach WHERE request_hash <> ''").await, 0);
    let outbox = outbox_text(&app);
    assert!(!outbox.contains("Robin") && !outbox.contains("900555"), "{outbox}");
    assert!(outbox.contains("\"redacted\":true"), "the line is kept, blanked: {outbox}");
    app.stop().await;
}
