//! Kannel, for real: bearerbox and smsbox with fake SMSCs, started by scripts/test.sh
//! (scripts/services/kannel.sh). Messages go through sendsms to the fake SMSC, Kannel's own
//! delivery reports come back to the dlr-url, and replies are injected from a fake SMSC.

use std::time::Duration;

use reqwest::StatusCode;
use safereach::config::Config;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, pretext, service, spawn_with};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";
pub const KANNEL_FROM: &str = "+447700900002";

/// Kannel as the SMS provider, at an address where nothing listens: its callback routes are
/// mounted (they are only with Kannel configured), and nothing is ever sent.
pub fn unreachable_kannel(c: &mut Config) {
    c.sms_provider = "kannel".into();
    c.kannel_sendsms_url = Some("http://127.0.0.1:1/cgi-bin/sendsms".into());
    c.kannel_user = Some("safereach".into());
    c.kannel_password = Some("unused".into());
    c.kannel_from = Some(KANNEL_FROM.into());
}

/// Kannel's settings from scripts/test.sh, or None when it is not running.
#[derive(Clone)]
pub struct KannelEnv {
    pub sendsms_url: String,
    pub user: String,
    pub password: String,
    pub token: String,
    pub mt_log: String,
    pub mo_port: String,
    pub fakesmsc: String,
}

pub fn kannel_env() -> Option<KannelEnv> {
    let sendsms_url = service("SAFEREACH_TEST_KANNEL_SENDSMS_URL")?;
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set with the Kannel URL"));
    Some(KannelEnv {
        sendsms_url,
        user: var("SAFEREACH_TEST_KANNEL_USER"),
        password: var("SAFEREACH_TEST_KANNEL_PASSWORD"),
        token: var("SAFEREACH_TEST_KANNEL_WEBHOOK_TOKEN"),
        mt_log: var("SAFEREACH_TEST_KANNEL_MT_LOG"),
        mo_port: var("SAFEREACH_TEST_KANNEL_MO_PORT"),
        fakesmsc: var("SAFEREACH_TEST_KANNEL_FAKESMSC"),
    })
}

impl KannelEnv {
    /// Point `config` at this Kannel. The webhook token is Kannel's: its MO get-url carries it.
    pub fn configure(&self, c: &mut Config) {
        c.kannel_sendsms_url = Some(self.sendsms_url.clone());
        c.kannel_user = Some(self.user.clone());
        c.kannel_password = Some(self.password.clone());
        c.kannel_from = Some(KANNEL_FROM.into());
        c.kannel_webhook_token = Some(self.token.clone());
    }

    /// What the fake SMSC received for `number`: (type, decoded text) of each message.
    pub fn received(&self, number: &str) -> Vec<(String, String)> {
        let log = std::fs::read_to_string(&self.mt_log).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split_once("Got message ")?.1.split_once(": <"))
            .filter_map(|(_, rest)| {
                let mut parts = rest.trim_end_matches('>').splitn(4, ' ');
                let (_from, to, kind, data) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                (to == number).then(|| (kind.to_string(), decode(kind, data)))
            })
            .collect()
    }

    /// How many messages (parts) the fake SMSC received for each number, from one read of its log.
    pub fn received_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let log = std::fs::read_to_string(&self.mt_log).unwrap_or_default();
        let mut counts = std::collections::BTreeMap::new();
        for line in log.lines() {
            let Some((_, rest)) = line.split_once("Got message ").and_then(|(_, r)| r.split_once(": <")) else {
                continue;
            };
            if let Some(to) = rest.split(' ').nth(1) {
                *counts.entry(to.to_string()).or_default() += 1;
            }
        }
        counts
    }

    /// Wait (up to 10 s) until the fake SMSC got `parts` parts for `number`, and return them.
    pub async fn wait_received(&self, number: &str, parts: usize) -> Vec<(String, String)> {
        for _ in 0..100 {
            let received = self.received(number);
            if received.len() >= parts {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.received(number)
    }

    /// A reply from `from`, injected through the "mo" fake SMSC. Kannel's sms-service sends it to
    /// 127.0.0.1:<receiver>: the receiver number is the app's port.
    pub async fn inject_reply(&self, app: &TestApp, from: &str, text: &str) {
        let port = app.base.rsplit(':').next().unwrap().to_string();
        let message = format!("{from} {port} text {text}");
        let mut child = std::process::Command::new(&self.fakesmsc)
            .args(["-H", "127.0.0.1", "-r", &self.mo_port, "-m", "1", &message])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("fakesmsc runs");
        // fakesmsc keeps its connection open after sending; it is done once the reply is stored.
        let before = replies(app).await;
        for _ in 0..100 {
            if replies(app).await > before {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the injected reply did not arrive");
    }
}

async fn replies(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM replies").fetch_one(app.state.store.pool()).await.unwrap()
}

/// fakesmsc prints plain text as is, anything else URL-encoded; a part of a concatenated message
/// as `udh <header> <data>`. Text sent with coding=2 is UTF-16BE.
fn decode(kind: &str, data: &str) -> String {
    match kind {
        "text" => data.to_string(),
        // `udh <header> data <text>`: the text is the last field.
        "udh" => decode("ucs-2", data.rsplit_once(' ').map_or(data, |(_, text)| text)),
        _ => {
            let raw = percent_decode(data);
            let units: Vec<u16> = raw.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
            String::from_utf16_lossy(&units)
        }
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

async fn spawn_with_kannel(kannel: &KannelEnv) -> TestApp {
    let env = kannel.clone();
    spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        configure: Box::new(move |c| {
            c.sms_provider = "kannel".into();
            env.configure(c);
        }),
        ..Options::default()
    })
    .await
}

fn events<'a>(case: &'a Value, kind: &str) -> Vec<&'a Value> {
    case["timeline"].as_array().unwrap().iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn messages_go_through_kannel_and_its_delivery_reports_come_back() {
    let Some(kannel) = kannel_env() else { return };
    let app = spawn_with_kannel(&kannel).await;
    // Numbers of its own, so that the fake SMSC's log tells this test's messages apart.
    let mut gsm = pretext("kn-1", "KN-1");
    gsm["contact"]["phones"][0]["number"] = json!("+447700900601");
    let mut ucs2 = pretext("kn-2", "KN-2");
    ucs2["contact"]["phones"][0]["number"] = json!("+447700900602");
    ucs2["victim"]["first_name"] = json!("李雷");
    app.post_outreach(&gsm).await;
    app.post_outreach(&ucs2).await;

    // The GSM-7 text is one plain part; the UCS-2 one is 2 parts of a concatenated message
    // (with a UDH), each UTF-16.
    for (case_ref, number, kind, parts) in [("KN-1", "+447700900601", "text", 1), ("KN-2", "+447700900602", "udh", 2)] {
        // Kannel's fake SMSC reports "delivered" (1) and "submitted to SMSC" (8), in either order.
        let message = app.wait_for_message(case_ref, "delivered").await;
        assert_eq!(message["provider"], "kannel");
        assert_eq!(message["provider_ref"], message["id"], "our id travels in the dlr-url");
        assert_eq!(message["segments"], parts);
        let received = kannel.wait_received(number, parts).await;
        assert_eq!(received.len(), parts, "{received:?}");
        assert!(received.iter().all(|(k, _)| k == kind), "{received:?}");
        let text: String = received.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(text, message["body"].as_str().unwrap());
        // Both reports come back, the second maybe a little after "delivered".
        let reports = |case: &Value| -> Vec<i64> {
            case["messages"][0]["events"]
                .as_array()
                .map(|events| events.iter().filter_map(|e| e["detail"]["kannel_dlr"].as_i64()).collect())
                .unwrap_or_default()
        };
        app.wait_for_case(case_ref, "reports 1 and 8", |case| {
            let seen = reports(case);
            seen.contains(&1) && seen.contains(&8)
        })
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn replies_from_the_fake_smsc_are_classified_acted_on_and_never_answered() {
    let Some(kannel) = kannel_env() else { return };
    let app = spawn_with_kannel(&kannel).await;
    let number = "+447700900611";
    let mut job = pretext("kn-r1", "KN-R1");
    job["contact"]["phones"][0]["number"] = json!(number);
    app.post_outreach(&job).await;
    app.wait_for_message("KN-R1", "delivered").await;

    // As the network gives it: national format.
    kannel.inject_reply(&app, "07700900611", "who is this? wrong number").await;
    kannel.inject_reply(&app, "07700900611", "I'm scared").await;
    let (_, case) = app.get_case("KN-R1").await;
    let classes: Vec<&str> =
        case["replies"].as_array().unwrap().iter().map(|r| r["classification"].as_str().unwrap()).collect();
    assert_eq!(classes, ["unsafe", "distress"]);
    assert_eq!(case["replies"][0]["body"], "who is this? wrong number");
    assert_eq!(events(&case, "suppressed")[0]["reason"], "unsafe");
    let alerts: Vec<&str> = events(&case, "alert").iter().map(|a| a["reason"].as_str().unwrap()).collect();
    assert_eq!(alerts, ["number_conflict", "distress"]);
    // Kannel sent nothing back to the number.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(kannel.received(number).len(), 1);
    let mut again = pretext("kn-r2", "KN-R2");
    again["contact"]["phones"][0]["number"] = json!(number);
    assert_eq!(app.post_outreach(&again).await.1["decision"]["reason"], "suppressed");
    app.stop().await;
}

#[tokio::test]
async fn kannel_callbacks_are_hostile_input() {
    let Some(kannel) = kannel_env() else { return };
    let app = spawn_with_kannel(&kannel).await;
    let mut job = pretext("kn-h1", "KN-H1");
    job["contact"]["phones"][0]["number"] = json!("+447700900621");
    app.post_outreach(&job).await;
    let message = app.wait_for_message("KN-H1", "delivered").await;
    let id = message["id"].as_str().unwrap();
    let get = |query: String| {
        let url = app.url(&format!("/webhooks/kannel/dlr?{query}"));
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().status() }
    };
    let token = &kannel.token;
    assert_eq!(get(format!("id={id}&status=16")).await, StatusCode::FORBIDDEN);
    assert_eq!(get(format!("token=wrong&id={id}&status=16")).await, StatusCode::FORBIDDEN);
    // Late and out of order: a rejection after delivery does not move it back.
    assert_eq!(get(format!("token={token}&id={id}&status=16&answer=NACK")).await, StatusCode::OK);
    assert_eq!(get(format!("token={token}&id={id}&status=8")).await, StatusCode::OK);
    assert_eq!(get(format!("token={token}&id=msg_unknown&status=1")).await, StatusCode::OK);
    assert_eq!(get(format!("token={token}&id={id}&status=3")).await, StatusCode::UNPROCESSABLE_ENTITY);
    let inbound = app.http.get(app.url("/webhooks/kannel/inbound?token=wrong&from=07700900621&text=STOP")).send();
    assert_eq!(inbound.await.unwrap().status(), StatusCode::FORBIDDEN);
    let (_, case) = app.get_case("KN-H1").await;
    assert_eq!(case["messages"][0]["status"], "delivered");
    assert!(case["replies"].as_array().unwrap().is_empty());
    assert_eq!(app.state.store.is_suppressed("+447700900621").await.unwrap(), None);
    app.stop().await;
}

/// The token is checked before the rest of the query is read: a malformed callback (a repeated
/// parameter) is 403 without the right token and a problem+json 400 with it. Needs no Kannel.
#[tokio::test]
async fn a_malformed_kannel_callback_is_judged_by_its_token_first() {
    let app = spawn_with(Options {
        clock: Some(MONDAY_10AM.into()),
        configure: Box::new(unreachable_kannel),
        ..Default::default()
    })
    .await;
    let token = app.state.webhooks.kannel.clone().unwrap();
    let cases = [
        ("dlr?token=wrong&id=a&id=b&status=1", StatusCode::FORBIDDEN),
        ("dlr?id=a&id=b&status=1", StatusCode::FORBIDDEN),
        ("dlr?token=wrong&token={token}&id=a&status=1", StatusCode::FORBIDDEN),
        ("dlr?token={token}&id=a&id=b&status=1", StatusCode::BAD_REQUEST),
        ("inbound?token=wrong&from=07700900621&from=07700900622&text=STOP", StatusCode::FORBIDDEN),
        ("inbound?token={token}&from=07700900621&from=07700900622&text=STOP", StatusCode::BAD_REQUEST),
    ];
    for (path, expected) in cases {
        let path = path.replace("{token}", &token);
        let response = app.http.get(app.url(&format!("/webhooks/kannel/{path}"))).send().await.unwrap();
        assert_eq!(response.status(), expected, "{path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
    }
    assert_eq!(app.state.store.is_suppressed("+447700900621").await.unwrap(), None);
    app.stop().await;
}
