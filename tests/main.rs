//! promptgate's integration tests, compiled into one binary to keep link time down.

mod support;

mod action;
mod cli_registry;
mod concurrency;
mod engine;
mod error_messages;
mod fuzz;
mod help;
mod identity;
mod judges;
mod promotion;
mod serve;
mod store;
