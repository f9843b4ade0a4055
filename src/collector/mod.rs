//! Collectors and the scheduler that runs each of them on its own interval.
//!
//! A collector only returns a [`Batch`]; the scheduler stamps it with the tick's timestamp, bounds
//! it with a timeout and writes it into the history. One task per collector means a slow or dead
//! one never delays another, and a scrape never waits for any of them.

pub mod host;
mod labels;
pub mod pgbouncer;
pub mod postgres;
pub mod process;
pub mod redis;
mod schedule;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

pub use labels::TargetLabels;

pub use schedule::{CollectorHealth, Readiness, now_ms, run_collector};

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

    /// What to record when a collection fails or times out: for a remote target its `*_up 0`,
    /// so dashboards and alerts see the target down rather than missing. Every other series of
    /// the source goes stale.
    fn failure_batch(&self) -> Batch {
        Batch::new()
    }
}

/// Details that do not belong in labels (normalised query texts, long-running sessions), kept
/// per source for `/api/v1/status` and bounded by what the collectors publish.
#[derive(Clone, Default)]
pub struct StatusBoard {
    entries: Arc<RwLock<BTreeMap<String, serde_json::Value>>>,
}

impl StatusBoard {
    /// Replaces a source's published details.
    pub fn publish(&self, source: &str, value: serde_json::Value) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(source.to_string(), value);
        }
    }

    /// Removes a source's details (the target was removed).
    pub fn remove(&self, source: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(source);
        }
    }

    /// A copy of every source's details.
    pub fn snapshot(&self) -> serde_json::Value {
        let entries = self.entries.read().map(|e| e.clone()).unwrap_or_default();
        serde_json::Value::Object(entries.into_iter().collect())
    }
}
