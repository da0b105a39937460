//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

mod api;
mod binary;
mod browser;
mod common;
mod events;
mod failover;
mod flow;
mod kannel;
mod observability;
mod print;
mod replies;
mod reports;
mod retention;
mod scenarios;
mod smtp;
mod staff;
mod standin;
mod twilio;
