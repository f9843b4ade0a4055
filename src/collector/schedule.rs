//! The per-collector loop: wait for the next aligned tick, collect under a timeout, write the
//! batch into the history, record self-metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Collector, FailureKind};
use crate::config::CollectorSchedule;
use crate::history::History;

/// Which collectors have completed a first collection, and how each one's last collection
/// went; `/readyz` and `/api/v1/targets` answer from it.
#[derive(Clone, Default)]
pub struct Readiness {
    collected: Arc<Mutex<BTreeMap<String, bool>>>,
    health: Arc<Mutex<BTreeMap<String, CollectorHealth>>>,
}

/// How a collector's last collection went.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectorHealth {
    /// When it ran (the batch's timestamp, ms since the epoch).
    pub last_collection_ms: i64,
    pub duration_seconds: f64,
    /// Why it failed; `None` when it succeeded.
    pub last_error: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Readiness {
    /// Registers a collector that has not collected yet.
    pub fn expect(&self, name: &str) {
        if let Ok(mut map) = self.collected.lock() {
            map.entry(name.to_string()).or_insert(false);
        }
    }

    /// Forgets a collector removed by a reload.
    pub fn forget(&self, name: &str) {
        if let Ok(mut map) = self.collected.lock() {
            map.remove(name);
        }
        if let Ok(mut map) = self.health.lock() {
            map.remove(name);
        }
    }

    fn record(&self, name: &str, health: CollectorHealth) {
        if let Ok(mut map) = self.health.lock() {
            map.insert(name.to_string(), health);
        }
    }

    /// Every registered collector with its last collection (`None` before the first).
    pub fn health(&self) -> BTreeMap<String, Option<CollectorHealth>> {
        let health = self.health.lock().map(|m| m.clone()).unwrap_or_default();
        self.collected
            .lock()
            .map(|map| {
                map.keys()
                    .map(|name| (name.clone(), health.get(name).cloned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mark(&self, name: &str) {
        if let Ok(mut map) = self.collected.lock() {
            map.insert(name.to_string(), true);
        }
    }

    /// The collectors that have not completed a collection yet; empty means ready.
    pub fn pending(&self) -> Vec<String> {
        self.collected
            .lock()
            .map(|map| {
                map.iter()
                    .filter(|(_, done)| !**done)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs `collector` until `cancel` fires.
///
/// Ticks are aligned to multiples of the interval on the wall clock and the batch is stamped
/// with the tick's time, so timestamps are exactly regular (which the history compresses to one
/// bit) and every series of a batch shares one timestamp. A collection that overruns its
/// interval skips the ticks it missed and counts them.
pub async fn run_collector<C: Collector>(
    mut collector: C,
    schedule: CollectorSchedule,
    history: Arc<RwLock<History>>,
    readiness: Readiness,
    cancel: CancellationToken,
) {
    let name = collector.name().to_string();
    let labels = [("collector", name.clone())];
    metrics::gauge!("prismwatch_collector_interval_seconds", &labels)
        .set(schedule.interval.as_secs_f64());
    metrics::gauge!("prismwatch_collector_timeout_seconds", &labels)
        .set(schedule.timeout.as_secs_f64());
    readiness.expect(&name);
    let interval_ms = schedule.interval.as_millis().max(1) as i64;
    let mut failing = false;
    // The kind of the current failure: a change of kind is logged again.
    let mut failure_kind: Option<FailureKind> = None;
    let mut last_tick: Option<i64> = None;
    loop {
        // The first collection runs at once, so the daemon is ready quickly; later ones are
        // aligned to the interval.
        let tick = match last_tick {
            None => now_ms(),
            Some(previous) => {
                let now = now_ms();
                // Never repeat or go back in time, even if the wall clock does.
                let next =
                    ((now.div_euclid(interval_ms) + 1) * interval_ms).max(previous + interval_ms);
                let skipped = (next - previous) / interval_ms - 1;
                if skipped > 0 && previous % interval_ms == 0 {
                    metrics::counter!("prismwatch_collector_missed_intervals_total", &labels)
                        .increment(skipped as u64);
                }
                let wait = Duration::from_millis((next - now).max(0) as u64);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                next
            }
        };
        last_tick = Some(tick);
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = cancel.cancelled() => break,
            outcome = tokio::time::timeout(schedule.timeout, collector.collect()) => outcome,
        };
        let elapsed = started.elapsed().as_secs_f64();
        metrics::gauge!("prismwatch_collector_duration_seconds", &labels).set(elapsed);
        let last_error = match &outcome {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("timed out after {:?}", schedule.timeout)),
        };
        readiness.record(
            &name,
            CollectorHealth {
                last_collection_ms: tick,
                duration_seconds: elapsed,
                last_error,
                interval: schedule.interval,
                timeout: schedule.timeout,
            },
        );
        let (batch, result) = match outcome {
            Ok(Ok(batch)) => {
                if failing {
                    info!(collector = %name, "Collector recovered.");
                }
                failing = false;
                failure_kind = None;
                (batch, "success")
            }
            Ok(Err(error)) => {
                let kind = error.kind();
                if !failing || failure_kind != Some(kind) {
                    warn!(collector = %name, %kind, %error, "Collection failed; its series are marked stale until it recovers.");
                } else {
                    debug!(collector = %name, %error, "Collection still failing.");
                }
                failing = true;
                failure_kind = Some(kind);
                (collector.failure_batch(), "error")
            }
            Err(_) => {
                if !failing || failure_kind != Some(FailureKind::TimedOut) {
                    warn!(collector = %name, timeout = ?schedule.timeout, "Collection timed out; its series are marked stale until it recovers.");
                }
                failing = true;
                failure_kind = Some(FailureKind::TimedOut);
                (collector.failure_batch(), "timeout")
            }
        };
        metrics::counter!("prismwatch_collector_runs_total", "collector" => name.clone(), "result" => result)
            .increment(1);
        metrics::gauge!("prismwatch_collector_success", &labels).set(if result == "success" {
            1.0
        } else {
            0.0
        });
        if result == "success" {
            metrics::gauge!(
                "prismwatch_collector_last_success_timestamp_seconds",
                &labels
            )
            .set(tick as f64 / 1000.0);
        }
        let samples = batch.len();
        let report = match history.write() {
            Ok(mut history) => history.ingest(&name, tick, batch),
            Err(_) => break,
        };
        if report.dropped_over_cap > 0 {
            metrics::counter!("prismwatch_history_series_dropped_total", &labels)
                .increment(report.dropped_over_cap as u64);
            warn!(collector = %name, dropped = report.dropped_over_cap, "History series cap reached; new series dropped. Raise history.max_series if this is expected.");
        }
        debug!(collector = %name, samples, elapsed, ?report, "Collected.");
        readiness.mark(&name);
    }
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::CollectError;
    use crate::history::HistoryLimits;
    use crate::model::{Batch, Labels, MetricKind};

    /// Counts its collections; sleeps `delay` in each one.
    struct Probe {
        name: &'static str,
        delay: Duration,
        runs: u32,
    }

    impl Collector for Probe {
        fn name(&self) -> &str {
            self.name
        }

        async fn collect(&mut self) -> Result<Batch, CollectError> {
            tokio::time::sleep(self.delay).await;
            self.runs += 1;
            let mut batch = Batch::new();
            batch.single(
                &format!("{}_runs", self.name),
                MetricKind::Gauge,
                "runs",
                f64::from(self.runs),
            );
            Ok(batch)
        }
    }

    #[tokio::test]
    async fn a_hung_collector_times_out_without_delaying_another() {
        let history = Arc::new(RwLock::new(History::new(HistoryLimits::default())));
        let readiness = Readiness::default();
        let cancel = CancellationToken::new();
        let schedule = |interval_ms: u64, timeout_ms: u64| CollectorSchedule {
            enabled: true,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
        };
        let hung = Probe {
            name: "hung",
            delay: Duration::from_secs(3600),
            runs: 0,
        };
        let fast = Probe {
            name: "fast",
            delay: Duration::ZERO,
            runs: 0,
        };
        let tasks = [
            tokio::spawn(run_collector(
                hung,
                schedule(200, 150),
                Arc::clone(&history),
                readiness.clone(),
                cancel.clone(),
            )),
            tokio::spawn(run_collector(
                fast,
                schedule(100, 100),
                Arc::clone(&history),
                readiness.clone(),
                cancel.clone(),
            )),
        ];
        tokio::time::sleep(Duration::from_millis(1_050)).await;
        cancel.cancel();
        for task in tasks {
            assert!(task.await.is_ok());
        }
        let history = history
            .read()
            .map_err(|_| "poisoned")
            .unwrap_or_else(|e| panic!("{e}"));
        let fast_runs = history
            .latest(&Labels::new("fast_runs", &[]))
            .map(|(_, v)| v);
        // About ten ticks in 1.05 s; a stalled scheduler would give one or two.
        assert!(fast_runs.is_some_and(|runs| runs >= 7.0), "{fast_runs:?}");
        assert_eq!(history.latest(&Labels::new("hung_runs", &[])), None);
        assert_eq!(
            readiness.pending(),
            Vec::<String>::new(),
            "a timed-out collection still counts as done"
        );
    }
}
