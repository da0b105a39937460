//! Inbound SMS replies, from any provider: classify, match to the case of the latest outbound
//! message to that number, record, suppress and alert. We never send an automatic reply, so no
//! classification can text a safety-sensitive case back.

use serde_json::{Value, json};

use crate::domain::contact::normalise_uk_mobile;
use crate::domain::event::EventType;
use crate::domain::reply::{Suppression, alert_for};
use crate::service::AppState;
use crate::store::{Event, Result, SuppressionKind};

/// Record one inbound SMS. `from` is the sender as the provider gave it. `sent_at`, the time
/// the provider says the reply was sent (Kannel's `ts`), makes the same reply from the same number
/// within a minute of it a duplicate (a provider re-delivering without an id of its own).
pub async fn receive_reply(
    state: &AppState,
    provider: &str,
    from: &str,
    body: &str,
    provider_ref: Option<&str>,
    sent_at: Option<i64>,
) -> Result<Value> {
    let store = &state.store;
    // The same reply delivered again (a provider retrying): answer as the first time, once.
    if let Some(provider_ref) = provider_ref
        && let Some((reply_id, case_ref, classification)) = store.reply_by_provider_ref(provider, provider_ref).await?
    {
        tracing::info!(reply_id = %reply_id, "duplicate reply ignored");
        return Ok(
            json!({ "reply_id": reply_id, "matched": case_ref.is_some(), "classification": classification, "duplicate": true }),
        );
    }
    let now = state.clock.now_ms();
    // One number, one key: whichever form the provider gives (`+447…`, `447…`, `00447…`, `07…`),
    // the reply's sender is compared as the E.164 number. One we can't read as a UK mobile is
    // still recorded (for staff), keyed as given.
    let number = normalise_uk_mobile(from).unwrap_or_else(|| from.trim().to_string());
    let matched = store.latest_message_to(&number).await?;
    let case_ref = matched.as_ref().map(|(_, case)| case.as_str());
    let message_id = matched.as_ref().map(|(id, _)| id.as_str());
    let actor = format!("provider:{provider}");
    // A reply to a satisfaction survey may be its answer.
    let (analysis, survey_answer) = super::survey::classify(store, message_id, body).await?;
    let classification = analysis.classification;

    let mut tx = store.begin().await?;
    // The case first, then the number (`suppress` takes its lock): the order a worker takes them
    // in, so the two never wait for each other. (Taken before the duplicate check, it also lets
    // two deliveries of one reply to a known case take turns.)
    if let Some(case_ref) = case_ref {
        store.lock_case(&mut tx, case_ref).await?;
    }
    if let Some(sent_at) = sent_at
        && let Some((reply_id, case_ref, classification)) =
            store.same_reply_within_a_minute(&mut tx, provider, &number, body, sent_at).await?
    {
        tracing::info!(reply_id = %reply_id, "duplicate reply ignored");
        return Ok(
            json!({ "reply_id": reply_id, "matched": case_ref.is_some(), "classification": classification, "duplicate": true }),
        );
    }
    let reply_id = store
        .insert_reply(
            &mut tx,
            case_ref,
            message_id,
            provider,
            (provider_ref, sent_at),
            &number,
            body,
            classification.as_str(),
            now,
        )
        .await?;
    if let Some(answer) = survey_answer {
        super::survey::record_answer(store, &mut tx, &reply_id, case_ref, answer, now, &actor).await?;
    }
    // Suppression applies to the number whether or not a case matched.
    if let Some(suppression) = analysis.suppression {
        let kind = match suppression {
            Suppression::OptOut => SuppressionKind::OptOut,
            Suppression::Unsafe => SuppressionKind::Unsafe,
        };
        store.suppress(&mut tx, &number, kind, case_ref, now).await?;
        if let Some(case_ref) = case_ref {
            Event::new(case_ref, now, &actor, EventType::Suppressed).reason(kind.as_str()).append(&mut tx).await?;
        }
    }
    let lifted = analysis.lifts_opt_out && store.lift_opt_out(&mut tx, &number, now).await?;
    let mut alert_event_id = None;
    if let Some(case_ref) = case_ref {
        let mut reply = Event::new(case_ref, now, &actor, EventType::Reply).classification(classification.as_str());
        if let Some(id) = message_id {
            reply = reply.message(id);
        }
        reply.detail(json!({ "reply_id": reply_id })).append(&mut tx).await?;
        if lifted {
            Event::new(case_ref, now, &actor, EventType::SuppressionLifted).reason("opt_in").append(&mut tx).await?;
        }
        if let Some(window) = &analysis.time_preference {
            let window = serde_json::to_string(window).unwrap_or_default();
            store.set_call_window(&mut tx, case_ref, &window).await?;
        }
        if let Some((urgency, reason)) = alert_for(classification) {
            alert_event_id = Event::new(case_ref, now, &actor, EventType::Alert)
                .reason(reason)
                .classification(classification.as_str())
                .detail(json!({ "urgency": urgency, "reply_id": reply_id }))
                .append(&mut tx)
                .await
                .map(Some)?;
        }
    }
    // An urgent reply reaches staff on call at any hour (super::oncall).
    let reply = super::oncall::Reply { classification, case_ref, reply_id: &reply_id, alert_event_id };
    let oncall_work = super::oncall::raise(store, &mut tx, &state.oncall, reply, now).await?;
    tx.commit().await?;
    if oncall_work {
        state.relay_wake.notify_one();
    }
    state.metrics.reply(classification.as_str());
    tracing::info!(
        reply_id = %reply_id,
        case_ref = case_ref.unwrap_or("-"),
        classification = classification.as_str(),
        matched = matched.is_some(),
        "reply received"
    );
    Ok(json!({ "reply_id": reply_id, "matched": matched.is_some(), "classification": classification.as_str() }))
}
