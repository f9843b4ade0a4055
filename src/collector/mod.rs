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
pub mod wire_guard;

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
    /// A target could not be reached or refused us, with the root cause's kind.
    #[error("{message} ({kind})")]
    Target { kind: FailureKind, message: String },
    /// Any other failure, already described.
    #[error("{0}")]
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_source_keeps_its_details_marked_down() {
        let board = StatusBoard::default();
        board.publish("postgres:a", serde_json::json!({"statements": [1]}));
        let entry = &board.snapshot()["postgres:a"];
        assert_eq!(entry["up"], true);
        assert!(entry["collected_at"].is_string());
        let collected = entry["collected_at"].clone();
        board.mark_down("postgres:a");
        let entry = &board.snapshot()["postgres:a"];
        assert_eq!(entry["up"], false);
        assert_eq!(entry["collected_at"], collected);
        assert!(entry["failed_at"].is_string());
        assert_eq!(entry["statements"], serde_json::json!([1]));
    }

    #[test]
    fn failures_are_classified_by_root_cause() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(FailureKind::of_io(&refused), FailureKind::Refused);
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(FailureKind::of_io(&pipe), FailureKind::ConnectionLost);
        assert_eq!(
            FailureKind::of_sqlx(&sqlx::Error::PoolTimedOut),
            FailureKind::TimedOut
        );
    }
}

impl CollectError {
    /// The kind of failure, so the scheduler logs again when it changes (a stopped server first
    /// breaks the open connection, then refuses new ones).
    pub fn kind(&self) -> FailureKind {
        match self {
            CollectError::Target { kind, .. } => *kind,
            CollectError::Busy => FailureKind::TimedOut,
            CollectError::Read { .. } | CollectError::Other(_) => FailureKind::Other,
        }
    }
}

/// The root cause of a failed collection, as an operator acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Refused,
    AuthenticationFailed,
    TimedOut,
    Tls,
    ConnectionLost,
    Other,
}

impl FailureKind {
    /// Classifies an IO error by its kind.
    pub fn of_io(error: &std::io::Error) -> FailureKind {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::ConnectionRefused | ErrorKind::NotFound => FailureKind::Refused,
            ErrorKind::TimedOut | ErrorKind::WouldBlock => FailureKind::TimedOut,
            ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof => FailureKind::ConnectionLost,
            _ => FailureKind::Other,
        }
    }

    /// Classifies a sqlx error (PostgreSQL and PgBouncer).
    pub fn of_sqlx(error: &sqlx::Error) -> FailureKind {
        match error {
            sqlx::Error::Io(io) => FailureKind::of_io(io),
            sqlx::Error::Tls(_) => FailureKind::Tls,
            sqlx::Error::PoolTimedOut => FailureKind::TimedOut,
            // 28P01 invalid_password, 28000 invalid_authorization_specification.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("28P01" | "28000")) =>
            {
                FailureKind::AuthenticationFailed
            }
            // 57P01-57P03: the server is shutting down, restarting or not accepting yet.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03")) =>
            {
                FailureKind::ConnectionLost
            }
            _ => FailureKind::Other,
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::Refused => "connection refused",
            FailureKind::AuthenticationFailed => "authentication failed",
            FailureKind::TimedOut => "timed out",
            FailureKind::Tls => "TLS failed",
            FailureKind::ConnectionLost => "connection lost",
            FailureKind::Other => "error",
        })
    }
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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Details that do not belong in labels (normalised query texts, long-running sessions), kept
/// per source for `/api/v1/status` and bounded by what the collectors publish.
#[derive(Clone, Default)]
pub struct StatusBoard {
    entries: Arc<RwLock<BTreeMap<String, serde_json::Value>>>,
}

impl StatusBoard {
    /// Replaces a source's published details, stamped with when they were collected and
    /// `up: true`.
    pub fn publish(&self, source: &str, mut value: serde_json::Value) {
        if let Some(fields) = value.as_object_mut() {
            fields.insert("up".into(), serde_json::Value::Bool(true));
            fields.insert("collected_at".into(), now_rfc3339().into());
        }
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(source.to_string(), value);
        }
    }

    /// Marks a source down after a failed collection: its last details stay, with `up: false`,
    /// the `collected_at` of when they were read and `failed_at` of this failure.
    pub fn mark_down(&self, source: &str) {
        if let Ok(mut entries) = self.entries.write() {
            let entry = entries
                .entry(source.to_string())
                .or_insert_with(|| serde_json::json!({}));
            if let Some(fields) = entry.as_object_mut() {
                fields.insert("up".into(), serde_json::Value::Bool(false));
                fields.insert("failed_at".into(), now_rfc3339().into());
                fields
                    .entry("collected_at")
                    .or_insert(serde_json::Value::Null);
            }
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
