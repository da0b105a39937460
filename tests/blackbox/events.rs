//! Outbound case events: a local receiver (here, in the test) checks each delivery's Standard
//! Webhooks signature and timestamp, and sees every timeline event once per id and in order per
//! case, also when it was failing for a while; an event that never gets through is dead-lettered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::common::{Options, TestApp, pretext, spawn_with};

const KEY: &[u8] = b"a test signing key of 32 bytes!!";

#[derive(Default)]
struct Receiver {
    /// (webhook-id, payload) of each delivery it took, in arrival order.
    taken: Mutex<Vec<(String, Value)>>,
    refused: AtomicU32,
    /// Deliveries whose signature or timestamp did not verify.
    unverified: AtomicU32,
    /// Answer 503 to everything (an outage).
    down: AtomicBool,
    /// Answer 500 to every event of this case.
    poisoned_case: Mutex<Option<String>>,
}

fn secret() -> String {
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(KEY))
}

/// Standard Webhooks verification, written out here: HMAC-SHA256 over "{id}.{timestamp}.{body}",
/// a timestamp within 5 minutes of now.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<String, &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).ok_or("missing header");
    let (id, timestamp, signatures) =
        (header("webhook-id")?, header("webhook-timestamp")?, header("webhook-signature")?);
    let ts: i64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return Err("stale");
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    if !signatures.split(' ').any(|s| s == expected) {
        return Err("bad signature");
    }
    Ok(id.to_string())
}

async fn receiver() -> (SocketAddr, Arc<Receiver>) {
    let shared = Arc::new(Receiver::default());
    async fn take(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let Ok(id) = verify(&headers, &body) else {
            r.unverified.fetch_add(1, Ordering::SeqCst);
            return StatusCode::UNAUTHORIZED;
        };
        let payload: Value = serde_json::from_slice(&body).unwrap();
        let poisoned = r.poisoned_case.lock().unwrap().clone();
        if r.down.load(Ordering::SeqCst) || poisoned.is_some_and(|c| payload["data"]["case_ref"] == c.as_str()) {
            r.refused.fetch_add(1, Ordering::SeqCst);
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        r.taken.lock().unwrap().push((id, payload));
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new().route("/events", post(take)).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, shared)
}

async fn spawn_with_events(addr: SocketAddr, max_attempts: u32) -> TestApp {
    spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        configure: Box::new(move |c| {
            c.events_url = Some(format!("http://{addr}/events"));
            c.events_secret = Some(secret());
            c.events_retry_base_ms = 100;
            c.events_max_attempts = max_attempts;
        }),
        ..Options::default()
    })
    .await
}

async fn outbox(app: &TestApp) -> (i64, i64) {
    sqlx::query_as("SELECT COUNT(*) - COUNT(dead_at), COUNT(dead_at) FROM event_outbox")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

async fn wait_until_sent(app: &TestApp) {
    for _ in 0..200 {
        if outbox(app).await.0 == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("events still pending: {:?}", outbox(app).await);
}

#[tokio::test]
async fn every_event_reaches_the_receiver_once_in_order_per_case_after_an_outage() {
    let (addr, receiver) = receiver().await;
    receiver.down.store(true, Ordering::SeqCst);
    let app = spawn_with_events(addr, 10).await;

    // Sent, delivered and a distress reply on one case; a held and a blocked job on others.
    app.post_outreach(&pretext("ev-1", "EV-1")).await;
    let message = app.wait_for_message("EV-1", "sent").await;
    app.webhook("/webhooks/sandbox/status", &json!({"provider_ref": message["id"], "status": "delivered"})).await;
    app.webhook("/webhooks/sandbox/inbound", &json!({"from": "07700 900555", "body": "STOP he's here"})).await;
    let mut minor = pretext("ev-2", "EV-2");
    minor["victim"]["is_under_18"] = json!(true);
    // Another number: the first one is suppressed now, which would block before rule 5 holds.
    minor["contact"]["phones"][0]["number"] = json!("+447700900556");
    app.post_outreach(&minor).await;
    let mut no_consent = pretext("ev-3", "EV-3");
    no_consent["kind"] = json!("information_pack");
    app.post_outreach(&no_consent).await;

    // The receiver is down for a while: deliveries are refused and retried.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(receiver.refused.load(Ordering::SeqCst) >= 2);
    receiver.down.store(false, Ordering::SeqCst);
    wait_until_sent(&app).await;

    assert_eq!(receiver.unverified.load(Ordering::SeqCst), 0, "every delivery verifies");
    let taken = receiver.taken.lock().unwrap().clone();
    let ids: Vec<&str> = taken.iter().map(|(id, _)| id.as_str()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "each event once: {ids:?}");
    let events: Vec<(i64, String, String)> = sqlx::query_as("SELECT id, case_ref, type FROM events ORDER BY id")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    let mut expected: Vec<String> = events.iter().map(|(id, _, _)| format!("evt_{id}")).collect();
    expected.sort();
    assert_eq!(unique, expected.iter().map(String::as_str).collect::<Vec<_>>(), "every event");

    for case_ref in ["EV-1", "EV-2", "EV-3"] {
        let arrived: Vec<i64> = taken
            .iter()
            .filter(|(_, p)| p["data"]["case_ref"] == case_ref)
            .map(|(_, p)| p["data"]["event_id"].as_i64().unwrap())
            .collect();
        assert!(arrived.windows(2).all(|w| w[0] < w[1]), "{case_ref} in order: {arrived:?}");
    }
    let of = |kind: &str| taken.iter().find(|(_, p)| p["data"]["type"] == kind).map(|(_, p)| p.clone());
    assert_eq!(of("sent").unwrap()["type"], "case.sent");
    assert_eq!(of("status").unwrap()["data"]["status"], "delivered");
    assert_eq!(of("reply").unwrap()["data"]["classification"], "distress");
    assert_eq!(of("alert").unwrap()["data"]["reason"], "distress");
    let outcomes: Vec<&str> = taken.iter().filter_map(|(_, p)| p["data"]["outcome"].as_str()).collect();
    assert!(outcomes.contains(&"hold") && outcomes.contains(&"block"), "{outcomes:?}");
    // No personal data: the number, the name, the reply, the message text.
    let all = serde_json::to_string(&taken.iter().map(|(_, p)| p).collect::<Vec<_>>()).unwrap();
    for personal in ["900555", "Robin", "he's here", "Northgate"] {
        assert!(!all.contains(personal), "{personal} in an event payload");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_event_that_never_gets_through_is_dead_lettered_and_other_cases_go_on() {
    let (addr, receiver) = receiver().await;
    *receiver.poisoned_case.lock().unwrap() = Some("EVD-1".into());
    let app = spawn_with_events(addr, 2).await;
    app.post_outreach(&pretext("evd-1", "EVD-1")).await;
    app.post_outreach(&pretext("evd-2", "EVD-2")).await;
    app.wait_for_message("EVD-1", "sent").await;
    app.wait_for_message("EVD-2", "sent").await;
    wait_until_sent(&app).await;

    let dead: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT case_ref, attempts, last_error FROM event_outbox WHERE dead_at IS NOT NULL")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(dead.len(), 3, "accepted, decided, sent of EVD-1: {dead:?}");
    assert!(dead.iter().all(|(case, attempts, error)| case == "EVD-1" && *attempts == 2 && error == "status 503"));
    let taken = receiver.taken.lock().unwrap().clone();
    let cases: Vec<&str> = taken.iter().map(|(_, p)| p["data"]["case_ref"].as_str().unwrap()).collect();
    assert_eq!(cases, ["EVD-2", "EVD-2", "EVD-2"]);
    app.stop().await;
}
