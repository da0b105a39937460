//! Wiring: run the roles a process has (HTTP API, worker, or both) over the shared state
//! (`service::AppState`), with graceful shutdown. The top of the house: nothing imports it but
//! the command line.
//!
//! A process listens before it connects: until its database and queue answer, `/healthz`
//! answers 200 and every other route 503 with `Retry-After` ([`Starting`]). `start` tries to
//! connect once (tests, and anything that wants to fail at once); the commands that run the
//! service keep trying with back-off ([`Starting::run_when_ready`]), so that a process started
//! while Postgres or Redis is down comes up by itself when they do, instead of exiting.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Config;
use crate::http::problem::Problem;
use crate::queue::Relay;
pub use crate::service::{AppError, AppState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API, webhooks, staff pages and the worker in one process.
    Serve,
    Api,
    Worker,
}

impl Role {
    fn http(self) -> bool {
        matches!(self, Role::Serve | Role::Api)
    }
    fn worker(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
}

/// First and longest wait between two attempts to reach the database and queue at start.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// A started process: its address (when it serves HTTP) and its tasks.
pub struct Running {
    pub addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A process listening (when it serves HTTP) but not yet connected to its database and queue.
/// Dropped before it runs, it stops listening.
pub struct Starting {
    config: Config,
    role: Role,
    pub addr: Option<SocketAddr>,
    /// The application's router, once it runs; until then the front answers 503.
    app: Arc<OnceLock<Router>>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Connect once and run: fails if the database or queue can't be reached now.
pub async fn start(config: Config, role: Role, migrate: bool) -> Result<Running, AppError> {
    let starting = Starting::listen(config, role).await?;
    let state = starting.connect(migrate).await?;
    starting.run(state)
}

impl Starting {
    /// Check the settings and, for an HTTP role, listen on the configured address.
    pub async fn listen(config: Config, role: Role) -> Result<Starting, AppError> {
        config.check()?;
        let (app, shutdown) = (Arc::new(OnceLock::new()), CancellationToken::new());
        let mut starting = Starting { config, role, addr: None, app, shutdown, tasks: Vec::new() };
        if role.http() {
            let bind = starting.config.bind.clone();
            let listener =
                tokio::net::TcpListener::bind(&bind).await.map_err(|source| AppError::Bind { addr: bind, source })?;
            starting.addr = listener.local_addr().ok();
            let front = front(starting.app.clone());
            starting.tasks.push(tokio::spawn(crate::http::serve::serve(listener, front, starting.shutdown.clone())));
        }
        Ok(starting)
    }

    /// One attempt to open the database (migrating it) and the queue.
    async fn connect(&self, migrate: bool) -> Result<AppState, AppError> {
        AppState::build(self.config.clone(), migrate).await
    }

    /// Keep trying to connect, with back-off, while the database or queue is unreachable; then
    /// run. Any other failure (a migration that fails, a wrong hash key) is returned at once.
    pub async fn run_when_ready(self, migrate: bool) -> Result<Running, AppError> {
        let mut wait = FIRST_RETRY;
        loop {
            match self.connect(migrate).await {
                Ok(state) => return self.run(state),
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "waiting for the database and queue");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(LONGEST_RETRY);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Start the roles over `state`: the relay, the router behind the front, the worker.
    fn run(mut self, state: AppState) -> Result<Running, AppError> {
        let state = Arc::new(state);
        let events_target =
            crate::events_out::Target::from_config(&state.config).map_err(|e| AppError::Config(e.to_string()))?;
        let shutdown = self.shutdown.clone();
        let mut tasks = std::mem::take(&mut self.tasks);
        let relay = Relay {
            store: state.store.clone(),
            queue: state.queue.clone(),
            clock: state.clock,
            wake: state.relay_wake.clone(),
        };
        tasks.push(tokio::spawn(relay.run(shutdown.clone())));
        if self.role.http() {
            let _ = self.app.set(crate::http::router(state.clone()));
        }
        if self.role.worker() {
            let events = Arc::new(crate::events_out::EventsOut {
                store: state.store.clone(),
                clock: state.clock,
                target: events_target,
            });
            tasks.push(tokio::spawn(events.run(shutdown.clone())));
            let handler: Arc<dyn crate::queue::JobHandler> =
                Arc::new(crate::worker::Pipeline::start(state.worker(), state.metrics.clone()));
            let queue = state.queue.clone();
            let (concurrency, grace) =
                (state.config.worker_concurrency.max(1), Duration::from_secs(state.config.shutdown_timeout_secs));
            let stop = shutdown.clone();
            // Each run of the worker names itself afresh (see Queue::run_worker).
            tasks.push(tokio::spawn(async move { queue.run_worker(handler, concurrency, grace, stop).await }));
            // Retention runs beside the worker: every worker process may run it (redactions are
            // conditional updates, so two passes at once do each thing once).
            let retention = crate::service::retention::RetentionConfig::from_config(&state.config);
            tasks.push(tokio::spawn(crate::service::retention::run(
                state.store.clone(),
                state.clock,
                retention,
                state.metrics.clone(),
                shutdown.clone(),
            )));
        }
        tracing::info!(role = ?self.role, addr = ?self.addr, "safereach started");
        Ok(Running { addr: self.addr, state, shutdown, tasks })
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        // Not run: stop listening. (Run: the token and tasks have moved to `Running`.)
        if !self.tasks.is_empty() {
            self.shutdown.cancel();
        }
    }
}

/// What the listener serves: the application once it runs; until then `/healthz` (the process
/// is alive) and 503 with `Retry-After` for everything else, so that a load balancer waits and a
/// client tries again, and nothing is taken in that could not be stored.
fn front(app: Arc<OnceLock<Router>>) -> Router {
    Router::new().fallback(move |request: Request| {
        let app = app.clone();
        async move {
            match app.get() {
                Some(router) => router.clone().oneshot(request).await.into_response(),
                None if request.uri().path() == "/healthz" => "ok".into_response(),
                None => starting_up(),
            }
        }
    })
}

fn starting_up() -> Response {
    Problem::unavailable("starting: the database or the queue cannot be reached yet; nothing was stored")
        .into_response()
}

impl Running {
    /// Stop taking new work, let work in flight finish, and return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Run until SIGINT or SIGTERM, then stop gracefully.
    pub async fn until_signal(self) {
        wait_for_signal().await;
        tracing::info!("stopping: finishing work in flight");
        self.stop().await;
    }
}

/// SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
