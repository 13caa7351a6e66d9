//! promptgate's integration tests, compiled into one binary to keep link time down.

mod support;

mod action;
mod checks;
mod cli_registry;
mod concurrency;
mod engine;
mod error_messages;
mod fuzz;
mod gate;
mod help;
mod identity;
mod judges;
mod promotion;
mod serve;
mod stats_reference;
mod store;
