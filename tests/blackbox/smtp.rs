//! Email over SMTP to a real server (aiosmtpd, started by scripts/services/smtp.sh): the message
//! it receives is checked part by part; a 5xx refusal fails the message for good, a 4xx or a
//! server that is down is retried, and a message the server took without answering in time is
//! dead-lettered in doubt, never sent again by itself.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, free_port, service, spawn_with};

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
