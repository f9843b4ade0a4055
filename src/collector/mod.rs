//! Collectors and the scheduler that runs each of them on its own interval.
//!
//! A collector only returns a [`Batch`]; the scheduler stamps it with the tick's timestamp, bounds
//! it with a timeout and writes it into the history. One task per collector means a slow or dead
//! one never delays another, and a scrape never waits for any of them.

pub mod host;
pub mod process;
mod schedule;

use std::future::Future;

pub use schedule::{Readiness, run_collector};

use crate::model::Batch;

/// Why a collection failed. The scheduler logs it on the first failure and on recovery only, so a
/// persistent fault gives one clear line, not a flood.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A source the collector needs could not be read.
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The previous collection is still running past its timeout (for example a hung mount).
    #[error("the previous collection is still running")]
    Busy,
    /// Any other failure, already described.
    #[error("{0}")]
    Other(String),
}

/// Something that produces a complete batch of samples on demand.
pub trait Collector: Send + 'static {
    /// A short, stable name used in logs, self-metrics and as the history source.
    fn name(&self) -> &str;

    /// Gathers one batch. The scheduler enforces the timeout by dropping the future.
    fn collect(&mut self) -> impl Future<Output = Result<Batch, CollectError>> + Send;
}
