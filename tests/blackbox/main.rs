//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

#[macro_use]
mod common;

mod api;
mod bench;
mod binary;
mod browser;
mod differential;
mod events;
mod failover;
mod flow;
mod kannel;
mod observability;
mod oncall;
mod outage;
mod print;
mod processes;
mod queue_backlog;
mod reliability;
mod replies;
mod reports;
mod retention;
mod retention_doc;
mod safe_contact;
mod scenarios;
mod single_party;
mod smtp;
mod staff;
mod standin;
mod store;
mod survey;
mod triage;
mod twilio;
mod two_factor;
mod worker_batch;
