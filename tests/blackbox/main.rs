//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

#[macro_use]
mod common;

mod api;
mod binary;
mod browser;
mod flow;
mod observability;
mod outage;
mod processes;
mod replies;
mod reports;
mod retention;
mod scenarios;
mod staff;
mod store;
