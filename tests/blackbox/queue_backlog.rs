//! A Redis queue with more jobs waiting than apalis's poll script can take. The script moves
//! every due job to the active list with one Lua `unpack`, which Redis refuses from about 8,000
//! (`too many results to unpack`): the worker-crash run at 10,000 jobs (issue 17) stalled every
//! worker for good. The relay now leaves at most `REDIS_BACKLOG` jobs on the queue and the rest in
//! the database's outbox; here 12,000 jobs wait, and a worker works through all of them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use safereach::clock::Clock;
use safereach::queue::{JobHandler, OutreachJob, Queue, REDIS_BACKLOG, Relay};
use safereach::store::{HashKeySource, Store};
use tokio_util::sync::CancellationToken;

use crate::common::service;

const JOBS: u64 = 12_000;

/// Records the jobs it was given; does nothing else.
#[derive(Default)]
struct Recorder {
    seen: Mutex<HashSet<String>>,
    runs: AtomicU64,
}

#[async_trait::async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: OutreachJob) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().insert(job.outreach_id);
        Ok(())
    }
}

async fn outbox_rows(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM job_outbox").fetch_one(store.pool()).await.unwrap()
}

/// Wait until `done` says so, or fail with `what` after `within`.
async fn until<F: Future<Output = bool>>(what: &str, within: Duration, mut done: impl FnMut() -> F) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn twelve_thousand_jobs_waiting_for_a_redis_queue_are_all_worked_through() {
    let Some(redis) = service("SAFEREACH_TEST_REDIS_URL") else { return };
    // The outbox in an SQLite file, the queue in Redis (under this database's name).
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("backlog.db").display());
    let store = Store::open(&url, true, &HashKeySource::Given(safereach::secrets::generate())).await.unwrap();
    let queue = Queue::connect(&url, Some(&redis)).await.unwrap();
    let clock = Clock::system();
    let ids: Vec<String> = (0..JOBS).map(|n| format!("out_backlog_{n:05}")).collect();
    let mut tx = store.begin().await.unwrap();
    let rows: Vec<(&str, i64)> = ids.iter().map(|id| (id.as_str(), clock.now_ms())).collect();
    let mut writes = store.writes();
    store.enqueue_all(&mut writes, &rows);
    writes.run(&mut tx).await.unwrap();
    tx.commit().await.unwrap();

    // The relay alone, as while no worker runs: it fills the queue to the bound, no further.
    let shutdown = CancellationToken::new();
    let relay = Relay { store: store.clone(), queue: queue.clone(), clock, wake: Arc::default() };
    let relay = tokio::spawn(relay.run(shutdown.clone()));
    // Until the relay is done: the outbox no longer shrinks over a few of its passes (every
    // 500 ms when it moved nothing).
    let q = &queue;
    let mut left = outbox_rows(&store).await;
    loop {
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let now = outbox_rows(&store).await;
        if now == left && now < JOBS as i64 {
            break;
        }
        left = now;
    }
    assert_eq!(queue.waiting().await.unwrap(), REDIS_BACKLOG, "the queue holds the bound and no more");
    assert_eq!(outbox_rows(&store).await, (JOBS - REDIS_BACKLOG) as i64, "the rest wait in the outbox");

    // What the queue holds, looked at all along.
    let most = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (queue, most, shutdown) = (queue.clone(), most.clone(), shutdown.clone());
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Ok(n) = queue.waiting().await {
                    most.fetch_max(n, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // A worker: its first poll finds all the bound's jobs due at once.
    let recorder = Arc::new(Recorder::default());
    let worker = {
        let (queue, handler, shutdown) = (queue.clone(), recorder.clone(), shutdown.clone());
        tokio::spawn(async move { queue.run_worker(handler, 16, Duration::from_secs(5), shutdown).await })
    };
    let seen = &|| recorder.seen.lock().unwrap().len() as u64;
    until("the worker takes jobs", Duration::from_secs(60), || async move { seen() > 0 }).await;
    until("every job is worked through", Duration::from_secs(240), || async move { seen() == JOBS }).await;
    assert_eq!(outbox_rows(&store).await, 0);
    until("the queue is empty", Duration::from_secs(30), || async move { q.waiting().await.unwrap() == 0 }).await;
    shutdown.cancel();
    for task in [relay, worker, sampler] {
        task.await.unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= REDIS_BACKLOG, "never more than the bound waiting: {most:?}");
    let expected: HashSet<String> = ids.into_iter().collect();
    assert_eq!(*recorder.seen.lock().unwrap(), expected);
    eprintln!(
        "runs {} for {JOBS} jobs, most waiting {}",
        recorder.runs.load(Ordering::SeqCst),
        most.load(Ordering::SeqCst)
    );
}
