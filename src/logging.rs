//! Log set-up. Log lines carry ids, codes and case references, never personal data: handlers
//! and the worker log those fields only, and HTTP spans name the route pattern, not the URI.

use tracing_subscriber::EnvFilter;

/// `format` is `json` for one JSON object per line, else human-readable text. `RUST_LOG`
/// overrides the default `level`.
pub fn init(format: &str, level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,apalis=warn")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}
