//! Wiring: build the shared state from the configuration and run the roles a process has
//! (HTTP API, worker, or both), with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::channels::Channels;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::policy::PolicyConfig;
use crate::queue::{Queue, QueueError, Relay};
use crate::secrets::{SANDBOX_TOKEN_VAR, WebhookTokens};
use crate::store::{HashKeySource, Store, StoreError};
use crate::telemetry::Metrics;
use crate::worker::Worker;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Settings(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// What every handler and the worker share.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub queue: Queue,
    pub clock: Clock,
    pub policy: PolicyConfig,
    pub channels: Channels,
    /// The sandbox of every channel: where a test key's jobs are sent.
    pub test_channels: Channels,
    /// The callback token of each configured provider (`crate::secrets`).
    pub webhooks: WebhookTokens,
    /// Password checks (argon2, memory-hard) running at once are bounded by this.
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Wakes the relay after a commit that wrote queue work.
    pub relay_wake: Arc<Notify>,
    /// This instance's metrics (`/metrics`).
    pub metrics: Metrics,
    /// Each API key's token bucket in this process.
    pub rate_limits: crate::http::rate_limit::RateLimits,
    /// The on-call rota (`SAFEREACH_ONCALL_*`).
    pub oncall: Arc<crate::oncall::Rota>,
}

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

impl AppState {
    pub async fn build(config: Config, migrate: bool) -> Result<AppState, AppError> {
        config.check()?;
        let clock = Clock::configured(config.clock);
        let store = Store::open(&config.database_url, migrate, &HashKeySource::from_config(&config)).await?;
        let queue = Queue::connect(&config.database_url, config.redis_url.as_deref()).await?;
        let key_file = crate::secrets::key_file_for(&config.database_url).map(crate::secrets::KeyFile::new);
        let webhooks = WebhookTokens::from_config(&config, || {
            let Some(file) = &key_file else { return Ok(None) };
            let (token, made) = file.get_or_add(SANDBOX_TOKEN_VAR, crate::secrets::generate)?;
            if made {
                // Printed once, at first start: the sandbox's callbacks need it in their URLs.
                println!("{SANDBOX_TOKEN_VAR} (generated into {}): {token}", file.path().display());
            }
            Ok(Some(token))
        })?;
        // Older versions kept one token for every provider in the database; it is not reused
        // (every provider knew it).
        store.delete_setting("webhook_token").await?;
        let policy = PolicyConfig { quiet_hours: config.quiet_hours, ..PolicyConfig::default() };
        let metrics = Metrics::new();
        let oncall = crate::oncall::Rota::from_config(&config)?;
        let channels = crate::channels::from_config(&config, clock, webhooks.kannel.as_deref().unwrap_or_default())
            .map_err(|e| AppError::Config(e.to_string()))?;
        let test_channels =
            crate::channels::sandbox_from_config(&config, clock).map_err(|e| AppError::Config(e.to_string()))?;
        // Breakers outside the metrics: a provider skipped while it cools down is not a call.
        let channels = crate::telemetry::instrument(channels, &metrics)
            .with_breakers(config.breaker_failures, Duration::from_secs(config.breaker_cooldown_secs));
        Ok(AppState {
            config,
            store,
            queue,
            clock,
            policy,
            channels,
            test_channels,
            webhooks,
            password_checks: Arc::new(tokio::sync::Semaphore::new(crate::http::staff::PASSWORD_CHECKS_AT_ONCE)),
            relay_wake: Arc::new(Notify::new()),
            metrics,
            rate_limits: Default::default(),
            oncall,
        })
    }

    pub fn worker(&self) -> Worker {
        Worker {
            store: self.store.clone(),
            clock: self.clock,
            policy: self.policy.clone(),
            channels: self.channels.clone(),
            test_channels: self.test_channels.clone(),
            max_attempts: self.config.max_attempts,
            retry_base: Duration::from_secs(self.config.retry_base_secs),
            send_lease: Duration::from_secs(self.config.send_lease_secs.max(1)),
            relay_wake: self.relay_wake.clone(),
            before_claim: None,
            oncall: self.oncall.clone(),
        }
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
        let retention = crate::retention::RetentionConfig::from_config(&state.config);
        tasks.push(tokio::spawn(crate::retention::run(
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
