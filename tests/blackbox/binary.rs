//! The real binary, as an operator runs it: the CLI sets it up, `serve` runs it, SIGTERM stops
//! it cleanly. Its whole output, at debug level, must not carry any of the personal data it
//! handled, through the API, the provider callbacks (email bounces too) or the staff pages.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::read;

const BIN: &str = env!("CARGO_BIN_EXE_safereach");
/// As behind a proxy: not the address it listens on. On loopback, where nothing listens, so that
/// Kannel's delivery reports to it go nowhere (this machine must not reach out).
const PUBLIC_URL: &str = "http://127.0.0.1:1";
const TWILIO_TOKEN: &str = "binary-test-twilio-token";

/// Personal values used below, in the forms they might leak in.
const PERSONAL: &[&str] = &[
    "Jonathan",
    "Quennell",
    "07700 900888",
    "07700900888",
    "+447700900888",
    "7700900888",
    "jq@example.org",
    "9 Larkspur Mews",
    "Larkspur",
    "CV3 9ZZ",
    "smashed the greenhouse",
    "Biscuit",
    "Marguerite",
    "0121 496 0999",
];

struct Instance {
    dir: tempfile::TempDir,
    output: Arc<Mutex<String>>,
    /// The sandbox's webhook token (as `SAFEREACH_WEBHOOK_TOKEN`, the name it falls back to).
    token: String,
    kannel_token: String,
    bounce_token: String,
}

impl Instance {
    fn new() -> Instance {
        Instance {
            dir: tempfile::tempdir().unwrap(),
            output: Arc::new(Mutex::new(String::new())),
            token: safereach::secrets::generate(),
            kannel_token: safereach::secrets::generate(),
            bounce_token: safereach::secrets::generate(),
        }
    }

    /// Every provider with callbacks configured, so that all their routes are mounted: SMS
    /// through Kannel (the real one with the test servers) with Twilio after it, email over
    /// SMTP, each on loopback where nothing else would be reached.
    fn all_providers(&self) -> Vec<(&'static str, String)> {
        let kannel = std::env::var("SAFEREACH_TEST_KANNEL_SENDSMS_URL").is_ok();
        let mut env = vec![
            ("SAFEREACH_SMS_PROVIDER", if kannel { "kannel,twilio" } else { "sandbox,kannel,twilio" }.to_string()),
            ("SAFEREACH_TWILIO_ACCOUNT_SID", "ACbinarytest".into()),
            ("SAFEREACH_TWILIO_FROM", "+447700900001".into()),
            ("SAFEREACH_TWILIO_BASE_URL", "http://127.0.0.1:1".into()),
            ("SAFEREACH_EMAIL_PROVIDER", "smtp".into()),
            ("SAFEREACH_SMTP_URL", "smtp://127.0.0.1:1".into()),
            ("SAFEREACH_BOUNCE_WEBHOOK_TOKEN", self.bounce_token.clone()),
        ];
        if !kannel {
            env.extend([
                ("SAFEREACH_KANNEL_WEBHOOK_TOKEN", self.kannel_token.clone()),
                ("SAFEREACH_KANNEL_SENDSMS_URL", "http://127.0.0.1:1/cgi-bin/sendsms".to_string()),
                ("SAFEREACH_KANNEL_USER", "safereach".into()),
                ("SAFEREACH_KANNEL_PASSWORD", "unused".into()),
                ("SAFEREACH_KANNEL_FROM", "+447700900002".into()),
            ]);
        }
        env
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SAFEREACH_DATABASE_URL", format!("sqlite://{}", self.dir.path().join("db.sqlite").display()))
            .env("SAFEREACH_OUTBOX_DIR", self.dir.path().join("outbox"))
            .env("SAFEREACH_WEBHOOK_TOKEN", &self.token)
            .env("SAFEREACH_BIND", "127.0.0.1:0")
            .env("SAFEREACH_CLOCK", "2026-11-23T10:00:00Z")
            .env("SAFEREACH_ALLOW_CLOCK", "1")
            .env("SAFEREACH_LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            // Twilio's callbacks are signed over the public URL.
            .env("SAFEREACH_PUBLIC_URL", PUBLIC_URL)
            .env("SAFEREACH_TWILIO_AUTH_TOKEN", TWILIO_TOKEN);
        // With the test servers, SMS go out through the real Kannel: its sendsms query carries the
        // number and the text.
        if let Ok(url) = std::env::var("SAFEREACH_TEST_KANNEL_SENDSMS_URL") {
            cmd.env("SAFEREACH_SMS_PROVIDER", "kannel")
                .env("SAFEREACH_KANNEL_SENDSMS_URL", url)
                .env("SAFEREACH_KANNEL_USER", std::env::var("SAFEREACH_TEST_KANNEL_USER").unwrap_or_default())
                .env("SAFEREACH_KANNEL_PASSWORD", std::env::var("SAFEREACH_TEST_KANNEL_PASSWORD").unwrap_or_default())
                .env("SAFEREACH_KANNEL_FROM", "+447700900002")
                .env("SAFEREACH_KANNEL_WEBHOOK_TOKEN", &self.kannel_token);
        }
        cmd
    }

    /// `safereach report …`: its output joins the scanned output without the declined reasons,
    /// which the report shows as the advocates recorded them, by design (docs/reports.md); the
    /// run's logs are still scanned whole.
    fn report(&self, args: &[&str]) -> String {
        let out = self.command(args).stdin(Stdio::null()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        self.output.lock().unwrap().push_str(&format!("{}\n{stderr}\n", without_declined_reasons(&stdout)));
        assert!(out.status.success(), "safereach {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    /// Run a CLI command to completion; its output joins the scanned output.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        self.output.lock().unwrap().push_str(&format!("{stdout}\n{stderr}\n"));
        assert!(out.status.success(), "safereach {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    /// Start `serve` (with these extra variables) and return it with the address it listens on.
    fn serve(&self, env: &[(&str, String)]) -> (Child, String) {
        let mut cmd = self.command(&["serve"]);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let sink = self.output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = self.output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("safereach listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(30)).expect("serve prints its address");
        (child, base)
    }
}

#[tokio::test]
async fn cli_set_up_serve_and_sigterm_with_no_personal_data_in_any_output() {
    let app = Instance::new();
    app.run(&["migrate"], None);
    let mut author = app.command(&["staff", "create", "--username", "ana.author", "--role", "author"]);
    let out = author.env("SAFEREACH_PASSWORD", "a long enough password").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.run(&["staff", "create", "--username", "bo.approver", "--role", "approver"], Some("another long password\n"));
    let loaded = app.run(&["templates", "load", "message_templates", "--author", "ana.author"], None);
    assert!(loaded.contains("submitted for approval"), "{loaded}");
    let own = app
        .command(&["templates", "approve", "--all", "--as", "ana.author", "--yes"])
        .env("SAFEREACH_PASSWORD", "a long enough password")
        .output()
        .unwrap();
    assert!(!own.status.success(), "an author can't approve (and here is no approver)");
    app.run(&["templates", "approve", "--all", "--as", "bo.approver"], Some("another long password\ny\n"));
    let list = app.run(&["templates", "list"], None);
    // Nine in English, nine in Welsh.
    assert_eq!(list.lines().filter(|l| l.contains(" approved ")).count(), 18, "{list}");
    let keys =
        app.run(&["keys", "create", "--name", "triage", "--scopes", "outreach:write,cases:read,reports:read"], None);
    let key = keys.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("sr_"));
    let admin = app.run(&["keys", "create", "--name", "dpo", "--scopes", "cases:erase"], None);
    let admin = admin.lines().last().unwrap().trim().to_string();

    let (mut server, base) = app.serve(&app.all_providers());
    safereach::channels::install_crypto_provider();
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        let http = http.clone();
        let (url, key) = (format!("{base}/v1/outreach"), key.clone());
        async move { read(http.post(url).bearer_auth(key).json(&body).send().await.unwrap()).await }
    };
    let person = json!({
        "request_id": "bin-1", "case_ref": "BIN-1", "kind": "information_pack",
        "crime": {"categories": ["criminal_damage"], "summary": "neighbour smashed the greenhouse"},
        "victim": {"first_name": "Jonathan", "date_of_birth": "1980-01-01"},
        "contact": {
            "phones": [{"number": "07700 900888", "belongs_to": "victim", "safe_to_text": true}],
            "email": {"address": "jq@example.org", "safe": true},
            "postal": {"name": "Jonathan Quennell", "lines": ["9 Larkspur Mews", "Coventry"], "postcode": "CV3 9ZZ", "safe": true},
            "preferred_method": "sms"
        },
        "consent": {"information_pack": true},
        "personalisation": {"advocate_name": "Marguerite"}
    });
    let (status, answer) = post(person.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let mut letter = person.clone();
    letter["request_id"] = json!("bin-2");
    letter["case_ref"] = json!("BIN-2");
    letter["contact"]["preferred_method"] = json!("letter");
    assert_eq!(post(letter).await.0, StatusCode::ACCEPTED);
    // Refused input carrying personal data.
    let mut bad = person.clone();
    bad["victim"]["is_under_18"] = json!("Jonathan");
    assert_eq!(post(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let mut junk = person.clone();
    junk["request_id"] = json!("bin-3");
    junk["contact"]["phones"][0]["number"] = json!("0121 496 0999");
    assert_eq!(post(junk).await.0, StatusCode::ACCEPTED);

    let case_url = format!("{base}/v1/cases/BIN-1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let message_id = loop {
        let (_, case) = read(http.get(&case_url).bearer_auth(&key).send().await.unwrap()).await;
        if case["messages"][0]["status"] == "sent" {
            break case["messages"][0]["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "not sent: {case}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hook = |path: &str, body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{base}{path}?token={}", app.token);
        async move { read(http.post(url).json(&body).send().await.unwrap()).await }
    };
    assert_eq!(
        hook("/webhooks/sandbox/status", json!({"provider_ref": message_id, "status": "delivered"})).await.0,
        StatusCode::OK
    );
    let (status, reply) = hook(
        "/webhooks/sandbox/inbound",
        json!({"from": "07700 900888", "to": "60000", "body": "ring after 5 please, Biscuit barks"}),
    )
    .await;
    assert_eq!((status, reply["classification"].as_str()), (StatusCode::OK, Some("time_preference")), "{reply}");
    let (_, case) = read(http.get(&case_url).bearer_auth(&key).send().await.unwrap()).await;
    assert_eq!(
        case["replies"][0]["body"], "ring after 5 please, Biscuit barks",
        "the API shows the reply to its reader"
    );

    // Kannel's and Twilio's callbacks carry numbers and text in query strings and forms.
    let get = |path_and_query: String| {
        let http = http.clone();
        let url = format!("{base}{path_and_query}");
        async move { http.get(url).send().await.unwrap().status() }
    };
    let answer = "id:77 sub:001 dlvrd:001 stat:DELIVRD err:000 text:Jonathan Quennell smashed";
    let kannel_token = &app.kannel_token;
    let dlr =
        format!("/webhooks/kannel/dlr?token={kannel_token}&id={message_id}&status=1&answer={}", urlencode(answer));
    assert_eq!(get(dlr).await, StatusCode::OK);
    let unknown =
        format!("/webhooks/kannel/dlr?token={kannel_token}&id=msg_unknown&status=2&answer={}", urlencode(answer));
    assert_eq!(get(unknown).await, StatusCode::OK);
    let mo =
        format!("from=07700900888&to=60000&text={}&ts=2026-11-23+10:05:00", urlencode("Biscuit is scared of Jonathan"));
    assert_eq!(get(format!("/webhooks/kannel/inbound?token={kannel_token}&{mo}")).await, StatusCode::OK);
    assert_eq!(get(format!("/webhooks/kannel/inbound?token=wrong&{mo}")).await, StatusCode::FORBIDDEN);
    let twilio = |path: &'static str, params: Vec<(&'static str, &'static str)>, sign: bool| {
        let http = http.clone();
        let url = format!("{base}{path}");
        let signature = crate::standin::twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &params);
        async move {
            let mut request = http.post(url).form(&params);
            if sign {
                request = request.header("X-Twilio-Signature", signature);
            }
            request.send().await.unwrap().status()
        }
    };
    let inbound = vec![
        ("From", "+447700900888"),
        ("To", "+447700900001"),
        ("Body", "Marguerite says ring 0121 496 0999"),
        ("MessageSid", "SMbin1"),
    ];
    assert_eq!(twilio("/webhooks/twilio/inbound", inbound.clone(), true).await, StatusCode::OK);
    assert_eq!(twilio("/webhooks/twilio/inbound", inbound, false).await, StatusCode::FORBIDDEN);
    let status = vec![("MessageSid", "SMunknown"), ("MessageStatus", "delivered"), ("To", "+447700900888")];
    assert_eq!(twilio("/webhooks/twilio/status", status, true).await, StatusCode::OK);
    let (_, case) = read(http.get(&case_url).bearer_auth(&key).send().await.unwrap()).await;
    assert_eq!(case["replies"].as_array().unwrap().len(), 3, "sandbox, Kannel and Twilio replies: {case}");
    // Email bounces quoting the address, the name and the text: one naming this SMS (not an
    // email, so no match), a delay, and one with a wrong token.
    let bounce = |token: &str, action: &str, status: &str| {
        let http = http.clone();
        let url = format!("{base}/webhooks/email/bounce?token={token}");
        let dsn = format!(
            "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\n<jq@example.org>: 550 5.1.1 Jonathan Quennell unknown\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
             Final-Recipient: rfc822; jq@example.org\r\nAction: {action}\r\nStatus: {status}\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <jq@example.org>: unknown\r\n\r\n\
             --b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <{message_id}@victimcare.example.org>\r\n\
             To: Jonathan Quennell <jq@example.org>\r\nSubject: Biscuit\r\n\r\nneighbour smashed the greenhouse\r\n\
             --b--\r\n"
        );
        async move { read(http.post(url).header("content-type", "message/rfc822").body(dsn).send().await.unwrap()).await }
    };
    let (status, answer) = bounce(&app.bounce_token, "failed", "5.1.1").await;
    assert_eq!((status, answer["result"].as_str()), (StatusCode::OK, Some("unknown_message")), "{answer}");
    let (status, answer) = bounce(&app.bounce_token, "delayed", "4.4.1").await;
    assert_eq!((status, answer["result"].as_str()), (StatusCode::OK, Some("acknowledged")), "{answer}");
    assert_eq!(bounce("wrong", "failed", "5.1.1").await.0, StatusCode::FORBIDDEN);

    // The staff pages: a failed login with a personal value as the username, the case page (which
    // shows personal data to staff), a live preview and an acknowledgement with personal text.
    let mut staff = crate::staff::StaffClient::at(&base);
    staff.get("/staff/login").await;
    let page = staff.post("/staff/login", &[("username", "Quennell"), ("password", "Marguerite")]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    staff.login("ana.author", "a long enough password").await;
    assert!(staff.get("/staff/cases/BIN-1").await.body.contains("Biscuit barks"), "staff see the reply");
    let queue = staff.get("/staff/review").await.body;
    let ack = queue.split("action=\"").map(|s| s.split('"').next().unwrap()).find(|a| a.ends_with("/acknowledge"));
    let ack = ack.expect("the time preference alert is in the queue").to_string();
    let page = staff.post(&ack, &[("reason", "Passed to Marguerite: call Jonathan at 9 Larkspur Mews")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let preview = [("channel", "sms"), ("kind", "priority_pretext"), ("body", "Hi Jonathan, 07700 900888")];
    assert_eq!(staff.post("/staff/preview", &preview).await.status, StatusCode::OK);

    // Callbacks that are refused or unknown, an opt-out, metrics, the report and the document.
    let wrong = http
        .post(format!("{base}/webhooks/sandbox/inbound?token=wrong"))
        .json(&json!({"from": "07700 900888", "to": "60000", "body": "Jonathan here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let unknown = hook("/webhooks/sandbox/status", json!({"provider_ref": "msg_unknown", "status": "delivered"})).await;
    assert_eq!(unknown.1["result"], "unknown_message");
    // A call with the number dialled and why the victim declined (free text): kept, never logged.
    let declined = json!({"at": "2026-11-23T10:00:00Z", "outcome": "declined", "number": "07700 900888",
        "reason": "Jonathan Quennell: Biscuit's owner helps at 9 Larkspur Mews"});
    let called =
        http.post(format!("{base}/v1/cases/BIN-1/calls")).bearer_auth(&key).json(&declined).send().await.unwrap();
    assert_eq!(called.status(), StatusCode::CREATED);
    let stop = hook("/webhooks/sandbox/inbound", json!({"from": "+447700900888", "to": "60000", "body": "STOP"})).await;
    assert_eq!(stop.1["classification"], "opt_out");
    let get = |path: String| {
        let (http, key) = (http.clone(), key.clone());
        async move { http.get(path).bearer_auth(key).send().await.unwrap().text().await.unwrap() }
    };
    let metrics = get(format!("{base}/metrics")).await;
    // Kannel's, the bounce's and the sandbox's wrong tokens, Twilio's missing signature.
    assert!(metrics.contains(r#"safereach_callback_rejections_total{reason="bad_token"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"safereach_callback_rejections_total{reason="bad_signature"} 1"#), "{metrics}");
    app.output.lock().unwrap().push_str(&format!("{metrics}\n"));
    let report = get(format!("{base}/v1/reports/monthly?month=2026-11")).await;
    assert!(report.contains("\"total\":3"), "{report}");
    // The report groups declined reasons as recorded (kept 100 days, for the quarter's report):
    // the one place an advocate's words are shown, to holders of reports:read.
    let reasons = serde_json::from_str::<serde_json::Value>(&report).unwrap()["declined"]["reasons"].clone();
    assert_eq!(reasons, json!({"Jonathan Quennell: Biscuit's owner helps at 9 Larkspur Mews": 1}));
    app.output.lock().unwrap().push_str(&format!("{}\n", without_declined_reasons(&report)));
    assert!(get(format!("{base}/openapi.json")).await.contains("\"openapi\":\"3."));
    stop_server(&mut server);

    // The CLI report reads the same figures.
    let csv = app.report(&["report", "--month", "2026-11", "--format", "csv"]);
    assert!(csv.lines().any(|l| l == "outreach,total,3"), "{csv}");
    let quarter = app.report(&["report", "--quarter", "2026-Q4"]);
    assert!(quarter.contains("\"label\": \"2026-Q4\""), "{quarter}");

    // Seventeen days on: retention redacts at start-up; then a case is erased over the API and one
    // with the CLI.
    let mut later = app.all_providers();
    later.push(("SAFEREACH_CLOCK", "2026-12-10T10:00:00Z".into()));
    let (mut server, base) = app.serve(&later);
    let case_url = format!("{base}/v1/cases/BIN-1");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, case) = read(http.get(&case_url).bearer_auth(&key).send().await.unwrap()).await;
        if case["messages"][0]["body"].is_null() && case["replies"][0]["body"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "not redacted: {case}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let erased = http.delete(format!("{base}/v1/cases/BIN-2")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    // A key is revoked from the command line (found by its id in `keys list`): refused at once.
    let list = app.run(&["keys", "list"], None);
    let dpo = list.lines().find(|l| l.contains("\tdpo\t")).expect("the dpo key is listed");
    assert!(dpo.ends_with("in use") && !list.contains(&admin), "never the key itself: {list}");
    let dpo_id = dpo.split('\t').next().unwrap();
    assert!(app.run(&["keys", "revoke", dpo_id], None).contains("revoked"));
    let refused = http.delete(format!("{base}/v1/cases/BIN-1")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(app.run(&["keys", "list"], None).lines().any(|l| l.starts_with(dpo_id) && l.contains("\trevoked ")));
    assert!(!app.command(&["keys", "revoke", dpo_id]).output().unwrap().status.success(), "already revoked");
    stop_server(&mut server);
    let out = app.run(&["cases", "erase", "BIN-1", "--as", "dpo"], None);
    assert!(out.contains("erased"), "{out}");
    let after = app.report(&["report", "--month", "2026-11", "--format", "csv"]);
    // The same figures, but the erased case's declined reason is gone: counted as removed.
    assert_eq!(
        without_declined_reasons(&after),
        without_declined_reasons(&csv),
        "the report adds up after retention and erasure"
    );
    assert!(after.lines().any(|l| l == "declined,reasons.(reason removed),1"), "{after}");

    let output = app.output.lock().unwrap().clone();
    for line in [
        "outreach accepted",
        "reply received",
        "status callback applied",
        "bounce for an unknown message",
        "retention redacted personal data",
        "case erased on request",
        "report produced",
        "alert acknowledged",
        "call recorded",
    ] {
        assert!(output.contains(line), "{line:?} was logged:\n{output}");
    }
    // Log lines name the case and, inside a request, the request id.
    let accepted = output.lines().find(|l| l.contains("outreach accepted")).unwrap();
    let accepted: serde_json::Value = serde_json::from_str(accepted).unwrap();
    assert_eq!(accepted["fields"]["case_ref"], "BIN-1", "{accepted}");
    assert!(accepted["span"]["request_id"].as_str().is_some_and(|id| id.len() == 36), "{accepted}");
    for value in PERSONAL {
        assert!(!output.contains(value), "{value:?} appears in the output:\n{}", context(&output, value));
    }
    // With SAFEREACH_LOG_FORMAT=json every log line is a JSON object.
    let log_lines: Vec<&str> = output.lines().filter(|l| l.starts_with("{\"timestamp\"")).collect();
    assert!(log_lines.len() > 10);
    for line in log_lines {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not JSON: {line}");
    }
}

/// `SAFEREACH_CLOCK` is the clock of every command, not only of `serve`: what the set-up commands
/// record is dated by it.
#[tokio::test]
async fn the_set_up_commands_record_their_time_by_the_configured_clock() {
    let app = Instance::new();
    app.run(&["staff", "create", "--username", "ana.author", "--role", "author"], Some("a long enough password\n"));
    app.run(&["staff", "create", "--username", "bo.approver", "--role", "approver"], Some("another long password\n"));
    app.run(&["templates", "load", "message_templates", "--author", "ana.author"], None);
    app.run(&["templates", "approve", "--all", "--as", "bo.approver", "--yes"], Some("another long password\n"));
    app.run(&["keys", "create", "--name", "triage", "--scopes", "cases:read"], None);
    let url = format!("sqlite://{}", app.dir.path().join("db.sqlite").display());
    let key = safereach::store::HashKeySource::File(safereach::secrets::key_file_for(&url).unwrap());
    let store = safereach::store::Store::open(&url, false, &key).await.unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().timestamp_millis();
    for column in [
        "created_at FROM staff",
        "created_at FROM template_versions",
        "submitted_at FROM template_versions",
        "decided_at FROM template_versions",
        "created_at FROM api_keys",
    ] {
        let times: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {column}"))).fetch_all(store.pool()).await.unwrap();
        assert!(!times.is_empty(), "{column}");
        for at in times {
            assert!(
                (start..start + 60_000).contains(&at),
                "{column}: {} is not by the clock",
                safereach::time::rfc3339_ms(at)
            );
        }
    }
}

/// `--help` describes each command; a setting's flag works before or after the command, and wins
/// over its environment variable.
#[test]
fn the_help_describes_every_command_and_settings_are_flags_anywhere() {
    let app = Instance::new();
    let help = app.run(&["--help"], None);
    let line = |command: &str| {
        let prefix = format!("  {command} ");
        help.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{command} in\n{help}")).to_string()
    };
    assert!(line("demo").contains("demonstration"), "{help}");
    assert!(line("bench").contains("throughput") && !line("bench").contains("demonstration"), "{help}");
    for (name, args) in [("after", ["migrate", "--database-url", ""]), ("before", ["--database-url", "", "migrate"])] {
        let file = app.dir.path().join(format!("{name}.sqlite"));
        let url = format!("sqlite://{}", file.display());
        let args: Vec<&str> = args.iter().map(|a| if a.is_empty() { url.as_str() } else { a }).collect();
        assert!(app.run(&args, None).contains("migrations applied"));
        assert!(file.exists(), "{args:?} used the flag's database");
    }
    assert!(!app.dir.path().join("db.sqlite").exists(), "not the environment's");
}

/// SIGTERM: stop taking work, finish, exit 0.
fn stop_server(server: &mut Child) {
    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    std::thread::sleep(Duration::from_millis(200));
}

/// A report (JSON or CSV) without its declined reasons.
fn without_declined_reasons(report: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(report) {
        Ok(mut json) => {
            json["declined"]["reasons"] = json!("(left out)");
            json.to_string()
        }
        Err(_) => report.lines().filter(|l| !l.starts_with("declined,reasons.")).collect::<Vec<_>>().join("\n"),
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn context(haystack: &str, needle: &str) -> String {
    haystack.lines().filter(|l| l.contains(needle)).take(5).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_readme_demo_covers_send_defer_hold_and_block_a_welsh_pack_and_a_survey_from_anywhere() {
    let app = Instance::new();
    let dir = app.dir.path().join("demo");
    // Outside the repository: the default wording is built into the binary.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = app
        .command(&["demo", "--no-serve", "--dir", dir.to_str().unwrap()])
        .current_dir(elsewhere.path())
        .env_remove("SAFEREACH_CLOCK")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = |case: &str| {
        stdout.lines().find(|l| l.starts_with(case)).unwrap_or_else(|| panic!("{case} in\n{stdout}")).to_string()
    };
    // The pre-text goes now or, at night, in the morning; the others don't depend on the time.
    assert!(row("DEMO-1 ").contains("priority_pretext_discreet"));
    assert!(row("DEMO-2 ").contains("send") && row("DEMO-2 ").contains("letter") && row("DEMO-2 ").ends_with("sent"));
    assert!(row("DEMO-3 ").contains("send") && row("DEMO-3 ").ends_with("sent"));
    assert!(row("DEMO-4 ").contains("defer") && row("DEMO-4 ").contains("calls_first"));
    assert!(row("DEMO-5 ").contains("hold") && row("DEMO-5 ").contains("no_safe_number"));
    assert!(row("DEMO-7 ").contains("block") && row("DEMO-7 ").contains("no_consent"));
    assert!(row("DEMO-9 ").contains("insufficient_contact_info"));
    // Case memory: DEMO-1's follow-up says only burglary and still gets the discreet pack.
    let follow_up = stdout.lines().find(|l| l.starts_with("DEMO-1 ") && l.contains("follow-up pack")).unwrap();
    assert!(follow_up.contains("information_pack_discreet"), "{follow_up}");
    assert!(stdout.contains("API key (all scopes): sr_"));
    // The survey: sent (at night the demo runs on an afternoon clock), answered by a text through
    // the sandbox callback, and counted in the report figures it prints.
    let survey = row("DEMO-12 ");
    assert!(survey.contains("satisfaction_survey") && survey.ends_with("sent"), "{survey}");
    assert!(stdout.contains("answered \"5\" by text (sandbox callback): survey_answer"), "{stdout}");
    assert!(stdout.contains("satisfaction survey 1 sent, 1 answered (100.0%), 1 satisfied (100.0%)"), "{stdout}");
    let letters = std::fs::read_dir(dir.join("outbox/letters")).unwrap().count();
    assert_eq!(letters, 1);
    // Gwen asked for Welsh: her pack is the approved Welsh version, and says so.
    assert!(row("DEMO-10 ").contains("send") && row("DEMO-10 ").ends_with("sent"), "{}", row("DEMO-10 "));
    assert!(stdout.contains("in Cymraeg (Welsh) (language cy)"), "{stdout}");
    let welsh: Vec<String> = std::fs::read_dir(dir.join("outbox/email"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|eml| eml.contains("Content-Language: cy"))
        .collect();
    assert_eq!(welsh.len(), 1, "one Welsh email among the demo's");
    assert!(welsh[0].contains("gwen@example.org"));
    // A distress reply notifies the (sample) on-call number at once, whatever the hour.
    assert!(stdout.contains("staff on call were texted at once"), "{stdout}");
    assert!(stdout.contains("safereach: an urgent reply is waiting for a person."), "{stdout}");
    assert!(stdout.contains("/staff/review"), "{stdout}");
}

/// What docker-compose's `init` runs on every `up`, in order, twice: the second run changes
/// nothing. Then the CLI's key options: a test key with its own rate limit.
#[test]
fn the_init_steps_are_idempotent_and_keys_take_test_and_rate_limit() {
    let app = Instance::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let run_in = |args: &[&str], stdin: &str| {
        let mut child = app
            .command(args)
            .current_dir(elsewhere.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    for round in 0..2 {
        run_in(&["migrate"], "");
        let system = run_in(
            &["staff", "create", "--username", "system", "--role", "author", "--if-missing"],
            "a random enough password\n",
        );
        let loaded = run_in(&["templates", "load", "--defaults", "--author", "system"], "");
        let admin = run_in(
            &["staff", "create", "--username", "admin", "--role", "admin", "--if-missing"],
            "the admin's secret password",
        );
        if round == 0 {
            assert!(system.contains("created") && admin.contains("created with role admin"), "{system}{admin}");
            assert_eq!(loaded.matches("submitted for approval").count(), 18, "{loaded}");
            assert!(loaded.contains("priority_pretext (sms, cy)"), "{loaded}");
        } else {
            assert!(admin.contains("exists (role admin): left as it is"), "{admin}");
            assert_eq!(loaded.matches("unchanged").count(), 18, "nothing new the second time: {loaded}");
        }
    }
    let list = run_in(&["templates", "list"], "");
    assert_eq!(list.lines().filter(|l| l.contains(" submitted ")).count(), 18, "waiting for approval: {list}");
    assert!(!list.contains(" approved "), "nothing is approved by set-up: {list}");

    let created = run_in(
        &[
            "keys",
            "create",
            "--name",
            "triage-test",
            "--scopes",
            "outreach:write,cases:read",
            "--test",
            "--rate-limit",
            "60",
        ],
        "",
    );
    assert!(created.contains("Test API key") && created.contains("60 requests a minute"), "{created}");
    let keys = run_in(&["keys", "list"], "");
    let line = keys.lines().find(|l| l.contains("triage-test")).unwrap();
    assert!(line.contains("60/min") && line.contains("\ttest"), "{line}");
    let refused =
        app.command(&["keys", "create", "--name", "t2", "--scopes", "reports:read", "--test"]).output().unwrap();
    assert!(!refused.status.success(), "a test key may not read reports");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("test key may not have the scope"));
}
