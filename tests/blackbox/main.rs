//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

#[macro_use]
mod common;

mod api;
mod binary;
mod flow;
mod outage;
mod processes;
mod replies;
mod scenarios;
mod store;
