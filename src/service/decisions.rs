//! Recording a decision on a job (the worker's, a staff release's, a call's): its row, its
//! timeline event, and the queue work a deferral needs, in the caller's transaction.

use sqlx::AnyConnection;

use crate::domain::event::EventType;
use crate::domain::{Decision, Outcome};
use crate::store::{Event, OutreachRecord, Result, Store};

/// Record a new decision for a job (worker or staff), with its event and any queue work.
pub async fn record_decision(
    store: &Store,
    conn: &mut AnyConnection,
    job: &OutreachRecord,
    decision: &Decision,
    now: i64,
    actor: &str,
    kind: EventType,
) -> Result<()> {
    store.set_decision(conn, &job.id, decision, now).await?;
    decision_event(job, decision, now, actor, kind).append(conn).await?;
    if decision.outcome() == Outcome::Defer
        && let Some(run_at) = run_at(decision, now)
    {
        store.enqueue(conn, &job.id, run_at).await?;
    }
    Ok(())
}

/// Hold a job for staff for a reason the policy does not give (`render_failed`): the row and
/// the timeline say held, with that reason.
pub async fn hold_for_staff(
    store: &Store,
    conn: &mut AnyConnection,
    job: &OutreachRecord,
    reason: &str,
    now: i64,
    actor: &str,
) -> Result<()> {
    store.set_held(conn, &job.id, reason, now).await?;
    let mut event = Event::new(&job.case_ref, now, actor, EventType::Decided).outreach(&job.id).reason(reason);
    event.outcome = Some(Outcome::Hold.as_str());
    event.append(conn).await?;
    Ok(())
}

/// The timeline event of a new decision on a job.
pub(super) fn decision_event(
    job: &OutreachRecord,
    decision: &Decision,
    now: i64,
    actor: &str,
    kind: EventType,
) -> Event {
    Event::new(&job.case_ref, now, actor, kind).outreach(&job.id).decision(decision)
}

/// When the queue should run a job after this decision.
pub(crate) fn run_at(decision: &Decision, now: i64) -> Option<i64> {
    match decision {
        Decision::Send(_) => Some(now),
        Decision::Defer { until, .. } => Some(until.timestamp_millis()),
        Decision::Hold(_) | Decision::Block(_) => None,
    }
}
