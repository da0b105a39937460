//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

mod api;
mod binary;
mod common;
mod events;
mod failover;
mod flow;
mod kannel;
mod print;
mod replies;
mod scenarios;
mod smtp;
mod standin;
mod twilio;
