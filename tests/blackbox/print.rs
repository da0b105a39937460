//! Letters to a print service over HTTP: a local receiver (here, in the test) takes the PDF, which
//! is rendered with pdftoppm to check it is a real one-or-more-page A4 document; the service's
//! status callbacks move the letter forward, and stale or unauthenticated ones are refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use safereach::app::Role;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, read, spawn_with};

const PRINT_TOKEN: &str = "print-service-token";

#[derive(Default)]
struct Received {
    letters: Mutex<Vec<(HeaderMap, Bytes)>>,
    /// The status to answer with (0: 201).
    answer: AtomicU16,
}

async fn print_service() -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received::default());
    async fn take(State(r): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        r.letters.lock().unwrap().push((headers, body));
        match r.answer.load(Ordering::SeqCst) {
            0 => StatusCode::CREATED,
            code => StatusCode::from_u16(code).unwrap(),
        }
    }
    let app = axum::Router::new().route("/letters", post(take)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

async fn spawn_with_print(addr: SocketAddr) -> TestApp {
    spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        role: Role::Api,
        configure: Box::new(move |c| {
            c.letter_provider = "http".into();
            c.print_url = Some(format!("http://{addr}/letters"));
            c.print_token = Some(PRINT_TOKEN.into());
        }),
        ..Options::default()
    })
    .await
}

async fn send_letter(app: &TestApp, n: u32) -> (Processed, Value) {
    let case_ref = format!("PRINT-{n}");
    let job = json!({
        "request_id": format!("print-{n}"), "case_ref": case_ref, "kind": "information_pack",
        "crime": {"categories": ["burglary"]}, "victim": {"first_name": "Lee"},
        "contact": {"postal": {"name": "Lee Jones", "lines": ["2 Station Road", "Coventry"], "postcode": "CV1 2AB", "safe": true}, "preferred_method": "letter"},
        "consent": {"information_pack": true}
    });
    let (_, answer) = app.post_outreach(&job).await;
    let processed = app.state.worker().process(answer["outreach_id"].as_str().unwrap()).await.unwrap();
    (processed, app.get_case(&case_ref).await.1["messages"][0].clone())
}

/// Page sizes in points, from pdftoppm's rendering at 72 dpi (one PNG per page).
fn rendered_pages(pdf: &[u8]) -> Vec<(u32, u32)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("letter.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftoppm")
        .args(["-r", "72", "-png"])
        .arg(&file)
        .arg(dir.path().join("page"))
        .output()
        .expect("pdftoppm (poppler-utils) is installed");
    assert!(out.status.success(), "pdftoppm: {}", String::from_utf8_lossy(&out.stderr));
    let mut pngs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    pngs.iter()
        .map(|p| {
            let png = std::fs::read(p).unwrap();
            // The IHDR chunk: width and height, big-endian, at bytes 16..24.
            let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
            (be(16), be(20))
        })
        .collect()
}

async fn status(app: &TestApp, token: &str, body: Value) -> StatusCode {
    let url = app.url(&format!("/webhooks/print/status?token={token}"));
    read(app.http.post(url).json(&body).send().await.unwrap()).await.0
}

#[tokio::test]
async fn a_letter_is_posted_as_an_a4_pdf_with_our_reference_and_its_callbacks_move_it() {
    let (addr, service) = print_service().await;
    let app = spawn_with_print(addr).await;
    let (processed, message) = send_letter(&app, 1).await;
    assert!(matches!(processed, Processed::Sent { .. }), "{processed:?}");
    let id = message["id"].as_str().unwrap();
    assert_eq!((message["provider"].as_str(), message["provider_ref"].as_str()), (Some("print"), Some(id)));

    let letters = service.letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1);
    let (headers, pdf) = &letters[0];
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-reference"], id);
    assert_eq!(headers["idempotency-key"], id);
    assert_eq!(headers["authorization"], format!("Bearer {PRINT_TOKEN}").as_str());
    let pages = rendered_pages(pdf);
    assert_eq!(pages.len(), 2, "the information pack is two A4 pages: {pages:?}");
    for (w, h) in pages {
        // A4 is 595.28 × 841.89 pt.
        assert!(w.abs_diff(595) <= 1 && h.abs_diff(842) <= 1, "{w} × {h} is not A4");
    }

    let now = chrono::Utc::now();
    let at = |minutes_ago: i64| safereach::time::rfc3339(now - chrono::Duration::minutes(minutes_ago));
    let token = app.state.webhooks.print.clone().unwrap();
    let report = |status: &str, at: String| json!({"reference": id, "status": status, "at": at});
    // Refused: no token, wrong token, and a replay of an old report (more than 5 minutes).
    assert_eq!(status(&app, "", report("returned", at(0))).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&app, "wrong", report("returned", at(0))).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&app, &token, report("returned", at(6))).await, StatusCode::FORBIDDEN);
    assert_eq!(app.get_case("PRINT-1").await.1["messages"][0]["status"], "sent", "refused reports change nothing");

    assert_eq!(status(&app, &token, report("printed", at(1))).await, StatusCode::OK);
    assert_eq!(status(&app, &token, report("posted", at(0))).await, StatusCode::OK);
    // Late: printed again after posted is recorded, not applied.
    assert_eq!(status(&app, &token, report("printed", at(0))).await, StatusCode::OK);
    assert_eq!(app.get_case("PRINT-1").await.1["messages"][0]["status"], "posted");
    assert_eq!(status(&app, &token, report("returned", at(0))).await, StatusCode::OK);
    assert_eq!(status(&app, &token, report("lost", at(0))).await, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = json!({"reference": "msg_unknown", "status": "posted", "at": at(0)});
    assert_eq!(status(&app, &token, unknown).await, StatusCode::OK);
    let (_, case) = app.get_case("PRINT-1").await;
    let message = &case["messages"][0];
    assert_eq!(message["status"], "returned");
    let moves: Vec<(&str, &str)> = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        moves,
        [
            ("sent", "sent"),
            ("status", "printed"),
            ("status", "posted"),
            ("status_ignored", "printed"),
            ("status", "returned")
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_print_service_outage_is_retried_and_a_refusal_is_final() {
    let (addr, service) = print_service().await;
    let app = spawn_with_print(addr).await;
    service.answer.store(503, Ordering::SeqCst);
    let (processed, message) = send_letter(&app, 2).await;
    assert!(matches!(processed, Processed::Retrying { .. }), "{processed:?}");
    assert_eq!(message["status"], "queued");
    service.answer.store(422, Ordering::SeqCst);
    let (processed, message) = send_letter(&app, 3).await;
    assert_eq!(processed, Processed::Failed);
    assert_eq!(message["status"], "failed");
    app.stop().await;
}
