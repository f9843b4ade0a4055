//! prismwatch: a host observability agent for services on PostgreSQL and Redis.
//!
//! A sample flows one way: a [`collector`] returns a [`model::Batch`], the scheduler writes it
//! into the [`history`], and [`exposition`] renders the history's latest values on `/metrics`.
//! See ARCHITECTURE.md for the map and the invariants.

pub mod cli;
pub mod collector;
pub mod config;
pub mod daemon;
pub mod exposition;
pub mod history;
pub mod http;
pub mod logging;
pub mod model;
pub mod notify;
pub mod query_client;
pub mod rules;
pub mod self_metrics;
pub mod spend;
pub mod state_file;
pub mod store;
pub mod telemetry;
