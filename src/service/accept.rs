//! Accepting outreach jobs: the one path used by the API and the demo. A request is accepted only
//! when its case, job, event and the record of work to do (the outbox) commit together.

use sqlx::AnyConnection;

use super::AppState;
use super::decisions::run_at;
use crate::domain::event::EventType;
use crate::domain::policy::{decide, is_safety_sensitive};
use crate::domain::{CaseHistory, Decision, JobStatus, Kind, OutreachRequest};
use crate::store::{Event, NewOutreach, Result, Store, StoreError, new_id};

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
    let result = accept_outreach(&state.store, input, |history| decide(request, history, now, &state.policy)).await?;
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

pub struct AcceptInput<'a> {
    pub request: &'a OutreachRequest,
    /// SHA-256 of the canonical request body: same id with another body is a conflict.
    pub request_hash: String,
    pub priority: bool,
    pub safety_sensitive: bool,
    pub now: i64,
    pub actor: String,
    /// Accepted with a test key: decided and recorded, sent only to the sandbox.
    pub test: bool,
}

#[derive(Debug)]
pub enum AcceptResult {
    /// Newly accepted: the answer to give, and the decision taken.
    Created { answer: serde_json::Value, decision: Decision },
    /// The same request again: the first answer.
    Replayed { answer: serde_json::Value },
    /// The same request id with a different body.
    Conflict,
}

/// Accept an outreach request: create or extend its case, decide it (with `decide`, given the
/// case's history inside the same transaction), and record the job, its event and — when it
/// is to be sent or deferred — the work for the queue, all in one commit.
pub async fn accept_outreach(
    store: &Store,
    input: AcceptInput<'_>,
    decide: impl Fn(&CaseHistory) -> Decision,
) -> Result<AcceptResult> {
    match try_accept(store, &input, &decide).await {
        // Another process accepted the same request id meanwhile: answer as it did.
        Err(e) if e.is_unique_violation() => try_accept(store, &input, &decide).await,
        result => result,
    }
}

async fn try_accept(
    store: &Store,
    input: &AcceptInput<'_>,
    decide: &impl Fn(&CaseHistory) -> Decision,
) -> Result<AcceptResult> {
    let mut tx = store.begin().await?;
    let result = accept_in(store, &mut tx, input, decide).await?;
    tx.commit().await?;
    Ok(result)
}

/// `accept_outreach` inside the caller's transaction (so that several requests can later be
/// accepted in one commit), which must commit for the job to exist.
async fn accept_in(
    store: &Store,
    tx: &mut AnyConnection,
    input: &AcceptInput<'_>,
    decide: &impl Fn(&CaseHistory) -> Decision,
) -> Result<AcceptResult> {
    let req = input.request;
    if let Some((hash, answer)) = store.accepted_request(&mut *tx, &req.request_id).await? {
        if hash != input.request_hash {
            return Ok(AcceptResult::Conflict);
        }
        return Ok(AcceptResult::Replayed { answer: parse_json(&answer)? });
    }

    store.upsert_case(&mut *tx, req, input.now, input.priority, input.safety_sensitive).await?;
    store.record_phones(&mut *tx, req).await?;
    let history = store.history_of(&mut *tx, req, None, input.now, input.test).await?;
    let decision = decide(&history);

    let id = new_id("out");
    let status = JobStatus::for_outcome(decision.outcome());
    let answer = answer_json(&id, &req.case_ref, status.as_str(), &decision);
    let new = NewOutreach {
        id: &id,
        request: req,
        request_hash: &input.request_hash,
        priority: input.priority,
        now: input.now,
        decision: &decision,
        answer: &answer,
        test: input.test,
    };
    store.insert_outreach(&mut *tx, &new).await?;
    Event::new(&req.case_ref, input.now, &input.actor, EventType::Accepted)
        .outreach(&id)
        .decision(&decision)
        .append(&mut *tx)
        .await?;
    if let Some(run_at) = run_at(&decision, input.now) {
        store.enqueue(&mut *tx, &id, run_at).await?;
    }
    Ok(AcceptResult::Created { answer, decision })
}

/// The 202 answer of `POST /v1/outreach` (contract shape).
pub fn answer_json(id: &str, case_ref: &str, status: &str, decision: &Decision) -> serde_json::Value {
    serde_json::json!({
        "outreach_id": id,
        "case_ref": case_ref,
        "status": status,
        "decision": {
            "outcome": decision.outcome().as_str(),
            "reason": decision.reason().map(|r| r.as_str()),
            "channel": decision.route().map(|r| r.channel.as_str()),
            "template": decision.route().map(|r| r.template),
            "not_before": decision.not_before().map(crate::time::rfc3339),
        }
    })
}

fn parse_json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}
