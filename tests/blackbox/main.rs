//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

mod common;
mod flow;
mod api;
mod scenarios;
