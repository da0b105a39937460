//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

mod api;
mod binary;
mod browser;
mod common;
mod flow;
mod observability;
mod replies;
mod reports;
mod retention;
mod scenarios;
mod staff;
