//! pg_stat_statements bookkeeping: per-interval deltas per statement, resets and queryid churn
//! handled, and the top N by time spent in the interval. Pure: rows in, deltas out.

use std::collections::HashMap;

/// Identity of a pg_stat_statements entry as we label it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatementKey {
    pub queryid: i64,
    pub user: String,
    pub datname: String,
}

/// Cumulative figures of one entry (times in milliseconds, as PostgreSQL reports them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatementTotals {
    pub calls: f64,
    pub exec_ms: f64,
    pub rows: f64,
    pub shared_blks_hit: f64,
    pub shared_blks_read: f64,
    pub blk_read_ms: f64,
    pub blk_write_ms: f64,
}

impl StatementTotals {
    fn minus(&self, earlier: &StatementTotals) -> StatementTotals {
        StatementTotals {
            calls: self.calls - earlier.calls,
            exec_ms: self.exec_ms - earlier.exec_ms,
            rows: self.rows - earlier.rows,
            shared_blks_hit: self.shared_blks_hit - earlier.shared_blks_hit,
            shared_blks_read: self.shared_blks_read - earlier.shared_blks_read,
            blk_read_ms: self.blk_read_ms - earlier.blk_read_ms,
            blk_write_ms: self.blk_write_ms - earlier.blk_write_ms,
        }
    }

    /// Mean execution time per call in seconds, 0 without calls.
    pub fn mean_seconds(&self) -> f64 {
        if self.calls > 0.0 {
            self.exec_ms / self.calls / 1000.0
        } else {
            0.0
        }
    }
}

/// One entry's current totals and what happened since the previous collection.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementDelta {
    pub key: StatementKey,
    pub totals: StatementTotals,
    pub delta: StatementTotals,
}

/// Remembers the previous totals of every entry.
#[derive(Debug, Default)]
pub struct StatementTracker {
    previous: HashMap<StatementKey, StatementTotals>,
    primed: bool,
}

impl StatementTracker {
    /// Takes the current rows and returns each entry's change since the last call, or `None`
    /// the first time (there is no interval yet). An entry whose calls went down was reset
    /// (`pg_stat_statements_reset()`, or evicted and re-added): its whole current total counts
    /// as the interval's. Entries that disappeared are forgotten, so memory follows
    /// `pg_stat_statements.max`.
    pub fn update(
        &mut self,
        current: Vec<(StatementKey, StatementTotals)>,
    ) -> Option<Vec<StatementDelta>> {
        let primed = self.primed;
        let mut deltas = Vec::with_capacity(current.len());
        let mut next = HashMap::with_capacity(current.len());
        for (key, totals) in current {
            let delta = match self.previous.get(&key) {
                Some(previous) if totals.calls >= previous.calls => totals.minus(previous),
                _ => totals,
            };
            deltas.push(StatementDelta {
                key: key.clone(),
                totals,
                delta,
            });
            next.insert(key, totals);
        }
        self.previous = next;
        self.primed = true;
        primed.then_some(deltas)
    }

    /// Forgets everything, e.g. after the server restarted.
    pub fn reset(&mut self) {
        self.previous.clear();
        self.primed = false;
    }
}

/// The `n` entries that spent the most execution time in the interval, among those called.
pub fn top_by_interval_time(deltas: &[StatementDelta], n: usize) -> Vec<&StatementDelta> {
    let mut called: Vec<&StatementDelta> = deltas.iter().filter(|d| d.delta.calls > 0.0).collect();
    called.sort_by(|a, b| {
        b.delta
            .exec_ms
            .total_cmp(&a.delta.exec_ms)
            .then_with(|| a.key.cmp(&b.key))
    });
    called.truncate(n);
    called
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(queryid: i64) -> StatementKey {
        StatementKey {
            queryid,
            user: "app".into(),
            datname: "db".into(),
        }
    }

    fn totals(calls: f64, exec_ms: f64) -> StatementTotals {
        StatementTotals {
            calls,
            exec_ms,
            ..StatementTotals::default()
        }
    }

    #[test]
    fn first_update_primes_then_deltas_follow() {
        let mut tracker = StatementTracker::default();
        assert_eq!(tracker.update(vec![(key(1), totals(10.0, 100.0))]), None);
        let deltas = tracker.update(vec![
            (key(1), totals(15.0, 160.0)),
            (key(2), totals(1.0, 5.0)),
        ]);
        let deltas = deltas.unwrap_or_default();
        assert_eq!(deltas[0].delta, totals(5.0, 60.0));
        assert_eq!(
            deltas[1].delta,
            totals(1.0, 5.0),
            "a new entry counts whole"
        );
    }

    #[test]
    fn a_reset_counts_the_new_totals_and_top_n_orders_by_interval_time() {
        let mut tracker = StatementTracker::default();
        tracker.update(vec![
            (key(1), totals(100.0, 1_000.0)),
            (key(2), totals(5.0, 10.0)),
            (key(3), totals(1.0, 1.0)),
        ]);
        let deltas = tracker
            .update(vec![
                (key(1), totals(2.0, 4_000.0)),
                (key(2), totals(6.0, 20.0)),
                (key(3), totals(1.0, 1.0)),
            ])
            .unwrap_or_default();
        assert_eq!(deltas[0].delta, totals(2.0, 4_000.0));
        let top = top_by_interval_time(&deltas, 5);
        let ids: Vec<i64> = top.iter().map(|d| d.key.queryid).collect();
        assert_eq!(ids, vec![1, 2], "entry 3 was not called in the interval");
        assert!((top[0].delta.mean_seconds() - 2.0).abs() < 1e-9);
    }
}
