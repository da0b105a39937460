//! The job queue: apalis, on one of three storages chosen by the configuration:
//!
//! - SQLite, in the database file (the embedded default);
//! - Postgres, in the database (`SAFEREACH_DATABASE_URL=postgres://…` and no Redis);
//! - Redis (`SAFEREACH_REDIS_URL`), for many worker processes.
//!
//! A job only names an outreach job to look at; everything else is read from the store, so a job
//! that runs twice or late does no harm. Jobs reach the queue only through the store's outbox and
//! the relay (`relay.rs`), so accepting work and queueing it can't come apart in a crash, and a
//! queue that loses a job (a flushed Redis) only delays it: the relay's sweep puts it back.

mod relay;

pub use relay::Relay;

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::SqliteStorage;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Look at this outreach job and do what it needs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutreachJob {
    pub outreach_id: String,
}

/// apalis-sqlite acknowledges a job with `UPDATE Jobs … FROM json_each(?1) j WHERE Jobs.id =
/// j.task_id AND Jobs.lock_by = ?2`, and without statistics SQLite plans it as "find the worker's
/// jobs by `lock_by`, then scan the batch's JSON for each": finished jobs keep their `lock_by`
/// until `tidy` removes them, so every acknowledgement cost more the more jobs the worker had
/// done (BENCHMARKS.md: a fifth of the embedded default's time end to end went to SQLite's JSON
/// functions). The statistic says what is true — many jobs share one `lock_by` — and the planner
/// then looks each acknowledged job up by its id. Only that index gets a statistic, so no other
/// plan changes (checked for every statement in apalis-sqlite's `queries/`). SQLite's documented
/// way to steer a plan: <https://sqlite.org/optoverview.html#manual_control_of_query_plans_using_sqlite_stat_tables>.
/// `ANALYZE Workers` (a table of a few rows) creates `sqlite_stat1` when it is not there yet.
const SQLITE_PLANNER_HINT: &str = "BEGIN IMMEDIATE;
    ANALYZE Workers;
    DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs' AND idx = 'LIdx';
    INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('Jobs', 'LIdx', '1000000 100000');
    COMMIT;";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue storage: {0}")]
    Storage(String),
    #[error("queue storage did not answer within {0:?}")]
    Timeout(Duration),
}

/// Does the work of one job. Returning an error asks the queue to try the job again later.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: OutreachJob) -> Result<(), BoxDynError>;
}

#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<OutreachJob>),
    Postgres(PostgresStorage<OutreachJob>),
    Redis(RedisStorage<OutreachJob>),
}

/// How often workers look for new jobs when nothing woke them.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Workers prove they live this often; one silent for `MISSED_HEARTBEATS` of them is dead and
/// another worker puts the jobs it held back on the queue (Postgres and Redis storages).
const HEARTBEAT: Duration = Duration::from_secs(5);
const MISSED_HEARTBEATS: usize = 3;
/// Jobs a worker takes from the queue at once (it runs `concurrency` of them at a time; with
/// the default concurrency of 64, four fetches fill it).
const BATCH: usize = 16;
/// The longest a health check or a push waits for the queue's storage.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// How long a worker whose queue failed (Redis or Postgres down) waits before starting again.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// The most jobs left waiting on a Redis queue (due or scheduled, not yet taken by a worker);
/// the rest wait in the database's outbox until there is room (`Queue::room`). apalis's Redis
/// poll script (`fetch_next.lua`) moves every due job of its scheduled set to the active list
/// with one `unpack` of them all, and Redis's Lua fails that with `too many results to unpack`
/// from about 8,000 (LUAI_MAXCSTACK): with that many waiting, no worker could take any job again.
/// Every push lands in that set (apalis gives each job a run time), so a backlog built while no
/// worker runs reaches it whole. Half the limit leaves room for several relays filling at once
/// (each pushes at most its batch after looking).
pub const REDIS_BACKLOG: u64 = 4_000;

impl Queue {
    /// The queue for this configuration: Redis when `redis_url` is given, else in the database.
    pub async fn connect(database_url: &str, redis_url: Option<&str>) -> Result<Queue, QueueError> {
        let name = queue_name(database_url);
        if let Some(url) = redis_url.filter(|u| !u.is_empty()) {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            let client = apalis_redis::Client::open(url).map_err(storage_error)?;
            let conn: ConnectionManager =
                client.get_connection_manager_with_config(config).await.map_err(storage_error)?;
            let config = apalis_redis::Config::default()
                .queue(&name)
                .batch_size(BATCH)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED_HEARTBEATS)
                // Keep `persist_results` (the default): apalis acknowledges jobs only with it, and a
                // job never acknowledged stays with its worker, to be run again if that one dies.
                // Events (pub/sub) are of no use to us.
                .emit_events(false);
            return Ok(Queue::Redis(RedisStorage::new(conn).with_config(config)));
        }
        if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
            use sqlx::postgres::PgPoolOptions;
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(database_url)
                .await
                .map_err(storage_error)?;
            PostgresStorage::setup(&pool).await.map_err(storage_error)?;
            let config = apalis_postgres::Config::default()
                .queue(&name)
                .batch_size(BATCH)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED_HEARTBEATS);
            return Ok(Queue::Postgres(PostgresStorage::new(&pool).with_config(config)));
        }
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(database_url)
            .map_err(storage_error)?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4);
        let setup = pool.clone().connect_with(options.clone()).await.map_err(storage_error)?;
        SqliteStorage::setup(&setup).await.map_err(storage_error)?;
        sqlx::raw_sql(SQLITE_PLANNER_HINT).execute(&setup).await.map_err(storage_error)?;
        // SQLite reads its statistics when a connection opens: the queue's own pool opens after.
        setup.close().await;
        let pool = pool.connect_with(options).await.map_err(storage_error)?;
        Ok(Queue::Sqlite(SqliteStorage::new(&pool)))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Queue::Sqlite(_) => "sqlite",
            Queue::Postgres(_) => "postgres",
            Queue::Redis(_) => "redis",
        }
    }

    /// Whether the queue's storage answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        within(async {
            match self {
                Queue::Sqlite(storage) => {
                    sqlx::query("SELECT 1").execute(storage.pool()).await.map(|_| ()).map_err(storage_error)
                }
                Queue::Postgres(storage) => {
                    sqlx::query("SELECT 1").execute(storage.pool()).await.map(|_| ()).map_err(storage_error)
                }
                Queue::Redis(storage) => {
                    let mut conn = storage.clone().get_connection().clone();
                    redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(storage_error)
                }
            }
        })
        .await
    }

    /// How many more jobs the queue should take now: `None` when it has no limit (SQLite and
    /// Postgres), else what is left of `REDIS_BACKLOG` after the jobs waiting on it.
    pub async fn room(&self) -> Result<Option<u64>, QueueError> {
        match self {
            Queue::Sqlite(_) | Queue::Postgres(_) => Ok(None),
            Queue::Redis(_) => Ok(Some(REDIS_BACKLOG.saturating_sub(self.waiting().await?))),
        }
    }

    /// Jobs waiting on a Redis queue: scheduled (apalis puts every push there first) or due on
    /// its active list, not yet taken by a worker. 0 for the other queues (not counted).
    pub async fn waiting(&self) -> Result<u64, QueueError> {
        let Queue::Redis(storage) = self else { return Ok(0) };
        within(async {
            let config = storage.get_config();
            let mut conn = storage.clone().get_connection().clone();
            let (scheduled, active): (u64, u64) = redis::pipe()
                .cmd("ZCARD")
                .arg(config.scheduled_jobs_set())
                .cmd("LLEN")
                .arg(config.active_jobs_list())
                .query_async(&mut conn)
                .await
                .map_err(storage_error)?;
            Ok(scheduled + active)
        })
        .await
    }

    pub async fn push(&self, job: OutreachJob) -> Result<(), QueueError> {
        self.push_all(vec![job]).await
    }

    /// Put jobs on the queue in one request to its storage (one script call on Redis, one
    /// transaction on a database). Should it fail, none, some or all of them may be on it.
    pub async fn push_all(&self, jobs: Vec<OutreachJob>) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        within(async {
            match self {
                Queue::Sqlite(storage) => storage.clone().push_bulk(jobs).await.map_err(storage_err),
                Queue::Postgres(storage) => storage.clone().push_bulk(jobs).await.map_err(storage_err),
                Queue::Redis(storage) => storage.clone().push_bulk(jobs).await.map_err(storage_err),
            }
        })
        .await
    }

    /// Remove jobs the queue finished more than `older_than` ago (the store keeps the record;
    /// the queue's own copy would only grow). Returns how many went.
    pub async fn tidy(&self, older_than: Duration) -> Result<u64, QueueError> {
        use apalis_core::backend::Vacuum;
        match self {
            // Not apalis-sqlite's vacuum: it also runs VACUUM, rewriting the whole database file.
            Queue::Sqlite(storage) => sqlx::query(
                "DELETE FROM Jobs WHERE status IN ('Done', 'Killed') AND done_at <= strftime('%s', 'now') - ?1",
            )
            .bind(older_than.as_secs() as i64)
            .execute(storage.pool())
            .await
            .map(|r| r.rows_affected())
            .map_err(storage_error),
            Queue::Redis(storage) => {
                let mut storage = storage.clone();
                let removed = storage.vacuum_before(older_than).await.map_err(storage_error)?;
                // apalis's vacuum leaves the ids of the jobs it removed in the done and dead sets,
                // which would then only grow.
                let config = storage.get_config().clone();
                let _: i64 = redis::Script::new(FORGET_VACUUMED_IDS)
                    .key(config.done_jobs_set())
                    .key(config.dead_jobs_set())
                    .key(config.job_meta_hash())
                    .invoke_async(storage.get_connection())
                    .await
                    .map_err(storage_error)?;
                Ok(removed as u64)
            }
            // apalis-postgres has no vacuum of its own.
            Queue::Postgres(storage) => sqlx::query(
                "DELETE FROM apalis.jobs WHERE job_type = $1 AND status IN ('Done', 'Killed')
                 AND done_at <= now() - make_interval(secs => $2)",
            )
            .bind(storage.config().queue.as_ref())
            .bind(older_than.as_secs_f64())
            .execute(storage.pool())
            .await
            .map(|r| r.rows_affected())
            .map_err(storage_error),
        }
    }

    /// Run `concurrency` jobs at a time until `shutdown`, then let jobs in flight finish (up to
    /// `grace`). A worker whose storage fails (Redis or the database went away) starts again
    /// after a pause, under a new name: the jobs the old one held come back to the queue when
    /// its heartbeats stop.
    pub async fn run_worker(
        &self,
        handler: Arc<dyn JobHandler>,
        concurrency: usize,
        grace: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            let name = format!("safereach-worker-{}", uuid::Uuid::now_v7().simple());
            match self.run_monitor(&name, handler.clone(), concurrency, grace, shutdown.clone()).await {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => tracing::warn!(worker = %name, "queue worker stopped; starting again"),
                Err(e) => tracing::warn!(worker = %name, error = %e, "queue worker failed; starting again"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RESTART_AFTER) => {}
            }
        }
    }

    async fn run_monitor(
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
        // The same worker on each storage (their types differ).
        macro_rules! monitor {
            ($storage:expr) => {{
                let backend = $storage.clone().poll_with_strategy(Tick::every(POLL_INTERVAL));
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
            }};
        }
        let monitor = match self {
            Queue::Sqlite(storage) => monitor!(storage),
            Queue::Postgres(storage) => monitor!(storage),
            Queue::Redis(storage) => monitor!(storage),
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

/// Removes from the done and dead sets (KEYS[1], KEYS[2]) the ids whose job metadata (under the
/// prefix KEYS[3]) is gone. Returns how many it removed.
const FORGET_VACUUMED_IDS: &str = r"
local forgotten = 0
for i = 1, 2 do
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    if redis.call('EXISTS', KEYS[3] .. ':' .. id) == 0 then
      redis.call('SREM', KEYS[i], id)
      forgotten = forgotten + 1
    end
  end
end
return forgotten
";

/// The queue's name in Redis or Postgres: one per database, so that deployments (or test
/// databases) sharing a Redis never take each other's jobs.
pub fn queue_name(database_url: &str) -> String {
    let without_query = database_url.split(['?', '#']).next().unwrap_or_default();
    let database = without_query.rsplit('/').next().unwrap_or_default();
    format!("safereach:{database}:outreach")
}

async fn within<T>(f: impl Future<Output = Result<T, QueueError>>) -> Result<T, QueueError> {
    tokio::time::timeout(ANSWER_WITHIN, f).await.map_err(|_| QueueError::Timeout(ANSWER_WITHIN))?
}

/// Wakes the worker every `every` to look for jobs. apalis's own `IntervalStrategy` re-arms its
/// timer without polling it, so after a fetch slower than the interval nothing wakes the worker
/// until its next heartbeat; this one polls each new timer at once.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_database_has_its_own_queue() {
        assert_eq!(queue_name("postgres://u:p@db:5432/safereach?sslmode=require"), "safereach:safereach:outreach");
        assert_eq!(queue_name("postgres://u@127.0.0.1:5/t_0123"), "safereach:t_0123:outreach");
        assert_ne!(queue_name("postgres://h/a"), queue_name("postgres://h/b"));
    }
}
