//! The job queue: apalis, with its SQLite storage on the embedded default. A job only names an
//! outreach job to look at; everything else is read from the store, so a job that runs twice or
//! late does no harm.
//!
//! Jobs reach the queue through the store's outbox (see `store::outbox`) and the relay here, so
//! that accepting work and queueing it can't come apart in a crash.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_sqlite::SqliteStorage;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::Store;

/// Look at this outreach job and do what it needs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutreachJob {
    pub outreach_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue storage: {0}")]
    Storage(String),
}

/// Does the work of one job. Returning an error asks the queue to try the job again later.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: OutreachJob) -> Result<(), BoxDynError>;
}

#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<OutreachJob>),
}

/// How often workers look for new jobs when nothing woke them.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

impl Queue {
    pub async fn connect(database_url: &str) -> Result<Queue, QueueError> {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(database_url)
            .map_err(storage_error)?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(storage_error)?;
        SqliteStorage::setup(&pool).await.map_err(storage_error)?;
        Ok(Queue::Sqlite(SqliteStorage::new(&pool)))
    }

    /// Whether the queue's storage answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        match self {
            Queue::Sqlite(storage) => {
                sqlx::query("SELECT 1").execute(storage.pool()).await.map(|_| ()).map_err(storage_error)
            }
        }
    }

    pub async fn push(&self, job: OutreachJob) -> Result<(), QueueError> {
        match self {
            Queue::Sqlite(storage) => storage.clone().push(job).await.map_err(storage_err),
        }
    }

    /// Run `concurrency` jobs at a time until `shutdown`, then let jobs in flight finish (up to
    /// `grace`).
    pub async fn run_worker(
        &self,
        name: &str,
        handler: Arc<dyn JobHandler>,
        concurrency: usize,
        grace: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), QueueError> {
        async fn run_job(job: OutreachJob, handler: Data<Arc<dyn JobHandler>>) -> Result<(), BoxDynError> {
            handler.handle(job).await
        }
        let monitor = match self {
            Queue::Sqlite(storage) => {
                let backend = storage.clone().poll_with_strategy(Tick::every(POLL_INTERVAL));
                let name = name.to_string();
                Monitor::new().register(move |_| {
                    WorkerBuilder::new(name.as_str())
                        .backend(backend.clone())
                        .concurrency(concurrency)
                        .data(handler.clone())
                        .on_event(|_, event| match event {
                            Event::Error(e) => tracing::warn!(error = %e, "queue worker error"),
                            other => tracing::debug!(event = ?other, "queue worker event"),
                        })
                        .build(run_job)
                })
            }
        };
        monitor
            .shutdown_timeout(grace)
            .run_with_signal(async move {
                shutdown.cancelled().await;
                Ok(())
            })
            .await
            .map_err(storage_error)
    }
}

/// Wakes the worker every `every` to look for jobs. apalis's own `IntervalStrategy` re-arms its
/// timer without polling it, so after a fetch slower than the interval nothing wakes the worker
/// until its next heartbeat (30 s); this one polls each new timer at once.
struct Tick {
    every: Duration,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Tick {
    fn every(every: Duration) -> Tick {
        Tick { every, sleep: None }
    }
}

impl Clone for Tick {
    fn clone(&self) -> Tick {
        Tick::every(self.every)
    }
}

impl PollStrategy for Tick {
    fn poll_drive(&mut self, cx: &mut std::task::Context<'_>, _: &PollSnapshot) -> std::task::Poll<Option<()>> {
        use std::future::Future;
        let mut fired = false;
        loop {
            let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(self.every)));
            match sleep.as_mut().poll(cx) {
                std::task::Poll::Ready(()) => {
                    fired = true;
                    self.sleep = None;
                }
                // The next timer now holds the waker.
                std::task::Poll::Pending => {
                    return if fired { std::task::Poll::Ready(Some(())) } else { std::task::Poll::Pending };
                }
            }
        }
    }
}

fn storage_error(e: impl std::fmt::Display) -> QueueError {
    QueueError::Storage(e.to_string())
}

fn storage_err<E: std::fmt::Debug>(e: TaskSinkError<E>) -> QueueError {
    QueueError::Storage(format!("{e:?}"))
}

/// Moves due work from the store's outbox onto the queue. Runs in every process; claims are
/// leased, so several relays share the work.
pub struct Relay {
    pub store: Store,
    pub queue: Queue,
    pub clock: Clock,
    /// Woken after a commit that wrote outbox rows, so that work starts at once.
    pub wake: Arc<Notify>,
}

/// How long a claimed row is ours before another relay may take it.
const LEASE_MS: i64 = 60_000;
const BATCH: i64 = 200;
const RELAY_INTERVAL: Duration = Duration::from_millis(500);

/// How often the relay looks for jobs the queue lost, and how old such a job must be.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const STALE_MS: i64 = 15 * 60_000;

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

    /// One pass: claim due rows, push them, delete them. Returns how many moved.
    pub async fn pass(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let due = self.store.claim_due_jobs(self.clock.now_ms(), LEASE_MS, BATCH).await?;
        let mut pushed = Vec::with_capacity(due.len());
        for job in &due {
            self.queue.push(OutreachJob { outreach_id: job.outreach_id.clone() }).await?;
            pushed.push(job.id);
        }
        self.store.delete_jobs(&pushed).await?;
        if !pushed.is_empty() {
            tracing::debug!(jobs = pushed.len(), "relay moved jobs onto the queue");
        }
        Ok(pushed.len())
    }
}
