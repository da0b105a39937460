//! Staff review actions on what waits for a person: release a held or dead-lettered job (the
//! rules decide again), cancel it, mark a number unsafe, acknowledge an alert or a reply from an
//! unknown number (which also stops its on-call escalation, `super::oncall::acknowledge`). Each
//! records who did it and the reason they gave (a staff note) on the timeline, in the same
//! transaction as what it does.

use serde_json::json;
use sqlx::AnyConnection;

use super::AppState;
use super::cancel::{Cancel, cancel_job};
use crate::domain::event::EventType;
use crate::store::{Acknowledged, Event, OutreachRecord, Result, Store, StoreError, SuppressionKind};

/// Lock a job that waits for review, or say why not.
async fn job_under_review(store: &Store, conn: &mut AnyConnection, id: &str) -> Result<OutreachRecord> {
    let job = store.outreach_for_update(conn, id).await?.ok_or(StoreError::NotFound)?;
    if job.status.waits_for_review() {
        Ok(job)
    } else {
        Err(StoreError::Conflict(format!("this job is {} now, not waiting for review", job.status)))
    }
}

/// Release a held or dead-lettered job: it goes back to `queued` with a fresh count of
/// attempts and onto the outbox, so the worker decides again with the policy, exactly as for
/// any job, and sends only if the rules now allow it.
pub async fn release_outreach(store: &Store, id: &str, actor: &str, note: &str, now: i64) -> Result<OutreachRecord> {
    let mut tx = store.begin().await?;
    let job = job_under_review(store, &mut tx, id).await?;
    let note_id = store.add_note(&mut tx, &job.case_ref, actor, note, now).await?;
    store.back_to_work(&mut tx, &job.id, now).await?;
    Event::new(&job.case_ref, now, actor, EventType::Released)
        .outreach(&job.id)
        .reason("staff_release")
        .detail(json!({ "note_id": note_id, "was": job.status }))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(job)
}

/// Cancel a job waiting for review.
pub async fn cancel_for_review(store: &Store, id: &str, actor: &str, note: &str, now: i64) -> Result<OutreachRecord> {
    let mut tx = store.begin().await?;
    let job = job_under_review(store, &mut tx, id).await?;
    if cancel_job(store, &mut tx, &job, now, actor).await? != Cancel::Cancelled {
        return Err(StoreError::Conflict("its message is being handed to a provider right now".into()));
    }
    let note_id = store.add_note(&mut tx, &job.case_ref, actor, note, now).await?;
    Event::new(&job.case_ref, now, actor, EventType::StaffAction)
        .outreach(&job.id)
        .reason("cancel")
        .detail(json!({ "note_id": note_id }))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(job)
}

/// Suppress a number as unsafe on staff's word. `key` is its keyed hash (`address_key`).
/// `about` says what the staff member was looking at (an outreach or an alert id).
pub async fn mark_unsafe(
    store: &Store,
    case_ref: &str,
    key: &str,
    about: serde_json::Value,
    actor: &str,
    note: &str,
    now: i64,
) -> Result<()> {
    let mut tx = store.begin().await?;
    let note_id = store.add_note(&mut tx, case_ref, actor, note, now).await?;
    store.suppress_key(&mut tx, key, SuppressionKind::Unsafe, Some(case_ref), now).await?;
    Event::new(case_ref, now, actor, EventType::Suppressed).reason("unsafe").append(&mut tx).await?;
    let mut detail = json!({ "note_id": note_id });
    if let (Some(d), serde_json::Value::Object(about)) = (detail.as_object_mut(), about) {
        d.extend(about);
    }
    Event::new(case_ref, now, actor, EventType::StaffAction)
        .reason("mark_unsafe")
        .detail(detail)
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Acknowledge an alert: it leaves the queue; the note goes on the case's timeline.
pub async fn acknowledge_alert(store: &Store, event_id: i64, actor: &str, note: &str, now: i64) -> Result<String> {
    let mut tx = store.begin().await?;
    let case_ref = store.alert_case(&mut tx, event_id).await?.ok_or(StoreError::NotFound)?;
    if !store.insert_alert_acknowledgement(&mut tx, event_id, actor, now).await? {
        return Err(StoreError::Conflict("this alert was acknowledged already".into()));
    }
    let note_id = store.add_note(&mut tx, &case_ref, actor, note, now).await?;
    super::oncall::acknowledge(store, &mut tx, Acknowledged::Alert(event_id), actor, now).await?;
    Event::new(&case_ref, now, actor, EventType::StaffAction)
        .reason("acknowledge")
        .detail(json!({ "note_id": note_id, "alert_event_id": event_id }))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(case_ref)
}

/// Staff have dealt with a reply that matched no case: it leaves the review queue, with who
/// did it and the reason they gave.
pub async fn acknowledge_unmatched_reply(store: &Store, id: &str, actor: &str, note: &str, now: i64) -> Result<()> {
    let mut tx = store.begin().await?;
    let updated = store.set_unmatched_reply_reviewed(&mut tx, id, actor, note, now).await?;
    if updated {
        super::oncall::acknowledge(store, &mut tx, Acknowledged::UnmatchedReply(id), actor, now).await?;
    }
    tx.commit().await?;
    match (updated, store.unmatched_reply(id).await?) {
        (true, _) => Ok(()),
        (_, Some(_)) => Err(StoreError::Conflict("this reply was acknowledged already".into())),
        (_, None) => Err(StoreError::NotFound),
    }
}

/// `release_outreach` now, by a member of staff, waking this process's relay so the worker
/// decides again at once.
pub async fn release(state: &AppState, id: &str, actor: &str, note: &str) -> Result<OutreachRecord> {
    let job = release_outreach(&state.store, id, actor, note, state.clock.now_ms()).await?;
    state.relay_wake.notify_one();
    Ok(job)
}
