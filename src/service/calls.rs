//! Recording an advocate's call (`POST /v1/cases/{ref}/calls`): one use case that owns its
//! transaction and its timeline events. A call decides (SAFE-CONTACT.md, "Calls"): `declined`
//! blocks every job of the case (rule 1a), `wrong_number` suppresses the number called, or every
//! number recorded as the victim's on the case (rule 3), and the other outcomes count as attempts
//! for rule 12. The jobs of the case still waiting (queued, deferred, held) are decided again in
//! the same transaction, under the case lock, so that a worker's decide-and-claim either sees the
//! call or has already claimed (then the message is on its way: `too_late`).

use super::AppState;
use super::decisions::record_decision;
use crate::domain::call::CallOutcome;
use crate::domain::contact::normalise_uk_mobile;
use crate::domain::event::EventType;
use crate::domain::policy::decide;
use crate::domain::{Decision, JobStatus, ReasonCode};
use crate::store::{Event, NewCall, Result, SuppressionKind};

/// A call as the triage system reports it.
#[derive(Debug, Clone)]
pub struct CallInput<'a> {
    /// When the call was made (ms).
    pub at: i64,
    pub outcome: CallOutcome,
    /// The number called, as given.
    pub number: Option<&'a str>,
    /// Why the victim declined (free text, personal).
    pub reason: Option<&'a str>,
}

/// What recording a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecorded {
    pub call_id: String,
    /// Jobs of the case the call stopped: blocked now, with the reason.
    pub stopped: Vec<(String, ReasonCode)>,
    /// Jobs whose message a worker is handing to a provider right now: too late to stop.
    pub too_late: Vec<String>,
    /// How many numbers a `wrong_number` suppressed.
    pub suppressed_numbers: usize,
}

/// The number as the store keys it: a UK mobile normalised (one number, one key), anything else
/// (a landline the advocate dialled) trimmed, as a reply's sender is.
pub fn number_key_form(raw: &str) -> String {
    normalise_uk_mobile(raw).unwrap_or_else(|| raw.trim().to_string())
}

/// Record a call on `case_ref` and act on it. None when the case does not exist.
pub async fn record_call(
    state: &AppState,
    case_ref: &str,
    call: &CallInput<'_>,
    actor: &str,
) -> Result<Option<CallRecorded>> {
    let store = &state.store;
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let number = call.number.map(number_key_form);
    let mut tx = store.begin().await?;
    if !store.case_exists(&mut tx, case_ref).await? {
        return Ok(None);
    }
    store.lock_case(&mut tx, case_ref).await?;
    let new = NewCall { case_ref, at: call.at, outcome: call.outcome, number: number.as_deref(), reason: call.reason };
    let call_id = store.insert_call(&mut tx, &new, now_ms).await?;
    // Whether a number or a reason was given, never what they are.
    Event::new(case_ref, now_ms, actor, EventType::Call)
        .detail(serde_json::json!({
            "outcome": call.outcome.as_str(),
            "at": crate::time::rfc3339_ms(call.at),
            "call_id": call_id,
            "number_given": number.is_some(),
            "reason_given": call.reason.is_some(),
        }))
        .append(&mut tx)
        .await?;

    let mut suppressed_numbers = 0;
    if call.outcome == CallOutcome::WrongNumber {
        // The number called; without one, every number recorded as the victim's on the case.
        let mut keys = match &number {
            Some(n) => vec![store.address_key(n)],
            None => store.victim_number_keys(&mut tx, case_ref).await?,
        };
        keys.sort();
        keys.dedup();
        store.lock_addresses(&mut tx, &keys).await?;
        for key in &keys {
            store.suppress_key(&mut tx, key, SuppressionKind::WrongNumber, Some(case_ref), now_ms).await?;
        }
        suppressed_numbers = keys.len();
        Event::new(case_ref, now_ms, actor, EventType::Suppressed)
            .reason(SuppressionKind::WrongNumber.as_str())
            .detail(serde_json::json!({ "call_id": call_id, "numbers": keys.len() }))
            .append(&mut tx)
            .await?;
    }

    // Decide again what still waits. Only a block is taken from here (a held job waits for a
    // person whatever the rules say now, and the worker decides the rest when it runs).
    let mut stopped = Vec::new();
    let mut too_late = Vec::new();
    for job in store.pending_jobs_for_update(&mut tx, case_ref).await? {
        if store.message_in_flight(&mut tx, &job.id, now_ms).await? {
            too_late.push(job.id.clone());
            continue;
        }
        let request = job.request()?;
        let history = store.history(&mut tx, &request, Some(job.as_this()), now_ms).await?;
        match decide(&request, &history, now, &state.policy) {
            decision @ Decision::Block(reason) => {
                record_decision(store, &mut tx, &job, &decision, now_ms, actor, EventType::Decided).await?;
                stopped.push((job.id.clone(), reason));
            }
            // Rule 12 may be met now: the worker looks at once.
            _ if job.status == JobStatus::Deferred
                && job.reason.as_deref() == Some(ReasonCode::CallsFirst.as_str()) =>
            {
                store.enqueue(&mut tx, &job.id, now_ms).await?;
            }
            _ => {}
        }
    }
    tx.commit().await?;
    state.relay_wake.notify_one();
    tracing::info!(
        case_ref = %case_ref,
        call_id = %call_id,
        outcome = call.outcome.as_str(),
        stopped = stopped.len(),
        too_late = too_late.len(),
        suppressed_numbers,
        "call recorded"
    );
    Ok(Some(CallRecorded { call_id, stopped, too_late, suppressed_numbers }))
}
