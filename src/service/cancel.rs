//! Cancelling: one job (the API, staff), or a case and every job of it not yet sent (the API,
//! erasure). Anything not yet sent stops, blocked by rule 1 (`do_not_contact`); a message a
//! worker is handing to a provider right now goes (too late). The job's row is locked first, as
//! a worker's claim locks it, so a cancel and a claim never both win.

use sqlx::AnyConnection;

use crate::domain::event::EventType;
use crate::store::{Event, OutreachRecord, Result, Store};

/// What cancelling a job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Stopped: nothing of it will be sent.
    Cancelled,
    /// Its message is being handed to a provider right now: it goes, too late to stop.
    TooLate,
    /// Already past cancelling (sent, failed, blocked, cancelled): nothing changed.
    Finished,
}

/// Cancel one job: anything not yet sent stops, blocked by rule 1 (`do_not_contact`).
/// None when the job is unknown; otherwise the job as it is now and what the cancel did.
pub async fn cancel_outreach(
    store: &Store,
    id: &str,
    now: i64,
    actor: &str,
) -> Result<Option<(OutreachRecord, Cancel)>> {
    let mut tx = store.begin().await?;
    let Some(job) = store.outreach_for_update(&mut tx, id).await? else { return Ok(None) };
    let done = cancel_job(store, &mut tx, &job, now, actor).await?;
    tx.commit().await?;
    Ok(store.outreach(id).await?.map(|job| (job, done)))
}

/// Cancel a case and every job of it not yet sent. None when the case is unknown; otherwise
/// the jobs whose message is being handed to a provider right now (too late to stop).
pub async fn cancel_case(store: &Store, case_ref: &str, now: i64, actor: &str) -> Result<Option<Vec<String>>> {
    let mut tx = store.begin().await?;
    if !store.mark_case_cancelled(&mut tx, case_ref, now).await? {
        return Ok(None);
    }
    let jobs = store.case_outreach_for_update(&mut tx, case_ref).await?;
    let mut too_late = Vec::new();
    for job in &jobs {
        if cancel_job(store, &mut tx, job, now, actor).await? == Cancel::TooLate {
            too_late.push(job.id.clone());
        }
    }
    Event::new(case_ref, now, actor, EventType::Cancelled).reason("do_not_contact").append(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(too_late))
}

/// Cancel a job that is not sent yet; nothing is recorded when it is past that, or when its
/// message is being handed to a provider right now.
pub(crate) async fn cancel_job(
    store: &Store,
    conn: &mut AnyConnection,
    job: &OutreachRecord,
    now: i64,
    actor: &str,
) -> Result<Cancel> {
    if !job.status.is_cancellable() {
        return Ok(Cancel::Finished);
    }
    // A message a worker is handing to a provider right now goes out: too late to stop it. One
    // whose send was cut off (its lease ran out: in doubt) can be stopped from going again.
    if store.message_in_flight(conn, &job.id, now).await? {
        return Ok(Cancel::TooLate);
    }
    // Rule 1's decision replaces the one before: the job reads `block`, `do_not_contact`.
    store.set_cancelled(conn, &job.id, now).await?;
    Event::new(&job.case_ref, now, actor, EventType::Cancelled)
        .outreach(&job.id)
        .reason("do_not_contact")
        .append(conn)
        .await?;
    Ok(Cancel::Cancelled)
}
