//! The relay: moves due work from the store's outbox onto the queue. Runs in every process;
//! claims are leased, so several relays share the work and a relay that dies only delays its
//! rows until the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{OutreachJob, Queue};
use crate::clock::Clock;
use crate::store::Store;

pub struct Relay {
    pub store: Store,
    pub queue: Queue,
    pub clock: Clock,
    /// Woken after a commit that wrote outbox rows, so that work starts at once.
    pub wake: Arc<Notify>,
}

/// How long a claimed row is ours before another relay may take it. Short, because a relay killed
/// between its claim and the push holds its rows this long, and an urgent reply's on-call
/// notification must go within a minute; a slow queue that outlasts it only pushes a row twice,
/// which the worker tolerates.
const LEASE_MS: i64 = 15_000;
const BATCH: i64 = 200;
const RELAY_INTERVAL: Duration = Duration::from_millis(500);

/// How often the relay looks for jobs the queue lost, and how old such a job must be.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const STALE_MS: i64 = 15 * 60_000;
/// Finished jobs stay on the queue this long (to look at), then go.
const TIDY_AFTER: Duration = Duration::from_secs(3600);

impl Relay {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = tokio::time::Instant::now();
                let now = self.clock.now_ms();
                match self.store.requeue_stale(now, now - STALE_MS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "requeued jobs the queue had lost"),
                    Err(e) => tracing::warn!(error = %e, "sweep for lost jobs failed"),
                }
                match self.store.requeue_stale_oncall(now, now - STALE_MS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "requeued on-call work the queue had lost"),
                    Err(e) => tracing::warn!(error = %e, "sweep for lost on-call work failed"),
                }
                if let Err(e) = self.queue.tidy(TIDY_AFTER).await {
                    tracing::warn!(error = %e, "tidying finished jobs from the queue failed");
                }
            }
            match self.pass().await {
                // A full batch: there may be more.
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "relay pass failed; will retry"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(RELAY_INTERVAL) => {}
            }
        }
    }

    /// One pass: claim due rows, push them (all in one go), delete them. Returns how many moved.
    /// When the queue fails, the rows are given back at once, so they move as soon as it answers
    /// again rather than when the lease runs out (some may then be pushed twice, which the
    /// worker tolerates).
    pub async fn pass(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let due = self.store.claim_due_jobs(self.clock.now_ms(), LEASE_MS, BATCH).await?;
        let ids: Vec<i64> = due.iter().map(|j| j.id).collect();
        let jobs = due.into_iter().map(|j| OutreachJob { outreach_id: j.outreach_id }).collect();
        if let Err(e) = self.queue.push_all(jobs).await {
            self.store.release_jobs(&ids).await?;
            return Err(e.into());
        }
        self.store.delete_jobs(&ids).await?;
        if !ids.is_empty() {
            tracing::debug!(jobs = ids.len(), "relay moved jobs onto the queue");
        }
        Ok(ids.len())
    }
}
