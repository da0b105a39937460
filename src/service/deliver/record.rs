//! Record what the providers said: a batch of sends in one transaction (a lone send is a batch
//! of one). The messages handed over and their jobs' statuses are a statement each for the lot,
//! the timeline events two; a refusal, a send in doubt and a retry are rarer and written one by
//! one, as before.

use super::{ACTOR, Delivery, Prepared, Processed, RETRIES_EXHAUSTED, SEND_IN_DOUBT, WorkerError, backoff};
use crate::channels::{Accepted, SendError};
use crate::domain::event::EventType;
use crate::domain::{JobStatus, MessageStatus};
use crate::store::Event;

/// A claimed message handed to its provider, and what the provider said.
pub(super) struct Sent {
    pub prepared: Prepared,
    pub result: Result<Accepted, SendError>,
}

/// Record these sends in one transaction; one answer per send, in order. Should the batch fail,
/// its sends are recorded one at a time, so that one cannot fail the others; unless the database
/// is out of reach, which every send is told (the queue runs the job again: its message, still
/// `sending`, is then looked at after the lease and dead-lettered in doubt, never sent twice).
pub(super) async fn record_sends(d: &Delivery, sends: &[Sent]) -> Vec<Result<Processed, WorkerError>> {
    match try_record(d, sends).await {
        Ok(done) => done.into_iter().map(Ok).collect(),
        Err(e) if sends.len() == 1 => vec![Err(e)],
        Err(e) if e.is_unavailable() => {
            let why = e.to_string();
            std::iter::once(Err(e)).chain((1..sends.len()).map(|_| Err(WorkerError::unavailable(&why)))).collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, sends = sends.len(), "a batch of send results failed; recording them one at a time");
            let mut done = Vec::with_capacity(sends.len());
            for sent in sends {
                done.push(Box::pin(record_sends(d, std::slice::from_ref(sent))).await.remove(0));
            }
            done
        }
    }
}

async fn try_record(d: &Delivery, sends: &[Sent]) -> Result<Vec<Processed>, WorkerError> {
    let store = &d.store;
    let now = d.clock.now_ms();
    let mut tx = store.begin().await?;
    // In the order a batch of reports takes them: see `lock_messages`.
    let ids: Vec<&str> = sends.iter().map(|s| s.prepared.message.id.as_str()).collect();
    store.lock_messages(&mut tx, &ids).await?;
    let (mut handed_over, mut statuses, mut events, mut retries) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut done = Vec::with_capacity(sends.len());
    for Sent { prepared, result } in sends {
        let (job, message) = (&prepared.job, &prepared.message);
        let channel = prepared.route.channel.as_str();
        done.push(match result {
            Ok(accepted) => {
                handed_over.push((message.id.as_str(), accepted.provider, accepted.provider_ref.as_str()));
                statuses.push((job.id.as_str(), JobStatus::Sent));
                events.push(
                    Event::new(&job.case_ref, now, ACTOR, EventType::Sent)
                        .outreach(&job.id)
                        .message(&message.id)
                        .channel(channel)
                        .status(MessageStatus::Sent)
                        .detail(serde_json::json!({
                            "provider": accepted.provider,
                            "template": message.template,
                            "template_version": message.template_version,
                        })),
                );
                tracing::info!(
                    case_ref = %job.case_ref,
                    outreach_id = %job.id,
                    message_id = %message.id,
                    channel,
                    provider = accepted.provider,
                    "message handed to the provider"
                );
                Processed::Sent { message_id: message.id.clone() }
            }
            Err(SendError::Permanent(why)) => {
                tracing::warn!(message_id = %message.id, error = %why, "provider refused the message for good");
                store.mark_failed(&mut tx, &message.id, "", now).await?;
                statuses.push((job.id.as_str(), JobStatus::Failed));
                events.push(
                    Event::new(&job.case_ref, now, ACTOR, EventType::SendFailed)
                        .outreach(&job.id)
                        .message(&message.id)
                        .channel(channel)
                        .status(MessageStatus::Failed)
                        .reason("permanent"),
                );
                Processed::Failed
            }
            // The provider may have the message: no retry, no other provider. Like a send cut off
            // mid-way, it waits for staff, who ask the provider (our message id is the reference)
            // and requeue or cancel it.
            Err(SendError::InDoubt { provider, why }) => {
                tracing::warn!(
                    message_id = %message.id,
                    provider,
                    error = %why,
                    "no answer from the provider, which may have the message; dead-lettered for staff to check, not sent again"
                );
                store.leave_in_doubt(&mut tx, &message.id, provider).await?;
                statuses.push((job.id.as_str(), JobStatus::DeadLettered));
                events.push(
                    Event::new(&job.case_ref, now, ACTOR, EventType::DeadLettered)
                        .outreach(&job.id)
                        .message(&message.id)
                        .channel(channel)
                        .reason(SEND_IN_DOUBT)
                        .detail(serde_json::json!({ "provider": provider })),
                );
                Processed::DeadLettered
            }
            Err(SendError::Transient(why)) => {
                tracing::warn!(message_id = %message.id, error = %why, "provider failed; will retry");
                store.release_message(&mut tx, &message.id, now).await?;
                let attempts = store.count_attempt(&mut tx, &job.id, now).await?;
                events.push(
                    Event::new(&job.case_ref, now, ACTOR, EventType::SendFailed)
                        .outreach(&job.id)
                        .message(&message.id)
                        .channel(channel)
                        .reason("transient")
                        .detail(serde_json::json!({ "attempt": attempts })),
                );
                if attempts >= d.max_attempts as i64 {
                    statuses.push((job.id.as_str(), JobStatus::DeadLettered));
                    events.push(
                        Event::new(&job.case_ref, now, ACTOR, EventType::DeadLettered)
                            .outreach(&job.id)
                            .reason(RETRIES_EXHAUSTED),
                    );
                    Processed::DeadLettered
                } else {
                    let at = now + backoff(d.retry_base, attempts as u32).as_millis() as i64;
                    retries.push((job.id.as_str(), at));
                    Processed::Retrying { at }
                }
            }
        });
    }
    let mut writes = store.writes();
    store.mark_sent_all(&mut writes, &handed_over, now);
    store.set_outreach_statuses(&mut writes, &statuses, now);
    Event::write_all(&mut writes, &events);
    store.enqueue_all(&mut writes, &retries);
    writes.run(&mut tx).await?;
    tx.commit().await?;
    Ok(done)
}
