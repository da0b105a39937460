//! Email over SMTP to a real server (aiosmtpd, started by scripts/services/smtp.sh): the message
//! it receives is checked part by part; a 5xx refusal fails the message for good, a 4xx or a
//! server that is down is retried, and a message the server took without answering in time is
//! dead-lettered in doubt, never sent again by itself. A bounce the server sends back later (a
//! delivery status notification) moves the message to `bounced`; a delay changes nothing.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use reqwest::StatusCode;
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, free_port, read, service, spawn_with};

async fn spawn_with_smtp(url: String) -> TestApp {
    spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        role: Role::Api,
        configure: Box::new(move |c| {
            c.email_provider = "smtp".into();
            c.smtp_url = Some(url);
        }),
        ..Options::default()
    })
    .await
}

async fn spawn_with_smtp_timeout(url: String, timeout_secs: u64) -> TestApp {
    spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        role: Role::Api,
        configure: Box::new(move |c| {
            c.email_provider = "smtp".into();
            c.smtp_url = Some(url);
            c.provider_timeout_secs = timeout_secs;
            c.retry_base_secs = 0;
        }),
        ..Options::default()
    })
    .await
}

async fn send_pack(app: &TestApp, n: u32, address: &str) -> (Processed, Value) {
    let case_ref = format!("SMTP-{n}");
    let job = json!({
        "request_id": format!("smtp-{n}"), "case_ref": case_ref, "kind": "information_pack",
        "crime": {"categories": ["theft"]}, "victim": {"first_name": "Priya"},
        "contact": {"email": {"address": address, "safe": true}, "preferred_method": "email"},
        "consent": {"information_pack": true}
    });
    let (_, answer) = app.post_outreach(&job).await;
    assert_eq!(answer["decision"]["channel"], "email", "{answer}");
    let processed = app.state.worker().process(answer["outreach_id"].as_str().unwrap()).await.unwrap();
    (processed, app.get_case(&case_ref).await.1)
}

/// The .eml the server stored whose Message-ID names `id`, with its envelope.
fn received(dir: &str, id: &str) -> Option<(Vec<u8>, Value)> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            let eml = std::fs::read(&path).ok()?;
            if String::from_utf8_lossy(&eml).contains(&format!("Message-ID: <{id}@")) {
                let envelope = std::fs::read_to_string(path.with_extension("json")).ok()?;
                return Some((eml, serde_json::from_str(&envelope).ok()?));
            }
        }
    }
    None
}

#[tokio::test]
async fn an_information_pack_reaches_the_smtp_server_as_multipart_with_our_message_id() {
    let Some(url) = service("SAFEREACH_TEST_SMTP_URL") else { return };
    let dir = std::env::var("SAFEREACH_TEST_SMTP_DIR").unwrap();
    let app = spawn_with_smtp(url).await;
    let (processed, case) = send_pack(&app, 1, "Priya.Sharma@Example.org").await;
    assert!(matches!(processed, Processed::Sent { .. }), "{processed:?}");
    let message = &case["messages"][0];
    let id = message["id"].as_str().unwrap();
    assert_eq!((message["provider"].as_str(), message["provider_ref"].as_str()), (Some("smtp"), Some(id)));

    let (eml, envelope) = received(&dir, id).expect("the server has the message");
    assert_eq!(envelope["rcpt_tos"], json!(["priya.sharma@example.org"]));
    assert_eq!(envelope["mail_from"], "noreply@victimcare.example.org");
    let parsed = MessageParser::default().parse(&eml).unwrap();
    assert_eq!(parsed.message_id(), Some(format!("{id}@victimcare.example.org").as_str()));
    assert!(
        matches!(parsed.header("X-Reference"), Some(HeaderValue::Text(r)) if r == id),
        "{:?}",
        parsed.header("X-Reference")
    );
    assert_eq!(parsed.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("priya.sharma@example.org"));
    assert_eq!(parsed.from().and_then(|a| a.first()).and_then(|a| a.name()), Some("Northgate Victim Care"));
    assert_eq!(parsed.subject(), message["subject"].as_str());
    let content_type = parsed.content_type().unwrap();
    assert_eq!((content_type.ctype(), content_type.subtype()), ("multipart", Some("alternative")));
    let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
    assert_eq!(text.trim_end(), message["body"].as_str().unwrap().trim_end());
    assert!(text.starts_with("Dear Priya,"), "{text}");
    let html = parsed.body_html(0).unwrap();
    assert!(html.contains("Priya") && html.contains("<"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn a_refusal_fails_the_message_and_a_deferral_or_an_outage_is_retried() {
    let Some(url) = service("SAFEREACH_TEST_SMTP_URL") else { return };
    let app = spawn_with_smtp(url).await;
    let (processed, case) = send_pack(&app, 2, "reject.me@example.org").await;
    assert_eq!(processed, Processed::Failed);
    assert_eq!(case["messages"][0]["status"], "failed");
    let failed = case["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "send_failed").unwrap();
    assert_eq!(failed["reason"], "permanent");

    let (processed, case) = send_pack(&app, 3, "defer.me@example.org").await;
    assert!(matches!(processed, Processed::Retrying { .. }), "{processed:?}");
    assert_eq!(case["messages"][0]["status"], "queued");
    app.stop().await;

    // Nothing listens there.
    let app = spawn_with_smtp(format!("smtp://127.0.0.1:{}", free_port())).await;
    let (processed, _) = send_pack(&app, 4, "priya@example.org").await;
    assert!(matches!(processed, Processed::Retrying { .. }), "{processed:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_message_the_server_took_without_answering_in_time_is_in_doubt_and_not_sent_again() {
    let Some(url) = service("SAFEREACH_TEST_SMTP_URL") else { return };
    let dir = std::env::var("SAFEREACH_TEST_SMTP_DIR").unwrap();
    // The sink stores a message to slow…@ and answers 5 s later; we wait 1 s.
    let app = spawn_with_smtp_timeout(url, 1).await;
    let (processed, case) = send_pack(&app, 5, "slow.reply@example.org").await;
    assert_eq!(processed, Processed::DeadLettered);
    let message = &case["messages"][0];
    let id = message["id"].as_str().unwrap();
    assert!(received(&dir, id).is_some(), "the server has the message");
    assert_eq!((message["status"].as_str(), message["provider"].as_str()), (Some("sending"), Some("smtp")));
    let dead = case["timeline"].as_array().unwrap().iter().find(|e| e["type"] == "dead_lettered").unwrap();
    assert_eq!((dead["reason"].as_str(), dead["detail"]["provider"].as_str()), (Some("send_in_doubt"), Some("smtp")));
    let outreach_id = case["outreach"][0]["outreach_id"].as_str().unwrap();
    assert_eq!(
        app.state.worker().process(outreach_id).await.unwrap(),
        Processed::Skipped,
        "never sent again by itself"
    );
    let copies = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter(|eml| String::from_utf8_lossy(eml).contains(&format!("Message-ID: <{id}@")))
        .count();
    assert_eq!(copies, 1);
    app.stop().await;
}

/// A delivery status notification (RFC 3464) as Postfix sends it back to the envelope sender:
/// a human-readable part, the delivery-status part with `action` and `status` for the recipient,
/// and the headers of the returned message (`original_headers`, as text/rfc822-headers).
fn dsn(action: &str, status: &str, original_headers: &str) -> String {
    let (subject, said) = if action == "delayed" {
        ("Delayed Mail (still being retried)", "421 4.4.1 connection timed out")
    } else {
        (
            "Undelivered Mail Returned to Sender",
            "550 5.1.1 <priya.bounce@example.org>: Recipient address rejected: User unknown",
        )
    };
    let boundary = "4F1A2C0D3B.1795428300/mx.example.net";
    format!(
        "Return-Path: <>\r\n\
         Received: by mx.example.net (Postfix) id 4F1A2C0D3B; Mon, 23 Nov 2026 10:05:00 +0000 (UTC)\r\n\
         Date: Mon, 23 Nov 2026 10:05:00 +0000 (UTC)\r\n\
         From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         Subject: {subject}\r\n\
         To: noreply@victimcare.example.org\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Message-Id: <20261123100500.4F1A2C0D3B@mx.example.net>\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.example.net.\r\n\
         \r\n\
         <priya.bounce@example.org>: host mx2.example.net[192.0.2.25] said: {said}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         X-Postfix-Queue-ID: 4F1A2C0D3B\r\n\
         X-Postfix-Sender: rfc822; noreply@victimcare.example.org\r\n\
         Arrival-Date: Mon, 23 Nov 2026 10:00:01 +0000 (UTC)\r\n\
         \r\n\
         Final-Recipient: rfc822; priya.bounce@example.org\r\n\
         Original-Recipient: rfc822;priya.bounce@example.org\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx2.example.net\r\n\
         Diagnostic-Code: smtp; {said}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         {original_headers}\r\n\
         --{boundary}--\r\n"
    )
}

/// The header block of a message, as a server returns it in a bounce.
fn header_block(eml: &[u8]) -> String {
    let text = String::from_utf8_lossy(eml);
    text.split("\r\n\r\n").next().unwrap().to_string()
}

async fn post_bounce(app: &TestApp, token: &str, content_type: &str, message: &str) -> (StatusCode, Value) {
    let url = app.url(&format!("/webhooks/email/bounce?token={token}"));
    read(app.http.post(url).header("content-type", content_type).body(message.to_string()).send().await.unwrap()).await
}

/// The message's status and its events (type, status), from the API.
async fn status_and_events(app: &TestApp, case_ref: &str) -> (String, Vec<(String, String)>) {
    let (_, case) = app.get_case(case_ref).await;
    let message = &case["messages"][0];
    let events = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["status"].as_str().unwrap_or("").to_string()))
        .collect();
    (message["status"].as_str().unwrap().to_string(), events)
}

/// Send an information pack through the SMTP sink; the header block of the message it received,
/// and our message id, checked to be in its Message-ID.
async fn send_and_receive(app: &TestApp, n: u32, address: &str) -> (String, String) {
    let dir = std::env::var("SAFEREACH_TEST_SMTP_DIR").unwrap();
    let (processed, case) = send_pack(app, n, address).await;
    assert!(matches!(processed, Processed::Sent { .. }), "{processed:?}");
    let id = case["messages"][0]["id"].as_str().unwrap().to_string();
    let (eml, _) = received(&dir, &id).expect("the server has the message");
    let parsed = MessageParser::default().parse(&eml).unwrap();
    assert_eq!(parsed.message_id(), Some(format!("{id}@victimcare.example.org").as_str()));
    (id, header_block(&eml))
}

#[tokio::test]
async fn a_bounce_from_the_remote_server_moves_the_email_to_bounced_once_and_is_reported() {
    let Some(url) = service("SAFEREACH_TEST_SMTP_URL") else { return };
    let app = spawn_with_smtp(url).await;
    let (id, headers) = send_and_receive(&app, 6, "Priya.Bounce@example.org").await;
    assert_eq!(status_and_events(&app, "SMTP-6").await.0, "sent");
    let token = app.state.webhooks.bounce.clone().unwrap();

    // Failed for good: bounced, with a status event from the SMTP provider.
    let failed = dsn("failed", "5.1.1", &headers);
    let (status, answer) = post_bounce(&app, &token, "message/rfc822", &failed).await;
    assert_eq!((status, &answer), (StatusCode::OK, &json!({"result": "moved", "message_id": id})));
    let (_, case) = app.get_case("SMTP-6").await;
    let message = &case["messages"][0];
    assert_eq!(message["status"], "bounced");
    let event = message["events"].as_array().unwrap().last().unwrap();
    assert_eq!((event["type"].as_str(), event["status"].as_str()), (Some("status"), Some("bounced")), "{event}");
    assert_eq!(event["actor"], "provider:smtp");
    assert_eq!(event["detail"], json!({"dsn_action": "failed", "dsn_status": "5.1.1"}));

    // Forward only: a second bounce is recorded and changes nothing.
    let (status, answer) = post_bounce(&app, &token, "text/plain", &failed).await;
    assert_eq!((status, answer["result"].as_str()), (StatusCode::OK, Some("ignored")), "{answer}");
    let (now, events) = status_and_events(&app, "SMTP-6").await;
    assert_eq!(now, "bounced");
    let moves: Vec<(&str, &str)> =
        events.iter().filter(|(t, _)| t.starts_with("status")).map(|(t, s)| (t.as_str(), s.as_str())).collect();
    assert_eq!(moves, [("status", "bounced"), ("status_ignored", "bounced")]);

    // A message the server refused outright stays failed whatever bounce comes later.
    let (processed, case) = send_pack(&app, 7, "reject.bounce@example.org").await;
    assert_eq!(processed, Processed::Failed);
    let refused = case["messages"][0]["id"].as_str().unwrap();
    let refused_headers = format!("Message-ID: <{refused}@victimcare.example.org>\r\nTo: reject.bounce@example.org");
    let (status, answer) = post_bounce(&app, &token, "message/rfc822", &dsn("failed", "5.1.1", &refused_headers)).await;
    assert_eq!((status, answer["result"].as_str()), (StatusCode::OK, Some("ignored")), "{answer}");
    assert_eq!(status_and_events(&app, "SMTP-7").await.0, "failed");

    // The monthly report counts the bounce with the email statuses.
    let (status, report) = app.get("/v1/reports/monthly?month=2026-11").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["messages"]["by_channel"]["email"]["by_status"],
        json!({"sent": 0, "delivered": 0, "failed": 1, "bounced": 1}),
        "{report}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_delay_an_unknown_message_or_a_bad_token_changes_nothing() {
    let Some(url) = service("SAFEREACH_TEST_SMTP_URL") else { return };
    let app = spawn_with_smtp(url).await;
    let (id, headers) = send_and_receive(&app, 8, "priya.delay@example.org").await;
    let sent = status_and_events(&app, "SMTP-8").await;
    assert_eq!(sent.0, "sent");
    let token = app.state.webhooks.bounce.clone().unwrap();
    let failed = dsn("failed", "5.1.1", &headers);

    // Refused before the body is read: a wrong or missing token, whatever the body.
    assert_eq!(post_bounce(&app, "wrong", "message/rfc822", &failed).await.0, StatusCode::FORBIDDEN);
    let url = app.url("/webhooks/email/bounce");
    let response = app.http.post(url).header("content-type", "message/rfc822").body(failed.clone()).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN);
    // Over the body limit: the token decides first, then the limit.
    let oversized = format!("{failed}{}", "x".repeat(70 * 1024));
    assert_eq!(post_bounce(&app, "wrong", "message/rfc822", &oversized).await.0, StatusCode::FORBIDDEN);
    assert_eq!(post_bounce(&app, &token, "message/rfc822", &oversized).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(status_and_events(&app, "SMTP-8").await, sent, "refused bounces change nothing");

    // Still being retried: acknowledged, nothing recorded.
    let (status, answer) = post_bounce(&app, &token, "text/plain", &dsn("delayed", "4.4.1", &headers)).await;
    assert_eq!((status, answer["result"].as_str()), (StatusCode::OK, Some("acknowledged")), "{answer}");
    assert_eq!(status_and_events(&app, "SMTP-8").await, sent, "a delay changes nothing");

    // About a message we never sent: acknowledged, nothing changes.
    let unknown = dsn("failed", "5.1.1", &headers.replace(&id, "msg_0000000000000000000000000000beef"));
    let (status, answer) = post_bounce(&app, &token, "message/rfc822", &unknown).await;
    assert_eq!((status, answer["result"].as_str()), (StatusCode::OK, Some("unknown_message")), "{answer}");
    assert_eq!(status_and_events(&app, "SMTP-8").await, sent);

    // Not a mail message: 415, nothing changes.
    let (status, _) = post_bounce(&app, &token, "application/json", &failed).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(status_and_events(&app, "SMTP-8").await, sent);
    app.stop().await;
}
