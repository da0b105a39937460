//! The worker's delivery, group-committed: the queue still hands jobs over one by one (as many at
//! once as the worker's concurrency), and each goes through the same steps as
//! `Delivery::process`, but its two database steps wait in a `Batcher` with the other jobs'
//! (see `super::super::batcher`): the decide-and-claims that arrive together are one transaction,
//! and so are the results recorded together. Sending is each job's own, side by side.

use std::sync::Arc;

use super::claim::{Claimed, decide_and_claim};
use super::record::{Sent, record_sends};
use super::{Delivery, Processed, Step, WorkerError};
use crate::service::batcher::Batcher;
use crate::store::Dialect;

/// The most jobs decided and claimed, or recorded, in one transaction.
const BATCH: usize = 64;

/// See the module's comment.
pub struct Pipeline {
    delivery: Arc<Delivery>,
    claims: Batcher<String, Result<Claimed, WorkerError>>,
    records: Batcher<Sent, Result<Processed, WorkerError>>,
}

impl Pipeline {
    /// Start the two batchers (needs a Tokio runtime). Their batches run one at a time on SQLite
    /// (one writer), two side by side on Postgres.
    pub fn start(delivery: Delivery, metrics: crate::telemetry::Metrics) -> Pipeline {
        let delivery = Arc::new(delivery);
        let in_flight = if delivery.store.dialect() == Dialect::Sqlite { 1 } else { 2 };
        let (d, m) = (delivery.clone(), metrics.clone());
        let claims = Batcher::start(BATCH, in_flight, move |ids: Vec<String>| {
            m.batch("claim", ids.len());
            let d = d.clone();
            async move { decide_and_claim(&d, &ids).await }
        });
        let d = delivery.clone();
        let records = Batcher::start(BATCH, in_flight, move |sends: Vec<Sent>| {
            metrics.batch("record", sends.len());
            let d = d.clone();
            async move { record_sends(&d, &sends).await }
        });
        Pipeline { delivery, claims, records }
    }

    /// The delivery use case the pipeline runs (for work that is not batched: on-call jobs).
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// `Delivery::process`, with the decide-and-claim and the record in batches.
    pub async fn process(&self, outreach_id: &str) -> Result<Processed, WorkerError> {
        let claimed = self.claims.call(outreach_id.to_string()).await.map_err(WorkerError::unavailable)??;
        match self.delivery.send_claimed(claimed).await? {
            Step::Done(done) => Ok(done),
            Step::Sent(sent) => self.records.call(*sent).await.map_err(WorkerError::unavailable)?,
        }
    }
}
