//! What a command can fail with, and who the command line acts as.

use crate::app;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    App(#[from] app::AppError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Template(#[from] crate::service::templates::WorkflowError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Settings(#[from] crate::config::ConfigError),
}

/// Who the command line acts as, in the audit table and on accounts it creates.
pub const CLI_ACTOR: &str = "cli";
