//! A local stand-in for Twilio's Messages API (Twilio can't be reached from here), speaking the
//! documented protocol: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded,
//! basic auth with the account SID and auth token; 201 with the message resource (`sid`,
//! `status`), or an error resource (`code`, `message`, `status`). After a message is created it
//! POSTs signed status callbacks (`sent`, then `delivered`) to the message's `StatusCallback`,
//! as Twilio does, with `X-Twilio-Signature` computed independently here (the app's own
//! function is not used, so a wrong implementation on either side shows).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "stand-in-auth-token";
pub const FROM: &str = "+447700900001";
/// Twilio answers 21211 ("invalid 'To' phone number") for this one.
pub const INVALID_NUMBER: &str = "+447700900999";

/// What the stand-in was asked to send.
#[derive(Debug, Clone)]
pub struct Created {
    pub sid: String,
    pub form: HashMap<String, String>,
}

#[derive(Default)]
pub struct Shared {
    pub created: Mutex<Vec<Created>>,
    /// Requests answered, whatever the answer.
    pub requests: Mutex<u32>,
    /// Answer 503 to everything (an outage).
    pub failing: AtomicBool,
    /// Don't send status callbacks.
    pub quiet: AtomicBool,
    /// Milliseconds to wait before answering a message it created (and called back about): a
    /// Twilio that took the message but whose answer is lost or late.
    pub answer_after_ms: AtomicU64,
}

pub struct TwilioStandIn {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl TwilioStandIn {
    pub async fn start() -> TwilioStandIn {
        Self::start_on(0, Arc::new(Shared::default())).await
    }

    /// On a given port (to bring a stopped stand-in back where the app expects it).
    pub async fn start_on(port: u16, shared: Arc<Shared>) -> TwilioStandIn {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create))
            // No keep-alive: once stopped, the stand-in is really gone (no pooled connection
            // still reaches a handler).
            .layer(axum::middleware::map_response(|mut r: Response| async move {
                r.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
                r
            }))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TwilioStandIn { addr, shared, server }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn created(&self) -> Vec<Created> {
        self.shared.created.lock().unwrap().clone()
    }

    pub fn requests(&self) -> u32 {
        *self.shared.requests.lock().unwrap()
    }

    /// Stop listening: connections are refused from now on.
    pub async fn stop(self) -> Arc<Shared> {
        self.server.abort();
        let _ = self.server.await;
        self.shared
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16()});
    (status, axum::Json(body)).into_response()
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *shared.requests.lock().unwrap() += 1;
    if shared.failing.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, 20500, "Service unavailable");
    }
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}")));
    if sid != ACCOUNT_SID || headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: HashMap<String, String> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    for field in ["To", "From", "Body"] {
        if form.get(field).is_none_or(|v| v.is_empty()) {
            return error(StatusCode::BAD_REQUEST, 21602, "A required parameter is missing");
        }
    }
    if form["To"] == INVALID_NUMBER {
        return error(StatusCode::BAD_REQUEST, 21211, "The 'To' number is not a valid phone number.");
    }
    let message_sid = format!("SM{}", uuid::Uuid::now_v7().simple());
    shared.created.lock().unwrap().push(Created { sid: message_sid.clone(), form: form.clone() });
    if let Some(callback) = form.get("StatusCallback").cloned()
        && !shared.quiet.load(Ordering::SeqCst)
    {
        let (sid, to) = (message_sid.clone(), form["To"].clone());
        tokio::spawn(async move {
            for status in ["sent", "delivered"] {
                let params = [
                    ("AccountSid", ACCOUNT_SID),
                    ("ApiVersion", "2010-04-01"),
                    ("From", FROM),
                    ("MessageSid", sid.as_str()),
                    ("MessageStatus", status),
                    ("SmsSid", sid.as_str()),
                    ("SmsStatus", status),
                    ("To", to.as_str()),
                ];
                let _ = signed_post(&callback, AUTH_TOKEN, &params).await;
            }
        });
    }
    let delay = shared.answer_after_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let resource = json!({
        "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": form["Body"],
        "direction": "outbound-api", "from": form["From"], "to": form["To"],
        "num_segments": "1", "sid": message_sid, "status": "queued",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}.json"),
    });
    (StatusCode::CREATED, axum::Json(resource)).into_response()
}

/// Twilio's signature, written out here from its documentation: HMAC-SHA1 of the URL followed by
/// the parameters sorted by name, each name then value, base64.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String = std::iter::once(url.to_string()).chain(sorted.iter().map(|(k, v)| format!("{k}{v}"))).collect();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// POST a form to `url` signed as Twilio signs its callbacks.
pub async fn signed_post(url: &str, token: &str, params: &[(&str, &str)]) -> (StatusCode, String) {
    let signature = twilio_signature(token, url, params);
    post_form(url, params, Some(&signature)).await
}

pub async fn post_form(url: &str, params: &[(&str, &str)], signature: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().post(url).form(params);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    let response = request.send().await.expect("callback request");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}
