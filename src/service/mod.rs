//! The application layer: one function per use case, each owning its transaction and writing its
//! timeline events, and waking the relay itself when it wrote queue work. HTTP handlers, the
//! worker and the command line call these; they never write through the store themselves.
//!
//! Layers (arrows point down; see docs/architecture.md): `http`, `cli`, `worker` → `service` →
//! `templates`, `channels`, `queue`, `store` → `domain`.

pub mod accept;
pub mod accounts;
pub mod calls;
pub mod cancel;
pub mod dead_letters;
mod decisions;
pub mod deliver;
pub mod erasure;
pub mod oncall;
pub mod rate_limit;
pub mod replies;
pub mod retention;
pub mod review;
pub mod sessions;
mod state;
pub mod statuses;
pub mod survey;
pub mod templates;
pub mod two_factor;

pub use state::{AppError, AppState, PASSWORD_CHECKS_AT_ONCE};
