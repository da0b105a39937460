//! On-call alerts: a victim's urgent reply reaches a person at any hour.
//!
//! - `raise`, in the reply's own transaction: the urgent item, the notifications of its first step
//!   (the first contact of each on-call list) and their outbox rows, and the item's own outbox row
//!   at the escalation time. A crash after the reply's commit loses nothing.
//! - `process`, called by the worker for those outbox rows: a notification is claimed with a
//!   lease, handed to the configured SMS or email providers (failover and breakers as for any
//!   message), and recorded; a transient failure is retried with the same back-off; a send in
//!   doubt is never repeated, and the escalation moves on to the next contact at once instead
//!   (safer for an urgent alert than waiting for staff to check). The item's row, when due and
//!   not acknowledged, notifies the next step and schedules the one after, round the lists.
//! - `acknowledge`, in the transaction of a review action (`super::review`): acknowledging the
//!   alert or the unmatched reply on the review page stops the item.
//!
//! Notifications carry no personal data (the fixed wording of `domain::oncall`); the contacts are
//! staff data and are never logged.

use std::sync::Arc;

use serde_json::json;

use super::deliver::{
    ACTOR, Delivery, Processed, RETRIES_EXHAUSTED, SEND_IN_DOUBT, SEND_INTERRUPTED, WorkerError, backoff,
};
use crate::channels::{OutboundMessage, SendError};
use crate::config::{Config, ConfigError};
use crate::domain::event::EventType;
use crate::domain::oncall::{Contacts, NotificationStatus, SUBJECT, is_urgent, notification_text, review_url};
use crate::domain::reply::ReplyClass;
use crate::domain::{Channel, Recipient};
use crate::store::{
    Acknowledged, Event, ITEM_PREFIX, NOTIFICATION_PREFIX, NewUrgentItem, OncallNotification, Result, Store, UrgentItem,
};

/// The rota as configured.
#[derive(Debug, Clone, Default)]
pub struct Rota {
    pub contacts: Contacts,
    /// How long an item may wait unacknowledged before the next step.
    pub escalate_after_ms: i64,
    /// The review page, for the wording.
    pub review_url: String,
}

impl Rota {
    pub fn from_config(config: &Config) -> Result<Arc<Rota>, ConfigError> {
        Ok(Arc::new(Rota {
            contacts: config.oncall_contacts()?,
            escalate_after_ms: config.oncall_escalate_minutes as i64 * 60_000,
            review_url: review_url(&config.public_url),
        }))
    }
}

/// A reply just recorded, in its transaction.
pub struct Reply<'a> {
    pub classification: ReplyClass,
    pub case_ref: Option<&'a str>,
    pub reply_id: &'a str,
    /// The alert the reply raised on its case.
    pub alert_event_id: Option<i64>,
}

/// When the reply is an urgent item, record it and its first notifications (in `tx`, the reply's
/// transaction). True when there is queue work (wake the relay after the commit).
pub async fn raise(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    rota: &Rota,
    reply: Reply<'_>,
    now: i64,
) -> Result<bool> {
    if !is_urgent(reply.classification, reply.case_ref.is_some()) {
        return Ok(false);
    }
    let new = NewUrgentItem {
        case_ref: reply.case_ref,
        reply_id: reply.reply_id,
        alert_event_id: reply.alert_event_id,
        classification: reply.classification.as_str(),
    };
    let id = store.insert_urgent_item(tx, &new, now).await?;
    tracing::info!(urgent_item = %id, case_ref = reply.case_ref.unwrap_or("-"), "urgent item raised");
    notify_step(store, tx, rota, &id, 0, now).await
}

/// Notify step `step` of item `id`, and schedule the next (nothing without a rota).
async fn notify_step(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    rota: &Rota,
    id: &str,
    step: i64,
    now: i64,
) -> Result<bool> {
    let contacts = rota.contacts.at_step(step as u64);
    if contacts.is_empty() {
        store.set_escalation(tx, id, step, None).await?;
        return Ok(false);
    }
    for contact in contacts {
        let contact = (contact.channel.as_str(), contact.index as i64, contact.recipient);
        let notification = store.insert_oncall_notification(tx, id, step, contact, now).await?;
        store.enqueue(tx, &notification, now).await?;
    }
    let at = now + rota.escalate_after_ms;
    store.set_escalation(tx, id, step + 1, Some(at)).await?;
    store.enqueue(tx, id, at).await?;
    Ok(true)
}

/// Staff acknowledged an alert or a reply on the review page, in that action's transaction: its
/// urgent item (if it was one) stops escalating, its notifications not yet handed over stop, and
/// the acknowledgement goes on the case's timeline with how long the item waited for a person.
pub async fn acknowledge(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    what: Acknowledged<'_>,
    actor: &str,
    now: i64,
) -> Result<Option<String>> {
    let Some(item) = store.set_urgent_acknowledged(tx, what, actor, now).await? else { return Ok(None) };
    store.stop_queued_notifications(tx, &item.id, now).await?;
    if let Some(case_ref) = &item.case_ref {
        let classification = ReplyClass::parse(&item.classification).map_or("other", ReplyClass::as_str);
        Event::new(case_ref, now, actor, EventType::OncallAcknowledged)
            .classification(classification)
            .detail(json!({
                "urgent_item": item.id,
                "waited_seconds": (now - item.raised_at).max(0) / 1000,
                "notified_steps": item.next_step,
            }))
            .append(tx)
            .await?;
    }
    Ok(Some(item.id))
}

/// Whether an outbox job id is on-call work (else it is an outreach job).
pub fn is_job(id: &str) -> bool {
    id.starts_with(ITEM_PREFIX) || id.starts_with(NOTIFICATION_PREFIX)
}

/// Do the on-call work a queue job names.
pub async fn process(worker: &Delivery, id: &str) -> Result<Processed, WorkerError> {
    if id.starts_with(ITEM_PREFIX) { escalate(worker, id).await } else { deliver(worker, id).await }
}

/// An item's escalation time came: unless acknowledged, notify its next step.
async fn escalate(worker: &Delivery, id: &str) -> Result<Processed, WorkerError> {
    let now = worker.clock.now_ms();
    let mut tx = worker.store.begin().await?;
    let Some(item) = worker.store.urgent_item_for_update(&mut tx, id).await? else { return Ok(Processed::Skipped) };
    // A row for a time the escalation has since moved from (brought forward after a failed
    // notification, or done): its replacement is on the outbox. A few seconds' grace for clocks.
    let due = item.escalate_at.is_some_and(|at| at <= now + 5_000);
    if item.acknowledged_at.is_some() || !due {
        return Ok(Processed::Skipped);
    }
    let work = notify_step(&worker.store, &mut tx, &worker.oncall, &item.id, item.next_step, now).await?;
    tx.commit().await?;
    tracing::info!(urgent_item = %item.id, step = item.next_step, "urgent item not acknowledged: the next on-call contact is notified");
    if work {
        worker.relay_wake.notify_one();
    }
    Ok(Processed::Skipped)
}

/// How a notification ended when it was not handed over.
enum Unsent {
    Permanent,
    RetriesExhausted,
    /// The provider (if known) may have it.
    InDoubt(Option<&'static str>),
}

/// Send one notification: claim, hand to the provider, record.
async fn deliver(worker: &Delivery, id: &str) -> Result<Processed, WorkerError> {
    let store = &worker.store;
    let now = worker.clock.now_ms();
    let mut tx = store.begin().await?;
    // The item first, then the notification: the order an acknowledgement takes them in.
    let Some(item_id) = store.oncall_notification_item(&mut tx, id).await? else { return Ok(Processed::Skipped) };
    let Some(item) = store.urgent_item_for_update(&mut tx, &item_id).await? else { return Ok(Processed::Skipped) };
    let Some(n) = store.oncall_notification_for_update(&mut tx, id).await? else { return Ok(Processed::Skipped) };
    match (n.status(), n.claimed_until) {
        (NotificationStatus::Queued, _) => {}
        // Another worker is sending it; should it die, look again when its lease is over.
        (NotificationStatus::Sending, Some(until)) if until >= now => {
            store.enqueue(&mut tx, &n.id, until + 1_000).await?;
            tx.commit().await?;
            return Ok(Processed::Skipped);
        }
        // A worker died while handing it over: the contact may have it.
        (NotificationStatus::Sending, _) => {
            let done = unsent(worker, &mut tx, &n, &item, Unsent::InDoubt(None), now).await?;
            tx.commit().await?;
            worker.relay_wake.notify_one();
            return Ok(done);
        }
        _ => return Ok(Processed::Skipped),
    }
    if item.acknowledged_at.is_some() {
        store.set_oncall_status(&mut tx, &n.id, NotificationStatus::Stopped, None, now).await?;
        tx.commit().await?;
        return Ok(Processed::Skipped);
    }
    let lease = worker.send_lease.as_millis() as i64;
    store.claim_oncall_notification(&mut tx, &n.id, now + lease, now).await?;
    tx.commit().await?;

    let (channel, message) = outbound(&n, &item, &worker.oncall);
    let result = worker.channels.send(channel, &message).await;

    let now = worker.clock.now_ms();
    let mut tx = store.begin().await?;
    // Locked in the same order as above (an acknowledgement may have come meanwhile).
    let item = store.urgent_item_for_update(&mut tx, &item.id).await?.unwrap_or(item);
    let done = match result {
        Ok(accepted) => {
            let provider = Some((accepted.provider, accepted.provider_ref.as_str()));
            store.set_oncall_status(&mut tx, &n.id, NotificationStatus::Sent, provider, now).await?;
            if let Some(case_ref) = &item.case_ref {
                event(case_ref, now, EventType::OncallNotified, &n, &item)
                    .detail(detail(&n, &item, Some(accepted.provider)))
                    .append(&mut tx)
                    .await?;
            }
            tracing::info!(notification = %n.id, urgent_item = %item.id, channel = %n.channel, step = n.step, provider = accepted.provider, "on-call contact notified");
            Processed::Sent { message_id: n.id.clone() }
        }
        Err(SendError::Permanent(why)) => {
            tracing::warn!(notification = %n.id, error = %why, "provider refused an on-call notification for good");
            unsent(worker, &mut tx, &n, &item, Unsent::Permanent, now).await?
        }
        Err(SendError::InDoubt { provider, why }) => {
            tracing::warn!(notification = %n.id, provider, error = %why, "no answer about an on-call notification: not sent again; the next contact is notified");
            unsent(worker, &mut tx, &n, &item, Unsent::InDoubt(Some(provider)), now).await?
        }
        Err(SendError::Transient(why)) => {
            let attempts = n.attempts + 1;
            tracing::warn!(notification = %n.id, error = %why, attempt = attempts, "on-call notification failed; will retry");
            if attempts >= worker.max_attempts as i64 {
                unsent(worker, &mut tx, &n, &item, Unsent::RetriesExhausted, now).await?
            } else {
                store.set_oncall_status(&mut tx, &n.id, NotificationStatus::Queued, None, now).await?;
                let at = now + backoff(worker.retry_base, attempts as u32).as_millis() as i64;
                store.enqueue(&mut tx, &n.id, at).await?;
                Processed::Retrying { at }
            }
        }
    };
    tx.commit().await?;
    worker.relay_wake.notify_one();
    Ok(done)
}

/// A notification ended without reaching its contact: recorded, and unless another of its step
/// may still reach someone, the escalation moves to the next contact now.
async fn unsent(
    worker: &Delivery,
    tx: &mut sqlx::AnyConnection,
    n: &OncallNotification,
    item: &UrgentItem,
    how: Unsent,
    now: i64,
) -> Result<Processed, WorkerError> {
    let store = &worker.store;
    let (status, reason, provider) = match how {
        Unsent::Permanent => (NotificationStatus::Failed, "permanent", None),
        Unsent::RetriesExhausted => (NotificationStatus::Failed, RETRIES_EXHAUSTED, None),
        Unsent::InDoubt(None) => (NotificationStatus::InDoubt, SEND_INTERRUPTED, None),
        Unsent::InDoubt(Some(p)) => (NotificationStatus::InDoubt, SEND_IN_DOUBT, Some(p)),
    };
    store.set_oncall_status(tx, &n.id, status, provider.map(|p| (p, "")), now).await?;
    if let Some(case_ref) = &item.case_ref {
        event(case_ref, now, EventType::OncallFailed, n, item)
            .reason(reason)
            .detail(detail(n, item, provider))
            .append(tx)
            .await?;
    }
    if !store.step_may_reach_someone(tx, n).await? && store.escalate_now(tx, &item.id, n.step, now).await? {
        tracing::warn!(urgent_item = %item.id, step = n.step, "on-call notification not sent: escalating to the next contact now");
    }
    Ok(if status == NotificationStatus::InDoubt { Processed::DeadLettered } else { Processed::Failed })
}

fn event(case_ref: &str, now: i64, kind: EventType, n: &OncallNotification, item: &UrgentItem) -> Event {
    let channel = Channel::parse(&n.channel).map_or("sms", Channel::as_str);
    let classification = ReplyClass::parse(&item.classification).map_or("other", ReplyClass::as_str);
    Event::new(case_ref, now, ACTOR, kind).channel(channel).classification(classification)
}

/// Ids, codes and places in the rota: never the contact.
fn detail(n: &OncallNotification, item: &UrgentItem, provider: Option<&str>) -> serde_json::Value {
    json!({
        "urgent_item": item.id,
        "notification": n.id,
        "step": n.step,
        "contact": n.contact_index,
        "provider": provider,
    })
}

/// The notification as a provider takes it: our fixed wording, to the contact.
fn outbound(n: &OncallNotification, item: &UrgentItem, rota: &Rota) -> (Channel, OutboundMessage) {
    let text = notification_text(item.case_ref.as_deref(), &rota.review_url);
    let (channel, recipient, subject) = match n.channel.as_str() {
        "email" => (Channel::Email, Recipient::Email { address: n.recipient.clone() }, Some(SUBJECT.to_string())),
        _ => (Channel::Sms, Recipient::Phone { number: n.recipient.clone() }, None),
    };
    let sms = (channel == Channel::Sms).then(|| crate::domain::sms::analyse(&text));
    let message =
        OutboundMessage { id: n.id.clone(), recipient, subject, text, html: None, sms, language: "en".into() };
    (channel, message)
}
