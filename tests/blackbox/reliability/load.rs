//! Load as the triage system makes it: `POST /v1/outreach`, each job with its own `request_id`,
//! retried with the same body after a 503 (or a connection that failed) until it is taken, as
//! the API asks of its clients: a number of clients, each as fast as it is answered. Every answer
//! is counted by status, with its latency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::gateway::post;

/// Makes the body of job `n`.
pub type Jobs = Arc<dyn Fn(u64) -> Value + Send + Sync>;

#[derive(Default, Debug)]
pub struct Stats {
    /// Every answer, retries included, by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that got no answer (nothing listening, the connection lost).
    pub transport_errors: u64,
    /// 503 answers without `Retry-After`.
    pub unavailable_without_retry_after: u64,
    /// Jobs that were answered 2xx in the end.
    pub accepted: Vec<u64>,
    /// Jobs refused for good (a 4xx or a 5xx other than 503): none expected.
    pub refused: Vec<(u64, u16, Value)>,
    /// Jobs never taken before the load stopped retrying.
    pub gave_up: Vec<u64>,
    /// (seconds since the start, latency in ms, status) of every answer; 0 for no answer.
    pub samples: Vec<(f64, f64, u16)>,
}

impl Stats {
    /// Answers 500 and above other than 503, and 503s without `Retry-After`.
    pub fn server_errors(&self) -> u64 {
        let bad: u64 = self.by_status.iter().filter(|(s, _)| **s >= 500 && **s != 503).map(|(_, n)| n).sum();
        bad + self.unavailable_without_retry_after
    }

    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn answers(&self) -> u64 {
        self.by_status.values().sum()
    }
}

pub struct Load {
    pub stats: Arc<Mutex<Stats>>,
    stopping: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub started: Instant,
}

/// How long after `stop` a job keeps being retried before the load gives up on it.
const DRAIN: Duration = Duration::from_secs(90);
/// Wait before retrying a 503 or a failed connection (the API says 5 s; a client in a hurry
/// tries sooner, which loads the API more while it is down).
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Load {
    /// `clients` clients, each posting the next job as soon as its last one is taken.
    pub fn closed(urls: Vec<String>, key: &str, jobs: Jobs, clients: usize) -> Load {
        let load = Load::empty();
        let next = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::new();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (http, key, jobs, next) = (http.clone(), key.to_string(), jobs.clone(), next.clone());
            let (stats, stopping, started) = (load.stats.clone(), load.stopping.clone(), load.started);
            let url = urls[c % urls.len()].clone();
            tasks.push(tokio::spawn(async move {
                while !stopping.load(Ordering::SeqCst) {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    submit(&http, &url, &key, n, &jobs(n), &stats, &stopping, started).await;
                }
            }));
        }
        Load { tasks, ..load }
    }

    /// Open load: job after job at `rate` a second, each posted as its time comes, however long
    /// the ones before take (so a slow answer does not slow the load down), until `stop`.
    pub fn paced(url: String, key: &str, jobs: Jobs, rate: f64) -> Load {
        let load = Load::empty();
        let (http, key) = (reqwest::Client::new(), key.to_string());
        let (stats, stopping, started) = (load.stats.clone(), load.stopping.clone(), load.started);
        let pacer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut posts = tokio::task::JoinSet::new();
            let mut n = 0;
            while !stopping.load(Ordering::SeqCst) {
                tick.tick().await;
                let (http, url, key, body) = (http.clone(), url.clone(), key.clone(), jobs(n));
                let (stats, stopping) = (stats.clone(), stopping.clone());
                posts.spawn(async move { submit(&http, &url, &key, n, &body, &stats, &stopping, started).await });
                n += 1;
                while let Some(done) = posts.try_join_next() {
                    done.unwrap();
                }
            }
            while let Some(done) = posts.join_next().await {
                done.unwrap();
            }
        });
        Load { tasks: vec![pacer], ..load }
    }

    fn empty() -> Load {
        Load { stats: Arc::default(), stopping: Arc::default(), tasks: Vec::new(), started: Instant::now() }
    }

    /// Stop posting new jobs; wait for those under way (retried until taken, for a while).
    pub async fn stop(self) -> Stats {
        self.stopping.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.stats).unwrap().into_inner().unwrap()
    }

    /// Answers so far.
    pub fn answers(&self) -> u64 {
        self.stats.lock().unwrap().answers()
    }
}

/// Post job `n` until it is taken (2xx) or refused for good, retrying 503s and lost
/// connections.
#[allow(clippy::too_many_arguments)]
async fn submit(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    n: u64,
    body: &Value,
    stats: &Mutex<Stats>,
    stopping: &AtomicBool,
    started: Instant,
) {
    let mut stopped_at: Option<Instant> = None;
    loop {
        let at = started.elapsed().as_secs_f64();
        let answer = post(http, url, key, body).await;
        let ms = answer.took.as_secs_f64() * 1000.0;
        let taken = {
            let mut s = stats.lock().unwrap();
            s.samples.push((at, ms, answer.status.map_or(0, |c| c.as_u16())));
            match answer.status {
                Some(status) if status.is_success() => {
                    *s.by_status.entry(status.as_u16()).or_default() += 1;
                    s.accepted.push(n);
                    true
                }
                Some(StatusCode::SERVICE_UNAVAILABLE) => {
                    *s.by_status.entry(503).or_default() += 1;
                    if !answer.retry_after {
                        s.unavailable_without_retry_after += 1;
                    }
                    false
                }
                Some(status) => {
                    *s.by_status.entry(status.as_u16()).or_default() += 1;
                    s.refused.push((n, status.as_u16(), answer.body));
                    true
                }
                None => {
                    s.transport_errors += 1;
                    false
                }
            }
        };
        if taken {
            return;
        }
        if stopping.load(Ordering::SeqCst) {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            if since.elapsed() > DRAIN {
                stats.lock().unwrap().gave_up.push(n);
                return;
            }
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}
