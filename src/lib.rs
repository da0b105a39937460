//! safereach: a safe-contact outreach gateway for a victim support service.
//!
//! Outreach jobs arrive over HTTP, are decided by the pure safe-contact policy, queued, decided
//! again by a worker right before sending, rendered from staff-approved templates, sent through
//! a channel provider, and recorded as events on the case timeline.

pub mod app;
pub mod bench;
pub mod calls;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod events_out;
pub mod http;
pub mod inbound;
pub mod logging;
pub mod outreach;
pub mod queue;
pub mod reports;
pub mod retention;
pub mod secrets;
pub mod staff;
pub mod store;
pub mod survey;

pub mod telemetry;
pub mod templates;
pub mod time;
pub mod worker;
