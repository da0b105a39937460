//! Dead letters: jobs the worker gave up on wait for staff, who requeue them (through the
//! outbox, like any other work) or cancel them.

use super::AppState;
use crate::domain::JobStatus;
use crate::domain::event::EventType;
use crate::store::{Event, OutreachRecord, Result, Store};

/// What asking to requeue a job came to.
#[derive(Debug)]
pub enum Requeue {
    Requeued(Box<OutreachRecord>),
    /// No such job.
    NotFound,
    /// The job is not dead-lettered (its status).
    NotDeadLettered(JobStatus),
}

/// Put a dead-lettered job back to work: queued with its attempts reset, its message (if a
/// send was interrupted) ready to send again, an event naming who asked, and a row in the
/// outbox, all in one commit.
pub async fn requeue_dead_letter(store: &Store, id: &str, now: i64, actor: &str) -> Result<Requeue> {
    let mut tx = store.begin().await?;
    let Some(job) = store.outreach_for_update(&mut tx, id).await? else { return Ok(Requeue::NotFound) };
    if job.status != JobStatus::DeadLettered {
        return Ok(Requeue::NotDeadLettered(job.status));
    }
    store.back_to_work(&mut tx, id, now).await?;
    Event::new(&job.case_ref, now, actor, EventType::Requeued).outreach(id).append(&mut tx).await?;
    tx.commit().await?;
    Ok(match store.outreach(id).await? {
        Some(job) => Requeue::Requeued(Box::new(job)),
        None => Requeue::NotFound,
    })
}

/// `requeue_dead_letter` now, by `actor`, waking this process's relay so the job starts at once.
pub async fn requeue(state: &AppState, id: &str, actor: &str) -> Result<Requeue> {
    let requeued = requeue_dead_letter(&state.store, id, state.clock.now_ms(), actor).await?;
    if matches!(requeued, Requeue::Requeued(_)) {
        state.relay_wake.notify_one();
    }
    Ok(requeued)
}
