//! Letters to a print-and-post service over HTTP.
//!
//! Each letter is rendered to PDF (as the sandbox does) and POSTed to `SAFEREACH_PRINT_URL` as
//! `application/pdf`, with our message id as its reference (`X-Reference`, and `Idempotency-Key`
//! so that a retried POST prints once) and `Authorization: Bearer <SAFEREACH_PRINT_TOKEN>` when a
//! token is set. The service reports progress (`printed`, `posted`, `returned`) to
//! `POST /webhooks/print/status?token=…` with that reference (see `http::webhooks::print`).

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};

use super::letter::{LetterSender, render_outbound};
use super::{Accepted, ConfigError, OutboundMessage, Provider, SendError, transport_error};
use crate::clock::Clock;

const PROVIDER: &str = "print";

pub struct PrintService {
    client: reqwest::Client,
    url: Url,
    token: Option<String>,
    sender: Arc<LetterSender>,
    clock: Clock,
}

impl PrintService {
    pub fn new(
        client: reqwest::Client,
        url: &str,
        token: Option<String>,
        sender: LetterSender,
        clock: Clock,
    ) -> Result<PrintService, ConfigError> {
        let url = Url::parse(url).map_err(|e| ConfigError::Invalid("SAFEREACH_PRINT_URL", e.to_string()))?;
        Ok(PrintService { client, url, token, sender: Arc::new(sender), clock })
    }
}

#[async_trait]
impl Provider for PrintService {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        let pdf = render_outbound(self.sender.clone(), msg, self.clock).await?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/pdf")
            .header("X-Reference", &msg.id)
            .header("Idempotency-Key", &msg.id)
            .body(pdf);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        // A call cut off after the request went stays retryable here, unlike SMS: the service
        // dedupes by `Idempotency-Key` (our message id) and answers a repeat with 409, which is
        // taken below, so a retry cannot print and post a second letter.
        let status = request
            .send()
            .await
            .map_err(|e| match transport_error(PROVIDER, &e) {
                SendError::InDoubt { why, .. } => SendError::Transient(format!("{PROVIDER}: {why}")),
                other => other,
            })?
            .status();
        match status {
            // 409: the service already has this reference (an earlier try that we did not hear
            // back from): it is taken.
            s if s.is_success() || s == StatusCode::CONFLICT => {
                tracing::debug!(message_id = %msg.id, "print service accepted the letter");
                Ok(Accepted { provider: PROVIDER, provider_ref: msg.id.clone() })
            }
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY => {
                Err(SendError::Permanent(format!("print service refused the letter ({})", status.as_u16())))
            }
            s => Err(SendError::Transient(format!("print service answered {}", s.as_u16()))),
        }
    }
}
