//! Accepting outreach jobs: the one path used by the API and the demo.

use crate::domain::policy::{decide, is_safety_sensitive};
use crate::domain::{Kind, OutreachRequest};
use crate::service::AppState;
use crate::store::{AcceptInput, AcceptResult, Result};

/// Decide and record a validated request. `raw` is the body as received: the same `request_id`
/// with a body that differs in anything but key order and whitespace is a conflict. `test`: a
/// test key's job (sent to the sandbox only, left out of reports and job metrics).
pub async fn accept(
    state: &AppState,
    request: &OutreachRequest,
    raw: &serde_json::Value,
    actor: String,
    test: bool,
) -> Result<AcceptResult> {
    let request_hash = state.store.request_fingerprint(&crate::domain::request::canonical(raw));
    let now = state.clock.now();
    let input = AcceptInput {
        request,
        request_hash,
        // A pre-text implies priority.
        priority: request.kind == Kind::PriorityPretext || request.priority == Some(true),
        safety_sensitive: is_safety_sensitive(request, &state.policy),
        now: now.timestamp_millis(),
        actor,
        test,
    };
    let result = state.store.accept_outreach(input, |history| decide(request, history, now, &state.policy)).await?;
    if let AcceptResult::Created { decision, answer } = &result {
        if !test {
            state.metrics.job_accepted(decision.outcome().as_str(), decision.reason().map(|r| r.as_str()));
        }
        tracing::info!(
            outreach_id = answer["outreach_id"].as_str().unwrap_or_default(),
            case_ref = %request.case_ref,
            kind = request.kind.as_str(),
            outcome = decision.outcome().as_str(),
            reason = decision.reason().map(|r| r.as_str()).unwrap_or("-"),
            test,
            "outreach accepted"
        );
        state.relay_wake.notify_one();
    }
    Ok(result)
}
