//! The access matrix's webhook half: every provider callback route (`http::webhooks::callback_paths()`,
//! the table the router mounts them from, so that a new one cannot be left out) × every
//! provider's secret: no secret, a wrong token, each provider's own token (sandbox, Kannel, print
//! service, email bounces), a valid Twilio signature, and a signature made with another key.
//! Exactly the route's own provider's secret gets through (403 otherwise), with every provider
//! configured so that every route is mounted.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use safereach::http::webhooks::{Owner, callback_paths};
use serde_json::{Value, json};

use crate::common::{Options, TestApp, spawn_with};
use crate::standin;

/// What a caller proves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Secret {
    Nothing,
    WrongToken,
    /// The `?token=` of this provider.
    Token(Owner),
    TwilioSignature,
    SignatureWithAnotherKey,
}

enum Body {
    Json(Value),
    Form(Vec<(&'static str, String)>),
    Raw(&'static str, &'static str),
    Empty,
}

/// A plausible callback for `path`: what its provider would send (an unknown message, a reply).
/// A route missing here fails the test: say what its provider sends.
fn callback(path: &str, n: usize) -> (Method, Vec<(&'static str, String)>, Body) {
    let q = |pairs: &[(&'static str, &str)]| pairs.iter().map(|(k, v)| (*k, v.to_string())).collect::<Vec<_>>();
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match path {
        "/webhooks/sandbox/status" => {
            (Method::POST, vec![], Body::Json(json!({"provider_ref": "sbx_matrix", "status": "delivered"})))
        }
        "/webhooks/sandbox/inbound" => {
            (Method::POST, vec![], Body::Json(json!({"from": "+447700900987", "body": format!("matrix {n}")})))
        }
        "/webhooks/kannel/dlr" => (Method::GET, q(&[("id", "msg_matrix"), ("status", "1")]), Body::Empty),
        "/webhooks/kannel/inbound" => (
            Method::GET,
            q(&[("from", "07700900987"), ("to", "1"), ("text", &format!("matrix {n}")), ("ts", "1764000000")]),
            Body::Empty,
        ),
        "/webhooks/twilio/status" => (
            Method::POST,
            q(&[("id", "msg_matrix")]),
            Body::Form(q(&[("MessageSid", "SMmatrix"), ("MessageStatus", "delivered")])),
        ),
        "/webhooks/twilio/inbound" => (
            Method::POST,
            vec![],
            Body::Form(q(&[("From", "+447700900987"), ("Body", "matrix"), ("MessageSid", &format!("SMmatrix{n}"))])),
        ),
        "/webhooks/print/status" => {
            (Method::POST, vec![], Body::Json(json!({"reference": "msg_matrix", "status": "printed", "at": at})))
        }
        "/webhooks/email/bounce" => {
            (Method::POST, vec![], Body::Raw("message/rfc822", "Subject: matrix\r\n\r\nnot a delivery report\r\n"))
        }
        other => panic!("a new callback route {other}: add what its provider sends to access_webhooks.rs"),
    }
}

/// Every provider configured (none of them reachable: nothing is sent), so every route is mounted.
async fn app_with_every_provider() -> TestApp {
    spawn_with(Options {
        clock: Some("2026-11-23T10:00:00Z".into()),
        role: safereach::app::Role::Api,
        configure: Box::new(|c| {
            crate::kannel::unreachable_kannel(c);
            c.sms_provider = "sandbox,kannel,twilio".into();
            c.twilio_account_sid = Some(standin::ACCOUNT_SID.into());
            c.twilio_auth_token = Some(standin::AUTH_TOKEN.into());
            c.twilio_from = Some(standin::FROM.into());
            c.twilio_base_url = "http://127.0.0.1:1".into();
            c.letter_provider = "http".into();
            c.print_url = Some("http://127.0.0.1:1/letters".into());
            c.email_provider = "smtp".into();
            c.smtp_url = Some("smtp://127.0.0.1:1".into());
        }),
        ..Options::default()
    })
    .await
}

/// Returns (combinations, answers by status, wrong combinations).
pub async fn webhook_matrix() -> (u64, BTreeMap<u16, u64>, Vec<String>) {
    let app = app_with_every_provider().await;
    let tokens = &app.state.webhooks;
    let token_of = |owner: Owner| match owner {
        Owner::Sandbox => tokens.sandbox.clone(),
        Owner::Kannel => tokens.kannel.clone(),
        Owner::Print => tokens.print.clone(),
        Owner::Bounce => tokens.bounce.clone(),
        Owner::Twilio => None,
    };
    let mut secrets =
        vec![Secret::Nothing, Secret::WrongToken, Secret::TwilioSignature, Secret::SignatureWithAnotherKey];
    secrets.extend([Owner::Sandbox, Owner::Kannel, Owner::Print, Owner::Bounce].map(Secret::Token));
    let routes = callback_paths();
    assert!(routes.len() >= 8, "the callback routes: {routes:?}");
    let (mut checked, mut by_status, mut wrong) = (0u64, BTreeMap::new(), Vec::new());
    for (owner, path) in routes {
        for secret in &secrets {
            let (method, mut query, body) = callback(path, checked as usize);
            match secret {
                Secret::Token(o) => query.push(("token", token_of(*o).expect("configured"))),
                Secret::WrongToken => query.push(("token", safereach::secrets::generate())),
                _ => {}
            }
            let mut url = app.url(path);
            if !query.is_empty() {
                let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish();
                url = format!("{url}?{encoded}");
            }
            let mut request = app.http.request(method, &url);
            let params: Vec<(&str, &str)> = match &body {
                Body::Form(form) => form.iter().map(|(k, v)| (*k, v.as_str())).collect(),
                _ => vec![],
            };
            let key = match secret {
                Secret::TwilioSignature => Some(standin::AUTH_TOKEN),
                Secret::SignatureWithAnotherKey => Some("another-auth-token"),
                _ => None,
            };
            if let Some(key) = key {
                request = request.header("X-Twilio-Signature", standin::twilio_signature(key, &url, &params));
            }
            request = match &body {
                Body::Json(value) => request.json(value),
                Body::Form(_) => request.form(&params),
                Body::Raw(content_type, text) => request.header("content-type", *content_type).body(*text),
                Body::Empty => request,
            };
            let status = request.send().await.unwrap().status();
            *by_status.entry(status.as_u16()).or_default() += 1;
            checked += 1;
            let own = match secret {
                Secret::Token(o) => *o == owner,
                Secret::TwilioSignature => owner == Owner::Twilio,
                _ => false,
            };
            let right = if own {
                !matches!(status.as_u16(), 401 | 403 | 404 | 405) && !status.is_server_error()
            } else {
                status == StatusCode::FORBIDDEN
            };
            if !right {
                wrong.push(format!("{path} ({owner:?}) with {secret:?}: {status}"));
            }
        }
    }
    app.stop().await;
    (checked, by_status, wrong)
}
