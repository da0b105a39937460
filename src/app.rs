//! Wiring: run the roles a process has (HTTP API, worker, or both) over the shared state
//! (`service::AppState`), with graceful shutdown. The top of the house: nothing imports it but
//! the command line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
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

/// A started process: its address (when it serves HTTP) and its tasks.
pub struct Running {
    pub addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

pub async fn start(config: Config, role: Role, migrate: bool) -> Result<Running, AppError> {
    let state = Arc::new(AppState::build(config, migrate).await?);
    let events_target =
        crate::events_out::Target::from_config(&state.config).map_err(|e| AppError::Config(e.to_string()))?;
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let relay = Relay {
        store: state.store.clone(),
        queue: state.queue.clone(),
        clock: state.clock,
        wake: state.relay_wake.clone(),
    };
    tasks.push(tokio::spawn(relay.run(shutdown.clone())));

    let mut addr = None;
    if role.http() {
        let bind = state.config.bind.clone();
        let listener =
            tokio::net::TcpListener::bind(&bind).await.map_err(|source| AppError::Bind { addr: bind, source })?;
        addr = listener.local_addr().ok();
        let app = crate::http::router(state.clone());
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(crate::http::serve::serve(listener, app, stop)));
    }
    if role.worker() {
        let events = Arc::new(crate::events_out::EventsOut {
            store: state.store.clone(),
            clock: state.clock,
            target: events_target,
        });
        tasks.push(tokio::spawn(events.run(shutdown.clone())));
        let handler: Arc<dyn crate::queue::JobHandler> = Arc::new(state.worker());
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
    tracing::info!(role = ?role, addr = ?addr, "safereach started");
    Ok(Running { addr, state, shutdown, tasks })
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

async fn wait_for_signal() {
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
