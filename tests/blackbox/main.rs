//! Black-box tests: the real app on a random port with a temporary database, driven over HTTP.

mod common;
mod api;
mod scenarios;
