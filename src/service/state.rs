//! What every handler and the worker share, built from the configuration.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::accept::Acceptor;
use super::deliver::Delivery;
use super::key_cache::KeyCache;
use super::oncall::Rota;
use super::rate_limit::RateLimits;
use super::statuses::StatusReports;
use crate::channels::Channels;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::policy::PolicyConfig;
use crate::queue::{Queue, QueueError};
use crate::secrets::{SANDBOX_TOKEN_VAR, WebhookTokens};
use crate::store::{HashKeySource, Store, StoreError};
use crate::telemetry::Metrics;

/// At most this many password checks run at once in a process (each takes ~19 MiB for argon2).
pub const PASSWORD_CHECKS_AT_ONCE: usize = 4;

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

impl AppError {
    /// The database or the queue could not be reached: waiting may mend it (unlike a setting,
    /// a migration or a key that is wrong).
    pub fn is_unavailable(&self) -> bool {
        match self {
            AppError::Store(e) => e.is_unavailable(),
            // Connecting to the queue's storage (Redis, or the database's pool) is all the queue
            // does at start.
            AppError::Queue(_) => true,
            _ => false,
        }
    }
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
    pub rate_limits: RateLimits,
    /// Accepts the requests that arrive together in one transaction (`super::accept`).
    pub acceptor: Acceptor,
    /// Applies the providers' status reports that arrive together in one transaction.
    pub status_reports: StatusReports,
    /// The API keys looked up lately (`super::key_cache`).
    pub api_keys: KeyCache,
    /// The on-call rota (`SAFEREACH_ONCALL_*`).
    pub oncall: Arc<Rota>,
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
        let oncall = Rota::from_config(&config)?;
        let channels = crate::channels::from_config(&config, clock, webhooks.kannel.as_deref().unwrap_or_default())
            .map_err(|e| AppError::Config(e.to_string()))?;
        let test_channels =
            crate::channels::sandbox_from_config(&config, clock).map_err(|e| AppError::Config(e.to_string()))?;
        // Breakers outside the metrics: a provider skipped while it cools down is not a call.
        let channels = crate::telemetry::instrument(channels, &metrics)
            .with_breakers(config.breaker_failures, Duration::from_secs(config.breaker_cooldown_secs));
        let relay_wake = Arc::new(Notify::new());
        let acceptor = Acceptor::start(store.clone(), clock, policy.clone(), relay_wake.clone(), metrics.clone());
        Ok(AppState {
            acceptor,
            status_reports: StatusReports::start(store.clone(), metrics.clone()),
            api_keys: KeyCache::default(),
            config,
            store,
            queue,
            clock,
            policy,
            channels,
            test_channels,
            webhooks,
            password_checks: Arc::new(tokio::sync::Semaphore::new(PASSWORD_CHECKS_AT_ONCE)),
            relay_wake,
            metrics,
            rate_limits: Default::default(),
            oncall,
        })
    }

    /// The worker's use case (decide again, render, claim, send, record) with this process's
    /// store, clock, policy, providers and limits.
    pub fn worker(&self) -> Delivery {
        Delivery {
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
