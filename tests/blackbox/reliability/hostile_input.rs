//! Hostile input: generated bodies, path segments and query strings (proptest) against every `/v1`
//! operation of the router's OpenAPI document, the sandbox webhooks and every staff form (from
//! `http::staff::protected_paths()`), sent to one real app over HTTP. Wrong types, huge and deeply
//! nested values, invalid UTF-8, control and bidi characters, `{{`/`}}` and partial template
//! syntax, CR/LF, SQL fragments. Never a 5xx, the process answers throughout, and nothing is
//! stored but what was answered 2xx (jobs and cases counted before and after).
//!
//! That a hostile value in a job that is taken is sent literally and adds no email header is
//! `hostile_values.rs`.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Figures, sized};
use crate::common::{APPROVER, Options, PASSWORD, TestApp, spawn_with};
use crate::staff::StaffClient;

/// Text an attacker would try: template syntax, SQL, CR/LF, control and bidi characters, or any
/// string at all; sometimes very long.
pub(super) fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "{{",
        "}}",
        "{{victim.first_name}}",
        "{{#each x}}",
        "{{> partial}}",
        "{{{raw}}}",
        "{{lookup . 'a'}}",
        "'; DROP TABLE outreach; --",
        "\" OR 1=1 --",
        "%00",
        "\0",
        "\r\n",
        "\r\nBcc: x@example.org",
        "\u{202e}",
        "\u{200f}",
        "\u{feff}",
        "\u{1b}[31m",
        "../../etc/passwd",
        "%2e%2e%2f",
        "+447700900999",
        "😀",
        "é",
    ]);
    prop_oneof![
        3 => prop::collection::vec(pieces, 0..8).prop_map(|p| p.concat()),
        2 => any::<String>(),
        1 => (prop::sample::select(vec!["A", "{{", "\u{202e}"]), 1_000usize..20_000).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Any JSON: wrong types, nesting (sometimes very deep), hostile strings.
fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        hostile_text().prop_map(Value::from),
    ];
    let nested = leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "request_id",
                    "case_ref",
                    "kind",
                    "crime",
                    "victim",
                    "contact",
                    "personalisation",
                    "phones",
                    "number",
                    "email",
                    "address",
                    "postal",
                    "first_name",
                    "categories",
                    "consent",
                    "at",
                    "outcome",
                ])
                .prop_map(String::from),
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        4 => nested,
        1 => (1usize..5_000).prop_map(|depth| serde_json::from_str::<Value>(&format!("{}{}", "[".repeat(depth.min(120)), "]".repeat(depth.min(120)))).unwrap_or(Value::Null)),
    ]
}

/// A body as bytes: JSON, or bytes that are not even UTF-8.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        5 => hostile_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..2_000),
        1 => (1usize..200_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
    ]
}

fn escaped(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn rows(app: &TestApp) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(app.state.store.pool()).await.unwrap()
    };
    (count("SELECT COUNT(*) FROM outreach").await, count("SELECT COUNT(*) FROM cases").await)
}

#[tokio::test]
async fn generated_hostile_input_never_gets_a_5xx_or_stores_what_was_refused() {
    let requests: u64 = sized(10_000, 50_000);
    let app = spawn_with(Options::default()).await;
    let document: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    // (method, path template) of every target.
    let mut targets: Vec<(Method, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if let Ok(method) = method.to_uppercase().parse() {
                targets.push((method, path.clone()));
            }
        }
    }
    let v1 = targets.len();
    targets.push((Method::POST, "/webhooks/sandbox/status".into()));
    targets.push((Method::POST, "/webhooks/sandbox/inbound".into()));
    // Every staff form but the logout (which takes no input, and would end the session the
    // others are posted in).
    let staff: Vec<String> = safereach::http::staff::protected_paths()
        .into_iter()
        .filter(|p| *p != "/staff/logout")
        .map(String::from)
        .collect();
    targets.extend(staff.iter().map(|p| (Method::POST, p.clone())));
    targets.push((Method::POST, "/staff/login".into()));
    let mut client = StaffClient::new(&app);
    client.login(APPROVER, PASSWORD).await;

    let strategy = (
        0..targets.len(),
        hostile_text(),
        hostile_text(),
        hostile_body(),
        prop::collection::vec((hostile_text(), hostile_text()), 0..6),
    );
    let seed: [u8; 32] = rand::random();
    eprintln!("seed {}", seed.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed),
    );
    let before = rows(&app).await;
    let (mut by_status, mut server_errors, mut created, mut first_errors) =
        (std::collections::BTreeMap::<u16, u64>::new(), 0u64, 0i64, Vec::new());
    for n in 0..requests {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let (target, segment, query, body, form) = tree.current();
        // URLs and form fields of a few kilobytes: longer is refused by any HTTP stack before
        // the app (the huge values go in JSON bodies).
        let short = |text: &str| text.chars().take(400).collect::<String>();
        let (segment, query) = (short(&segment), short(&query));
        let form: Vec<(String, String)> = form.iter().map(|(k, v)| (short(k), short(v))).collect();
        let (method, template) = &targets[target];
        let path = {
            let mut out = String::new();
            let mut rest = template.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                out.push_str(&escaped(&segment));
                rest = &rest[rest[open..].find('}').unwrap() + open + 1..];
            }
            out + rest
        };
        let status = if path.starts_with("/staff/") {
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            client.post(&path, &fields).await.status
        } else {
            let token = if path.starts_with("/webhooks/") { app.token.clone() } else { String::new() };
            let url = app.url(&format!(
                "{path}?q={}&token={}&{}={}",
                escaped(&query),
                token,
                escaped(&segment),
                escaped(&query)
            ));
            let mut request = app.http.request(method.clone(), url).bearer_auth(&app.key);
            if method != Method::GET && method != Method::DELETE {
                request = request.header("content-type", "application/json").body(body);
            }
            match request.timeout(std::time::Duration::from_secs(30)).send().await {
                Ok(response) => response.status(),
                Err(e) => panic!("request {n} to {method} {template} got no answer: {e}"),
            }
        };
        *by_status.entry(status.as_u16()).or_default() += 1;
        if status.is_server_error() {
            server_errors += 1;
            if first_errors.len() < 5 {
                first_errors.push(format!("{method} {template}: {status}"));
            }
        }
        if *method == Method::POST && template == "/v1/outreach" && status.as_u16() == 202 {
            created += 1;
        }
    }
    let alive = app.http.get(app.url("/healthz")).send().await.is_ok_and(|r| r.status().is_success());
    let after = rows(&app).await;
    Figures {
        fault: "hostile input (generated bodies, paths, query strings, forms)",
        backend: "SQLite",
        size: requests,
        unit: "requests",
        lost: 0,
        doubled: 0,
        server_errors,
        combinations: Some(targets.len() as u64),
        detail: json!({"targets": targets.len(), "v1_operations": v1, "staff_forms": staff.len() + 1, "webhooks": 2,
                       "answers": by_status, "jobs_stored": after.0 - before.0, "jobs_answered_202": created,
                       "first_errors": first_errors}),
    }
    .record();
    assert!(alive, "the process answers after the run");
    assert_eq!(server_errors, 0, "{first_errors:?}");
    assert_eq!(after.0 - before.0, created, "jobs stored only for input answered 202");
    assert!(after.1 - before.1 <= created, "cases stored only with a job taken");
}
