//! The worker: a thin adapter between the queue (apalis) and the delivery use case
//! (`service::deliver`): each job off the queue goes through the process's delivery `Pipeline`
//! (which decides, claims and records jobs that arrive together in one transaction each), or,
//! for on-call work (`oncall_…` notifications, `urgent_…` escalations), is one
//! `service::oncall::process`; a failure (the database away) goes back to the queue to be retried.

use apalis::prelude::BoxDynError;

use crate::queue::{JobHandler, OutreachJob};
use crate::service::deliver::outcome_name;
pub use crate::service::deliver::{
    ACTOR, ClaimHook, Delivery, Pipeline, Processed, RENDER_FAILED, RETRIES_EXHAUSTED, SEND_IN_DOUBT, SEND_INTERRUPTED,
    WorkerError, backoff,
};

#[async_trait::async_trait]
impl JobHandler for Pipeline {
    async fn handle(&self, job: OutreachJob) -> Result<(), BoxDynError> {
        let done = if crate::service::oncall::is_job(&job.outreach_id) {
            crate::service::oncall::process(self.delivery(), &job.outreach_id).await
        } else {
            self.process(&job.outreach_id).await
        };
        match done {
            Ok(done) => {
                tracing::debug!(outreach_id = %job.outreach_id, outcome = ?outcome_name(&done), "job processed");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(outreach_id = %job.outreach_id, error = %e, "job failed; the queue will retry it");
                Err(e.into())
            }
        }
    }
}
